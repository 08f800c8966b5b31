/**
 * Krippendorff's alpha (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"), pure.
 *
 * Chosen over Fleiss' kappa for the human evaluation because the ratings are ordinal (1-5): kappa
 * treats every disagreement alike (4 vs 5 as far apart as 1 vs 5), the ordinal alpha weighs them by
 * how many ratings lie between; alpha also takes any number of raters and missing ratings (a rater
 * who skipped a response, or raters who each rated part of the sheet), where Fleiss' kappa needs every
 * unit rated by the same number of raters.
 */

export type AlphaMetric = "nominal" | "ordinal" | "interval";

export type AlphaResult = {
  /** null when undefined: no pairable values, or every pairable value the same (no expected disagreement). */
  alpha: number | null;
  metric: AlphaMetric;
  /** Units with at least two values (the only ones that count). */
  units: number;
  /** Values in those units (n of the coincidence matrix). */
  pairable: number;
};

/**
 * `units`: for each unit (an item's response), the values the raters gave it; missing ratings are
 * simply absent. Units with fewer than two values are left out, as the method prescribes.
 */
export function krippendorffAlpha(units: readonly (readonly number[])[], metric: AlphaMetric = "ordinal"): AlphaResult {
  const pairableUnits = units.filter((u) => u.length >= 2);
  const values = [...new Set(pairableUnits.flat())].sort((a, b) => a - b);
  const index = new Map(values.map((v, i) => [v, i]));
  const size = values.length;
  // coincidence matrix o[c][k]: pairs of values from different raters within a unit, each unit weighted 1/(m_u - 1)
  const o = Array.from({ length: size }, () => new Array<number>(size).fill(0));
  for (const unit of pairableUnits) {
    const weight = 1 / (unit.length - 1);
    for (let i = 0; i < unit.length; i++) {
      for (let j = 0; j < unit.length; j++) {
        if (i !== j) o[index.get(unit[i]!)!]![index.get(unit[j]!)!]! += weight;
      }
    }
  }
  const nc = o.map((row) => row.reduce((s, x) => s + x, 0));
  const n = nc.reduce((s, x) => s + x, 0);
  const delta = (c: number, k: number): number => {
    if (metric === "nominal") return c === k ? 0 : 1;
    if (metric === "interval") return (values[c]! - values[k]!) ** 2;
    // ordinal: (sum of n_g for g from c to k) - (n_c + n_k) / 2, squared
    const [lo, hi] = c <= k ? [c, k] : [k, c];
    let sum = 0;
    for (let g = lo; g <= hi; g++) sum += nc[g]!;
    return (sum - (nc[c]! + nc[k]!) / 2) ** 2;
  };
  let observed = 0;
  let expected = 0;
  for (let c = 0; c < size; c++) {
    for (let k = 0; k < size; k++) {
      const d = delta(c, k);
      observed += o[c]![k]! * d;
      expected += nc[c]! * nc[k]! * d;
    }
  }
  const result = { metric, units: pairableUnits.length, pairable: n };
  if (n < 2 || expected === 0) return { ...result, alpha: null };
  return { ...result, alpha: 1 - ((n - 1) * observed) / expected };
}
