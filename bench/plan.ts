/**
 * Validates and plans a 10,000-run sweep (grid 10 x 10 x 10 x 10) and prints the wall time and runs/s
 * of each. Validation resolves every sweep point with the planner's own resolution, so the two should
 * cost about the same. Target (docs/ARCHITECTURE.md): well under a second each. Run: npx tsx bench/plan.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { stringify } from "yaml";
import { checkExperiment } from "../src/config/index.ts";
import { ExperimentSchema } from "../src/config/schema.ts";
import { planExperiment } from "../src/plan/index.ts";

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

const config = {
  name: "bench-sweep",
  model: { base: "huggyllama/llama-7b", dtype: "bfloat16" },
  method: { kind: "lora" },
  data: { format: "extes", path: "/data/ExTES.json", max_length: 1024 },
  sweep: {
    method: "grid",
    parameters: {
      "method.r": range(10, (i) => 2 * (i + 1)),
      "train.lr": range(10, (i) => Number((1e-5 * 2 ** i).toPrecision(3))),
      "data.max_length": range(10, (i) => 128 * (i + 1)),
      "train.warmup_steps": range(10, (i) => 10 * i),
    },
  },
};
const experiment = ExperimentSchema.parse(config);

const dataSummary = { examples: 100_000, meanChars: 1_200 };
// One warm-up pass so the figure is the steady state, not module compilation.
planExperiment(experiment, { runsDir: "/runs", dataSummary });
const cpuStart = process.cpuUsage();
const start = performance.now();
const plan = planExperiment(experiment, { runsDir: "/runs", dataSummary });
const seconds = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const ids = new Set(plan.jobs.map((job) => job.spec.run_id));
// CPU time next to wall time: on a shared machine the wall clock also counts other people's work.
console.log(
  `planned ${plan.jobs.length} runs (${ids.size} distinct ids) in ${seconds.toFixed(3)} s wall (${cpuSeconds.toFixed(3)} s CPU): ` +
    `${Math.round(plan.jobs.length / seconds)} runs/s`,
);
console.log(`first: ${plan.jobs[0]!.spec.run_id}  last: ${plan.jobs.at(-1)!.spec.run_id}  warnings: ${plan.warnings.length}`);

const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bench-"));
try {
  const file = path.join(dir, "sweep.yaml");
  writeFileSync(file, stringify(config));
  await checkExperiment(file, { env: {} });
  const validateStart = performance.now();
  const checked = await checkExperiment(file, { env: {} });
  const validateSeconds = (performance.now() - validateStart) / 1000;
  const errors = checked.diagnostics.filter((d) => d.severity === "error").length;
  console.log(`validated the same sweep (every point) in ${validateSeconds.toFixed(3)} s wall: ${errors} errors; validate / plan = ${(validateSeconds / seconds).toFixed(2)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
