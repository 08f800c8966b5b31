/**
 * Loading an experiment config: read YAML with positions, interpolate `${env:NAME}`, resolve
 * `extends:` (deep merge, cycles reported), apply `--set`, resolve data.path, validate with the
 * zod schema and the cross-field rules. Every problem becomes a positioned Diagnostic; all of a
 * file's problems are reported together.
 */
import path from "node:path";
import { stringify } from "yaml";
import { UserError } from "../errors.ts";
import {
  compareDiagnostics,
  displayPath,
  formatDiagnostic,
  formatKeyPath,
  SET_ORIGIN,
  type Diagnostic,
  type KeyPath,
} from "./diagnostics.ts";
import { interpolateEnv } from "./interpolate.ts";
import { checkDataPath, checkRegularFile } from "./files.ts";
import { reportIssues, type Anchor, type Message } from "./issues.ts";
import { MAX_CONFIG_FILES, MAX_DATA_BYTES, MAX_PROBLEMS } from "./limits.ts";
import { isPlainObject, mergeLayers, setOwn, type Layered } from "./merge.ts";
import { OriginTree, type Position } from "./origins.ts";
import { checkRules } from "./rules.ts";
import { ExperimentSchema, FILE_PATH_KEYS, HUB_DATA_PREFIX, type Experiment } from "./schema.ts";
import { methodKindOf, parseTypedText, resolveKeyPath } from "./schema-paths.ts";
import { readSource } from "./source.ts";

export type LoadOptions = {
  /** `key.path=value` overrides, applied last, each read as the type the schema expects there. */
  set?: readonly string[];
  /** Variables for `${env:NAME}` (default: process.env). */
  env?: NodeJS.ProcessEnv;
};

export type CheckResult = {
  /** Absolute path of the config file. */
  configPath: string;
  /** Set when there is no error. */
  experiment?: Experiment;
  /** Errors and warnings in file order: the first MAX_PROBLEMS, then one that counts the rest. */
  diagnostics: Diagnostic[];
  /** Errors found, including those not listed in `diagnostics`. */
  errorCount: number;
  /** Set when there is no error: the merged, interpolated config (before defaults), data.path absolute. */
  snapshotYaml?: string;
  /** Every config file read (the file and what it extends), absolute. */
  sources: string[];
  /** Set when there is no error: see LoadedExperiment. */
  warningAt?: (keyPath: KeyPath, message: string) => Diagnostic;
};

export type LoadedExperiment = {
  experiment: Experiment;
  configPath: string;
  warnings: Diagnostic[];
  snapshotYaml: string;
  sources: string[];
  /** A warning positioned at the text that set `keyPath` (for what the plan finds: the config's own positions). */
  warningAt: (keyPath: KeyPath, message: string) => Diagnostic;
};

const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|AUTH|CREDENTIAL/i;

type Pending = Omit<Diagnostic, "message"> & { message: Message };

/**
 * Every problem found, with its message built only if it is shown: a file with 20,000 unknown keys
 * costs 20,000 positions, not 20,000 suggestions (`finish` keeps the first MAX_PROBLEMS).
 */
class Collector {
  private readonly pending: Pending[] = [];
  /** Values of secret-looking variables (HF_TOKEN, ...): never echoed in a message. */
  readonly secrets = new Map<string, string>();
  /** Key paths already reported as unusable (an unset variable): later errors there would only repeat it. */
  readonly reported = new Set<string>();
  /** Config files loaded so far, counting a file each time it is extended (MAX_CONFIG_FILES). */
  filesLoaded = 0;
  errorCount = 0;
  private readonly errorPaths = new Set<string>();
  /** displayPath per file: a file with 20,000 problems is one path.relative, not 20,000. */
  private readonly shownFiles = new Map<string, string>();
  constructor(private readonly fallbackFile: string) {}

  private shown(file: string): string {
    let shown = this.shownFiles.get(file);
    if (shown === undefined) {
      shown = displayPath(file);
      this.shownFiles.set(file, shown);
    }
    return shown;
  }

  /** The position for a key path: the value, the key, or (for a key that is not there) its parent's key. */
  locate(origins: OriginTree, keyPath: KeyPath, anchor: Anchor): { file: string } & Position {
    const found = origins.nearest(keyPath);
    if (found === undefined) return { file: this.fallbackFile, line: 1, col: 1 };
    const { origin, exact } = found;
    const position = exact ? (anchor === "key" && origin.key ? origin.key : origin.value) : (origin.key ?? origin.value);
    return { file: origin.file, ...position };
  }

