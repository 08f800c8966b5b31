/**
 * Loading an experiment config: read YAML with positions, interpolate `${env:NAME}`, resolve
 * `extends:` (deep merge, cycles reported), apply `--set`, resolve data.path, validate with the
 * zod schema and the cross-field rules. Every problem becomes a positioned Diagnostic; all of a
 * file's problems are reported together.
 */
import { stat } from "node:fs/promises";
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
import { reportIssues, type Anchor } from "./issues.ts";
import { dropOrigins, isPlainObject, mergeLayers, setOwn, type Layered } from "./merge.ts";
import { checkRules } from "./rules.ts";
import { ExperimentSchema, type Experiment } from "./schema.ts";
import { methodKindOf, parseTypedText, resolveKeyPath } from "./schema-paths.ts";
import { pathKey, readSource, type Origin, type Origins, type Position } from "./source.ts";

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
  /** Errors and warnings, in file order. */
  diagnostics: Diagnostic[];
  /** Set when there is no error: the merged, interpolated config (before defaults), data.path absolute. */
  snapshotYaml?: string;
  /** Every config file read (the file and what it extends), absolute. */
  sources: string[];
};

export type LoadedExperiment = {
  experiment: Experiment;
  configPath: string;
  warnings: Diagnostic[];
  snapshotYaml: string;
  sources: string[];
};

const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|AUTH|CREDENTIAL/i;

class Collector {
  readonly diagnostics: Diagnostic[] = [];
  /** Values of secret-looking variables (HF_TOKEN, ...): never echoed in a message. */
  readonly secrets = new Map<string, string>();
  /** Key paths already reported as unusable (an unset variable): later errors there would only repeat it. */
  readonly reported = new Set<string>();
  constructor(private readonly fallbackFile: string) {}

  /** The position for a key path: the value, the key, or (for a key that is not there) its parent's key. */
  locate(origins: Origins, keyPath: KeyPath, anchor: Anchor): { file: string } & Position {
    const exact = origins.get(pathKey(keyPath));
    if (exact) return { file: exact.file, ...(anchor === "key" && exact.key ? exact.key : exact.value) };
    for (let length = keyPath.length - 1; length >= 0; length--) {
      const parent = origins.get(pathKey(keyPath.slice(0, length)));
      if (parent) return { file: parent.file, ...(parent.key ?? parent.value) };
    }
    return { file: this.fallbackFile, line: 1, col: 1 };
  }

  add(severity: Diagnostic["severity"], origins: Origins, keyPath: KeyPath, message: string, anchor: Anchor = "value"): void {
    if (severity === "error" && this.reported.has(formatKeyPath(keyPath))) return;
    const { file, line, col } = this.locate(origins, keyPath, anchor);
    this.diagnostics.push({ severity, file: displayPath(file), line, col, path: formatKeyPath(keyPath), message: this.redact(message) });
  }

  private redact(message: string): string {
    let out = message;
    for (const [value, name] of this.secrets) out = out.split(value).join(`<\${env:${name}}>`);
    return out;
  }

  addAt(file: string, position: Position, message: string, keyPath: KeyPath = []): void {
    this.diagnostics.push({ severity: "error", file: displayPath(file), ...position, path: formatKeyPath(keyPath), message });
  }

  get errorCount(): number {
    return this.diagnostics.filter((d) => d.severity === "error").length;
  }
}

/** Loads one file and everything it extends into one layer; `chain` is the extends path so far. */
async function loadLayer(file: string, chain: string[], env: NodeJS.ProcessEnv, collector: Collector): Promise<Layered | "missing" | undefined> {
  const read = await readSource(file);
  if (read.kind !== "ok") {
    if (read.kind === "not-found" && chain.length > 1) return "missing";
    collector.addAt(file, { line: 1, col: 1 }, read.message);
    return undefined;
  }
  collector.diagnostics.push(...read.diagnostics);
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
  let merged: Layered = { value: {}, origins: new Map() };
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
    const layer = await loadLayer(parentFile, [...chain, parentFile], env, collector);
    if (layer === "missing") collector.add("error", source.origins, where, `extended file not found: ${displayPath(parentFile)}`);
    else if (layer) merged = mergeLayers(merged, layer);
  }
  const ownOrigins = new Map([...source.origins].filter(([key]) => !key.startsWith('["extends"')));
  return mergeLayers(merged, { file, value: own, origins: ownOrigins });
}

