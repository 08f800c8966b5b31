import type { ShimEvent } from "../runs/events.ts";

type StepLoss = { step: number; loss: number };

/** What the card and peftctl/events-summary.json say about a run's training, read from its events. */
export type EventsSummary = {
  run_id: string | null;
  attempts: number;
  last_step: number | null;
  total_steps: number | null;
  train_loss: { first: StepLoss; min: StepLoss; last: StepLoss } | null;
  eval: Array<{ step: number; loss: number; perplexity: number }>;
  final_metrics: Record<string, number>;
  data: {
    examples: { train: number; valid: number; test: number };
    dialogues: number;
    skipped: Record<string, number>;
    repaired: Record<string, number>;
    truncated: number;
    train_tokens: number;
    fingerprint: string;
  } | null;
  versions: Record<string, string>;
  device: string | null;
  params: { trainable: number; total: number } | null;
};

export function summarizeEvents(events: readonly ShimEvent[]): EventsSummary {
  const summary: EventsSummary = {
    run_id: events[0]?.run_id ?? null,
    attempts: 0,
    last_step: null,
    total_steps: null,
    train_loss: null,
    eval: [],
    final_metrics: {},
    data: null,
    versions: {},
    device: null,
    params: null,
  };
  // A resumed run repeats the steps after its last checkpoint: the newest value of a step wins.
  const trainLoss = new Map<number, number>();
  const evalByStep = new Map<number, { step: number; loss: number; perplexity: number }>();
  for (const event of events) {
    switch (event.type) {
      case "start":
        summary.attempts += 1;
        summary.versions = event.versions;
        summary.device = event.device;
        summary.params = event.params;
        break;
      case "data": {
        const { examples, dialogues, skipped, repaired, truncated, train_tokens, fingerprint } = event;
        summary.data = { examples, dialogues, skipped, repaired, truncated, train_tokens, fingerprint };
        break;
      }
      case "progress":
        trainLoss.set(event.step, event.loss);
        summary.total_steps = event.total_steps;
        summary.last_step = Math.max(summary.last_step ?? 0, event.step);
        break;
      case "eval":
        evalByStep.set(event.step, { step: event.step, loss: event.loss, perplexity: event.perplexity });
        break;
      case "done":
        summary.final_metrics = event.metrics;
        summary.last_step = event.step;
        break;
      default:
        break;
    }
  }
  const losses = [...trainLoss.entries()].sort((a, b) => a[0] - b[0]).map(([step, loss]) => ({ step, loss }));
  if (losses.length > 0) {
    const min = losses.reduce((best, point) => (point.loss < best.loss ? point : best));
    summary.train_loss = { first: losses[0]!, min, last: losses[losses.length - 1]! };
  }
  summary.eval = [...evalByStep.values()].sort((a, b) => a.step - b.step);
  return summary;
}