  add(severity: Diagnostic["severity"], origins: OriginTree, keyPath: KeyPath, message: Message, anchor: Anchor = "value"): void {
    const shownPath = formatKeyPath(keyPath);
    if (severity === "error" && this.reported.has(shownPath)) return;
    const { file, line, col } = this.locate(origins, keyPath, anchor);
    this.push({ severity, file: this.shown(file), line, col, path: shownPath, message });
  }

  addAt(file: string, position: Position, message: string, keyPath: KeyPath = []): void {
    this.push({ severity: "error", file: displayPath(file), ...position, path: formatKeyPath(keyPath), message });
  }

  push(...diagnostics: Pending[]): void {
    for (const diagnostic of diagnostics) {
      this.pending.push(diagnostic);
      if (diagnostic.severity === "error") {
        this.errorCount++;
        this.errorPaths.add(diagnostic.path);
      }
    }
  }

  hasErrorAt(keyPath: KeyPath): boolean {
    return this.errorPaths.has(formatKeyPath(keyPath));
  }

  /** The first MAX_PROBLEMS problems (errors before warnings), in file order, then one that counts the rest. */
  finish(): Diagnostic[] {
    const errors = this.pending.filter((d) => d.severity === "error");
    const warnings = this.pending.filter((d) => d.severity === "warning");
    const byPosition = (a: Pending, b: Pending) => compareDiagnostics(a as Diagnostic, b as Diagnostic);
    errors.sort(byPosition);
    warnings.sort(byPosition);
    const shown = [...errors.slice(0, MAX_PROBLEMS), ...warnings.slice(0, Math.max(0, MAX_PROBLEMS - errors.length))];
    const out: Diagnostic[] = shown.sort(byPosition).map((d) => ({ ...d, message: this.redact(typeof d.message === "string" ? d.message : d.message()) }));
    const moreErrors = Math.max(0, errors.length - MAX_PROBLEMS);
    const moreWarnings = warnings.length - Math.max(0, Math.min(warnings.length, MAX_PROBLEMS - errors.length));
    if (moreErrors + moreWarnings > 0) {
      const first = moreErrors > 0 ? errors[MAX_PROBLEMS]! : warnings[warnings.length - moreWarnings]!;
      const counts = [moreErrors > 0 ? plural(moreErrors, "more error") : "", moreWarnings > 0 ? plural(moreWarnings, "more warning") : ""].filter(Boolean).join(" and ");
      out.push({
        severity: moreErrors > 0 ? "error" : "warning",
        file: first.file,
        line: first.line,
        col: first.col,
        path: "",
        message: `${counts} from here on, not listed (the first ${MAX_PROBLEMS} are); fix those and validate again`,
      });
    }
    return out;
  }

  private redact(message: string): string {
    let out = message;
    for (const [value, name] of this.secrets) out = out.split(value).join(`<\${env:${name}}>`);
    return out;
  }
}

function plural(count: number, noun: string): string {
  return `${count.toLocaleString("en-US")} ${noun}${count === 1 ? "" : "s"}`;
}

/** Loads one file and everything it extends into one layer; `chain` is the extends path so far. */
async function loadLayer(file: string, chain: string[], env: NodeJS.ProcessEnv, collector: Collector): Promise<Layered | { unusable: string } | undefined> {
  collector.filesLoaded++;
  const read = await readSource(file);
  if (read.kind !== "ok") {
    // An extended file's problem is reported at the `extends` entry that names it.
    if (chain.length > 1) return { unusable: read.kind === "not-found" ? `extended file not found: ${displayPath(file)}` : `extended file ${read.message}` };
    collector.addAt(file, { line: 1, col: 1 }, read.message);
    return undefined;
  }
  collector.push(...read.diagnostics);
  if (read.diagnostics.length > 0) return undefined;
  const { source } = read;
  if (!isPlainObject(source.value)) {
    const what = source.value === null || source.value === undefined ? "the file is empty" : "the top level is not a mapping";
    collector.add("error", source.origins, [], `${what}: a config is a mapping with name, model, method and data (see docs/config-reference.md)`);
    return undefined;
  }
  const interpolated = interpolateEnv(source.value, env);
  for (const problem of interpolated.problems) collector.add("error", source.origins, problem.path, problem.message);
  for (const problem of interpolated.problems) collector.reported.add(formatKeyPath(problem.path));
  for (const { name, value } of interpolated.substituted) {
    if (SECRET_NAME.test(name) && value.length >= 4) collector.secrets.set(value, name);
  }
  const own = interpolated.value as Record<string, unknown>;

  const parents = own.extends;
  delete own.extends;
  let merged: Layered = { value: {}, origins: new OriginTree() };
  const list = parents === undefined ? [] : Array.isArray(parents) ? parents : [parents];
  const listed = Array.isArray(parents);
  for (const [index, parent] of list.entries()) {
    const where: KeyPath = listed ? ["extends", index] : ["extends"];
    if (typeof parent !== "string" || parent === "") {
      collector.add("error", source.origins, where, "expected the path of a config file (relative to this file, or absolute)");
      continue;
    }
    const parentFile = path.resolve(path.dirname(file), parent);
    if (chain.includes(parentFile)) {
      const cycle = [...chain.slice(chain.indexOf(parentFile)), parentFile].map((f) => displayPath(f)).join(" -> ");
      collector.add("error", source.origins, where, `extends cycle: ${cycle}`);
      continue;
    }
    if (collector.filesLoaded >= MAX_CONFIG_FILES) {
      // A file extending another twice, which extends another twice, ... loads 2^depth files.
      collector.add("error", source.origins, where, `extends loads more than ${MAX_CONFIG_FILES} config files (counting a file each time it is extended); extend fewer files`);
      break;
    }
    const layer = await loadLayer(parentFile, [...chain, parentFile], env, collector);
    if (layer && "unusable" in layer) collector.add("error", source.origins, where, layer.unusable);
    else if (layer) merged = mergeLayers(merged, layer);
  }
  source.origins.deleteChild("extends");
  return mergeLayers(merged, { value: own, origins: source.origins });
}

