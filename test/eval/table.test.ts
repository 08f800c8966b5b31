/** peftctl table: the results table over planned run dirs with metrics.json and human-eval.json fixtures. */
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CRITERIA, type Criterion } from "../../src/eval/human-eval/sheet.ts";
import { METRIC_NAMES, type MetricName, type MetricsReport } from "../../src/runs/eval-metrics.ts";
import { buildResultsTable, defaultLabel, seedGroupKey, type TableRunInput } from "../../src/eval/table.ts";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { escapeLatex, renderMarkdown } from "../../src/report/results-table.ts";
import { runCli } from "../config/helpers.ts";
import { succeededRuns, tempDir } from "./helpers.ts";


const EXPERIMENT = "tbl";

/** Five runs: lora r4 with seeds 1, 2, 3, r8 seed 1, r16 seed 1 (zip sweep), planned as `peftctl run` would. */
async function plannedRuns(): Promise<{ runsDir: string; jobs: JobSpec[] }> {
  return succeededRuns(EXPERIMENT, `name: ${EXPERIMENT}
model: { base: builtin:tiny-llama }
method: { kind: lora, r: 4 }
data: { format: extes, path: data.json }
train: { max_steps: 10, batch_size: 4, micro_batch_size: 2 }
sweep:
  method: zip
  parameters:
    method.r: [4, 4, 4, 8, 16]
    train.seed: [1, 2, 3, 1, 1]
`);
}

function report(values: Partial<Record<MetricName, number | null>>): MetricsReport {
  const metrics = Object.fromEntries(METRIC_NAMES.map((name) => [name, values[name] ?? null])) as Record<MetricName, number | null>;
  return { metrics, pairs: 10, strategy_pairs: 0, tokenizer: "punkt", embeddings: null };
}

function writeMetrics(job: JobSpec, dirName: string, values: Partial<Record<MetricName, number | null>>, mtime?: Date): string {
  const dir = path.join(job.run_dir, "eval", dirName);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "metrics.json");
  writeFileSync(file, `${JSON.stringify(report(values), null, 2)}\n`);
  if (mtime) utimesSync(file, mtime, mtime);
  return file;
}

const r4 = (seed: number, values: Partial<Record<MetricName, number | null>>) => ({ seed, values });

/** lora r4 (three seeds) and r8: see the expected table below. */
const R4 = [
  r4(1, { "bleu-1": 0.3, "bleu-2": 0.2, "bleu-3": 0.1, "bleu-4": 0.25, "rouge-l": 0.15, meteor: 0.08, "dist-1": 0.04, "dist-2": 0.2, "dist-3": 0.4, strategy_accuracy: 0.5 }),
  r4(2, { "bleu-1": 0.32, "bleu-2": 0.2, "bleu-3": 0.1, "bleu-4": 0.25, "rouge-l": 0.16, meteor: 0.08, "dist-1": 0.05, "dist-2": 0.2, "dist-3": 0.4, strategy_accuracy: 0.6 }),
  r4(3, { "bleu-1": 0.34, "bleu-2": 0.2, "bleu-3": 0.1, "bleu-4": 0.25, "rouge-l": 0.17, meteor: 0.08, "dist-1": 0.06, "dist-2": 0.2, "dist-3": 0.4, strategy_accuracy: 0.7 }),
];
const R8 = { "bleu-1": 0.35, "bleu-2": 0.1, "bleu-3": 0.05, "bleu-4": 0.25, "rouge-l": 0.12, meteor: 0.09, "dist-1": 0.03, "dist-2": 0.3, "dist-3": 0.5, strategy_accuracy: null };

function byRun(jobs: JobSpec[], r: number, seed: number): JobSpec {
  const job = jobs.find((j) => j.sweep_values["method.r"] === r && j.train.seed === seed);
  if (!job) throw new Error(`no job r${r} seed ${seed}`);
  return job;
}

