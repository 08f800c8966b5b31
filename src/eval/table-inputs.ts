/**
 * The I/O of `peftctl table`: the selected runs' job specs and newest `eval/<split>-*`/metrics.json
 * (written by `peftctl eval`), and the human-evaluation scores of human-eval.json files (written by
 * `peftctl human-eval import`). The table itself is built by table.ts.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { UserError } from "../errors.ts";
import { findMetrics } from "../runs/eval-metrics.ts";
import { readJob, requireRuns, type RunRef } from "../runs/store.ts";
import type { Criterion } from "./human-eval/sheet.ts";
import type { Summary } from "./human-eval/score.ts";
import { RESULT_FILE } from "./human-eval/io.ts";
import type { TableRunInput } from "./table.ts";

/** system (`<experiment>/<run_id>`) -> criterion -> summary, from human-eval.json files; a later file wins for a system in two. */
export type HumanScores = Map<string, Partial<Record<Criterion, Summary>>>;

export function readHumanEvalFiles(files: readonly string[]): HumanScores {
  const scores: HumanScores = new Map();
  for (const given of files) {
    const file = existsSync(given) && statSync(given).isDirectory() ? path.join(given, RESULT_FILE) : given;
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(file, "utf8"));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UserError("PEFTCTL_USAGE", code === "ENOENT" ? `${file}: no such file` : `${file}: cannot read human-eval results (${code ?? (error as Error).message})`);
    }
    const result = value as { kind?: unknown; systems?: unknown } | null;
    if (result === null || typeof result !== "object" || result.kind !== "peftctl-human-eval" || !Array.isArray(result.systems)) {
      throw new UserError("PEFTCTL_DATA_INVALID", `${file}: not a human-eval result (written by 'peftctl human-eval import' as ${RESULT_FILE})`);
    }
    for (const entry of result.systems as Array<{ system?: unknown; scores?: unknown }>) {
      if (typeof entry?.system !== "string" || typeof entry.scores !== "object" || entry.scores === null) {
        throw new UserError("PEFTCTL_DATA_INVALID", `${file}: a systems entry without system and scores`);
      }
      scores.set(entry.system, entry.scores as Partial<Record<Criterion, Summary>>);
    }
  }
  return scores;
}

export type LoadedTableInputs = { runs: TableRunInput[]; sources: Array<{ ref: string; metrics: string | null; candidates: number }>; warnings: string[] };

/** Every run the targets name (each once, in the targets' order, a target's runs in natural order of their ids), with its job, newest metrics and human scores. */
export function loadTableInputs(runsDir: string, targets: readonly string[], options: { split: string; humanFiles?: readonly string[] }): LoadedTableInputs {
  const unique = new Map<string, RunRef>();
  for (const target of targets) {
    // an experiment's runs in natural order of their ids (r4 before r16), so a sweep reads in its order
    const runs = [...requireRuns(runsDir, target)].sort((a, b) => a.runId.localeCompare(b.runId, "en", { numeric: true }));
    for (const run of runs) unique.set(`${run.experiment}/${run.runId}`, run);
  }
  const human = readHumanEvalFiles(options.humanFiles ?? []);
  const warnings: string[] = [];
  const runs: TableRunInput[] = [];
  const sources: LoadedTableInputs["sources"] = [];
  for (const [ref, run] of unique) {
    const found = findMetrics(run, options.split, warnings);
    runs.push({ ref, job: readJob(run.dir), metrics: found?.report ?? null, human: human.get(ref) ?? null });
    sources.push({ ref, metrics: found ? path.relative(runsDir, found.file) : null, candidates: found?.candidates ?? 0 });
  }
  const refs = new Set(unique.keys());
  for (const system of human.keys()) if (!refs.has(system)) warnings.push(`human evaluation of ${system}: not among the selected runs; left out`);
  return { runs, sources, warnings };
}
