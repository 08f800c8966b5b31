/**
 * Filled sheets -> ratings -> the result, pure: parsing a rater's CSV against the key (every
 * problem positioned as file:line:col), per-system means, win/tie/loss on `overall`, agreement.
 */
import { parse } from "csv-parse/sync";
import { UserError } from "../../errors.ts";
import { krippendorffAlpha, type AlphaResult } from "./agreement.ts";
import { CRITERIA, KEY_KIND, type Criterion, type HumanEvalKey, type Scale } from "./sheet.ts";

export type Rating = { rater: string; item: string; letter: string; system: string; scores: Partial<Record<Criterion, number>> };

/** A problem in an input file, at a 1-based line and column (the CSV column number, counting from 1). */
export type InputProblem = { file: string; line: number; col: number; message: string };

export function formatProblem(p: InputProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

export function inputError(problems: readonly InputProblem[]): UserError {
  const shown = problems.slice(0, 20).map(formatProblem);
  if (problems.length > 20) shown.push(`... and ${problems.length - 20} more`);
  const files = [...new Set(problems.map((p) => p.file))];
  return new UserError("PEFTCTL_DATA_INVALID", `${problems.length} problem(s) in ${files.join(", ")}; nothing written`, shown);
}

/** The key file's content, checked enough to trust its shape; problems are positioned at line 1. */
export function parseKey(text: string, file: string): HumanEvalKey {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw inputError([{ file, line: 1, col: 1, message: `not JSON: ${(error as Error).message}` }]);
  }
  const key = value as Partial<HumanEvalKey> | null;
  const ok =
    key !== null &&
    typeof key === "object" &&
    key.kind === KEY_KIND &&
    key.version === 1 &&
    typeof key.scale?.min === "number" &&
    typeof key.scale?.max === "number" &&
    Array.isArray(key.systems) &&
    Array.isArray(key.items) &&
    key.items.every((i) => typeof i?.item === "string" && i.responses !== null && typeof i.responses === "object");
  if (!ok) throw inputError([{ file, line: 1, col: 1, message: `not a human-eval key (written by 'peftctl human-eval export' as key.json)` }]);
  return key as HumanEvalKey;
}

/** A header cell's name: `Fluency (1-5)` -> `fluency`. */
function columnName(header: string): string {
  return header.replace(/\(.*\)\s*$/, "").trim().toLowerCase();
}

/**
 * One rater's file (or several raters' with a `rater` column; an empty or absent rater is the file's
 * name, `defaultRater`). Empty rating cells are missing ratings, not errors; other columns are ignored.
 */
export function parseRatingsCsv(text: string, file: string, key: HumanEvalKey, defaultRater: string): { ratings: Rating[]; problems: InputProblem[] } {
  let records: Array<{ record: string[]; raw: string }>;
  try {
    records = parse(text, { bom: true, info: true, raw: true, skip_empty_lines: true, relax_column_count: false }) as unknown as Array<{ record: string[]; raw: string }>;
  } catch (error) {
    const e = error as { lines?: number; index?: number; message?: string };
    return { ratings: [], problems: [{ file, line: e.lines ?? 1, col: typeof e.index === "number" ? e.index + 1 : 1, message: `not a CSV: ${e.message ?? String(error)}` }] };
  }
  // the line each record starts on, from the raw text before it (skipped empty lines included)
  let newlines = 0;
  const starts = records.map(({ raw }) => {
    const leading = /^(?:\r?\n)*/.exec(raw)![0];
    const start = 1 + newlines + (leading.match(/\n/g)?.length ?? 0);
    newlines += raw.match(/\n/g)?.length ?? 0;
    return start;
  });
  const problems: InputProblem[] = [];
  if (records.length === 0) return { ratings: [], problems: [{ file, line: 1, col: 1, message: "empty file: expected a header row (item, response, fluency, ...)" }] };
  const header = records[0]!.record.map(columnName);
  const column = (name: string) => header.indexOf(name);
  const required = ["item", "response", ...CRITERIA];
  const missing = required.filter((name) => column(name) < 0);
  if (missing.length > 0) {
    return { ratings: [], problems: [{ file, line: starts[0]!, col: header.length + 1, message: `missing column(s): ${missing.join(", ")} (the header has: ${header.join(", ")})` }] };
  }
  const byItem = new Map(key.items.map((i) => [i.item, i.responses]));
  const raterCol = column("rater");
  const ratings: Rating[] = [];
  const seen = new Map<string, number>();
  for (let r = 1; r < records.length; r++) {
    const cells = records[r]!.record;
    const line = starts[r]!;
    const at = (name: string) => ({ file, line, col: column(name) + 1 });
    const item = cells[column("item")]!.trim();
    const letter = cells[column("response")]!.trim().toUpperCase();
    const responses = byItem.get(item);
    if (!responses) {
      problems.push({ ...at("item"), message: `unknown item '${item}' (not in the key)` });
      continue;
    }
    const system = responses[letter];
    if (system === undefined) {
      problems.push({ ...at("response"), message: `item ${item} has no response '${letter}' (it has ${Object.keys(responses).join(", ")})` });
      continue;
    }
    const rater = (raterCol >= 0 ? cells[raterCol]!.trim() : "") || defaultRater;
    const scores: Partial<Record<Criterion, number>> = {};
    for (const criterion of CRITERIA) {
      const cell = cells[column(criterion)]!.trim();
      if (cell === "") continue;
      const value = Number(cell);
      if (!/^[+-]?\d+$/.test(cell) || value < key.scale.min || value > key.scale.max) {
        problems.push({ ...at(criterion), message: `${criterion} '${cell}' is not a whole number from ${key.scale.min} to ${key.scale.max}` });
        continue;
      }
      scores[criterion] = value;
    }
    const id = `${rater}\u0000${item}\u0000${letter}`;
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      problems.push({ ...at("item"), message: `rater '${rater}' rated ${item} ${letter} already (line ${earlier})` });
      continue;
    }
    seen.set(id, line);
    ratings.push({ rater, item, letter, system, scores });
  }
  return { ratings, problems };
}

