/**
 * What `peftctl report` shows, built from what the loader read (pure): each run's training curves, the
 * results table (src/eval/table.ts's rows, not restated), each table column against each swept
 * parameter, and the first generations of each run beside their references. render-page.ts turns it
 * into the HTML page.
 */
import type { Criterion, Generation } from "../../eval/human-eval/sheet.ts";
import { buildResultsTable, defaultLabel, type Column, type ResultsTable, type TableMetric, type TableRunInput } from "../../eval/table.ts";
import { formatSweepNumber } from "../../plan/runid.ts";
import type { ShimEvent } from "../../runs/events.ts";
import { runSeries, type Point, type RunSeries } from "./series.ts";

/** One run as the loader read it: the table's input plus its events and the generations of the evaluation its metrics came from. */
export type ReportRunInput = TableRunInput & {
  events: readonly ShimEvent[];
  /** The `eval/<split>-*` dir the generations (and metrics) come from, relative to the runs dir; null when none. */
  evalDir: string | null;
  generations: readonly Generation[] | null;
};

export type ReportOptions = {
  split: string;
  /** Show the human-evaluation columns (human-eval.json files were given). */
  human: boolean;
  /** Generations shown per run (the first N of the file). */
  samples: number;
  /** When the page was made (ISO time), shown in its header. */
  generatedAt: string;
};

export type LineDataset = { label: string; run: string; series: keyof RunSeries; points: Point[] };
export type LineChart = { id: string; title: string; x_title: string; y_title: string; datasets: LineDataset[] };

export type SweepPoint = { x: number | string; y: number; run: string };
export type SweepChart = {
  id: string;
  title: string;
  param: string;
  column: string;
  x_scale: "linear" | "logarithmic" | "category";
  /** The x labels in order, for a category axis; null otherwise. */
  categories: string[] | null;
  y_title: string;
  points: SweepPoint[];
};

export type RunSummary = {
  ref: string;
  /** What the charts' legends call the run: its id, or `<experiment>/<run_id>` where ids repeat. */
  name: string;
  label: string;
  swept: string;
  last_step: number | null;
  last_train_loss: number | null;
  best_eval_loss: number | null;
  eval_dir: string | null;
};

export type RunGenerations = { run: string; name: string; eval_dir: string | null; total: number; rows: Generation[] };

export type ReportData = {
  title: string;
  split: string;
  generated_at: string;
  runs: RunSummary[];
  training: LineChart[];
  sweep: SweepChart[];
  /** null when no run has metrics on the split (the page then shows training only). */
  table: ResultsTable | null;
  generations: RunGenerations[];
  warnings: string[];
};

