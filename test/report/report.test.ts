/**
 * peftctl report over planned run dirs with events.jsonl, metrics.json, generations.jsonl and
 * human-eval.json fixtures: the page is one file with nothing external, user text stays text, and in
 * headless Chromium it renders without a console error, its charts hold exactly the events' and
 * metrics' numbers, and its table is `peftctl table --format json`'s.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { METRIC_NAMES, type MetricName } from "../../src/runs/eval-metrics.ts";
import { runCli } from "../config/helpers.ts";
import { succeededRuns, tempDir } from "../eval/helpers.ts";
import { readReportPage, type PageReading } from "./chromium.ts";


const EXPERIMENT = "rpt";
const INJECTION = `</script><img src=x onerror="window.__injected=1"><script>window.__injected=2</script>`;

/** Three runs: lora r4 lr 1e-4 seed 1, r8 lr 1e-2 seeds 1 and 2 (one table row of two seeds). */
async function plannedRuns(): Promise<{ runsDir: string; jobs: JobSpec[] }> {
  return succeededRuns(EXPERIMENT, `name: ${EXPERIMENT}
model: { base: builtin:tiny-llama }
method: { kind: lora, r: 4 }
data: { format: extes, path: data.json }
train: { max_steps: 20, batch_size: 4, micro_batch_size: 2 }
sweep:
  method: zip
  parameters:
    method.r: [4, 8, 8]
    train.lr: [1.0e-4, 1.0e-2, 1.0e-2]
    train.seed: [1, 1, 2]
`);
}

/** Numbers with every digit a double holds, so that a rounding anywhere shows. */
const value = (run: number, step: number, what: number) => 7 - step / 9.7 + run / 3.3 + what / 17.1;

function progress(job: JobSpec, run: number, step: number, attempt: number) {
  return {
    v: 1,
    t: "2026-01-01T00:00:00Z",
    run_id: job.run_id,
    type: "progress",
    step,
    total_steps: 20,
    epoch: step / 10,
    loss: value(run, step, attempt),
    lr: job.train.lr * (1 - step / 21),
    tokens_per_s: 1000 + value(run, step, 3) * 10,
    eta_s: 20 - step,
  };
}

/**
 * events.jsonl of a run: attempt 1 logs steps 5 and 10 and is interrupted; attempt 2 resumes from
 * step 5 and logs steps 10 (again), 15 and 20; evals at 10 and 20; a torn last line.
 */
function writeEvents(job: JobSpec, run: number): void {
  const base = { v: 1, t: "2026-01-01T00:00:00Z", run_id: job.run_id };
  const start = (attempt: number, resumed: number | null) => ({ ...base, type: "start", attempt, pid: 1, versions: {}, device: "cpu", params: { trainable: 1, total: 2 }, resumed_from_step: resumed });
  const evalAt = (step: number) => ({ ...base, type: "eval", step, loss: value(run, step, 5), perplexity: Math.exp(value(run, step, 5)) });
  const events = [
    start(1, null),
    progress(job, run, 5, 1),
    progress(job, run, 10, 1),
    { ...base, type: "interrupted", step: 10, checkpoint: null, signal: "SIGTERM" },
    start(2, 5),
    progress(job, run, 10, 2),
    evalAt(10),
    progress(job, run, 15, 2),
    progress(job, run, 20, 2),
    evalAt(20),
    { ...base, type: "done", step: 20, metrics: {}, adapter_path: "adapter" },
  ];
  writeFileSync(path.join(job.run_dir, "events.jsonl"), `${events.map((e) => JSON.stringify(e)).join("\n")}\n{"v": 1, "type": "progr`);
}

