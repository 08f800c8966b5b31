/**
 * Validation of hostile inputs against validating configs/smoke.yaml in the same run: each case is
 * checked in this process (checkExperiment: wall and CPU time) and through the real CLI
 * (`bin/peftctl.js validate`: wall and CPU time, exit code), and its first message is shown. CPU
 * time is the figure to read on a shared machine, where the wall clock also counts other work. Target (issue 12):
 * every case ends, with exit 2, within 2 s of CLI wall time on the project machine, and costs about what
 * validating the smoke config costs plus time linear in the file's size.
 * Run: npx tsx bench/validate.ts
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { checkExperiment, formatDiagnostic } from "../src/config/index.ts";
import { MAX_CONFIG_BYTES } from "../src/config/limits.ts";

const root = path.resolve(import.meta.dirname, "..");
const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bench-validate-"));
const HEAD = "name: t\nmodel:\n  base: builtin:tiny-llama\nmethod:\n  kind: lora\ndata:\n  format: extes\n  path: data.json\n";

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

function aliasBomb(levels: number, width: number): string {
  let text = `${HEAD}a0: &a0 [${Array(width).fill("x").join(", ")}]\n`;
  for (let level = 1; level < levels; level++) text += `a${level}: &a${level} [${Array(width).fill(`*a${level - 1}`).join(", ")}]\n`;
  return text;
}

function cases(): Array<[string, string]> {
  write("data.json", "[]");
  mkdirSync(path.join(dir, "a-directory"));
  execFileSync("mkfifo", [path.join(dir, "fifo.json")]);
  const unknownKeys = (n: number) => HEAD + Array.from({ length: n }, (_, i) => `unknown_key_${i}: ${i}\n`).join("");
  return [
    ["smoke (baseline)", path.join(root, "configs/smoke.yaml")],
    ["1,000 unknown top-level keys", write("keys-1k.yaml", unknownKeys(1_000))],
    ["20,000 unknown top-level keys", write("keys-20k.yaml", unknownKeys(20_000))],
    ["100,000 nested flow mappings", write("nested-flow.yaml", `${HEAD}deep: ${"{a: ".repeat(100_000)}1${"}".repeat(100_000)}\n`)],
    ["100,000 nested block lists (- - - ...)", write("nested-block.yaml", `${HEAD}deep: ${"- ".repeat(100_000)}x\n`)],
    ["alias bomb (10^9 values)", write("alias-bomb.yaml", aliasBomb(9, 10))],
    ["20,000 aliases of one anchor", write("aliases.yaml", `${HEAD}anchor: &a x\nmany: [${Array(20_000).fill("*a").join(", ")}]\n`)],
    ["config larger than the limit", write("big.yaml", `${HEAD}description: "${"x".repeat(MAX_CONFIG_BYTES)}"\n`)],
    ["extends: /dev/zero", write("extends-zero.yaml", `extends: /dev/zero\n${HEAD}`)],
    ["extends: /dev/urandom", write("extends-urandom.yaml", `extends: /dev/urandom\n${HEAD}`)],
    ["data.path a FIFO", write("fifo-data.yaml", HEAD.replace("data.json", "fifo.json"))],
    ["data.path a directory", write("dir-data.yaml", HEAD.replace("data.json", "a-directory"))],
    ["config is /dev/zero", "/dev/zero"],
    ["config is a FIFO", path.join(dir, "fifo.json")],
  ];
}

const cpuSince = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

/** Makes the CLI child print its own CPU time last on stderr (a preload: the CLI is not changed for it). */
const cpuReporter = write("report-cpu.cjs", "process.on('exit', () => { const u = process.cpuUsage(); require('fs').writeSync(2, '\\nbench-cpu-seconds ' + (u.user + u.system) / 1e6 + '\\n'); });\n");

try {
  const rows: string[][] = [];
  let baseline: { cli: number; cpu: number } | undefined;
  // tsx compiles the sources on a first run and caches them: not part of any case.
  spawnSync(process.execPath, [path.join(root, "bin/peftctl.js"), "validate", path.join(root, "configs/smoke.yaml")], { timeout: 120_000 });
  for (const [label, file] of cases()) {
    await checkExperiment(file, { env: {} }); // warm-up
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    const result = await checkExperiment(file, { env: {} });
    const wall = (performance.now() - start) / 1000;
    const cpu = cpuSince(cpuStart);
    const cliStart = performance.now();
    const cli = spawnSync(process.execPath, ["--require", cpuReporter, path.join(root, "bin/peftctl.js"), "validate", file], { encoding: "utf8", timeout: 120_000, env: { ...process.env, NO_COLOR: "1" } });
    const cliWall = (performance.now() - cliStart) / 1000;
    const cliCpu = Number(/bench-cpu-seconds (\S+)/.exec(cli.stderr ?? "")?.[1] ?? NaN);
    baseline ??= { cli: cliCpu, cpu };
    const first = result.diagnostics.find((d) => d.severity === "error");
    rows.push([
      label,
      `${(wall * 1000).toFixed(0)} ms`,
      `${(cpu * 1000).toFixed(0)} ms`,
      `${cliWall.toFixed(2)} s`,
      `${cliCpu.toFixed(2)} s`,
      `x${(cliCpu / baseline.cli).toFixed(1)}`,
      cli.error ? `killed (${cli.error.message})` : `exit ${cli.status}`,
      first ? formatDiagnostic(first).split(dir).join("<tmp>").slice(0, 110) : "ok",
    ]);
  }
  const header = ["case", "check wall", "check CPU", "CLI wall", "CLI CPU", "CPU vs smoke", "CLI", "first error"];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  for (const row of [header, ...rows]) console.log(row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join("  "));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
