/** The human evaluation's result as text: per-system means, pairwise win/tie/loss on overall, agreement. */
import type { HumanEvalResult, Summary } from "../eval/human-eval/score.ts";
import { renderTable } from "./format.ts";

function meanStd(s: Summary): string {
  if (s.mean === null) return "-";
  return s.std === null ? s.mean.toFixed(2) : `${s.mean.toFixed(2)} ± ${s.std.toFixed(2)}`;
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

export function renderHumanEval(result: HumanEvalResult): string {
  const numeric = new Set(result.criteria.map((_, i) => i + 1));
  const means = renderTable(
    ["SYSTEM", ...result.criteria.map((c) => c.toUpperCase()), "N"],
    result.systems.map((s) => [s.system, ...result.criteria.map((c) => meanStd(s.scores[c])), String(Math.max(0, ...result.criteria.map((c) => s.scores[c].n)))]),
    { rightAligned: new Set([...numeric, result.criteria.length + 1]) },
  );
  const parts = [
    `${result.ratings} rated response(s) from ${result.raters.length} rater(s) (${result.raters.join(", ")}); scale ${result.scale.min}-${result.scale.max}, mean ± std` +
      (result.missing > 0 ? `; ${result.missing} rating(s) left empty` : ""),
    means,
  ];
  if (result.pairwise.length > 0) {
    parts.push(
      "",
      "overall, pairwise (one comparison per rater and item):",
      renderTable(
        ["SYSTEM A", "SYSTEM B", "A WINS", "TIE", "A LOSES", "N"],
        result.pairwise.map((p) => [p.a, p.b, percent(p.win), percent(p.tie), percent(p.loss), String(p.n)]),
        { rightAligned: new Set([2, 3, 4, 5]) },
      ),
    );
  }
  parts.push(
    "",
    "agreement between raters (Krippendorff's alpha, ordinal):",
    renderTable(
      ["CRITERION", "ALPHA", "UNITS"],
      result.criteria.map((c) => {
        const a = result.agreement[c];
        return [c, a.alpha === null ? "-" : a.alpha.toFixed(3), String(a.units)];
      }),
      { rightAligned: new Set([1, 2]) },
    ),
  );
  if (result.raters.length < 2) parts.push("(agreement needs at least two raters)");
  return parts.join("\n");
}
