/**
 * Estimated training tokens of a job: the tokens of training examples the model is trained on
 * over the whole run (targets and their context, padding excluded).
 *
 * From a DataSummary (the shim's count of the data file, `python -m peftshim data-summary`, read by
 * src/experiment.ts: the same readers and the same example rule as training, so the counts agree):
 *   per example    = min(max_length, mean characters / CHARS_PER_TOKEN)
 *   train examples = examples x split.train, at most data.max_examples
 *   tokens         = epochs x train examples x per example
 * With train.max_steps, training stops after max_steps optimizer steps of batch_size rows (packed
 * rows of max_length tokens with packing, single examples without), so:
 *   tokens = max_steps x batch_size x (packing ? max_length : per example)
 * and without a summary that is still known as an upper bound (max_length per row): "at-most".
 * Without a summary and without max_steps the figure is unknown.
 */
import type { Experiment } from "../config/schema.ts";

/** Characters per token of LLaMA-class BPE tokenizers on English prose (~4, a common rule of thumb). */
export const CHARS_PER_TOKEN = 4;

export type DataSummary = {
  /** Training examples in the whole file (one per supporter turn that follows a seeker turn). */
  examples: number;
  /** Mean characters of an example in the plain template: its context (the dialogue before it) plus its target. */
  meanChars: number;
};

export type TokenEstimate = {
  tokens: number | null;
  kind: "estimate" | "at-most" | "unknown";
};

export function estimateTrainTokens(
  job: Pick<Experiment, "data" | "train">,
  summary: DataSummary | null | undefined,
): TokenEstimate {
  const { data, train } = job;
  const perExample = summary ? Math.min(data.max_length, summary.meanChars / CHARS_PER_TOKEN) : undefined;
  if (train.max_steps !== undefined) {
    const rowTokens = data.packing || perExample === undefined ? data.max_length : perExample;
    const bySteps = train.max_steps * train.batch_size * rowTokens;
    if (summary === null || summary === undefined) return { tokens: Math.round(bySteps), kind: "at-most" };
    return { tokens: Math.round(bySteps), kind: "estimate" };
  }
  if (summary === null || summary === undefined || perExample === undefined) return { tokens: null, kind: "unknown" };
  let trainExamples = Math.floor(summary.examples * data.split.train);
  if (data.max_examples !== undefined) trainExamples = Math.min(trainExamples, data.max_examples);
  return { tokens: Math.round(train.epochs * trainExamples * perExample), kind: "estimate" };
}
