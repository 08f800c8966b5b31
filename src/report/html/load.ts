/**
 * The I/O of `peftctl report`: what `peftctl table` reads (src/eval/table-inputs.ts: jobs, the newest
 * metrics.json, human-eval.json) plus each run's events.jsonl and the generations.jsonl of the
 * evaluation its metrics came from (without metrics: its newest generations on the split).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { findGenerations, parseGenerations } from "../../eval/human-eval/io.ts";
import { inputError, type InputProblem } from "../../eval/human-eval/score.ts";
import type { Generation } from "../../eval/human-eval/sheet.ts";
import { loadTableInputs } from "../../eval/table-inputs.ts";
import { PeftctlError } from "../../errors.ts";
import { readEvents, runDirOf } from "../../runs/store.ts";
import type { ReportRunInput } from "./report-data.ts";

export type LoadedReportInputs = { runs: ReportRunInput[]; warnings: string[] };

/** `<run dir>/eval/<name>` of the run's generations, or null when it has none on the split. */
function generationsDir(runDir: string, metricsFile: string | null, ref: string, split: string): string | null {
  if (metricsFile !== null) return path.dirname(metricsFile);
  const [experiment, runId] = [ref.slice(0, ref.indexOf("/")), ref.slice(ref.indexOf("/") + 1)];
  try {
    return findGenerations({ experiment, runId, dir: runDir }, split).dir;
  } catch (error) {
    if (error instanceof PeftctlError) return null; // none on this split: the page says so
    throw error;
  }
}

export function loadReportInputs(runsDir: string, targets: readonly string[], options: { split: string; humanFiles?: readonly string[] }): LoadedReportInputs {
  const table = loadTableInputs(runsDir, targets, { split: options.split, humanFiles: options.humanFiles });
  const problems: InputProblem[] = [];
  const runs = table.runs.map((input, i): ReportRunInput => {
    const runDir = runDirOf(runsDir, input.ref.slice(0, input.ref.indexOf("/")), input.job.run_id);
    const metrics = table.sources[i]!.metrics;
    const dir = generationsDir(runDir, metrics === null ? null : path.join(runsDir, metrics), input.ref, options.split);
    let generations: Generation[] | null = null;
    if (dir !== null) {
      const file = path.join(dir, "generations.jsonl");
      let text: string | null = null;
      try {
        text = readFileSync(file, "utf8");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
      if (text !== null) {
        const parsed = parseGenerations(text, file);
        problems.push(...parsed.problems);
        generations = parsed.generations;
      }
    }
    return { ...input, events: readEvents(runDir), evalDir: dir === null ? null : path.relative(runsDir, dir), generations };
  });
  if (problems.length > 0) throw inputError(problems);
  return { runs, warnings: table.warnings };
}
