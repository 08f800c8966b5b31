/**
 * Config fuzzing: seeded mutants of the shipped configs, ten kinds (types, unknown keys, ranges, bytes,
 * encodings, nesting, tags, aliases, extends, env). Most go through the config module's own
 * `checkExperiment` (and the pure planner when valid) in a worker process, which a stall timer can kill
 * when a mutant hangs it; a sample goes through the real CLI (`peftctl validate` and `peftctl plan`).
 * Invariants: exit 0 or 2 (in process: a result or a UserError, never another throw), no stack trace,
 * an answer within the bound, and at least one error line whenever the config is refused.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { stringify } from "yaml";
import { parse } from "yaml";
import { Tally } from "./report.ts";
import { STACK_TRACE, int, peftctl, pick, pool, root, scratch, seeded, tail } from "./util.ts";

export const KINDS = ["types", "unknown-keys", "ranges", "bytes", "encodings", "nesting", "tags", "aliases", "extends", "env"] as const;
type Kind = (typeof KINDS)[number];
type Mutant = { index: number; kind: Kind; origin: string; file: string; env: Record<string, string> };

const SHIPPED = ["configs/smoke.yaml", "configs/extes/base.yaml", "configs/extes/dialogpt-medium-full.yaml", "configs/extes/llama-7b-adapter.yaml",
  "configs/extes/llama-7b-lora-no-strategy.yaml", "configs/extes/llama-7b-lora-test-esconv.yaml", "configs/extes/llama-7b-lora.yaml", "configs/extes/lora-rank-sweep.yaml"];
const HOLE = "__SOAK_HOLE__";
const IN_PROCESS_BOUND_MS = 5_000;
/** The CLI bound includes node + tsx start-up (about 1-3 s on this shared 2-core machine) and, for plan, the shim's data count. */
const CLI_BOUND_MS = 20_000;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = Array<string | number>;

function leaves(value: Json, at: Path = []): Path[] {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
    const inner = entries.flatMap(([k, v]) => leaves(v, [...at, k]));
    return inner.length > 0 ? inner : [at];
  }
  return [at];
}

function maps(value: Json, at: Path = []): Path[] {
  if (value === null || typeof value !== "object") return [];
  const inner = (Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value)).flatMap(([k, v]) => maps(v, [...at, k]));
  return Array.isArray(value) ? inner : [at, ...inner];
}

