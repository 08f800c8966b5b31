/** The I/O around the pure sheet and scoring: generations of runs, the sheet's files, the filled sheets, the result. */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { UserError } from "../../errors.ts";
import { writeFileAtomic, writeJsonAtomic, type RunRef } from "../../runs/store.ts";
import { inputError, parseKey, parseRatingsCsv, scoreRatings, type HumanEvalResult, type InputProblem, type Rating } from "./score.ts";
import { buildSheet, sheetCsv, sheetHtml, sheetKey, type Generation, type HumanEvalKey, type Scale, type SystemInput } from "./sheet.ts";

export const SHEET_FILES = { csv: "sheet.csv", html: "sheet.html", key: "key.json" } as const;
export const RESULT_FILE = "human-eval.json";

export type EvalChoice = { run: RunRef; dir: string; file: string; candidates: number };

/** The newest (by generations.jsonl mtime) `eval/<split>-*` dir of a run that holds generations; exit 2 when none does. */
export function findGenerations(run: RunRef, split: string): EvalChoice {
  const evalDir = path.join(run.dir, "eval");
  const dirs = existsSync(evalDir) ? readdirSync(evalDir).filter((name) => name.startsWith(`${split}-`)) : [];
  const found = dirs
    .map((name) => ({ dir: path.join(evalDir, name), file: path.join(evalDir, name, "generations.jsonl") }))
    .filter((c) => existsSync(c.file))
    .map((c) => ({ ...c, mtime: statSync(c.file).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || (a.dir < b.dir ? 1 : -1));
  if (found.length === 0) {
    throw new UserError("PEFTCTL_DATA_INVALID", `${run.experiment}/${run.runId} has no generations on split '${split}' (no ${path.join("eval", `${split}-*`, "generations.jsonl")})`, [
      `run 'peftctl eval ${run.experiment}/${run.runId}' first`,
    ]);
  }
  return { run, dir: found[0]!.dir, file: found[0]!.file, candidates: found.length };
}

function isTurn(value: unknown): boolean {
  const t = value as { role?: unknown; text?: unknown } | null;
  return t !== null && typeof t === "object" && (t.role === "user" || t.role === "assistant") && typeof t.text === "string";
}

/** Parses generations.jsonl; every bad line is a problem at file:line:1. */
export function parseGenerations(text: string, file: string): { generations: Generation[]; problems: InputProblem[] } {
  const generations: Generation[] = [];
  const problems: InputProblem[] = [];
  const seen = new Map<string, number>();
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    let value: Partial<Generation> | null;
    try {
      value = JSON.parse(raw) as Partial<Generation> | null;
    } catch (error) {
      problems.push({ file, line, col: 1, message: `not JSON: ${(error as Error).message}` });
      return;
    }
    if (value === null || typeof value !== "object" || typeof value.id !== "string" || typeof value.response !== "string" || !Array.isArray(value.context) || !value.context.every(isTurn)) {
      problems.push({ file, line, col: 1, message: "expected {id: string, context: [{role, text}], response: string, ...}" });
      return;
    }
    const earlier = seen.get(value.id);
    if (earlier !== undefined) {
      problems.push({ file, line, col: 1, message: `id '${value.id}' appears again (first on line ${earlier})` });
      return;
    }
    seen.set(value.id, line);
    generations.push({
      id: value.id,
      context: value.context.map((t) => ({ role: t.role, text: t.text })),
      reference: typeof value.reference === "string" ? value.reference : "",
      reference_strategy: value.reference_strategy ?? null,
      response: value.response,
      predicted_strategy: value.predicted_strategy ?? null,
    });
  });
  return { generations, problems };
}

export type ExportResult = { dir: string; files: { csv: string; html: string; key: string }; key: HumanEvalKey; sources: EvalChoice[] };

export function exportSheet(
  runsDir: string,
  runs: readonly RunRef[],
  options: { samples: number; seed: number; split: string; outDir: string; scale: Scale; force?: boolean; now?: string },
): ExportResult {
  const outDir = path.resolve(options.outDir);
  const files = { csv: path.join(outDir, SHEET_FILES.csv), html: path.join(outDir, SHEET_FILES.html), key: path.join(outDir, SHEET_FILES.key) };
  if (existsSync(files.key) && !options.force) {
    throw new UserError("PEFTCTL_USAGE", `${files.key} exists: a sheet was exported there already`, [
      "raters may hold that sheet; pick another -o DIR, or pass --force to replace it",
    ]);
  }
  const unique = [...new Map(runs.map((r) => [`${r.experiment}/${r.runId}`, r])).values()];
  const sources = unique.map((run) => findGenerations(run, options.split));
  const problems: InputProblem[] = [];
  const inputs: SystemInput[] = sources.map((source) => {
    const parsed = parseGenerations(readFileSync(source.file, "utf8"), source.file);
    problems.push(...parsed.problems);
    return { system: `${source.run.experiment}/${source.run.runId}`, generations: parsed.generations };
  });
  if (problems.length > 0) throw inputError(problems);
  const sheet = buildSheet(inputs, { samples: options.samples, seed: options.seed, scale: options.scale });
  const evalDirs = Object.fromEntries(sources.map((s) => [`${s.run.experiment}/${s.run.runId}`, path.relative(runsDir, s.dir)]));
  const key = sheetKey(sheet, { split: options.split, evalDirs, createdAt: options.now ?? new Date().toISOString() });
  // everything is computed before the first file is written; each file is written atomically
  const csv = sheetCsv(sheet);
  const html = sheetHtml(sheet);
  writeFileAtomic(files.csv, csv);
  writeFileAtomic(files.html, html);
  writeJsonAtomic(files.key, key);
  return { dir: outDir, files, key, sources };
}

function readInput(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError("PEFTCTL_USAGE", code === "ENOENT" ? `${file}: no such file` : `${file}: cannot read (${code ?? String(error)})`);
  }
}

export type ImportResult = { result: HumanEvalResult; file: string };

/** Reads the key and every filled sheet, checks them all (every problem reported at once), scores, writes human-eval.json beside the key. */
export function importRatings(ratingFiles: readonly string[], keyFile: string): ImportResult {
  const key = parseKey(readInput(keyFile), keyFile);
  const problems: InputProblem[] = [];
  const ratings: Rating[] = [];
  for (const file of ratingFiles) {
    const parsed = parseRatingsCsv(readInput(file), file, key, path.basename(file).replace(/\.[^.]*$/, ""));
    problems.push(...parsed.problems);
    ratings.push(...parsed.ratings);
  }
  // the same rater in two files rating the same response is a conflict too
  const seen = new Set<string>();
  for (const r of ratings) {
    const id = `${r.rater}\u0000${r.item}\u0000${r.letter}`;
    if (seen.has(id)) problems.push({ file: ratingFiles.join(", "), line: 1, col: 1, message: `rater '${r.rater}' rated ${r.item} ${r.letter} in more than one file` });
    seen.add(id);
  }
  if (problems.length > 0) throw inputError(problems);
  if (ratings.length === 0) throw new UserError("PEFTCTL_DATA_INVALID", `no ratings in ${ratingFiles.join(", ")}`);
  const result = scoreRatings(key, ratings, ratingFiles.map((f) => path.resolve(f)));
  const out = path.join(path.dirname(path.resolve(keyFile)), RESULT_FILE);
  writeJsonAtomic(out, result);
  return { result, file: out };
}
