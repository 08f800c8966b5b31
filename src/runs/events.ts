/**
 * The event protocol between the shim and the controller: one JSON object per line, on the shim's
 * stdout and appended to <run_dir>/events.jsonl. python/peftshim/events.py is the other half;
 * test/events-contract.test.ts checks that both agree.
 */
import { z } from "zod";

export const EVENTS_VERSION = 1;

const base = {
  v: z.literal(EVENTS_VERSION),
  t: z.string().describe("ISO 8601 time"),
  run_id: z.string(),
};

const counts = z.record(z.string(), z.number().int().nonnegative());

export const StartEvent = z.object({
  ...base,
  type: z.literal("start"),
  attempt: z.number().int().positive(),
  pid: z.number().int(),
  versions: z.record(z.string(), z.string()),
  device: z.string().describe("cpu, cuda:0, ... with the GPU name where there is one"),
  params: z.object({ trainable: z.number().int(), total: z.number().int() }),
  resumed_from_step: z.number().int().nonnegative().nullable(),
});

export const DataEvent = z.object({
  ...base,
  type: z.literal("data"),
  examples: z.object({ train: z.number().int(), valid: z.number().int(), test: z.number().int() }),
  dialogues: z.number().int().nonnegative(),
  skipped: counts.describe("records or turns dropped, by reason"),
  repaired: counts.describe("records or turns repaired, by reason"),
  // Absent from the events of shims before it: an older events.jsonl still parses.
  mapped: counts.default({}).describe('names of an older release mapped to the current ones ("role speaker -> seeker")'),
  truncated: z.number().int().nonnegative().describe("examples that lost their oldest turns"),
  train_tokens: z.number().int().nonnegative(),
  pad_fraction: z.number().min(0).max(1),
  fingerprint: z.string(),
});

export const ProgressEvent = z.object({
  ...base,
  type: z.literal("progress"),
  step: z.number().int().nonnegative(),
  total_steps: z.number().int().positive(),
  epoch: z.number().nonnegative(),
  loss: z.number(),
  lr: z.number(),
  tokens_per_s: z.number().nonnegative(),
  eta_s: z.number().nonnegative(),
});

export const EvalEvent = z.object({
  ...base,
  type: z.literal("eval"),
  step: z.number().int().nonnegative(),
  loss: z.number(),
  perplexity: z.number(),
});

export const CheckpointEvent = z.object({
  ...base,
  type: z.literal("checkpoint"),
  step: z.number().int().nonnegative(),
  path: z.string(),
  manifest_sha256: z.string(),
});

export const InterruptedEvent = z.object({
  ...base,
  type: z.literal("interrupted"),
  step: z.number().int().nonnegative(),
  checkpoint: z.string().nullable(),
  signal: z.string(),
});

export const DoneEvent = z.object({
  ...base,
  type: z.literal("done"),
  step: z.number().int().nonnegative(),
  metrics: z.record(z.string(), z.number()),
  adapter_path: z.string(),
});

export const ErrorEvent = z.object({
  ...base,
  type: z.literal("error"),
  kind: z.enum(["spec", "data", "fingerprint", "environment", "oom", "disk_full", "internal"]),
  message: z.string(),
  retryable: z.boolean(),
});

/** Something that went wrong without failing the run (an experiment tracker switched off, trackers.py). */
export const WarningEvent = z.object({
  ...base,
  type: z.literal("warning"),
  source: z.string().describe("what warns: tensorboard, wandb, mlflow"),
  message: z.string(),
});

export const ShimEvent = z.discriminatedUnion("type", [
  StartEvent,
  DataEvent,
  ProgressEvent,
  EvalEvent,
  CheckpointEvent,
  InterruptedEvent,
  DoneEvent,
  ErrorEvent,
  WarningEvent,
]);

export type ShimEvent = z.infer<typeof ShimEvent>;

/** Shim exit codes (DESIGN: job spec, events, exit codes). */
export const ShimExit = {
  done: 0,
  failed: 1,
  badInput: 2,
  outOfMemory: 3,
  noSpace: 4,
  interrupted: 75,
} as const;

/**
 * Error kinds of the shim's exit 2: what the user has to fix (the job's spec, its data, a checkpoint
 * of another job, an environment that cannot run the job as placed). `run` exits 2 when they are its
 * only failures.
 */
export const BAD_INPUT_KINDS = ["spec", "data", "fingerprint", "environment"] as const;

/** Parses one line; undefined for lines that are not events (library chatter on stdout). */
export function parseEventLine(line: string): ShimEvent | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith("{")) return undefined;
  try {
    const parsed = ShimEvent.safeParse(JSON.parse(trimmed));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