/** Applies `--set key.path=value` overrides; the n-th one is positioned at `<--set>:n:col`. */
function applySets(layer: Layered, sets: readonly string[], collector: Collector): Layered {
  const root = layer.value as Record<string, unknown>;
  const { origins } = layer;
  sets.forEach((assignment, index) => {
    const line = index + 1;
    const equals = assignment.indexOf("=");
    const dotted = equals < 0 ? assignment : assignment.slice(0, equals);
    if (equals <= 0 || dotted.split(".").some((segment) => segment === "")) {
      collector.addAt(SET_ORIGIN, { line, col: 1 }, `expected key.path=value, got ${JSON.stringify(assignment)}`);
      return;
    }
    if (dotted.split(".")[0] === "extends") {
      collector.addAt(SET_ORIGIN, { line, col: 1 }, "extends cannot be overridden with --set: files are merged before overrides", ["extends"]);
      return;
    }
    const methodKind = methodKindOf(root);
    const resolved = resolveKeyPath(dotted, { methodKind: dotted === "method.kind" ? undefined : methodKind });
    const value = parseTypedText(assignment.slice(equals + 1), resolved.schemas, methodKind);
    if (dotted === "method.kind" && isPlainObject(root.method) && root.method.kind !== value) {
      // As with extends: another method's options mean nothing to this one.
      setOwn(root, "method", {});
      origins.drop(["method"]);
    }
    let node = root;
    resolved.path.forEach((segment, depth) => {
      const keyPath = resolved.path.slice(0, depth + 1);
      if (depth === resolved.path.length - 1) {
        setOwn(node, segment, value);
        origins.graft(keyPath, new OriginTree({ file: SET_ORIGIN, key: { line, col: 1 + dotted.lastIndexOf(segment) }, value: { line, col: equals + 2 } }));
        return;
      }
      if (!isPlainObject(node[segment])) {
        setOwn(node, segment, {});
        origins.graft(keyPath, new OriginTree({ file: SET_ORIGIN, key: { line, col: 1 }, value: { line, col: 1 } }));
      }
      node = node[segment] as Record<string, unknown>;
    });
  });
  return { value: root, origins };
}

/** Makes every FILE_PATH_KEYS path absolute, against the file that set it (the working directory for --set); returns data.path's. */
function resolveDataPath(root: Record<string, unknown>, origins: OriginTree): string | undefined {
  let dataPath: string | undefined;
  for (const keyPath of FILE_PATH_KEYS) {
    const parent = keyPath.slice(0, -1).reduce<unknown>((node, key) => (isPlainObject(node) ? node[key] : undefined), root);
    const key = keyPath.at(-1)!;
    if (!isPlainObject(parent) || typeof parent[key] !== "string" || parent[key] === "") continue;
    if ((parent[key] as string).startsWith(HUB_DATA_PREFIX)) continue; // a Hub data set, not a path
    const origin = origins.get(keyPath);
    const base = origin === undefined || origin.file === SET_ORIGIN ? process.cwd() : path.dirname(origin.file);
    parent[key] = path.resolve(base, parent[key] as string);
    if (keyPath === FILE_PATH_KEYS[0]) dataPath = parent[key] as string;
  }
  return dataPath;
}

