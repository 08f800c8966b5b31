import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../errors.ts";
import { exportSheet, importRatings } from "../../eval/human-eval/io.ts";
import type { Scale } from "../../eval/human-eval/sheet.ts";
import { renderHumanEval } from "../../report/human-eval-table.ts";
import { requireRuns, type RunRef } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

function wholeNumber(name: string, min: number): (value: string) => number {
  return (value) => {
    if (!/^[+-]?\d+$/.test(value.trim()) || Number(value) < min) throw new UserError("PEFTCTL_USAGE", `${name} must be a whole number >= ${min}, got '${value}'`);
    return Number(value);
  };
}

function parseScale(value: string): Scale {
  const match = /^\s*(-?\d+)\s*-\s*(-?\d+)\s*$/.exec(value);
  const scale = match ? { min: Number(match[1]), max: Number(match[2]) } : null;
  if (!scale || scale.max <= scale.min || scale.max - scale.min > 20) throw new UserError("PEFTCTL_USAGE", `--scale must look like 1-5 (at most 21 points), got '${value}'`);
  return scale;
}

type ExportOptions = { samples: number; seed: number; out: string; split: string; scale: string; force?: boolean };

/** `peftctl human-eval export|import`: blind rating sheets for raters, and their scores. */
export function registerHumanEval(program: Command): void {
  const humanEval = program.command("human-eval").description("blind human evaluation of runs' generations (the ExTES criteria): export sheets, import ratings");
  humanEval.exitOverride();

  humanEval
    .command("export")
    .description("write a blind rating sheet (sheet.csv, sheet.html) and its key (key.json, not for raters) from the runs' generations")
    .argument("<target...>", "experiments, run ids or <experiment>/<run_id>: each run is one system")
    .requiredOption("--samples <n>", "contexts to rate (the same for every system)", wholeNumber("--samples", 1))
    .requiredOption("--seed <n>", "seed of the sample and of the response order", wholeNumber("--seed", 0))
    .requiredOption("-o, --out <dir>", "where the sheet and the key go")
    .option("--split <name>", "which evaluation's generations (eval/<split>-*)", "test")
    .option("--scale <min-max>", "rating scale", "1-5")
    .option("--force", "replace a sheet already exported to the directory")
    .exitOverride()
    .action((targets: string[], options: ExportOptions, command: Command) => {
      const context = cliContext(command);
      const runs: RunRef[] = targets.flatMap((t) => requireRuns(context.runsDir, t));
      const result = exportSheet(context.runsDir, runs, {
        samples: options.samples,
        seed: options.seed,
        split: options.split,
        outDir: options.out,
        scale: parseScale(options.scale),
        force: options.force,
      });
      const sources = result.sources.map((s) => ({
        run: `${s.run.experiment}/${s.run.runId}`,
        eval_dir: path.relative(context.runsDir, s.dir),
        candidates: s.candidates,
      }));
      if (context.json) {
        process.stdout.write(`${JSON.stringify({ ...result.files, items: result.key.items.length, systems: result.key.systems.length, sources }, null, 2)}\n`);
        return;
      }
      for (const s of sources) {
        process.stdout.write(`${s.run}: ${s.eval_dir}${s.candidates > 1 ? ` (the newest of ${s.candidates} '${options.split}' evaluations)` : ""}\n`);
      }
      process.stdout.write(
        `wrote ${result.key.items.length} item(s) x ${result.key.systems.length} response(s): ${result.files.csv}, ${result.files.html}\n` +
          `key: ${result.files.key} (keep it from the raters; 'peftctl human-eval import RATINGS.csv --key ${result.files.key}')\n`,
      );
    });

  humanEval
    .command("import")
    .description("score filled sheets (one CSV per rater, or a rater column) against the key; writes human-eval.json beside the key")
    .argument("<ratings...>", "filled sheet CSV files")
    .requiredOption("--key <file>", "the key.json written by 'human-eval export'")
    .exitOverride()
    .action((files: string[], options: { key: string }, command: Command) => {
      const context = cliContext(command);
      const { result, file } = importRatings(files, options.key);
      if (context.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${renderHumanEval(result)}\n`);
      process.stdout.write(`wrote ${file}\n`);
    });
}