async function store(): Promise<{ runsDir: string; jobs: JobSpec[]; ref: (r: number, seed?: number) => string }> {
  const { runsDir, jobs } = await plannedRuns();
  for (const { seed, values } of R4) writeMetrics(byRun(jobs, 4, seed), "test-aaaaaaaa", values);
  const r8 = byRun(jobs, 8, 1);
  // an older evaluation of r8 on the test split, and one on valid: the newest test one is read
  writeMetrics(r8, "test-00000000", { ...R8, "bleu-1": 0.99 }, new Date("2026-01-01T00:00:00Z"));
  writeMetrics(r8, "valid-bbbbbbbb", { ...R8, "bleu-1": 0.77 });
  writeMetrics(r8, "test-cccccccc", R8);
  return { runsDir, jobs, ref: (r, seed = 1) => `${EXPERIMENT}/${byRun(jobs, r, seed).run_id}` };
}

const EXPECTED_MD = [
  "| Model | Seeds | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-L | METEOR | Vector Extrema | Distinct-1 | Distinct-2 | Distinct-3 | Strategy Acc. |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  "| builtin:tiny-llama lora r4 | 3 | 32.00 ± 2.00 | **20.00 ± 0.00** | **10.00 ± 0.00** | **25.00 ± 0.00** | **16.00 ± 1.00** | 8.00 ± 0.00 | n/a | **5.00 ± 1.00** | 20.00 ± 0.00 | 40.00 ± 0.00 | 60.00 ± 10.00 |",
  "| builtin:tiny-llama lora r8 | 1 | **35.00** | 10.00 | 5.00 | **25.00** | 12.00 | **9.00** | n/a | 3.00 | **30.00** | **50.00** | n/a |",
  "| builtin:tiny-llama lora r16 | 1 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |",
  "",
].join("\n");

