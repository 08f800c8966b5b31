/** Run dirs for scheduler tests, driven by test/fixtures/fake-trainer.py (a FAKE trainer, no torch). */
import { mkdirSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { initialStatus, runDirOf, writeJob, writeStatus, type RunRef } from "../../src/runs/store.ts";

export const fakeTrainer = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../fixtures/fake-trainer.py");

export type FakeBehaviour = {
  steps?: number;
  step_ms?: number;
  checkpoint_every?: number;
  behaviour?: "ok" | "fail" | "bad-input" | "crash" | "hang" | "oom" | "interrupt";
  at_step?: number;
  oom_above?: number;
  on_attempts?: number[];
};

export function tempRunsDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), "peftctl-runs-"));
}

/** The environment that makes the local executor start the fake trainer instead of the shim. */
export function fakeEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PEFTCTL_PYTHON: "python3", PEFTCTL_SHIM_SCRIPT: fakeTrainer, ...extra };
  if (!("PEFTCTL_FAKE_GPUS" in extra)) delete env.PEFTCTL_FAKE_GPUS;
  return env;
}

export function makeRun(
  runsDir: string,
  runId: string,
  options: { experiment?: string; fake?: FakeBehaviour; gpus?: number; retries?: number; micro?: number; accumulation?: number } = {},
): RunRef {
  const experiment = options.experiment ?? "fake-exp";
  const dir = runDirOf(runsDir, experiment, runId);
  mkdirSync(dir, { recursive: true });
  const micro = options.micro ?? 4;
  const accumulation = options.accumulation ?? 2;
  const job = {
    schema_version: 1,
    run_id: runId,
    experiment,
    run_dir: dir,
    sweep_values: {},
    model: { base: "builtin:tiny-llama" },
    method: { kind: "lora" },
    data: { format: "chat", path: "/dev/null" },
    train: { batch_size: micro * accumulation, micro_batch_size: micro, gradient_accumulation_steps: accumulation, max_steps: 10 },
    eval: {},
    checkpoint: { every_steps: 5, keep_last: 2, keep_adapters: "best" },
    resources: { executor: "local", gpus: options.gpus ?? 0, gpu_memory_gb: 80, retries: options.retries ?? 2 },
    fingerprints: { job: "0".repeat(64) },
    fake_trainer: options.fake ?? {},
  } as unknown as JobSpec;
  writeJob(dir, job);
  writeStatus(dir, initialStatus(job));
  return { experiment, runId, dir };
}
