/** The table of `peftctl score`: one row per metric, values as fractions in [0, 1], "n/a" where not computable. */
import { METRIC_NAMES, type MetricsReport } from "../runs/eval-metrics.ts";
import { renderTable } from "./format.ts";

const NOTES: Partial<Record<(typeof METRIC_NAMES)[number], string>> = {
  meteor: "METEOR 1.5, corpus level",
  "dist-1": "ESConv's count (last n-gram of each response skipped)",
  "dist-1-standard": "every n-gram counted",
  toxicity: "mean score of the toxicity scorer",
  toxicity_share: "share of responses scoring above 0.5",
};

export function renderMetricsTable(report: MetricsReport): string {
  const rows = METRIC_NAMES.map((name) => {
    const value = report.metrics[name];
    let note = NOTES[name] ?? "";
    if (value === null || value === undefined) {
      if (name === "vector_extrema" || name === "embedding_average" || name === "greedy_matching") note = "no word vectors (--embeddings)";
      else if (name.startsWith("strategy_")) note = "no pair has reference_strategy and predicted_strategy";
      else if (name.startsWith("toxicity")) note = "no toxicity scorer (--toxicity-command, eval.toxicity)";
    }
    return [name, value === null || value === undefined ? "n/a" : value.toFixed(4), note];
  });
  const strategies = report.strategy_pairs > 0 ? ` (${report.strategy_pairs} with strategies)` : "";
  const footer = `${report.pairs} pair${report.pairs === 1 ? "" : "s"}${strategies}; tokens: ${report.tokenizer}; vectors: ${report.embeddings ?? "none"}`;
  return `${renderTable(["METRIC", "VALUE", "NOTE"], rows, { rightAligned: new Set([1]) })}\n${footer}`;
}