/**
 * Files the config names must be regular files: a FIFO would block the data summary (and the shim)
 * for good, a device never ends. Stat'ed only (nothing is opened); a missing one is only a warning,
 * since validation does not need it and the file may come later.
 */
function checkNamedFiles(root: Record<string, unknown>, collector: Collector, origins: OriginTree): void {
  for (const keyPath of FILE_PATH_KEYS) {
    const file = keyPath.reduce<unknown>((node, key) => (isPlainObject(node) ? node[key] : undefined), root);
    if (typeof file !== "string" || file === "" || !path.isAbsolute(file) || collector.hasErrorAt(keyPath)) continue;
    const isData = keyPath.at(-1) === "path";
    // Word vectors are streamed and can be larger than any data file (glove.840B is 5.6 GB).
    const checked = isData ? checkDataPath(file, MAX_DATA_BYTES) : checkRegularFile(file, Number.POSITIVE_INFINITY, "a word-vector file");
    if (checked.kind === "bad") collector.add("error", origins, keyPath, `${displayPath(file)} ${checked.reason}`);
    else if (checked.kind === "missing" && keyPath === FILE_PATH_KEYS[0]) {
      collector.add("warning", origins, keyPath, `data file not found: ${displayPath(file)} (validation goes on; a run needs it)`);
    }
  }
}

/** Validates a config without throwing: every error and warning, and the experiment when valid. */
export async function checkExperiment(file: string, options: LoadOptions = {}): Promise<CheckResult> {
  const configPath = path.resolve(file);
  const collector = new Collector(configPath);
  const env = options.env ?? process.env;
  const sources = new Set<string>();
  const layer = await loadLayer(configPath, [configPath], env, collector);
  const done = (extra: Partial<CheckResult> = {}): CheckResult => ({
    configPath,
    diagnostics: collector.finish(),
    errorCount: collector.errorCount,
    sources: [...sources],
    ...extra,
  });
  if (!layer || "unusable" in layer) return done();
  for (const origin of layer.origins.origins()) if (origin.file !== SET_ORIGIN) sources.add(origin.file);

  const { value, origins } = applySets(layer, options.set ?? [], collector);
  const root = value as Record<string, unknown>;
  resolveDataPath(root, origins);

  const report = (keyPath: KeyPath, message: Message, anchor?: Anchor) => collector.add("error", origins, keyPath, message, anchor);
  const warn = (keyPath: KeyPath, message: Message, anchor?: Anchor) => collector.add("warning", origins, keyPath, message, anchor);
  const parsed = ExperimentSchema.safeParse(root, { reportInput: true });
  if (!parsed.success) reportIssues(parsed.error.issues, root, report);
  checkRules(root, report, warn, parsed.success ? parsed.data : undefined);
  checkNamedFiles(root, collector, origins);
  if (!parsed.success || collector.errorCount > 0) return done();

  const experiment = parsed.data;
  delete experiment.$schema;
  delete experiment.extends;
  const snapshot = { ...root };
  delete snapshot.$schema;
  const warningAt = (keyPath: KeyPath, message: string): Diagnostic => {
    const { file, line, col } = collector.locate(origins, keyPath, "value");
    return { severity: "warning", file: displayPath(file), line, col, path: formatKeyPath(keyPath), message };
  };
  return { ...done({ experiment, snapshotYaml: stringify(snapshot) }), warningAt };
}

/** Loads a config for planning and running; throws UserError PEFTCTL_CONFIG_INVALID listing every error. */
export async function loadExperiment(file: string, options: LoadOptions = {}): Promise<LoadedExperiment> {
  const result = await checkExperiment(file, options);
  const errors = result.diagnostics.filter((d) => d.severity === "error");
  if (!result.experiment || result.snapshotYaml === undefined || result.warningAt === undefined || result.errorCount > 0) {
    if (errors.length === 1 && errors[0]!.message.startsWith("config file not found")) {
      throw new UserError("PEFTCTL_CONFIG_NOT_FOUND", `config file not found: ${displayPath(result.configPath)}`);
    }
    throw new UserError("PEFTCTL_CONFIG_INVALID", `${displayPath(result.configPath)}: ${plural(result.errorCount, "error")}`, result.diagnostics.map(formatDiagnostic));
  }
  return {
    experiment: result.experiment,
    configPath: result.configPath,
    warnings: result.diagnostics.filter((d) => d.severity === "warning"),
    snapshotYaml: result.snapshotYaml,
    sources: result.sources,
    warningAt: result.warningAt,
  };
}
