/** Fixtures of the table and report tests: temp dirs removed after the file, and succeeded run dirs planned as `peftctl run` would. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "vitest";
import { loadExperiment } from "../../src/config/index.ts";
import { planExperiment } from "../../src/plan/index.ts";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { initialStatus, updateStatus, writeJob, writeStatus } from "../../src/runs/store.ts";

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

/** The runs of `configYaml` (its data file an empty data.json beside it), planned into a new runs dir and marked succeeded. */
export async function succeededRuns(name: string, configYaml: string): Promise<{ runsDir: string; jobs: JobSpec[] }> {
  const configDir = tempDir(`peftctl-${name}-config-`);
  writeFileSync(path.join(configDir, "data.json"), "[]");
  writeFileSync(path.join(configDir, `${name}.yaml`), configYaml);
  const runsDir = tempDir(`peftctl-${name}-runs-`);
  const { experiment } = await loadExperiment(path.join(configDir, `${name}.yaml`), { env: {} });
  const jobs = planExperiment(experiment, { runsDir, pathRoot: configDir }).jobs.map((j) => j.spec);
  for (const job of jobs) {
    mkdirSync(job.run_dir, { recursive: true });
    writeJob(job.run_dir, job);
    writeStatus(job.run_dir, initialStatus(job));
    updateStatus(job.run_dir, () => ({ state: "succeeded" }));
  }
  return { runsDir, jobs };
}