export function sweptValueText(value: unknown): string {
  if (typeof value === "number") return formatSweepNumber(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

function legendNames(inputs: readonly ReportRunInput[]): Map<string, string> {
  const counts = new Map<string, number>();
  for (const run of inputs) counts.set(run.job.run_id, (counts.get(run.job.run_id) ?? 0) + 1);
  return new Map(inputs.map((run) => [run.ref, counts.get(run.job.run_id)! > 1 ? run.ref : run.job.run_id]));
}

function trainingCharts(inputs: readonly ReportRunInput[], names: Map<string, string>): LineChart[] {
  const series = inputs.map((run) => ({ run: run.ref, name: names.get(run.ref)!, series: runSeries(run.events) }));
  const dataset = (s: (typeof series)[number], key: keyof RunSeries, suffix: string): LineDataset => ({
    label: `${s.name}${suffix}`,
    run: s.run,
    series: key,
    points: s.series[key],
  });
  return [
    {
      id: "loss",
      title: "Loss",
      x_title: "step",
      y_title: "loss",
      datasets: series.flatMap((s) => [dataset(s, "train_loss", " train"), dataset(s, "eval_loss", " eval")]),
    },
    { id: "lr", title: "Learning rate", x_title: "step", y_title: "learning rate", datasets: series.map((s) => dataset(s, "lr", "")) },
    { id: "tokens_per_s", title: "Training throughput", x_title: "step", y_title: "tokens/s", datasets: series.map((s) => dataset(s, "tokens_per_s", "")) },
  ];
}

/** The run's value of a table column, scaled as the table scales it; null when it has none. */
function columnValue(run: ReportRunInput, column: Column, scale: number): number | null {
  if (column.kind === "metric") {
    const value = run.metrics?.metrics[column.key as TableMetric];
    return typeof value === "number" ? value * scale : null;
  }
  const value = run.human?.[column.key as Criterion]?.mean;
  return typeof value === "number" ? value : null;
}

/** Swept keys in the order the runs first name them. */
function sweptParams(inputs: readonly ReportRunInput[]): string[] {
  const params: string[] = [];
  for (const run of inputs) for (const key of Object.keys(run.job.sweep_values)) if (!params.includes(key)) params.push(key);
  return params;
}

function xScale(values: readonly unknown[]): SweepChart["x_scale"] {
  if (!values.every((v) => typeof v === "number" && Number.isFinite(v))) return "category";
  const numbers = values as number[];
  const min = Math.min(...numbers);
  // learning rates and the like span decades: a log axis keeps 1e-5 apart from 1e-4
  return min > 0 && Math.max(...numbers) / min >= 100 ? "logarithmic" : "linear";
}

/** One chart per table column that some run has and per swept parameter: each run's value against its swept value. */
function sweepCharts(inputs: readonly ReportRunInput[], table: ResultsTable): SweepChart[] {
  const charts: SweepChart[] = [];
  for (const param of sweptParams(inputs)) {
    const swept = inputs.filter((run) => param in run.job.sweep_values);
    const scale = xScale(swept.map((run) => run.job.sweep_values[param]));
    for (const column of table.columns) {
      const valued = swept.flatMap((run) => {
        const y = columnValue(run, column, table.scale);
        return y === null ? [] : [{ run, y }];
      });
      if (valued.length === 0) continue;
      const points = valued.map(({ run, y }): SweepPoint => {
        const value = run.job.sweep_values[param];
        return { x: scale === "category" ? sweptValueText(value) : (value as number), y, run: run.ref };
      });
      const categories = scale === "category" ? [...new Set(points.map((p) => p.x as string))] : null;
      const yTitle = column.kind === "human" ? `${column.title} (mean rating)` : table.scale === 100 ? `${column.title} (x100)` : column.title;
      charts.push({ id: `sweep:${param}:${column.key}`, title: `${column.title} by ${param}`, param, column: column.key, x_scale: scale, categories, y_title: yTitle, points });
    }
  }
  return charts;
}

function summary(run: ReportRunInput, name: string): RunSummary {
  const s = runSeries(run.events);
  const evalLosses = s.eval_loss.map((p) => p.y);
  return {
    ref: run.ref,
    name,
    label: defaultLabel(run.job),
    swept: Object.entries(run.job.sweep_values)
      .map(([key, value]) => `${key}=${sweptValueText(value)}`)
      .join(", "),
    last_step: s.train_loss.at(-1)?.x ?? null,
    last_train_loss: s.train_loss.at(-1)?.y ?? null,
    best_eval_loss: evalLosses.length > 0 ? Math.min(...evalLosses) : null,
    eval_dir: run.evalDir,
  };
}

export function buildReportData(inputs: readonly ReportRunInput[], options: ReportOptions): ReportData {
  const warnings: string[] = [];
  let table: ResultsTable | null = null;
  if (inputs.some((run) => run.metrics !== null)) {
    const built = buildResultsTable(inputs, { split: options.split, scale: 100, human: options.human });
    table = built.table;
    warnings.push(...built.warnings);
  } else {
    warnings.push(`no selected run has metrics on split '${options.split}': the report shows training only (run 'peftctl eval' first for the results table)`);
  }
  const names = legendNames(inputs);
  const experiments = [...new Set(inputs.map((run) => run.job.experiment))];
  return {
    title: `peftctl report: ${experiments.join(", ")}`,
    split: options.split,
    generated_at: options.generatedAt,
    runs: inputs.map((run) => summary(run, names.get(run.ref)!)),
    training: trainingCharts(inputs, names),
    sweep: table === null ? [] : sweepCharts(inputs, table),
    table,
    generations: inputs.map((run) => ({
      run: run.ref,
      name: names.get(run.ref)!,
      eval_dir: run.evalDir,
      total: run.generations?.length ?? 0,
      rows: (run.generations ?? []).slice(0, options.samples),
    })),
    warnings,
  };
}