function setAt(doc: Json, at: Path, value: unknown): void {
  if (at.length === 0) return;
  let node = doc as Record<string | number, unknown>;
  for (const key of at.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  // an own property even for "__proto__", as a YAML key is
  Object.defineProperty(node, at[at.length - 1]!, { value, enumerable: true, writable: true, configurable: true });
}

function getAt(doc: Json, at: Path): unknown {
  let node: unknown = doc;
  for (const key of at) node = (node as Record<string | number, unknown>)[key];
  return node;
}

const OTHER_TYPES: unknown[] = ["text", "", 0, -1, 3.5, true, false, null, [], {}, [1, "a"], { a: 1 }, "1e3", "0x10", "true", "null", "~", "8", "1_000"];
const ODD_KEYS = ["__proto__", "constructor", "prototype", "toString", "", "a.b", "x".repeat(300), "ключ", "\u0000", "max_step", "lr ", "Model", "hasOwnProperty", "$schema", "<<"];
const ODD_NUMBERS = [-1, 0, 1, 1e308, -1e308, 2 ** 53 + 1, 1e-320, Number.NaN, Infinity, -Infinity, 0.5, -0.0, 1.5e22, 255, 65536, 2 ** 31, -(2 ** 31) - 1];
const RAW_NUMBERS = ["9".repeat(400), "-" + "9".repeat(5000), "0x7fffffffffffffffff", "0o777", "1e99999", ".NaN", "-.inf", "1_0", "+12", "0b101", "12e", "1.2.3"];
const TAGGED = ["!!binary aGVsbG8=", "!!timestamp 2001-12-14t21:59:43.10-05:00", "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!python/object:os.system {}",
  "!custom x", '!!int "12"', "!!float abc", "!!str 5", "!!null ''", "!<tag:yaml.org,2002:int> 7", "!!map [1, 2]", "!!seq {a: 1}", "!!bool maybe", "!%21 x", "!!pairs [a: 1]"];
const EXTENDS = ["nope.yaml", "SELF", "../", "/dev/null", "/dev/zero", "/proc/self/status", "CYCLE", ["base.yaml", "base.yaml"], 42, "", "a/".repeat(2000) + "x.yaml",
  "https://example.com/x.yaml", "~/x.yaml", "EMPTY", "BINARY", "NOTMAP", "../../README.md", "\u0000.yaml"];
const ENV_VALUES = ["", "  ", "12abc", "[1, 2]", "{a: 1}", "${env:SOAK_OTHER}", "\u0000", "y".repeat(1 << 20), "a\nb: c", "*alias", "!!binary x", "1e999", "true", "-5", "ü\ud800"];
const ENV_REFS = ["${env:SOAK_V}", "${env:SOAK_UNSET_VAR}", "${env:}", "${env:SOAK_V", "${env:SOAK_V:-default}", "$${env:SOAK_V}", "${env:SOAK_V}${env:SOAK_V}", "x-${env:SOAK_V}-y", "${ENV:SOAK_V}", "${env:1BAD}"];

function deepFlow(random: () => number): string {
  const depth = pick(random, [50, 500, 5_000, 100_000]);
  return pick(random, ["[", "{a: "]) === "[" ? "[".repeat(depth) + "]".repeat(depth) : "{a: ".repeat(depth) + "1" + "}".repeat(depth);
}

function billionLaughs(random: () => number): string {
  const levels = int(random, 3, 9);
  const lines = ["&l0 [x, x, x, x, x, x, x, x, x, x]"];
  let text = `[${lines[0]}`;
  for (let i = 1; i < levels; i++) text += `, &l${i} [${Array(10).fill(`*l${i - 1}`).join(", ")}]`;
  return text + "]";
}

function aliasSnippet(random: () => number): string {
  return pick(random, [billionLaughs(random), "*nope", "&a [*a]", "&a {b: *a}", "&m {kind: lora} ", "{<<: *nope}", "{<<: [&q {a: 1}, *q]}", "&x 1", "*", "& a"]);
}

function reencode(text: string, random: () => number): Buffer {
  switch (int(random, 0, 8)) {
    case 0: return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]);
    case 1: { const le = Buffer.from(text, "utf16le"); const be = Buffer.alloc(le.length); for (let i = 0; i + 1 < le.length; i += 2) { be[i] = le[i + 1]!; be[i + 1] = le[i]!; } return Buffer.concat([Buffer.from([0xfe, 0xff]), be]); }
    case 2: return Buffer.from(text, "utf16le");
    case 3: return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text, "utf8")]);
    case 4: return Buffer.from(text.replace(/description: .*/, "description: café naïve ÿ"), "latin1");
    case 5: { const b = Buffer.from(text, "utf8"); const at = int(random, 0, b.length); return Buffer.concat([b.subarray(0, at), Buffer.from(pick(random, [[0xc3], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf], [0xff]])), b.subarray(at)]); }
    case 6: return Buffer.from(text.replace(/\n/g, "\r\n"), "utf8");
    case 7: return Buffer.from(text.replace(/\n/g, "\r"), "utf8");
    default: { const out = Buffer.alloc(text.length * 4 + 4); out.writeUInt32LE(0xfeff, 0); let o = 4; for (const ch of text) { out.writeUInt32LE(ch.codePointAt(0)!, o); o += 4; } return out.subarray(0, o); }
  }
}