export type Summary = { mean: number | null; std: number | null; n: number };

export type PairResult = { a: string; b: string; win: number; tie: number; loss: number; n: number };

export type HumanEvalResult = {
  kind: "peftctl-human-eval";
  version: 1;
  scale: Scale;
  criteria: Criterion[];
  raters: string[];
  files: string[];
  ratings: number;
  missing: number;
  /** system -> criterion -> mean, sample std (n-1) and count over every rating of every rater. */
  systems: Array<{ system: string; scores: Record<Criterion, Summary> }>;
  /**
   * Pairs on `overall`: one comparison per rater and item where the rater scored both responses;
   * rates are fractions of those comparisons (a's win is b's loss).
   */
  pairwise: PairResult[];
  /** Krippendorff's alpha (ordinal) per criterion; units are an item's response, raters the coders. */
  agreement: Record<Criterion, AlphaResult>;
};

function summarize(values: readonly number[]): Summary {
  const n = values.length;
  if (n === 0) return { mean: null, std: null, n };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : null;
  return { mean, std, n };
}

export function scoreRatings(key: HumanEvalKey, ratings: readonly Rating[], files: readonly string[] = []): HumanEvalResult {
  const systems = key.systems.map((s) => s.system);
  const raters = [...new Set(ratings.map((r) => r.rater))].sort();
  const missing = ratings.reduce((sum, r) => sum + CRITERIA.filter((c) => r.scores[c] === undefined).length, 0);
  const perSystem = systems.map((system) => {
    const mine = ratings.filter((r) => r.system === system);
    const scores = Object.fromEntries(
      CRITERIA.map((c) => [c, summarize(mine.map((r) => r.scores[c]).filter((v): v is number => v !== undefined))]),
    ) as Record<Criterion, Summary>;
    return { system, scores };
  });
  // rater -> item -> system -> overall
  const overall = new Map<string, Map<string, Map<string, number>>>();
  for (const r of ratings) {
    const v = r.scores.overall;
    if (v === undefined) continue;
    const byItem = overall.get(r.rater) ?? new Map<string, Map<string, number>>();
    overall.set(r.rater, byItem);
    const bySystem = byItem.get(r.item) ?? new Map<string, number>();
    byItem.set(r.item, bySystem);
    bySystem.set(r.system, v);
  }
  const pairwise: PairResult[] = [];
  for (let i = 0; i < systems.length; i++) {
    for (let j = i + 1; j < systems.length; j++) {
      const [a, b] = [systems[i]!, systems[j]!];
      let win = 0;
      let tie = 0;
      let loss = 0;
      for (const byItem of overall.values()) {
        for (const bySystem of byItem.values()) {
          const va = bySystem.get(a);
          const vb = bySystem.get(b);
          if (va === undefined || vb === undefined) continue;
          if (va > vb) win++;
          else if (va < vb) loss++;
          else tie++;
        }
      }
      const n = win + tie + loss;
      pairwise.push({ a, b, win: n ? win / n : 0, tie: n ? tie / n : 0, loss: n ? loss / n : 0, n });
    }
  }
  const agreement = Object.fromEntries(
    CRITERIA.map((c) => {
      const units = new Map<string, number[]>();
      for (const r of ratings) {
        const v = r.scores[c];
        if (v === undefined) continue;
        const unit = `${r.item}\u0000${r.letter}`;
        units.set(unit, [...(units.get(unit) ?? []), v]);
      }
      return [c, krippendorffAlpha([...units.values()], "ordinal")];
    }),
  ) as Record<Criterion, AlphaResult>;
  return {
    kind: "peftctl-human-eval",
    version: 1,
    scale: key.scale,
    criteria: [...CRITERIA],
    raters,
    files: [...files],
    ratings: ratings.length,
    missing,
    systems: perSystem,
    pairwise,
    agreement,
  };
}
