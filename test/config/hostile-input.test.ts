/**
 * Inputs that used to hang, exhaust memory or take minutes (issue 12): files that are not regular
 * files, oversized files, and documents whose validation cost grew faster than their size. The real
 * CLI must end each with exit 2 and a message naming the file and the reason. The timeouts here are
 * only hang guards, far above the targets; the timings themselves are measured by bench/validate.ts.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, test, vi } from "vitest";
import { planConfig } from "../../src/experiment.ts";
import { MAX_CONFIG_BYTES, MAX_CONFIG_FILES, MAX_NESTING, MAX_PROBLEMS, MAX_VALUES } from "../../src/config/limits.ts";
import { diagnosticsOf, fixture, MINIMAL } from "./helpers.ts";

const root = path.resolve(import.meta.dirname, "../..");
const bin = path.join(root, "bin/peftctl.js");
/** Per command, and per test (a test runs up to three commands); the machine may be shared. */
const HANG_GUARD_MS = 90_000;
const TEST_TIMEOUT_MS = 3 * HANG_GUARD_MS + 10_000;

async function cli(args: string[], cwd: string) {
  const result = await execa(process.execPath, [bin, ...args], { cwd, reject: false, timeout: HANG_GUARD_MS, env: { ...process.env, NO_COLOR: "1" } });
  expect(result.timedOut, `hung: peftctl ${args.join(" ")}`).toBe(false);
  expect(result.stderr).not.toMatch(/internal error|\n\s+at \S+ \(/);
  return result;
}

function aliasBomb(levels: number, width: number): string {
  let text = `${MINIMAL}a0: &a0 [${Array(width).fill("x").join(", ")}]\n`;
  for (let level = 1; level < levels; level++) text += `a${level}: &a${level} [${Array(width).fill(`*a${level - 1}`).join(", ")}]\n`;
  return text;
}

describe("the CLI on inputs that are not regular files", { timeout: TEST_TIMEOUT_MS }, () => {
  test("a config that is /dev/zero, a FIFO or a directory", async () => {
    const dir = await fixture({});
    execFileSync("mkfifo", [path.join(dir, "pipe.yaml")]);
    mkdirSync(path.join(dir, "folder.yaml"));
    const zero = await cli(["validate", "/dev/zero"], dir);
    expect(zero.exitCode).toBe(2);
    expect(zero.stderr).toContain("/dev/zero:1:1: /dev/zero is a character device, not a regular file: a config file must be a regular file");
    const fifo = await cli(["plan", "pipe.yaml"], dir);
    expect(fifo.exitCode).toBe(2);
    expect(fifo.stderr).toContain("pipe.yaml:1:1: pipe.yaml is a named pipe (FIFO), not a regular file");
    const folder = await cli(["validate", "folder.yaml"], dir);
    expect(folder.exitCode).toBe(2);
    expect(folder.stderr).toContain("folder.yaml:1:1: folder.yaml is a directory, not a regular file");
  });

  test("extends: /dev/zero and /dev/urandom are refused at the extends entry, without reading them", async () => {
    const dir = await fixture({
      "zero.yaml": `extends: /dev/zero\n${MINIMAL}`,
      "base.yaml": MINIMAL,
      "random.yaml": `extends: [./base.yaml, /dev/urandom]\n${MINIMAL}`,
    });
    const zero = await cli(["validate", "zero.yaml"], dir);
    expect(zero.exitCode).toBe(2);
    expect(zero.stderr).toContain("zero.yaml:1:10: extends: extended file /dev/zero is a character device, not a regular file");
    const random = await cli(["plan", "random.yaml"], dir);
    expect(random.exitCode).toBe(2);
    expect(random.stderr).toContain("random.yaml:1:24: extends[1]: extended file /dev/urandom is a character device, not a regular file");
  });

  test("data.path a FIFO: validate, plan and run end at once, and run makes no run directory", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL.replace("path: data.json", "path: pipe.json") });
    execFileSync("mkfifo", [path.join(dir, "pipe.json")]);
    const message = "a.yaml:8:9: data.path: pipe.json is a named pipe (FIFO), not a regular file: a data file must be a regular file";
    for (const command of ["validate", "plan", "run"]) {
      const result = await cli([command, "a.yaml", "--runs-dir", "runs"], dir);
      expect(result.exitCode, `${command}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(message);
    }
    expect(existsSync(path.join(dir, "runs"))).toBe(false);
  });

  test("data.path a directory, also through --set", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL });
    mkdirSync(path.join(dir, "folder"));
    const result = await cli(["validate", "a.yaml", "--set", "data.path=folder"], dir);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("<--set>:1:11: data.path: folder is a directory without dataset_info.json or dataset_dict.json: a data directory must be one written by datasets' save_to_disk");
  });

  test(`a config larger than ${MAX_CONFIG_BYTES} bytes is refused before it is read`, async () => {
    const dir = await fixture({ "big.yaml": `${MINIMAL}description: "${"x".repeat(MAX_CONFIG_BYTES)}"\n` });
    const result = await cli(["validate", "big.yaml"], dir);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`big.yaml:1:1: big.yaml is ${(MAX_CONFIG_BYTES + MINIMAL.length + 16).toLocaleString("en-US")} bytes, more than the 1 MiB a config file may be`);
  });
});

describe("the CLI on documents that were slow to validate", { timeout: TEST_TIMEOUT_MS }, () => {
  test("20,000 unknown top-level keys: the first problems by name, the rest counted", async () => {
    const keys = Array.from({ length: 20_000 }, (_, i) => `unknown_key_${i}: ${i}\n`).join("");
    const dir = await fixture({ "keys.yaml": MINIMAL + keys });
    const result = await cli(["validate", "keys.yaml"], dir);
    expect(result.exitCode).toBe(2);
    const unknown = result.stderr.split("\n").filter((line) => / unknown key `unknown_key_\d+`$/.test(line));
    expect(unknown).toHaveLength(MAX_PROBLEMS);
    expect(unknown[0]).toBe("keys.yaml:9:1: unknown_key_0: unknown key `unknown_key_0`");
    expect(result.stderr).toContain(`keys.yaml:${9 + MAX_PROBLEMS}:1: 19,950 more errors from here on, not listed (the first ${MAX_PROBLEMS} are); fix those and validate again`);
    expect(result.stderr).toContain("20,000 errors in keys.yaml"); // the header counts them all, listed or not
  });

  test("100,000 levels of nested flow mappings", async () => {
    const dir = await fixture({ "deep.yaml": `${MINIMAL}deep: ${"{a: ".repeat(100_000)}1${"}".repeat(100_000)}\n` });
    const result = await cli(["validate", "deep.yaml"], dir);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain(`deep.yaml:9:259: mappings and lists nested deeper than ${MAX_NESTING} levels`);
  });

  test("an alias bomb (10^9 values in 13 lines)", async () => {
    const dir = await fixture({ "bomb.yaml": aliasBomb(9, 10) });
    const result = await cli(["plan", "bomb.yaml"], dir);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/bomb\.yaml:13:\d+: this alias stands for 11,111 values, and with it the file holds more than 100,000 values/);
  });

  test("an alias inside the node it names (was an internal error)", async () => {
    const dir = await fixture({ "cycle.yaml": `${MINIMAL}loop: &a [1, *a]\n` });
    const result = await cli(["validate", "cycle.yaml"], dir);
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("cycle.yaml:9:14: YAML error: alias *a sits inside the node it names, which would make it infinite");
  });
});

describe("bounds, at their edges", () => {
  const nestedFlow = (levels: number) => `${"{a: ".repeat(levels)}1${"}".repeat(levels)}`;
  const nestedBlock = (levels: number) => Array.from({ length: levels }, (_, i) => `${"  ".repeat(i)}a:`).join("\n") + " 1\n";
  const tooDeep = (lines: string[]) => lines.filter((line) => line.includes("nested deeper"));

  test(`nesting: ${MAX_NESTING} levels are read, one more is refused (flow and block)`, async () => {
    // `deep:` is itself one level under the top-level mapping.
    const dir = await fixture({
      "flow-ok.yaml": `${MINIMAL}deep: ${nestedFlow(MAX_NESTING - 1)}\n`,
      "flow-deep.yaml": `${MINIMAL}deep: ${nestedFlow(MAX_NESTING)}\n`,
      "block-ok.yaml": `${MINIMAL}deep:\n${nestedBlock(MAX_NESTING - 1).replace(/^/gm, "  ")}`,
      "block-deep.yaml": `${MINIMAL}deep:\n${nestedBlock(MAX_NESTING).replace(/^/gm, "  ")}`,
      "list-deep.yaml": `${MINIMAL}deep: ${"- ".repeat(MAX_NESTING)}x\n`,
    });
    const onlyUnknownKey = (lines: string[]) => expect(lines.map((line) => line.replace(/ \(did you mean .*$/, ""))).toEqual([expect.stringMatching(/ok\.yaml:9:1: deep: unknown key `deep`$/)]);
    onlyUnknownKey(await diagnosticsOf(dir, "flow-ok.yaml"));
    expect(tooDeep(await diagnosticsOf(dir, "flow-deep.yaml"))).toHaveLength(1);
    onlyUnknownKey(await diagnosticsOf(dir, "block-ok.yaml"));
    expect(tooDeep(await diagnosticsOf(dir, "block-deep.yaml"))).toHaveLength(1);
    expect(tooDeep(await diagnosticsOf(dir, "list-deep.yaml"))).toHaveLength(1);
  });

  test(`values: aliases may expand to ${MAX_VALUES.toLocaleString("en-US")} values in all, and depth counts through them`, async () => {
    // a: 1 + 100 items; b: 1 + 99 aliases of a (101 each) = 10,000 values; c: 1 + 8 of b = 80,001 (about 90,000 in all); with 10 of b, over.
    const under = `${MINIMAL}x:\n  a: &a [${Array(100).fill(0).join(", ")}]\n  b: &b [${Array(99).fill("*a").join(", ")}]\n  c: [${Array(8).fill("*b").join(", ")}]\n`;
    const over = `${MINIMAL}x:\n  a: &a [${Array(100).fill(0).join(", ")}]\n  b: &b [${Array(99).fill("*a").join(", ")}]\n  c: [${Array(10).fill("*b").join(", ")}]\n`;
    let chain = `${MINIMAL}x:\n  l0: &l0 [1]\n`;
    for (let level = 1; level <= MAX_NESTING; level++) chain += `  l${level}: &l${level} [*l${level - 1}]\n`;
    const dir = await fixture({ "under.yaml": under, "over.yaml": over, "chain.yaml": chain });
    expect(await diagnosticsOf(dir, "under.yaml")).toEqual(["<dir>/under.yaml:9:1: x: unknown key `x`"]);
    expect((await diagnosticsOf(dir, "over.yaml")).join("\n")).toMatch(/over\.yaml:12:\d+: this alias stands for 10,000 values, and with it the file holds more than 100,000 values/);
    expect((await diagnosticsOf(dir, "chain.yaml")).join("\n")).toMatch(/chain\.yaml:\d+:\d+: mappings and lists nested deeper than 64 levels once this alias is expanded/);
  });

  test(`extends may load ${MAX_CONFIG_FILES} files in all: a file extending another twice, seven times over, is refused`, async () => {
    const files: Record<string, string> = { "l0.yaml": MINIMAL };
    for (let level = 1; level <= 7; level++) files[`l${level}.yaml`] = `extends: [./l${level - 1}.yaml, ./l${level - 1}.yaml]\n`;
    const dir = await fixture(files);
    const lines = await diagnosticsOf(dir, "l7.yaml");
    expect(lines.filter((line) => line.includes(`extends loads more than ${MAX_CONFIG_FILES} config files`)).length).toBeGreaterThan(0);
  });

  test(`${MAX_PROBLEMS + 10} problems: ${MAX_PROBLEMS} listed in file order, then one line counting the rest`, async () => {
    const dir = await fixture({ "a.yaml": MINIMAL + Array.from({ length: MAX_PROBLEMS + 10 }, (_, i) => `k${i}: 1\n`).join("") });
    const lines = await diagnosticsOf(dir, "a.yaml");
    expect(lines).toHaveLength(MAX_PROBLEMS + 1);
    expect(lines.at(-2)).toBe(`<dir>/a.yaml:${8 + MAX_PROBLEMS}:1: k${MAX_PROBLEMS - 1}: unknown key \`k${MAX_PROBLEMS - 1}\``);
    expect(lines.at(-1)).toBe(`<dir>/a.yaml:${9 + MAX_PROBLEMS}:1: 10 more errors from here on, not listed (the first ${MAX_PROBLEMS} are); fix those and validate again`);
  });

  test("a --set value nested 100,000 deep is read as text, not parsed", async () => {
    const dir = await fixture({ "a.yaml": MINIMAL });
    const lines = await diagnosticsOf(dir, "a.yaml", { set: [`method.target_modules=${"[".repeat(100_000)}${"]".repeat(100_000)}`] });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^<--set>:1:\d+: method\.target_modules: expected a list, got the text/);
  });
});

