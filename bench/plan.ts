/**
 * Plans (and validates) grid sweeps of 10^3, 10^4 and 10^5 runs and prints, for each size, wall and
 * CPU time and memory, then the ratio of each figure per 10x more runs: about 10 is linear, much more
 * is not. Each size runs in a fresh child process, so that its peak memory is its own:
 *   peak RSS     the process's maximum resident set during planning, above what it had before;
 *   retained     the JS heap the finished plan holds (after a full GC), above the heap before it.
 * Target (docs/ARCHITECTURE.md): 10,000 runs well under a second; time and memory linear to 100,000.
 * Run: npx tsx bench/plan.ts   (one size: npx tsx bench/plan.ts --size 10000)
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { stringify } from "yaml";
import { checkExperiment } from "../src/config/index.ts";
import { ExperimentSchema } from "../src/config/schema.ts";
import { planExperiment } from "../src/plan/index.ts";

const SIZES = [1_000, 10_000, 100_000];
const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

/** A grid of `size` runs (a power of ten) over up to five keys of ten values each. */
function sweepConfig(size: number) {
  const axes: Record<string, unknown[]> = {
    "method.r": range(10, (i) => 2 * (i + 1)),
    "train.lr": range(10, (i) => Number((1e-5 * 2 ** i).toPrecision(3))),
    "data.max_length": range(10, (i) => 128 * (i + 1)),
    "train.warmup_steps": range(10, (i) => 10 * i),
    "train.seed": range(10, (i) => i),
  };
  const keys = Object.keys(axes).slice(0, Math.round(Math.log10(size)));
  return {
    name: "bench-sweep",
    model: { base: "huggyllama/llama-7b", dtype: "bfloat16" },
    method: { kind: "lora" },
    data: { format: "extes", path: "/data/ExTES.json", max_length: 1024 },
    sweep: { method: "grid", parameters: Object.fromEntries(keys.map((key) => [key, axes[key]!])), max_runs: 100_000 },
  };
}

type Figures = { runs: number; ids: number; wall: number; cpu: number; peakRss: number; retained: number; validateWall: number; validateCpu: number; validateErrors: number };

const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

/** One size, in this process (the child). */
async function measure(size: number): Promise<Figures> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run the child with --expose-gc");
  const config = sweepConfig(size);
  const experiment = ExperimentSchema.parse(config);
  const dataSummary = { examples: 100_000, meanChars: 1_200 };
  planExperiment(ExperimentSchema.parse(sweepConfig(1_000)), { runsDir: "/runs", dataSummary }); // warm-up: compile, not plan
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const rssBefore = process.resourceUsage().maxRSS * 1024;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const plan = planExperiment(experiment, { runsDir: "/runs", dataSummary });
  const wall = (performance.now() - start) / 1000;
  const cpu = cpuSeconds(cpuStart);
  const peakRss = Math.max(0, process.resourceUsage().maxRSS * 1024 - rssBefore);
  gc();
  const retained = process.memoryUsage().heapUsed - heapBefore;
  const ids = new Set(plan.jobs.map((job) => job.spec.run_id)).size;
  const runs = plan.jobs.length;

  const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bench-"));
  try {
    const file = path.join(dir, "sweep.yaml");
    writeFileSync(file, stringify(config));
    const validateCpuStart = process.cpuUsage();
    const validateStart = performance.now();
    const checked = await checkExperiment(file, { env: {} });
    const validateWall = (performance.now() - validateStart) / 1000;
    const validateCpu = cpuSeconds(validateCpuStart);
    return { runs, ids, wall, cpu, peakRss, retained, validateWall, validateCpu, validateErrors: checked.errorCount };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MIB = 1024 * 1024;
const sizeArg = process.argv.indexOf("--size");
if (sizeArg >= 0) {
  process.stdout.write(`${JSON.stringify(await measure(Number(process.argv[sizeArg + 1])))}\n`);
} else {
  const self = fileURLToPath(import.meta.url);
  const results: Figures[] = [];
  for (const size of SIZES) {
    const child = spawnSync(process.execPath, [...process.execArgv, "--expose-gc", self, "--size", String(size)], { encoding: "utf8", maxBuffer: 16 * MIB });
    if (child.status !== 0) throw new Error(`size ${size}: exit ${child.status}\n${child.stderr}`);
    const figures = JSON.parse(child.stdout.trim().split("\n").at(-1)!) as Figures;
    results.push(figures);
    // CPU time next to wall time: on a shared machine the wall clock also counts other people's work.
    console.log(
      `${String(figures.runs).padStart(7)} runs (${figures.ids} ids): plan ${figures.wall.toFixed(3)} s wall, ${figures.cpu.toFixed(3)} s CPU, ` +
        `${Math.round(figures.runs / figures.cpu)} runs/CPU-s; peak RSS +${(figures.peakRss / MIB).toFixed(1)} MiB, retained heap ${(figures.retained / MIB).toFixed(1)} MiB ` +
        `(${Math.round(figures.retained / figures.runs)} bytes/run); validate ${figures.validateWall.toFixed(3)} s wall, ${figures.validateCpu.toFixed(3)} s CPU, ${figures.validateErrors} errors`,
    );
  }
  console.log("per 10x more runs (linear: ~10):");
  for (let index = 1; index < results.length; index++) {
    const [a, b] = [results[index - 1]!, results[index]!];
    const ratio = (x: number, y: number) => (x > 0 ? (y / x).toFixed(1) : "n/a");
    console.log(
      `  ${a.runs} -> ${b.runs}: plan CPU x${ratio(a.cpu, b.cpu)}, wall x${ratio(a.wall, b.wall)}, peak RSS x${ratio(a.peakRss, b.peakRss)}, ` +
        `retained heap x${ratio(a.retained, b.retained)}, validate CPU x${ratio(a.validateCpu, b.validateCpu)}`,
    );
  }
}
