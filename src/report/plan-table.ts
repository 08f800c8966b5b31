/** The job table of `peftctl plan`: one row per planned job with its memory and token estimates. */
import { exceedsGpuMemory, type Plan, type PlannedJob } from "../plan/index.ts";
import { GIB } from "../plan/memory.ts";
import { formatSweepNumber, methodLabel } from "../plan/runid.ts";
import { renderTable } from "./format.ts";

/** What the columns mean: under the table, and in `peftctl plan --help`. */
export const COLUMN_NOTES = [
  "micro x accum: examples (or packed rows) per forward pass per GPU x gradient accumulation steps",
  "peak GiB: estimated peak GPU memory per GPU (weights, trainable parameters with grads and AdamW state,",
  "  activations for micro-batch x max_length, logits; from the model's config.json); '!' above",
  "  resources.gpu_memory_gb, '?' where no config.json of the model could be read (a warning says why)",
  "train tokens: estimated tokens trained on over the whole run (epochs x train examples x mean length,",
  "  ~4 characters per token, capped at max_length); with train.max_steps, max_steps x batch_size x max_length;",
  "  '<=' an upper bound (no data file to measure), '?' unknown",
];


/** 1234 -> "1.2k", 5.6e9 -> "5.6B": train token counts at a glance. */
function compactCount(value: number): string {
  const units: Array<[number, string]> = [
    [1e12, "T"],
    [1e9, "B"],
    [1e6, "M"],
    [1e3, "k"],
  ];
  for (const [size, suffix] of units) {
    if (value >= size) return `${(value / size).toFixed(value / size >= 100 ? 0 : 1)}${suffix}`;
  }
  return String(Math.round(value));
}

function peakCell(job: PlannedJob): string {
  const { peakBytes } = job.estimate;
  if (peakBytes === null) return "?";
  return `${(peakBytes / GIB).toFixed(1)}${exceedsGpuMemory(job) ? "!" : ""}`;
}

function tokensCell(job: PlannedJob): string {
  const { trainTokens, trainTokensKind } = job.estimate;
  if (trainTokens === null) return "?";
  return `${trainTokensKind === "at-most" ? "<=" : ""}${compactCount(trainTokens)}`;
}

const HEADER = ["RUN ID", "METHOD", "LR", "MICRO X ACCUM", "GPUS", "EXECUTOR", "PEAK GIB", "TRAIN TOKENS"];
const NUMERIC_COLUMNS = new Set([2, 4, 6, 7]);

export function renderPlan(plan: Plan): string {
  const rows = plan.jobs.map((job) => {
    const { spec } = job;
    return [
      spec.run_id,
      methodLabel(spec.method),
      formatSweepNumber(spec.train.lr),
      `${spec.train.micro_batch_size} x ${spec.train.gradient_accumulation_steps}`,
      String(spec.resources.gpus),
      spec.resources.executor,
      peakCell(job),
      tokensCell(job),
    ];
  });
  const title = `${plan.experiment}: ${plan.jobs.length} job${plan.jobs.length === 1 ? "" : "s"}`;
  return [title, "", renderTable(HEADER, rows, { rightAligned: NUMERIC_COLUMNS }), "", ...COLUMN_NOTES, ""].join("\n");
}
