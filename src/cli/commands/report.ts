import { existsSync, statSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { UserError } from "../../errors.ts";
import { log } from "../../log.ts";
import { readPageAssets } from "../../report/html/assets.ts";
import { loadReportInputs } from "../../report/html/load.ts";
import { buildReportData } from "../../report/html/report-data.ts";
import { renderReportPage } from "../../report/html/render-page.ts";
import { writeFileAtomic } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

const collect = (value: string, previous: string[]) => [...previous, value];

function parseSamples(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new UserError("PEFTCTL_USAGE", `--samples must be a whole number of generations per run (0 for none), got '${value}'`);
  return n;
}

/** A path that cannot take the file (a directory, no permission, a read-only disk) is the user's to fix: exit 2. */
function writeReport(out: string, html: string): void {
  if (existsSync(out) && statSync(out).isDirectory()) throw new UserError("PEFTCTL_USAGE", `-o ${out} is a directory; name the HTML file to write (e.g. ${path.join(out, "report.html")})`);
  try {
    writeFileAtomic(out, html);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined) throw error;
    throw new UserError("PEFTCTL_USAGE", `cannot write ${out}: ${(error as Error).message}`);
  }
}

type ReportCliOptions = { out: string; split: string; human: string[]; samples: string };

/**
 * `peftctl report <experiment|run...> -o report.html`: one self-contained HTML page (no network) with
 * the runs' loss, learning-rate and throughput curves, the results table, each metric against each
 * swept parameter, and generations beside their references.
 */
export function registerReport(program: Command): void {
  program
    .command("report")
    .description("a self-contained HTML report of runs: training curves, the results table, metrics by swept parameter, generations")
    .argument("<target...>", "experiments, run ids or <experiment>/<run_id>")
    .requiredOption("-o, --out <file>", "the HTML file to write")
    .option("--split <name>", "which evaluation (eval/<split>-*: metrics.json and generations.jsonl, the newest)", "test")
    .option("--human <file>", "a human-eval.json from 'peftctl human-eval import' (or its directory); repeatable", collect, [])
    .option("--samples <n>", "generations shown per run (the first N)", "20")
    .action((targets: string[], options: ReportCliOptions, command: Command) => {
      const context = cliContext(command);
      const samples = parseSamples(options.samples);
      const inputs = loadReportInputs(context.runsDir, targets, { split: options.split, humanFiles: options.human });
      const data = buildReportData(inputs.runs, { split: options.split, human: options.human.length > 0, samples, generatedAt: new Date().toISOString() });
      for (const warning of [...inputs.warnings, ...data.warnings]) log().warn(warning);
      const out = path.resolve(options.out);
      writeReport(out, renderReportPage(data, readPageAssets()));
      const charts = data.training.length + data.sweep.length;
      if (context.json) process.stdout.write(`${JSON.stringify({ file: out, runs: data.runs.length, charts, table_rows: data.table?.rows.length ?? 0 })}\n`);
      else process.stdout.write(`wrote ${out}: ${data.runs.length} run(s), ${charts} chart(s), ${data.table?.rows.length ?? 0} table row(s)\n`);
    });
}
