/**
 * The results table of `peftctl table` (pure): one row per configuration of the selected runs, the
 * ExTES paper's columns (automatic metrics, then the human-evaluation criteria when given), values
 * scaled as papers print them, runs that differ only in `train.seed` collapsed into one row (mean and
 * sample std over the seeds), the best value of each column marked. The run store is read by
 * table-inputs.ts; the text forms are in src/report/results-table.ts.
 */
import { canonicalJson } from "../config/canonical.ts";
import { UserError } from "../errors.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import { UNHASHED_FIELDS } from "../plan/identity.ts";
import { formatSweepNumber, methodLabel } from "../plan/runid.ts";
import { CRITERIA, type Criterion } from "./human-eval/sheet.ts";
import type { Summary } from "./human-eval/score.ts";
import type { MetricName, MetricsReport } from "../runs/eval-metrics.ts";

/** The automatic metrics the paper's table shows, in its order. */
export const TABLE_METRICS = [
  "bleu-1",
  "bleu-2",
  "bleu-3",
  "bleu-4",
  "rouge-l",
  "meteor",
  "vector_extrema",
  "dist-1",
  "dist-2",
  "dist-3",
  "strategy_accuracy",
  "toxicity",
] as const satisfies readonly MetricName[];

/** Columns shown only when some run has a value: toxicity needs a scorer (eval.toxicity), off by default. */
const SHOWN_WHEN_SCORED: ReadonlySet<string> = new Set<TableMetric>(["toxicity"]);
/** Columns where less is better (the rest: more is better). */
const LOWER_IS_BETTER: ReadonlySet<string> = new Set<TableMetric>(["toxicity"]);

export type TableMetric = (typeof TABLE_METRICS)[number];

export const METRIC_TITLES: Record<TableMetric, string> = {
  "bleu-1": "BLEU-1",
  "bleu-2": "BLEU-2",
  "bleu-3": "BLEU-3",
  "bleu-4": "BLEU-4",
  "rouge-l": "ROUGE-L",
  meteor: "METEOR",
  vector_extrema: "Vector Extrema",
  "dist-1": "Distinct-1",
  "dist-2": "Distinct-2",
  "dist-3": "Distinct-3",
  strategy_accuracy: "Strategy Acc.",
  toxicity: "Toxicity",
};

export const CRITERION_TITLES: Record<Criterion, string> = {
  fluency: "Fluency",
  identification: "Identification",
  comforting: "Comforting",
  suggestion: "Suggestion",
  overall: "Overall",
};

/** What the table is built from, for one run (table-inputs.ts reads it from the run store). */
export type TableRunInput = {
  /** `<experiment>/<run_id>`. */
  ref: string;
  job: JobSpec;
  /** The newest `eval/<split>-*`/metrics.json, or null when the run has none. */
  metrics: MetricsReport | null;
  /** The run's human-evaluation scores (a `systems` entry of human-eval.json), or null. */
  human: Partial<Record<Criterion, Summary>> | null;
};

export type Scale = 100 | 1;

export type TableOptions = {
  split: string;
  /** 100: percentages as papers print them; 1: fractions. Human ratings are never scaled. */
  scale: Scale;
  /** Show the human-evaluation columns (human-eval.json files were given). */
  human: boolean;
  /** `<experiment>/<run_id>` or run id -> row label, overriding the built one. */
  labels?: Readonly<Record<string, string>>;
};

export type Column = { key: TableMetric | Criterion; title: string; kind: "metric" | "human"; /** decimals to print */ digits: number };

/** One cell: over the row's runs that have the value (n of them); std is the sample std (n - 1), null for n < 2. */
export type Cell = { mean: number | null; std: number | null; n: number; best: boolean };

export type ResultRow = {
  label: string;
  /** `<experiment>/<run_id>` of every run in the row, by seed. */
  runs: string[];
  /** train.seed of each run, in the order of `runs`. */
  seeds: number[];
  cells: Record<string, Cell>;
};

export type ResultsTable = { split: string; scale: Scale; columns: Column[]; rows: ResultRow[] };


/**
 * The job minus train.seed and the fields that name, place or label the run (identity.ts's unhashed
 * fields): runs with equal keys are seeds of one configuration. The experiment stays in: equal
 * configurations of two experiments are two rows, not seeds of one.
 */
export function seedGroupKey(job: JobSpec): string {
  const rest: Record<string, unknown> = { ...job };
  for (const field of UNHASHED_FIELDS) delete rest[field];
  const { seed: _seed, ...train } = job.train;
  rest.train = train;
  return canonicalJson(rest);
}

/** Sweep keys whose value the method label already shows. */
const IN_METHOD_LABEL = new Set(["method.kind", "method.r", "method.adapter_len", "method.num_virtual_tokens"]);