/** Applies `--set key.path=value` overrides; the n-th one is positioned at `<--set>:n:col`. */
function applySets(layer: Layered, sets: readonly string[], collector: Collector): Layered {
  const root = layer.value as Record<string, unknown>;
  const origins = new Map(layer.origins);
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
      dropOrigins(origins, ["method"]);
    }
    let node = root;
    resolved.path.forEach((segment, depth) => {
      const keyPath = resolved.path.slice(0, depth + 1);
      if (depth === resolved.path.length - 1) {
        setOwn(node, segment, value);
        dropOrigins(origins, keyPath);
        origins.set(pathKey(keyPath), { file: SET_ORIGIN, key: { line, col: 1 + dotted.lastIndexOf(segment) }, value: { line, col: equals + 2 } });
        return;
      }
      if (!isPlainObject(node[segment])) {
        setOwn(node, segment, {});
        origins.set(pathKey(keyPath), { file: SET_ORIGIN, key: { line, col: 1 }, value: { line, col: 1 } });
      }
      node = node[segment] as Record<string, unknown>;
    });
  });
  return { value: root, origins };
}

/** Makes data.path absolute, against the directory of the file that set it (the working directory for --set). */
function resolveDataPath(root: Record<string, unknown>, origins: Origins): string | undefined {
  if (!isPlainObject(root.data) || typeof root.data.path !== "string" || root.data.path === "") return undefined;
  const origin: Origin | undefined = origins.get(pathKey(["data", "path"]));
  const base = origin === undefined || origin.file === SET_ORIGIN ? process.cwd() : path.dirname(origin.file);
  const absolute = path.resolve(base, root.data.path);
  root.data.path = absolute;
  return absolute;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
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
    diagnostics: collector.diagnostics.sort(compareDiagnostics),
    sources: [...sources],
    ...extra,
  });
  if (!layer || layer === "missing") return done();
  for (const origin of layer.origins.values()) if (origin.file !== SET_ORIGIN) sources.add(origin.file);

  const { value, origins } = applySets(layer, options.set ?? [], collector);
  const root = value as Record<string, unknown>;
  const dataPath = resolveDataPath(root, origins);

  const report = (keyPath: KeyPath, message: string, anchor?: Anchor) => collector.add("error", origins, keyPath, message, anchor);
  const warn = (keyPath: KeyPath, message: string, anchor?: Anchor) => collector.add("warning", origins, keyPath, message, anchor);
  const parsed = ExperimentSchema.safeParse(root, { reportInput: true });
  if (!parsed.success) reportIssues(parsed.error.issues, root, report);
  checkRules(root, report, warn, parsed.success ? parsed.data : undefined);
  const dataPathHasError = collector.diagnostics.some((d) => d.severity === "error" && d.path === "data.path");
  if (dataPath !== undefined && !dataPathHasError && !(await isFile(dataPath))) {
    warn(["data", "path"], `data file not found: ${displayPath(dataPath)} (validation goes on; a run needs it)`);
  }
  if (!parsed.success || collector.errorCount > 0) return done();

  const experiment = parsed.data;
  delete experiment.$schema;
  delete experiment.extends;
  const snapshot = { ...root };
  delete snapshot.$schema;
  return done({ experiment, snapshotYaml: stringify(snapshot) });
}

/** Loads a config for planning and running; throws UserError PEFTCTL_CONFIG_INVALID listing every error. */
export async function loadExperiment(file: string, options: LoadOptions = {}): Promise<LoadedExperiment> {
  const result = await checkExperiment(file, options);
  const errors = result.diagnostics.filter((d) => d.severity === "error");
  if (!result.experiment || result.snapshotYaml === undefined || errors.length > 0) {
    if (errors.length === 1 && errors[0]!.message.startsWith("config file not found")) {
      throw new UserError("PEFTCTL_CONFIG_NOT_FOUND", `config file not found: ${displayPath(result.configPath)}`);
    }
    throw new UserError(
      "PEFTCTL_CONFIG_INVALID",
      `${displayPath(result.configPath)}: ${errors.length} error${errors.length === 1 ? "" : "s"}`,
      result.diagnostics.map(formatDiagnostic),
    );
  }
  return {
    experiment: result.experiment,
    configPath: result.configPath,
    warnings: result.diagnostics.filter((d) => d.severity === "warning"),
    snapshotYaml: result.snapshotYaml,
    sources: result.sources,
  };
}
