/** The job spec's one definition (JobSpecSchema): planned jobs match it, and job.json files of earlier versions migrate to it. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { planConfig } from "../../src/experiment.ts";
import { JOB_SCHEMA_VERSION, JobSpecSchema, migrateJob } from "../../src/plan/jobspec.ts";
import { readJob } from "../../src/runs/store.ts";

const root = path.resolve(import.meta.dirname, "../..");

async function smokeJob() {
  const { plan } = await planConfig(path.join(root, "configs/smoke.yaml"), { runsDir: "/runs" });
  return plan.jobs[0]!.spec;
}

/** What job.json looked like under schema_version 1: no micro_batches_per_step, and (earliest) no compile. */
function asVersion1(spec: Awaited<ReturnType<typeof smokeJob>>): unknown {
  const { micro_batches_per_step: _derived, compile: _compile, ...train } = spec.train;
  return { ...spec, schema_version: 1, train };
}

describe("job spec", () => {
  test("every planned job of the shipped configs matches JobSpecSchema", async () => {
    for (const config of ["configs/smoke.yaml", "configs/extes/lora-rank-sweep.yaml", "configs/extes/llama-7b-adapter.yaml", "configs/extes/dialogpt-medium-full.yaml"]) {
      const { plan } = await planConfig(path.join(root, config), { runsDir: "/runs" });
      for (const job of plan.jobs) expect(JobSpecSchema.safeParse(job.spec).error?.issues ?? []).toEqual([]);
    }
  });

  test("a version 1 job.json migrates in one step to what the planner writes now", async () => {
    const current = await smokeJob();
    expect(current.schema_version).toBe(JOB_SCHEMA_VERSION);
    expect(migrateJob(asVersion1(current))).toEqual(current);
    const gpuJob = { ...current, resources: { ...current.resources, gpus: 2 }, train: { ...current.train, gradient_accumulation_steps: 1 } };
    expect((migrateJob(asVersion1(gpuJob)) as typeof current).train.micro_batches_per_step).toBe(2);
  });

  test("version 1 had no decoding settings: migrating gives them the schema's defaults", async () => {
    const current = await smokeJob();
    const { max_new_tokens, samples } = current.eval.generate;
    const v1 = asVersion1(current) as typeof current;
    const old = { ...v1, eval: { ...v1.eval, generate: { max_new_tokens, samples } } };
    expect(migrateJob(old)).toEqual(current);
    expect(migrateJob(current)).toBe(current); // a version 2 file is left as it is
  });

  test("the run store reads an old job.json as the current version and leaves the file as it was", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-job-"));
    const old = `${JSON.stringify(asVersion1(await smokeJob()), null, 2)}\n`;
    writeFileSync(path.join(dir, "job.json"), old);
    const job = readJob(dir);
    expect(job.schema_version).toBe(JOB_SCHEMA_VERSION);
    expect(JobSpecSchema.safeParse(job).success).toBe(true);
    expect(readFileSync(path.join(dir, "job.json"), "utf8")).toBe(old);
  });
});
