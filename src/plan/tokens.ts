/**
 * Estimated training tokens of a job: the tokens of training examples the model is trained on
 * over the whole run (targets and their context, padding excluded).
 *
 * From a DataSummary (a cheap scan of the data file made by the command layer, see summarizeData):
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
/** Template characters around each turn ("User: ", "Assistant: ", newlines) in the plain template. */
const TEMPLATE_CHARS_PER_TURN = 12;

export type DataSummary = {
  /** Training examples in the whole file (one per supporter turn that follows a seeker turn). */
  examples: number;
  /** Mean characters of an example: its context (the dialogue before it) plus its target. */
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

type Turn = { seeker: boolean; text: string };

/**
 * Counts examples and their mean length in a data file's text, without tokenising: a cheap stand-in
 * for python/peftshim/data.py, good enough for a plan. Returns null when the text does not parse as
 * the format (the plan then shows "?"; `peftctl validate`/the shim report the real error).
 */
export function summarizeData(format: Experiment["data"]["format"], text: string): DataSummary | null {
  let dialogues: Array<{ preamble: string; turns: Turn[] }>;
  try {
    dialogues = toDialogues(format, text);
  } catch {
    return null;
  }
  let examples = 0;
  let chars = 0;
  for (const { preamble, turns } of dialogues) {
    let context = preamble.length;
    let seenSeeker = false;
    for (const turn of turns) {
      const length = turn.text.length + TEMPLATE_CHARS_PER_TURN;
      if (!turn.seeker && seenSeeker) {
        examples++;
        chars += context + length;
      }
      seenSeeker ||= turn.seeker;
      context += length;
    }
  }
  return { examples, meanChars: examples === 0 ? 0 : chars / examples };
}

function asText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === undefined || value === null) return "";
  return JSON.stringify(value);
}

function records(text: string): unknown[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[")) return JSON.parse(text) as unknown[];
  // JSON Lines
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as unknown);
}

function toDialogues(format: Experiment["data"]["format"], text: string): Array<{ preamble: string; turns: Turn[] }> {
  const items = records(text).filter((item): item is Record<string, unknown> => typeof item === "object" && item !== null);
  switch (format) {
    case "extes":
      return items.map((item) => ({
        preamble: asText(item.scene) + asText(item.description),
        turns: (Array.isArray(item.content) ? item.content : []).flatMap((turn: unknown): Turn[] => {
          if (typeof turn !== "object" || turn === null) return [];
          const record = turn as Record<string, unknown>;
          const out: Turn[] = [];
          if ("User" in record) out.push({ seeker: true, text: asText(record.User) });
          if ("AI" in record) out.push({ seeker: false, text: asText(record.AI) });
          return out;
        }),
      }));
    case "esconv":
      return items.map((item) => ({
        preamble: asText(item.situation),
        turns: (Array.isArray(item.dialog) ? item.dialog : []).map((turn: Record<string, unknown>) => ({
          seeker: turn?.speaker !== "supporter",
          text: asText(turn?.content),
        })),
      }));
    case "chat":
      return items.map((item) => ({
        preamble: "",
        turns: (Array.isArray(item.messages) ? item.messages : [])
          .filter((message: Record<string, unknown>) => message?.role !== "system")
          .map((message: Record<string, unknown>) => ({ seeker: message?.role !== "assistant", text: asText(message?.content) })),
      }));
    case "alpaca":
      return items.map((item) => ({
        preamble: "",
        turns: [
          { seeker: true, text: asText(item.instruction) + asText(item.input) },
          { seeker: false, text: asText(item.output) },
        ],
      }));
  }
}