describe("peftctl table", () => {
  it("collapses seeds into mean ± std, marks the best, scales x100 (Markdown, exact)", async () => {
    const { runsDir, ref } = await store();
    const result = await runCli(["--runs-dir", runsDir, "table", EXPERIMENT]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(EXPECTED_MD);
    // r16 has no metrics: n/a and a warning naming it and what to run
    expect(result.stderr).toContain(`${ref(16)}: no metrics on split 'test'`);
    expect(result.stderr).toContain(`peftctl eval ${ref(16)}`);
  });

  it("json: scaled values with n, std and best flags; runs and seeds of each row; --scale 1", async () => {
    const { runsDir, ref } = await store();
    const result = await runCli(["--runs-dir", runsDir, "table", `${EXPERIMENT}/${ref(4, 2).split("/")[1]}`, ref(4, 1), ref(4, 3), ref(8), "--format", "json"]);
    expect(result.code, result.stderr).toBe(0);
    type Json = { split: string; scale: number; columns: Array<{ key: string }>; rows: Array<{ label: string; runs: string[]; seeds: number[]; cells: Record<string, { mean: number | null; std: number | null; n: number; best: boolean }> }> };
    const json = JSON.parse(result.stdout) as Json;
    expect(json.split).toBe("test");
    expect(json.scale).toBe(100);
    expect(json.columns.map((c) => c.key)).toEqual(["bleu-1", "bleu-2", "bleu-3", "bleu-4", "rouge-l", "meteor", "vector_extrema", "dist-1", "dist-2", "dist-3", "strategy_accuracy"]);
    expect(json.rows.map((r) => r.label)).toEqual(["builtin:tiny-llama lora r4", "builtin:tiny-llama lora r8"]);
    expect(json.rows[0]!.runs).toEqual([ref(4, 1), ref(4, 2), ref(4, 3)]);
    expect(json.rows[0]!.seeds).toEqual([1, 2, 3]);
    const bleu1 = json.rows[0]!.cells["bleu-1"]!;
    expect(bleu1.mean).toBeCloseTo(32, 10);
    expect(bleu1.std).toBeCloseTo(2, 10);
    expect(bleu1.n).toBe(3);
    expect(bleu1.best).toBe(false);
    expect(json.rows[1]!.cells["bleu-1"]).toEqual({ mean: 35, std: null, n: 1, best: true });
    expect(json.rows[1]!.cells.strategy_accuracy).toEqual({ mean: null, std: null, n: 0, best: false });
    // strategy accuracy: only one row has it, so nothing to mark
    expect(json.rows[0]!.cells.strategy_accuracy!.best).toBe(false);

    const fractions = JSON.parse((await runCli(["--runs-dir", runsDir, "--json", "--log-level", "error", "table", EXPERIMENT, "--scale", "1"])).stdout) as Json;
    expect(fractions.scale).toBe(1);
    expect(fractions.rows[0]!.cells["bleu-1"]!.mean).toBeCloseTo(0.32, 12);
    expect(fractions.rows[0]!.cells["bleu-1"]!.std).toBeCloseTo(0.02, 12);
    const md = await runCli(["--runs-dir", runsDir, "table", EXPERIMENT, "--scale", "1"]);
    expect(md.stdout.split("\n")[2]).toContain("| 0.3200 ± 0.0200 | **0.2000 ± 0.0000** |");
    expect((await runCli(["--runs-dir", runsDir, "table", EXPERIMENT, "--scale", "50"])).code).toBe(2);
  });

  it("csv and latex, --label overrides, -o FILE", async () => {
    const { runsDir, ref } = await store();
    const labels = ["--label", `${ref(4, 2)}=LoRA, r=4 & 50% #1_a`, "--label", `${ref(8).split("/")[1]}=LoRA "r8"`];
    const csv = await runCli(["--runs-dir", runsDir, "table", ref(4, 1), ref(4, 2), ref(4, 3), ref(8), "--format", "csv", ...labels]);
    expect(csv.code, csv.stderr).toBe(0);
    expect(csv.stdout).toBe(
      [
        "Model,Seeds,BLEU-1,BLEU-2,BLEU-3,BLEU-4,ROUGE-L,METEOR,Vector Extrema,Distinct-1,Distinct-2,Distinct-3,Strategy Acc.",
        `"LoRA, r=4 & 50% #1_a",3,32.00 ± 2.00,20.00 ± 0.00*,10.00 ± 0.00*,25.00 ± 0.00*,16.00 ± 1.00*,8.00 ± 0.00,n/a,5.00 ± 1.00*,20.00 ± 0.00,40.00 ± 0.00,60.00 ± 10.00`,
        `"LoRA ""r8""",1,35.00*,10.00,5.00,25.00*,12.00,9.00*,n/a,3.00,30.00*,50.00*,n/a`,
        "",
      ].join("\n"),
    );

    const out = path.join(tempDir("peftctl-table-out-"), "table.tex");
    const tex = await runCli(["--runs-dir", runsDir, "table", ref(4, 1), ref(4, 2), ref(4, 3), ref(8), "--format", "latex", "-o", out, ...labels]);
    expect(tex.code, tex.stderr).toBe(0);
    expect(tex.stdout).toContain(`wrote ${out}: 2 row(s) from 4 run(s)`);
    const lines = readFileSync(out, "utf8").split("\n");
    expect(lines[0]).toBe(`\\begin{tabular}{l${"r".repeat(12)}}`);
    expect(lines[1]).toBe("\\toprule");
    expect(lines[2]).toBe("Model & Seeds & BLEU-1 & BLEU-2 & BLEU-3 & BLEU-4 & ROUGE-L & METEOR & Vector Extrema & Distinct-1 & Distinct-2 & Distinct-3 & Strategy Acc. \\\\");
    expect(lines[3]).toBe("\\midrule");
    expect(lines[4]).toBe(
      "LoRA, r=4 \\& 50\\% \\#1\\_a & 3 & 32.00 $\\pm$ 2.00 & \\textbf{20.00 $\\pm$ 0.00} & \\textbf{10.00 $\\pm$ 0.00} & \\textbf{25.00 $\\pm$ 0.00} & \\textbf{16.00 $\\pm$ 1.00} & 8.00 $\\pm$ 0.00 & n/a & \\textbf{5.00 $\\pm$ 1.00} & 20.00 $\\pm$ 0.00 & 40.00 $\\pm$ 0.00 & 60.00 $\\pm$ 10.00 \\\\",
    );
    expect(lines[5]).toBe('LoRA "r8" & 1 & \\textbf{35.00} & 10.00 & 5.00 & \\textbf{25.00} & 12.00 & \\textbf{9.00} & n/a & 3.00 & \\textbf{30.00} & \\textbf{50.00} & n/a \\\\');
    expect(lines.slice(6)).toEqual(["\\bottomrule", "\\end{tabular}", ""]);
    expect(escapeLatex("a_b%c&d#e")).toBe("a\\_b\\%c\\&d\\#e");
  });

  it("human-eval columns from human-eval.json (--human, repeatable)", async () => {
    const { runsDir, ref } = await store();
    const scores = (value: number, n = 4) =>
      Object.fromEntries(CRITERIA.map((c, i) => [c, { mean: value + i / 10, std: 0.5, n }])) as Record<Criterion, { mean: number; std: number; n: number }>;
    const dir = tempDir("peftctl-table-human-");
    const humanEval = {
      kind: "peftctl-human-eval",
      version: 1,
      scale: { min: 1, max: 5 },
      criteria: [...CRITERIA],
      raters: ["a", "b"],
      files: [],
      ratings: 16,
      missing: 0,
      systems: [
        { system: ref(4, 1), scores: scores(3) },
        { system: ref(4, 2), scores: scores(4) },
        { system: ref(8), scores: scores(4.2) },
      ],
      pairwise: [],
      agreement: {},
    };
    writeFileSync(path.join(dir, "human-eval.json"), JSON.stringify(humanEval));
    const result = await runCli(["--runs-dir", runsDir, "table", ref(4, 1), ref(4, 2), ref(4, 3), ref(8), "--human", path.join(dir, "human-eval.json")]);
    expect(result.code, result.stderr).toBe(0);
    const [header, , rowR4, rowR8] = result.stdout.split("\n");
    expect(header).toMatch(/\| Strategy Acc\. \| Fluency \| Identification \| Comforting \| Suggestion \| Overall \|$/);
    // ratings are not scaled; over seeds: the mean of the seeds' means (seed 3 has none), sample std
    expect(rowR4).toMatch(/\| 60\.00 ± 10\.00 \| 3\.50 ± 0\.71 \| 3\.60 ± 0\.71 \| 3\.70 ± 0\.71 \| 3\.80 ± 0\.71 \| 3\.90 ± 0\.71 \|$/);
    expect(rowR8).toMatch(/\| n\/a \| \*\*4\.20\*\* \| \*\*4\.30\*\* \| \*\*4\.40\*\* \| \*\*4\.50\*\* \| \*\*4\.60\*\* \|$/);
    expect(result.stderr).toContain(`${ref(4, 3)}: not in the human evaluation given`);
    const json = JSON.parse((await runCli(["--runs-dir", runsDir, "table", ref(4, 1), ref(4, 2), ref(8), "--human", dir, "--format", "json"])).stdout) as {
      rows: Array<{ cells: Record<string, { mean: number | null; n: number; best: boolean }> }>;
    };
    expect(json.rows[0]!.cells.overall).toMatchObject({ n: 2, best: false });
    expect(json.rows[1]!.cells.overall).toMatchObject({ n: 1, best: true });
    expect(json.rows[1]!.cells.overall!.mean).toBeCloseTo(4.6, 12);

    // without --human: no human columns
    expect((await runCli(["--runs-dir", runsDir, "table", EXPERIMENT])).stdout.split("\n")[0]).not.toContain("Fluency");
    // a file that is not a human-eval result is exit 2 naming it
    writeFileSync(path.join(dir, "bad.json"), "{}");
    const bad = await runCli(["--runs-dir", runsDir, "table", EXPERIMENT, "--human", path.join(dir, "bad.json")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${path.join(dir, "bad.json")}: not a human-eval result`);
  });

  it("exit 2 when no selected run has metrics for the split, naming the runs and 'peftctl eval'", async () => {
    const { runsDir, ref } = await store();
    const none = await runCli(["--runs-dir", runsDir, "table", ref(16)]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`no selected run has metrics on split 'test'`);
    expect(none.stderr).toContain(ref(16));
    expect(none.stderr).toContain(`run 'peftctl eval ${ref(16)} --split test' first`);
    expect(none.stdout).toBe("");
    // r4 seed 1 has only test metrics; r8 has valid metrics, so --split valid has one run
    const valid = await runCli(["--runs-dir", runsDir, "table", ref(4, 1), "--split", "valid"]);
    expect(valid.code).toBe(2);
    const r8valid = await runCli(["--runs-dir", runsDir, "table", ref(8), "--split", "valid"]);
    expect(r8valid.code, r8valid.stderr).toBe(0);
    expect(r8valid.stdout.split("\n")[2]).toMatch(/^\| builtin:tiny-llama lora r8 \| 1 \| 77\.00 \|/);
    expect((await runCli(["--runs-dir", runsDir, "table", "nope"])).code).toBe(2);
  });
});

describe("the results table (pure)", () => {
  it("report.label names the row (a sweep's rows add their values); toxicity: the lowest is best", async () => {
    const { jobs } = await plannedRuns();
    const labelled = (job: JobSpec): JobSpec => ({ ...job, report: { label: "Tiny + LoRA" } });
    expect(defaultLabel(labelled(byRun(jobs, 8, 1)))).toBe("Tiny + LoRA (r=8)");
    expect(defaultLabel({ ...labelled(byRun(jobs, 8, 1)), sweep_values: {} })).toBe("Tiny + LoRA");
    // a label is no configuration: runs differing in it alone are seeds of one row
    expect(seedGroupKey(labelled(byRun(jobs, 4, 1)))).toBe(seedGroupKey(byRun(jobs, 4, 2)));
    const input = (job: JobSpec, toxicity: number): TableRunInput => ({ ref: `${job.experiment}/${job.run_id}`, job, metrics: report({ toxicity }), human: null });
    const { table } = buildResultsTable([input(byRun(jobs, 8, 1), 0.25), input(byRun(jobs, 16, 1), 0.5)], { split: "test", scale: 1, human: false });
    expect(table.rows.map((row) => [row.cells.toxicity!.mean, row.cells.toxicity!.best])).toEqual([[0.25, true], [0.5, false]]);
    // the column is there only when a run was scored for toxicity (the other tables above have none)
    const without = buildResultsTable([input(byRun(jobs, 8, 1), 0.25)].map((run) => ({ ...run, metrics: report({ "bleu-1": 0.1 }) })), { split: "test", scale: 1, human: false });
    expect(without.table.columns.map((column) => column.key)).not.toContain("toxicity");
  });

  it("seed groups ignore train.seed and run identity only", async () => {
    const { jobs } = await plannedRuns();
    const key = (r: number, seed: number) => seedGroupKey(byRun(jobs, r, seed));
    expect(key(4, 1)).toBe(key(4, 2));
    expect(key(4, 1)).toBe(key(4, 3));
    expect(key(4, 1)).not.toBe(key(8, 1));
    const changed = structuredClone(byRun(jobs, 4, 2));
    changed.train.lr = 1e-3;
    expect(seedGroupKey(changed)).not.toBe(key(4, 1));
    expect(defaultLabel(byRun(jobs, 16, 1))).toBe("builtin:tiny-llama lora r16");
    expect(defaultLabel({ ...changed, sweep_values: { "method.r": 4, "train.lr": 1e-4, "train.seed": 2 } })).toBe("builtin:tiny-llama lora r4 lr=1e-4");
  });

  it("a small table in Markdown, exactly; labels with pipes are escaped; duplicate labels name a run", async () => {
    const { jobs } = await plannedRuns();
    const input = (job: JobSpec, values: Partial<Record<MetricName, number | null>>): TableRunInput => ({ ref: `${job.experiment}/${job.run_id}`, job, metrics: report(values), human: null });
    const { table } = buildResultsTable([input(byRun(jobs, 4, 1), { "bleu-1": 0.5 }), input(byRun(jobs, 8, 1), { "bleu-1": 0.25, "dist-1": 0.125 })], {
      split: "test",
      scale: 100,
      human: false,
      labels: { [byRun(jobs, 8, 1).run_id]: "a|b" },
    });
    expect(renderMarkdown(table)).toBe(
      [
        "| Model | Seeds | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-L | METEOR | Vector Extrema | Distinct-1 | Distinct-2 | Distinct-3 | Strategy Acc. |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| builtin:tiny-llama lora r4 | 1 | **50.00** | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |",
        "| a\\|b | 1 | 25.00 | n/a | n/a | n/a | n/a | n/a | n/a | 12.50 | n/a | n/a | n/a |",
        "",
      ].join("\n"),
    );
    const same = buildResultsTable([input(byRun(jobs, 4, 1), {}), input(byRun(jobs, 8, 1), {})], { split: "test", scale: 1, human: false, labels: { [byRun(jobs, 4, 1).run_id]: "x", [byRun(jobs, 8, 1).run_id]: "x" } });
    expect(same.table.rows.map((r) => r.label)).toEqual([`x (${EXPERIMENT}/${byRun(jobs, 4, 1).run_id})`, `x (${EXPERIMENT}/${byRun(jobs, 8, 1).run_id})`]);
  });
});