function mangleBytes(text: string, random: () => number): Buffer {
  const b = Buffer.from(text, "utf8");
  const at = int(random, 0, b.length);
  switch (int(random, 0, 5)) {
    case 0: return b.subarray(0, at);
    case 1: return Buffer.concat([b.subarray(0, at), Buffer.from(pick(random, [[0x00], [0xff], [0x09], [0x0d], [0xc2, 0x85], [0xe2, 0x80, 0xa8], [0xef, 0xbb, 0xbf], [0x1b, 0x5b, 0x33, 0x31, 0x6d], [0x3a, 0x20, 0x2d]])), b.subarray(at)]);
    case 2: return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + int(random, 1, 40)))]);
    case 3: { const lines = text.split("\n"); const i = int(random, 0, lines.length - 1); lines.splice(i, 0, lines[i]!); return Buffer.from(lines.join("\n")); }
    case 4: { const lines = text.split("\n"); const i = int(random, 0, lines.length - 1); lines[i] = random() < 0.5 ? " " + lines[i] : "\t" + lines[i]!.trimStart(); return Buffer.from(lines.join("\n")); }
    default: return Buffer.alloc(int(random, 0, 64), int(random, 0, 255));
  }
}

/** Builds mutant `index` of `seed` into the scratch tree (a copy of configs/ and data/samples, so relative paths resolve). */
function buildMutant(seed: number, index: number, tree: string): Mutant {
  const random = seeded((seed * 1_000_003 + index) >>> 0);
  const kind = KINDS[index % KINDS.length]!;
  const origin = pick(random, SHIPPED);
  const originFile = path.join(tree, origin);
  const text = readFileSync(originFile, "utf8");
  const doc = parse(text) as Json;
  const file = path.join(path.dirname(originFile), `mutant-${index}.yaml`);
  const env: Record<string, string> = {};
  const withHole = (at: Path, snippet: string): Buffer => {
    setAt(doc, at, HOLE);
    return Buffer.from(stringify(doc).replace(new RegExp(`"?${HOLE}"?`), snippet.replace(/\$/g, "$$$$")));
  };
  let content: Buffer;
  switch (kind) {
    case "types": {
      for (let n = int(random, 1, 3); n > 0; n--) setAt(doc, pick(random, leaves(doc)), pick(random, OTHER_TYPES));
      content = Buffer.from(stringify(doc));
      break;
    }
    case "unknown-keys": {
      const at = pick(random, maps(doc));
      const existing = Object.keys(getAt(doc, at) as object);
      const key = random() < 0.4 && existing.length > 0 ? pick(random, existing).slice(0, -1) + pick(random, ["", "s", "_"]) : pick(random, ODD_KEYS);
      setAt(doc, [...at, key], pick(random, OTHER_TYPES));
      content = Buffer.from(stringify(doc));
      break;
    }
    case "ranges": {
      const numeric = leaves(doc).filter((at) => typeof getAt(doc, at) === "number");
      const at = pick(random, numeric.length > 0 && random() < 0.8 ? numeric : leaves(doc));
      content = random() < 0.6 ? (setAt(doc, at, pick(random, ODD_NUMBERS)), Buffer.from(stringify(doc))) : withHole(at, pick(random, RAW_NUMBERS));
      break;
    }
    case "bytes": content = mangleBytes(text, random); break;
    case "encodings": content = reencode(text, random); break;
    case "nesting": content = withHole(pick(random, leaves(doc)), deepFlow(random)); break;
    case "tags": content = withHole(pick(random, leaves(doc)), pick(random, TAGGED)); break;
    case "aliases": content = withHole(pick(random, [...leaves(doc), ...maps(doc).filter((m) => m.length > 0)]), aliasSnippet(random)); break;
    case "extends": {
      const target = pick(random, EXTENDS);
      const sibling = (name: string, body: string | Buffer) => (writeFileSync(path.join(path.dirname(file), name), body), name);
      const value =
        target === "SELF" ? path.basename(file)
        : target === "CYCLE" ? sibling(`mutant-${index}-cycle.yaml`, `extends: ${path.basename(file)}\nname: cycle\n`)
        : target === "EMPTY" ? sibling(`mutant-${index}-empty.yaml`, "")
        : target === "BINARY" ? sibling(`mutant-${index}-binary.yaml`, Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 0x80]))
        : target === "NOTMAP" ? sibling(`mutant-${index}-list.yaml`, "- a\n- b\n")
        : target;
      setAt(doc, ["extends"], value);
      content = Buffer.from(stringify(doc));
      break;
    }
    case "env": {
      env.SOAK_V = pick(random, ENV_VALUES);
      env.SOAK_OTHER = "${env:SOAK_V}";
      content = withHole(pick(random, leaves(doc)), JSON.stringify(pick(random, ENV_REFS)));
      break;
    }
  }
  writeFileSync(file, content);
  return { index, kind, origin, file, env };
}

