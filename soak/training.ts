/**
 * The tiny real training the kill, checkpoint, controller and Hub classes share: builtin:tiny-llama with
 * LoRA, a few steps, a checkpoint every other step, and one uninterrupted reference run whose final
 * adapter every interrupted run must equal (<= 1e-6).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { listRuns, readEvents, readStatus } from "../src/runs/store.ts";
import { STACK_TRACE, VENV_PYTHON, exec, peftctl, root, scratch, tail } from "./util.ts";

export const EXPERIMENT = "soak-tiny";
export const MAX_STEPS = 10;
export const CHECKPOINT_EVERY = 2;
export const TOLERANCE = 1e-6;
/** A trainer with one thread each, so parallel trials and the reference compute the same sums in the same order. */
export const TRAIN_ENV = { ...process.env, OMP_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
export const RUN_BOUND_MS = 8 * 60_000;

export function tinyConfig(dir: string, extra: string[] = []): string {
  const file = path.join(dir, "tiny.yaml");
  writeFileSync(file, [
    `name: ${EXPERIMENT}`,
    "model: { base: builtin:tiny-llama, dtype: float32 }",
    "method: { kind: lora, r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj] }",
    `data: { format: extes, path: ${JSON.stringify(path.join(root, "data/samples/extes-sample.json"))}, max_length: 64, max_examples: 24, split: { train: 0.8, valid: 0.1, test: 0.1 } }`,
    `train: { max_steps: ${MAX_STEPS}, lr: 1.0e-2, batch_size: 2, micro_batch_size: 2, warmup_steps: 1, log_every_steps: 1 }`,
    `eval: { every_steps: ${MAX_STEPS}, generate: { samples: 0 } }`,
    `checkpoint: { every_steps: ${CHECKPOINT_EVERY}, keep_last: 2 }`,
    "resources: { gpus: 0 }",
    ...extra,
    "",
  ].join("\n"));
  return file;
}

export function runDirIn(runsDir: string): string | undefined {
  return listRuns(runsDir, EXPERIMENT)[0]?.dir;
}

let reference: Promise<{ runDir: string; adapter: string; seconds: number; config: string; runsDir: string }> | undefined;
/** The uninterrupted run, trained once per soak process. */
export function referenceRun(): Promise<{ runDir: string; adapter: string; seconds: number; config: string; runsDir: string }> {
  reference ??= (async () => {
    const dir = scratch("reference");
    const config = tinyConfig(dir);
    const runsDir = path.join(dir, "runs");
    const done = await peftctl(["--runs-dir", runsDir, "run", config], { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
    const runDir = runDirIn(runsDir);
    if (done.code !== 0 || !runDir || readStatus(runDir).state !== "succeeded") {
      throw new Error(`the reference run failed (exit ${done.code}): ${tail(done.stdout + done.stderr, 8)}`);
    }
    return { runDir, adapter: path.join(runDir, "adapter", "adapter_model.safetensors"), seconds: done.ms / 1000, config, runsDir };
  })();
  return reference;
}

/** Problems of a finished run against the reference: state, the adapter within TOLERANCE, no checkpointed step trained again. */
export async function checkAgainstReference(runDir: string | undefined, options: { steps?: boolean } = {}): Promise<string[]> {
  if (!runDir) return ["no run directory"];
  const problems: string[] = [];
  const status = readStatus(runDir);
  if (status.state !== "succeeded") problems.push(`state ${status.state} (${status.error?.kind ?? ""}: ${status.error?.message ?? ""})`);
  const adapter = path.join(runDir, "adapter", "adapter_model.safetensors");
  if (!existsSync(adapter)) return [...problems, "no final adapter"];
  const ref = await referenceRun();
  const compared = await exec(VENV_PYTHON, [path.join(root, "soak/compare_adapters.py"), ref.adapter, adapter], { timeoutMs: 120_000 });
  try {
    const answer = JSON.parse(compared.stdout.trim().split("\n").pop()!) as { max_abs_diff?: number; error?: string };
    if (answer.error) problems.push(`adapter: ${answer.error}`);
    else if (!(answer.max_abs_diff! <= TOLERANCE)) problems.push(`adapter differs from the uninterrupted run's by ${answer.max_abs_diff} (> ${TOLERANCE})`);
  } catch {
    problems.push(`compare_adapters.py: ${tail(compared.stdout + compared.stderr, 3)}`);
  }
  if (options.steps !== false) problems.push(...stepProblems(runDir));
  return problems;
}

/**
 * Steps in events.jsonl: every attempt trains from its resume point upwards without repeats, and resumes
 * no earlier than the newest checkpoint event before it (a step already checkpointed is never trained again).
 */
export function stepProblems(runDir: string): string[] {
  const problems: string[] = [];
  let newestCheckpoint = 0;
  let attemptSteps: number[] = [];
  let resumedFrom = 0;
  const trained = new Set<number>();
  for (const event of readEvents(runDir)) {
    if (event.type === "start") {
      resumedFrom = event.resumed_from_step ?? 0;
      if (resumedFrom < newestCheckpoint) problems.push(`attempt ${event.attempt} resumed from step ${resumedFrom} though step ${newestCheckpoint} was checkpointed`);
      attemptSteps = [];
    } else if (event.type === "progress") {
      const expected = (attemptSteps.at(-1) ?? resumedFrom) + 1;
      if (event.step !== expected) problems.push(`progress step ${event.step} after ${expected - 1}`);
      attemptSteps.push(event.step);
      trained.add(event.step);
    } else if (event.type === "checkpoint") {
      newestCheckpoint = Math.max(newestCheckpoint, event.step);
    }
  }
  for (let step = 1; step <= MAX_STEPS; step++) if (!trained.has(step)) problems.push(`step ${step} never trained`);
  return [...new Set(problems)].slice(0, 5);
}

export function stackTraceIn(outputs: string[]): string[] {
  return outputs.filter((o) => STACK_TRACE.test(o)).map((o) => `stack trace: ${tail(o.slice(Math.max(0, o.search(STACK_TRACE) - 300)), 5)}`);
}

export function readJsonLines(file: string): unknown[] {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l)) : [];
}
