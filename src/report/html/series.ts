/** A run's training curves from its events (pure): train loss, eval loss, learning rate and tokens/s by step. */
import type { ShimEvent } from "../../runs/events.ts";

export type Point = { x: number; y: number };

export type RunSeries = { train_loss: Point[]; eval_loss: Point[]; lr: Point[]; tokens_per_s: Point[] };

export const SERIES_NAMES = ["train_loss", "eval_loss", "lr", "tokens_per_s"] as const satisfies ReadonlyArray<keyof RunSeries>;

/** Points by step in step order; a step logged again keeps the later value (a resumed attempt re-trains the steps after its checkpoint). */
function byStep(entries: Iterable<[number, number]>): Point[] {
  const values = new Map<number, number>();
  for (const [step, value] of entries) values.set(step, value);
  return [...values].sort((a, b) => a[0] - b[0]).map(([x, y]) => ({ x, y }));
}

export function runSeries(events: readonly ShimEvent[]): RunSeries {
  const progress = events.flatMap((e) => (e.type === "progress" ? [e] : []));
  const evals = events.flatMap((e) => (e.type === "eval" ? [e] : []));
  return {
    train_loss: byStep(progress.map((e) => [e.step, e.loss])),
    eval_loss: byStep(evals.map((e) => [e.step, e.loss])),
    lr: byStep(progress.map((e) => [e.step, e.lr])),
    tokens_per_s: byStep(progress.map((e) => [e.step, e.tokens_per_s])),
  };
}