type WorkerLine = { index: number; ms: number; problem?: string; refused: boolean };

/** In a worker process: checks mutants of a manifest from `start`, one JSON line each. */
async function worker(manifestFile: string, start: number): Promise<void> {
  const { checkExperiment } = await import("../src/config/load.ts");
  const { planExperiment } = await import("../src/plan/index.ts");
  const { PeftctlError } = await import("../src/errors.ts");
  const mutants = JSON.parse(readFileSync(manifestFile, "utf8")) as Mutant[];
  for (const mutant of mutants.slice(start)) {
    process.stdout.write(JSON.stringify({ started: mutant.index }) + "\n");
    const began = Date.now();
    let problem: string | undefined;
    let refused = true;
    try {
      const result = await checkExperiment(mutant.file, { env: { ...mutant.env } });
      if (result.experiment && result.errorCount === 0) {
        refused = false;
        planExperiment(result.experiment, { runsDir: "/tmp/peftctl-soak-plan", dataSummary: null, pathRoot: path.dirname(mutant.file) });
      } else if (!result.diagnostics.some((d) => d.severity === "error")) {
        problem = `refused with ${result.errorCount} error(s) but no error diagnostic to print`;
      }
    } catch (caught) {
      if (!(caught instanceof PeftctlError && caught.exitCode === 2)) {
        problem = `threw ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message.slice(0, 300)}` : String(caught)}`;
      }
    }
    const ms = Date.now() - began;
    if (!problem && ms > IN_PROCESS_BOUND_MS) problem = `took ${ms} ms (bound ${IN_PROCESS_BOUND_MS} ms)`;
    process.stdout.write(JSON.stringify({ index: mutant.index, ms, problem, refused } satisfies WorkerLine) + "\n");
  }
}

/** Runs the worker over every mutant, restarting it past one that stalls (a hang is that mutant's failure). */
async function inProcess(manifestFile: string, mutants: Mutant[], record: (m: Mutant, problems: string[]) => void, stats: { refused: number }): Promise<void> {
  let start = 0;
  while (start < mutants.length) {
    const child = spawn(process.execPath, ["--import", "tsx", path.join(root, "soak/configs.ts"), "--worker", manifestFile, String(start)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    let current = start;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => child.kill("SIGKILL"), IN_PROCESS_BOUND_MS * 3);
    };
    arm();
    for await (const line of createInterface({ input: child.stdout })) {
      const parsed = JSON.parse(line) as WorkerLine & { started?: number };
      arm();
      if (parsed.started !== undefined) {
        current = mutants.findIndex((m) => m.index === parsed.started);
        continue;
      }
      if (!parsed.refused) stats.refused--;
      record(mutants[current]!, parsed.problem ? [parsed.problem] : []);
      current++;
    }
    clearTimeout(timer);
    const code: number | null = await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(child.exitCode) : child.on("close", resolve)));
    if (current >= mutants.length) break;
    record(mutants[current]!, [code === null ? `no answer within ${IN_PROCESS_BOUND_MS * 3} ms (worker killed)` : `worker died (exit ${code}): ${tail(stderr, 3)}`]);
    start = current + 1;
  }
}

async function throughCli(mutant: Mutant, runsDir: string): Promise<string[]> {
  const env = { ...process.env, ...mutant.env, PEFTCTL_RUNS_DIR: runsDir };
  const problems: string[] = [];
  for (const command of ["validate", "plan"]) {
    const done = await peftctl([command, mutant.file], { env, timeoutMs: CLI_BOUND_MS });
    const output = done.stdout + done.stderr;
    if (done.timedOut) problems.push(`${command}: no exit within ${CLI_BOUND_MS} ms`);
    else if (done.code !== 0 && done.code !== 2) problems.push(`${command}: exit ${done.code ?? done.signal}: ${tail(output, 3)}`);
    if (STACK_TRACE.test(output)) problems.push(`${command}: stack trace: ${tail(output.slice(output.search(STACK_TRACE) - 200), 4)}`);
    if (/PEFTCTL_INTERNAL|internal error/i.test(output)) problems.push(`${command}: internal error: ${tail(output, 3)}`);
  }
  return problems;
}

export async function runConfigs(options: { seed: number; count: number; cliSample: number; jobs: number }): Promise<Tally> {
  const tally = new Tally();
  const tree = scratch("configs");
  cpSync(path.join(root, "configs"), path.join(tree, "configs"), { recursive: true });
  mkdirSync(path.join(tree, "data"), { recursive: true });
  cpSync(path.join(root, "data/samples"), path.join(tree, "data/samples"), { recursive: true });
  if (!existsSync(path.join(tree, "schema"))) cpSync(path.join(root, "schema"), path.join(tree, "schema"), { recursive: true });
  const mutants = Array.from({ length: options.count }, (_, i) => buildMutant(options.seed, i, tree));
  const every = Math.max(1, Math.floor(options.count / Math.max(1, options.cliSample)));
  const sample = mutants.filter((m) => m.index % every === 0).slice(0, options.cliSample);
  const rest = mutants.filter((m) => !sample.includes(m));
  const manifest = path.join(tree, "manifest.json");
  writeFileSync(manifest, JSON.stringify(rest));
  const replay = (m: Mutant, how: string) => `${how} (seed ${options.seed}, mutant ${m.index}, ${m.kind} of ${m.origin}; env ${JSON.stringify(Object.fromEntries(Object.entries(m.env).map(([k, v]) => [k, v.length > 80 ? `${v.slice(0, 20)}...(${v.length} chars)` : v])))})`;
  const byKind = new Map<Kind, { tried: number; failed: number }>();
  const count = (m: Mutant, failed: boolean) => {
    const k = byKind.get(m.kind) ?? { tried: 0, failed: 0 };
    k.tried++;
    if (failed) k.failed++;
    byKind.set(m.kind, k);
  };
  const stats = { refused: rest.length };
  await inProcess(manifest, rest, (m, problems) => {
    count(m, problems.length > 0);
    tally.record(`in-process mutant ${m.index} (${m.kind})`, problems, replay(m, `npx peftctl validate ${m.file}`));
  }, stats);
  tally.note(`${rest.length} mutants through checkExperiment + planExperiment in process (${stats.refused} refused, ${rest.length - stats.refused} valid), ${sample.length} through the real CLI (validate + plan); seed ${options.seed}`);
  const runsDir = scratch("configs-runs");
  await pool(sample, options.jobs, async (m) => {
    const problems = await throughCli(m, runsDir);
    count(m, problems.length > 0);
    tally.record(`cli mutant ${m.index} (${m.kind})`, problems, replay(m, `npx peftctl validate ${m.file}; npx peftctl plan ${m.file}`));
  });
  tally.note(`per kind (tried/failed): ${[...byKind].map(([k, v]) => `${k} ${v.tried}/${v.failed}`).join(", ")}`);
  return tally;
}

if (process.argv[2] === "--worker") await worker(process.argv[3]!, Number(process.argv[4]));
