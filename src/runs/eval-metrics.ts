/**
 * The newest scored evaluation of a run: `eval/<split>-*`/metrics.json (written by `peftctl eval`),
 * read by `peftctl table` (src/eval/table-inputs.ts) and by the model card of `peftctl push` (src/hub).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { RunRef } from "./store.ts";

export const METRICS_FILE = "metrics.json";

/** Every metric the scorer reports, in its order; null: not computable here (no vectors, no strategy labels, no toxicity scorer). */
export const METRIC_NAMES = [
  "bleu-1",
  "bleu-2",
  "bleu-3",
  "bleu-4",
  "rouge-l",
  "meteor",
  "vector_extrema",
  "embedding_average",
  "greedy_matching",
  "dist-1",
  "dist-2",
  "dist-3",
  "dist-1-standard",
  "dist-2-standard",
  "dist-3-standard",
  "strategy_accuracy",
  "strategy_macro_f1",
  "toxicity",
  "toxicity_share",
] as const;

export type MetricName = (typeof METRIC_NAMES)[number];

/** What `python -m peftmetrics score` prints. */
export type MetricsReport = {
  /** Fractions in [0, 1]; null where the metric is not computable (see METRIC_NAMES). */
  metrics: Record<MetricName, number | null>;
  pairs: number;
  /** Pairs with both `reference_strategy` and `predicted_strategy`. */
  strategy_pairs: number;
  /** "punkt" (nltk's model from NLTK_DATA) or "punkt-untrained" (no punkt data). */
  tokenizer: string;
  /** The word vectors used, or null. */
  embeddings: string | null;
  /** `peftctl eval`'s record of the scoring settings (run-eval.ts scoringOf), as a hash; absent from `peftctl score`. */
  scoring?: string;
};


export type FoundMetrics = { file: string; report: MetricsReport; candidates: number };

/**
 * The newest (by mtime) `eval/<split>-*`/metrics.json of a run; null when it has none. A file that
 * is not a metrics report is reported in `problems` and skipped.
 */
export function findMetrics(run: Pick<RunRef, "dir">, split: string, problems: string[] = []): FoundMetrics | null {
  const evalDir = path.join(run.dir, "eval");
  const names = existsSync(evalDir) ? readdirSync(evalDir).filter((name) => name.startsWith(`${split}-`)) : [];
  const files = names
    .map((name) => path.join(evalDir, name, METRICS_FILE))
    .filter((file) => existsSync(file))
    .map((file) => ({ file, mtime: statSync(file).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || (a.file < b.file ? 1 : -1));
  for (const { file } of files) {
    let report: unknown;
    try {
      report = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      problems.push(`${file}: not JSON (${(error as Error).message}); skipped`);
      continue;
    }
    const r = report as Partial<MetricsReport> | null;
    if (r === null || typeof r !== "object" || typeof r.metrics !== "object" || r.metrics === null) {
      problems.push(`${file}: not a metrics report (no "metrics" object); skipped`);
      continue;
    }
    return { file, report: r as MetricsReport, candidates: files.length };
  }
  return null;
}