/** What the test expects of a run's curves, from the fixture's definition: the later attempt's step 10. */
function expectedSeries(job: JobSpec, run: number) {
  const logged = [
    [5, 1],
    [10, 2],
    [15, 2],
    [20, 2],
  ].map(([step, attempt]) => progress(job, run, step!, attempt!));
  return {
    train_loss: logged.map((e) => ({ x: e.step, y: e.loss })),
    eval_loss: [10, 20].map((step) => ({ x: step, y: value(run, step, 5) })),
    lr: logged.map((e) => ({ x: e.step, y: e.lr })),
    tokens_per_s: logged.map((e) => ({ x: e.step, y: e.tokens_per_s })),
  };
}

const METRICS: Array<Partial<Record<MetricName, number>>> = [
  { "bleu-1": 0.1234567891234, "bleu-4": 0.01, "rouge-l": 0.2, meteor: 0.05, "dist-1": 0.3, "dist-2": 0.6, "dist-3": 0.7 },
  { "bleu-1": 0.2, "bleu-4": 0.02, "rouge-l": 0.21, meteor: 0.06, "dist-1": 0.31, "dist-2": 0.61, "dist-3": 0.71 },
  { "bleu-1": 0.3, "bleu-4": 0.03, "rouge-l": 0.22, meteor: 0.07, "dist-1": 0.32, "dist-2": 0.62, "dist-3": 0.72 },
];