describe("plan warnings are positioned like every other diagnostic", () => {
  test("a value listed twice, and a random sweep drawing the same values", async () => {
    const dir = await fixture({
      "twice.yaml": `${MINIMAL}sweep:\n  parameters:\n    method.r: [4, 8, 4]\n`,
      "random.yaml": `${MINIMAL}sweep:\n  method: random\n  n: 20\n  parameters:\n    method.r: [4, 8]\n`,
    });
    const twice = await planConfig(path.join(dir, "twice.yaml"), { runsDir: path.join(dir, "runs") });
    expect(twice.plan.jobs).toHaveLength(2);
    expect(twice.warnings).toContain(
      `${path.join(dir, "twice.yaml")}:11:22: warning: sweep.parameters["method.r"][2]: \`method.r\` lists 4 twice (items 0 and 2): 1 sweep point(s) resolve to a job already planned; planned 2 distinct job(s)`,
    );
    const random = await planConfig(path.join(dir, "random.yaml"), { runsDir: path.join(dir, "runs") });
    expect(random.plan.jobs).toHaveLength(2);
    expect(random.warnings).toContain(`${path.join(dir, "random.yaml")}:11:6: warning: sweep.n: random sweep drew the same values 18 time(s) out of n=20; planned 2 distinct job(s)`);
  });

  test("the estimate's warnings point at the key they are about (at the sweep when it is swept)", async () => {
    const dir = await fixture({
      "a.yaml": MINIMAL.replace("builtin:tiny-llama", "someone/mystery") + "sweep:\n  parameters:\n    model.base: [someone/mystery, someone/other]\n",
    });
    writeFileSync(path.join(dir, "b.yaml"), MINIMAL.replace("builtin:tiny-llama", "someone/mystery"));
    // Offline, with an empty HF cache: the reason is the same on every machine.
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    vi.stubEnv("HF_HUB_CACHE", path.join(dir, "hf-cache"));
    const why = (id: string) => `memory estimate of ${id} shown as "?": no config.json for ${id}: not a local directory, not in the HF cache (${path.join(dir, "hf-cache")}), and the Hub is offline (HF_HUB_OFFLINE)`;
    const swept = await planConfig(path.join(dir, "a.yaml"), { runsDir: path.join(dir, "runs") });
    expect(swept.warnings.filter((w) => w.includes("memory estimate of"))).toEqual([
      `${path.join(dir, "a.yaml")}:11:17: warning: sweep.parameters["model.base"]: ${why("someone/mystery")}`,
      `${path.join(dir, "a.yaml")}:11:17: warning: sweep.parameters["model.base"]: ${why("someone/other")}`,
    ]);
    const plain = await planConfig(path.join(dir, "b.yaml"), { runsDir: path.join(dir, "runs") });
    vi.unstubAllEnvs();
    expect(plain.warnings.filter((w) => w.includes("memory estimate of"))).toEqual([
      `${path.join(dir, "b.yaml")}:3:9: warning: model.base: ${why("someone/mystery")}`,
    ]);
  });
});
