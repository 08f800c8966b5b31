import path from "node:path";
import { Option, type Command } from "commander";
import { UserError } from "../../errors.ts";
import { loadTableInputs } from "../../eval/table-inputs.ts";
import { buildResultsTable, type Scale } from "../../eval/table.ts";
import { log } from "../../log.ts";
import { renderResultsTable, TABLE_FORMATS, type TableFormat } from "../../report/results-table.ts";
import { writeFileAtomic } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

const collect = (value: string, previous: string[]) => [...previous, value];

function parseScale(value: string): Scale {
  if (value.trim() === "100") return 100;
  if (value.trim() === "1") return 1;
  throw new UserError("PEFTCTL_USAGE", `--scale must be 100 (percentages, as papers print them) or 1 (fractions), got '${value}'`);
}

function parseLabels(values: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf("=");
    if (eq <= 0) throw new UserError("PEFTCTL_USAGE", `--label must look like <run>=TEXT (run id or <experiment>/<run_id>), got '${value}'`);
    labels[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return labels;
}

type TableCliOptions = { format?: TableFormat; split: string; scale: string; out?: string; human: string[]; label: string[] };

/**
 * `peftctl table <experiment|run...>`: the ExTES paper's results table over runs: BLEU-1..4, ROUGE-L,
 * METEOR, Vector Extrema, Distinct-1..3, strategy accuracy (from `peftctl eval`'s metrics.json) and, with
 * --human, the human-evaluation criteria; seeds of one configuration collapse into mean ± std.
 */
export function registerTable(program: Command): void {
  program
    .command("table")
    .description("the results table of runs (automatic metrics x100, human evaluation), seeds as mean ± std, best per column marked")
    .argument("<target...>", "experiments, run ids or <experiment>/<run_id>")
    .addOption(new Option("--format <format>", "md, csv, latex or json (default md; json with --json)").choices(TABLE_FORMATS))
    .option("--split <name>", "which evaluation's metrics (eval/<split>-*/metrics.json, the newest)", "test")
    .option("--scale <100|1>", "100: percentages as papers print them; 1: fractions", "100")
    .option("--human <file>", "a human-eval.json from 'peftctl human-eval import' (or its directory); repeatable", collect, [])
    .option("--label <run=text>", "the row label of a run's row (run id or <experiment>/<run_id>); repeatable", collect, [])
    .option("-o, --out <file>", "write the table to FILE instead of stdout")
    .action((targets: string[], options: TableCliOptions, command: Command) => {
      const context = cliContext(command);
      const format: TableFormat = options.format ?? (context.json ? "json" : "md");
      const scale = parseScale(options.scale);
      const labels = parseLabels(options.label);
      const inputs = loadTableInputs(context.runsDir, targets, { split: options.split, humanFiles: options.human });
      const { table, warnings } = buildResultsTable(inputs.runs, { split: options.split, scale, human: options.human.length > 0, labels });
      for (const warning of [...inputs.warnings, ...warnings]) log().warn(warning);
      const text = renderResultsTable(table, format);
      if (options.out === undefined) {
        process.stdout.write(text);
        return;
      }
      const out = path.resolve(options.out);
      writeFileAtomic(out, text);
      process.stdout.write(`wrote ${out}: ${table.rows.length} row(s) from ${inputs.runs.length} run(s)\n`);
    });
}