function writeEval(job: JobSpec, run: number): void {
  const dir = path.join(job.run_dir, "eval", "test-0a1b2c3d");
  mkdirSync(dir, { recursive: true });
  const metrics = Object.fromEntries(METRIC_NAMES.map((name) => [name, METRICS[run]![name] ?? null]));
  writeFileSync(path.join(dir, "metrics.json"), JSON.stringify({ metrics, pairs: 3, strategy_pairs: 0, tokenizer: "punkt", embeddings: null }));
  const rows = [0, 1, 2].map((i) => ({
    id: `${i}:1`,
    context: [{ role: "user", text: `I lost my job <!-- ${i} --> & can't sleep.` }],
    reference: `<b>I'm sorry</b> & "that is hard" ${i}`,
    reference_strategy: "Reflection of feelings",
    response: run === 0 && i === 0 ? INJECTION : `response ${run}:${i}`,
    predicted_strategy: null,
  }));
  writeFileSync(path.join(dir, "generations.jsonl"), rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
}

/** human-eval.json as `peftctl human-eval import` writes it (what `table` reads of it: kind and systems). */
function writeHuman(jobs: JobSpec[], dir: string): string {
  const file = path.join(dir, "human-eval.json");
  const systems = jobs.map((job, run) => ({
    system: `${EXPERIMENT}/${job.run_id}`,
    scores: { fluency: { mean: 3 + run / 4, std: 0.5, n: 4 }, overall: { mean: 2.5 + run / 3, std: 1, n: 4 } },
  }));
  writeFileSync(file, JSON.stringify({ kind: "peftctl-human-eval", version: 1, systems }));
  return file;
}

/** Each match of `pattern` in the page with a little context (so that a failure shows those, not the whole page). */
function found(text: string, pattern: RegExp): string[] {
  return [...text.matchAll(pattern)].map((m) => text.slice(Math.max(0, m.index - 30), m.index + m[0].length + 30));
}

let runsDir: string;
let jobs: JobSpec[];
let humanFile: string;
let reportFile: string;
let html: string;
let page: PageReading;

describe("peftctl report", () => {
  beforeAll(async () => {
    ({ runsDir, jobs } = await plannedRuns());
    jobs.forEach((job, run) => {
      writeEvents(job, run);
      writeEval(job, run);
    });
    humanFile = writeHuman(jobs, tempDir("peftctl-report-human-"));
    reportFile = path.join(tempDir("peftctl-report-out-"), "report.html");
    const made = await runCli(["--runs-dir", runsDir, "report", EXPERIMENT, "--human", humanFile, "--samples", "2", "-o", reportFile]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toContain(`wrote ${reportFile}: 3 run(s)`);
    html = readFileSync(reportFile, "utf8");
    page = await readReportPage(reportFile);
  }, 120_000);

  it("is one file that loads nothing: the chart library and the data inlined, no http(s) src or href, a CSP without network", () => {
    expect(found(html, /\s(src|href)\s*=\s*["']?\s*(https?:)?\/\//gi)).toEqual([]);
    expect(found(html, /<link|@import|\burl\(|<iframe/gi)).toEqual([]);
    expect(found(html, /<script[\s>]/g).map((m) => m.trim())).toHaveLength(3);
    expect(found(html, /<script type="application\/json" id="report-data">/g)).toHaveLength(1);
    expect(found(html, /Chart\.js v4\.6\.1/g)).toHaveLength(1); // the library's own banner: it is bundled, not fetched
    expect(found(html, /Content-Security-Policy" content="default-src 'none'; script-src 'sha256-[^']+' 'sha256-[^']+';/g)).toHaveLength(1);
    // in Chromium: the file itself is the only request, nothing failed, nothing logged an error
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([`file://${reportFile}`]);
  });

  it("keeps generations as text: a response with </script><img onerror> is shown, not run", () => {
    expect(found(html, /<img|<\/script><img/g)).toEqual([]);
    expect(found(html, /&lt;\/script&gt;&lt;img src=x onerror=&quot;window.__injected=1&quot;&gt;/g)).toHaveLength(1);
    expect(page.images).toBe(0);
    expect(page.injected).toBeNull();
    const shown = page.generations.find((g) => g.run === `${EXPERIMENT}/${jobs[0]!.run_id}` && g.id === "0:1")!;
    expect(shown.response).toBe(INJECTION);
    expect(shown.reference).toBe(`[Reflection of feelings] <b>I'm sorry</b> & "that is hard" 0`);
    expect(shown.context).toBe("user: I lost my job <!-- 0 --> & can't sleep.");
    // --samples 2: the first two of each run's three, in file order
    expect(page.generations.map((g) => `${g.run} ${g.id}`)).toEqual(jobs.flatMap((job) => [`${EXPERIMENT}/${job.run_id} 0:1`, `${EXPERIMENT}/${job.run_id} 1:1`]));
  });

  it("draws each run's train and eval loss, learning rate and tokens/s: exactly the numbers of events.jsonl", () => {
    const byId = new Map(page.charts.map((c) => [c.id, c]));
    expect([...byId.keys()].slice(0, 3)).toEqual(["loss", "lr", "tokens_per_s"]);
    for (const chart of page.charts) {
      expect(chart.width, chart.id).toBeGreaterThan(100);
      expect(chart.height, chart.id).toBeGreaterThan(100);
      for (const dataset of chart.datasets) expect(dataset.drawn, `${chart.id} ${dataset.label}`).toBe(dataset.data.length);
    }
    jobs.forEach((job, run) => {
      const expected = expectedSeries(job, run);
      const ref = `${EXPERIMENT}/${job.run_id}`;
      const of = (chart: string, series: string) => byId.get(chart)!.datasets.filter((d) => d.run === ref && d.series === series).map((d) => d.data);
      expect(of("loss", "train_loss")).toEqual([expected.train_loss]);
      expect(of("loss", "eval_loss")).toEqual([expected.eval_loss]);
      expect(of("lr", "lr")).toEqual([expected.lr]);
      expect(of("tokens_per_s", "tokens_per_s")).toEqual([expected.tokens_per_s]);
      expect(byId.get("loss")!.datasets.find((d) => d.run === ref && d.series === "train_loss")!.label).toBe(`${job.run_id} train`);
    });
  });

  it("draws each table column against each swept parameter, the runs' own values (x100; ratings as they are)", () => {
    const sweep = page.charts.filter((c) => c.id.startsWith("sweep:"));
    const columns = ["bleu-1", "bleu-4", "rouge-l", "meteor", "dist-1", "dist-2", "dist-3", "fluency", "overall"]; // the ones with values
    expect(sweep.map((c) => c.id)).toEqual(["method.r", "train.lr", "train.seed"].flatMap((param) => columns.map((column) => `sweep:${param}:${column}`)));
    for (const chart of sweep) {
      expect(chart.type).toBe("scatter");
      const [, param, column] = chart.id.split(":") as [string, string, string];
      const expected = jobs.map((job, run) => ({
        x: job.sweep_values[param],
        y: column === "fluency" ? 3 + run / 4 : column === "overall" ? 2.5 + run / 3 : METRICS[run]![column as MetricName]! * 100,
        run: `${EXPERIMENT}/${job.run_id}`,
      }));
      expect(chart.datasets.map((d) => d.data), chart.id).toEqual([expected]);
    }
  });

  it("shows the results table of `peftctl table --format json` (seeds collapsed, human columns, best marks), cell for cell", async () => {
    const table = await runCli(["--runs-dir", runsDir, "table", EXPERIMENT, "--format", "json", "--human", humanFile]);
    expect(table.code, table.stderr).toBe(0);
    const json = JSON.parse(table.stdout) as { columns: Array<{ key: string; title: string; kind: string }>; rows: unknown[] };
    expect(page.table).toEqual({ columns: json.columns, rows: json.rows });
    expect(page.table!.rows).toHaveLength(2);
    expect(page.table!.rows[1]!.seeds).toEqual([1, 2]);
    // the printed text is the table's: mean ± std with the column's digits, best in bold
    expect(found(html, new RegExp(`>${((0.2 + 0.3) / 2 * 100).toFixed(2)} ± ${(Math.SQRT1_2 * 10).toFixed(2)}</td>`, "g"))).toHaveLength(1);
    expect(found(html, /<td class="num best" data-key="bleu-1"/g)).toHaveLength(1);
  });

  it("without any evaluation, shows the training alone and says why; bad arguments are exit 2 without a stack trace", async () => {
    const { runsDir: fresh, jobs: bare } = await plannedRuns();
    bare.forEach((job, run) => writeEvents(job, run));
    const out = path.join(tempDir("peftctl-report-bare-"), "bare.html");
    const made = await runCli(["--runs-dir", fresh, "report", `${EXPERIMENT}/${bare[0]!.run_id}`, "-o", out]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stderr).toContain("no selected run has metrics on split 'test'");
    const bareHtml = readFileSync(out, "utf8");
    expect(found(bareHtml, /No run has metrics on the test split yet/g)).toHaveLength(1);
    expect(found(bareHtml, /id="results-table"/g)).toEqual([]);
    const bareReading = await readReportPage(out);
    expect(bareReading.errors).toEqual([]);
    expect(bareReading.charts.map((c) => c.id)).toEqual(["loss", "lr", "tokens_per_s"]);
    expect(bareReading.charts[0]!.datasets.map((d) => d.data)).toEqual([expectedSeries(bare[0]!, 0).train_loss, expectedSeries(bare[0]!, 0).eval_loss]);

    for (const [args, message] of [
      [["report", "nosuch", "-o", out], "no run or experiment named 'nosuch'"],
      [["report", EXPERIMENT, "--samples", "-1", "-o", out], "--samples must be a whole number"],
      [["report", EXPERIMENT], "required option '-o, --out <file>' not specified"],
      [["report", EXPERIMENT, "--human", path.join(fresh, "missing.json"), "-o", out], "missing.json: no such file"],
      [["report", EXPERIMENT, "-o", path.dirname(out)], "is a directory; name the HTML file to write"],
    ] as Array<[string[], string]>) {
      const bad = await runCli(["--runs-dir", fresh, ...args]);
      expect(bad.code, args.join(" ")).toBe(2);
      expect(bad.stderr).toContain(message);
      expect(bad.stderr).not.toMatch(/\n\s+at /);
    }
  }, 60_000);
});