function valueText(value: unknown): string {
  if (typeof value === "number") return formatSweepNumber(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/**
 * The config's `report.label`, with the swept values but the seed in parentheses: `LLaMA-7B + LoRA (r=8)`.
 * Without one, `builtin:tiny-llama lora r4`, then the other swept values: `builtin:tiny-llama lora r4 lr=1e-4`.
 */
export function defaultLabel(job: JobSpec): string {
  const swept = (keys: string[]) =>
    keys
      .filter((key) => key !== "train.seed")
      .sort()
      .map((key) => `${key.slice(key.lastIndexOf(".") + 1)}=${valueText(job.sweep_values[key])}`);
  const label = job.report?.label;
  if (label !== undefined) {
    const values = swept(Object.keys(job.sweep_values));
    return values.length === 0 ? label : `${label} (${values.join(", ")})`;
  }
  return [job.model.base, methodLabel(job.method), ...swept(Object.keys(job.sweep_values).filter((key) => !IN_METHOD_LABEL.has(key)))].join(" ");
}

export function meanStd(values: readonly number[]): { mean: number | null; std: number | null; n: number } {
  const n = values.length;
  if (n === 0) return { mean: null, std: null, n };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : null;
  return { mean, std, n };
}

function labelOverride(runs: readonly TableRunInput[], labels: Readonly<Record<string, string>>): string | undefined {
  for (const run of runs) {
    const byRef = labels[run.ref];
    if (byRef !== undefined) return byRef;
    const byId = labels[run.job.run_id];
    if (byId !== undefined) return byId;
  }
  return undefined;
}

export type BuiltTable = { table: ResultsTable; warnings: string[] };

/**
 * Rows in the order their first run comes in `inputs`. Exit 2 (UserError) when no run has metrics
 * for the split; runs without them among others give n/a cells and a warning.
 */
export function buildResultsTable(inputs: readonly TableRunInput[], options: TableOptions): BuiltTable {
  const { split, scale } = options;
  const labels = options.labels ?? {};
  const withoutMetrics = inputs.filter((run) => run.metrics === null);
  if (inputs.length === 0 || withoutMetrics.length === inputs.length) {
    throw new UserError(
      "PEFTCTL_DATA_INVALID",
      `no selected run has metrics on split '${split}' (eval/${split}-*/metrics.json): ${inputs.map((r) => r.ref).join(", ")}`,
      inputs.map((r) => `run 'peftctl eval ${r.ref} --split ${split}' first`),
    );
  }
  const warnings = withoutMetrics.map((r) => `${r.ref}: no metrics on split '${split}' (shown as n/a); run 'peftctl eval ${r.ref} --split ${split}'`);
  if (options.human) {
    for (const run of inputs) if (run.human === null) warnings.push(`${run.ref}: not in the human evaluation given (shown as n/a)`);
  }

  const columns: Column[] = [
    ...TABLE_METRICS.filter((key) => !SHOWN_WHEN_SCORED.has(key) || inputs.some((run) => typeof run.metrics?.metrics[key] === "number")).map(
      (key): Column => ({ key, title: METRIC_TITLES[key], kind: "metric", digits: scale === 100 ? 2 : 4 }),
    ),
    ...(options.human ? CRITERIA.map((key): Column => ({ key, title: CRITERION_TITLES[key], kind: "human", digits: 2 })) : []),
  ];

  const groups = new Map<string, TableRunInput[]>();
  for (const run of inputs) {
    const key = seedGroupKey(run.job);
    const group = groups.get(key);
    if (group) group.push(run);
    else groups.set(key, [run]);
  }

  const rows: ResultRow[] = [...groups.values()].map((group) => {
    const runs = [...group].sort((a, b) => a.job.train.seed - b.job.train.seed || (a.ref < b.ref ? -1 : 1));
    const cells: Record<string, Cell> = {};
    for (const column of columns) {
      const values =
        column.kind === "metric"
          ? runs.map((r) => r.metrics?.metrics[column.key as TableMetric]).filter((v): v is number => typeof v === "number").map((v) => v * scale)
          : runs.map((r) => r.human?.[column.key as Criterion]?.mean).filter((v): v is number => typeof v === "number");
      cells[column.key] = { ...meanStd(values), best: false };
    }
    return {
      label: labelOverride(runs, labels) ?? defaultLabel(runs[0]!.job),
      runs: runs.map((r) => r.ref),
      seeds: runs.map((r) => r.job.train.seed),
      cells,
    };
  });

  // two rows with the same built label (e.g. equal configs in two experiments' different data): name a run
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row.label, (counts.get(row.label) ?? 0) + 1);
  for (const row of rows) if (counts.get(row.label)! > 1) row.label = `${row.label} (${row.runs[0]})`;

  // best: the highest mean of a column (the lowest for toxicity), marked only where two or more rows have one
  for (const column of columns) {
    const means = rows.map((row) => row.cells[column.key]!.mean).filter((m): m is number => m !== null);
    if (means.length < 2) continue;
    const best = LOWER_IS_BETTER.has(column.key) ? Math.min(...means) : Math.max(...means);
    for (const row of rows) if (row.cells[column.key]!.mean === best) row.cells[column.key]!.best = true;
  }
  return { table: { split, scale, columns, rows }, warnings };
}
