/**
 * End to end with the real shim and the real metrics on the CPU: the configs/smoke.yaml sweep (two
 * LoRA ranks, shortened with --set) trained by `peftctl run`, then `eval` (a few test examples),
 * `table`, a blind `human-eval export`, two raters' filled sheets, `human-eval import`, `table --human`
 * and `report --human`, the page checked in headless Chromium against the run files.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import { stringify } from "csv-stringify/sync";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CRITERIA, type HumanEvalKey } from "../../src/eval/human-eval/sheet.ts";
import { TABLE_METRICS } from "../../src/eval/table.ts";
import { readReportPage } from "../report/chromium.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");
// 6 steps of 4 examples of up to 128 tokens, logged every 2 and evaluated at 3 and 6: a few points per curve, seconds per run
const shortened = [
  ["train.max_steps", 6],
  ["train.batch_size", 4],
  ["train.warmup_steps", 2],
  ["train.log_every_steps", 2],
  ["data.max_length", 128],
  ["eval.every_steps", 3],
  ["checkpoint.every_steps", 6],
  ["eval.generate.samples", 0],
  ["eval.generate.max_new_tokens", 8],
].flatMap(([key, value]) => ["--set", `${key}=${value}`]);
const EXAMPLES = 3;

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

type TableJson = { columns: Array<{ key: string; kind: string }>; rows: Array<{ label: string; runs: string[]; cells: Record<string, { mean: number | null; n: number }> }> };
type Line = Record<string, unknown> & { type: string; step: number };

const jsonLines = (file: string) => readFileSync(file, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line) as Line);

describe("train -> eval -> table -> human-eval -> report on the smoke sweep", () => {
  it("gives a table equal to the metrics files and a report whose charts and table equal the run files", { timeout: 20 * 60_000 }, async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), "peftctl-e2e-report-"));
    temps.push(work);
    const runsDir = path.join(work, "runs");
    const peftctl = async (...args: string[]) => {
      const result = await execa(bin, ["--runs-dir", runsDir, ...args], { reject: false, cwd: root });
      expect(result.exitCode, `peftctl ${args.join(" ")}\n${result.stderr}`).toBe(0);
      return result.stdout;
    };

    await peftctl("run", path.join(root, "configs/smoke.yaml"), ...shortened);
    const runIds = readdirSync(path.join(runsDir, "smoke")).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    expect(runIds).toHaveLength(2);
    const refs = runIds.map((id) => `smoke/${id}`);
    const runDir = (id: string) => path.join(runsDir, "smoke", id);

    await peftctl("eval", "smoke", "--limit", String(EXAMPLES));
    const evalDir = (id: string) => {
      const dirs = readdirSync(path.join(runDir(id), "eval")).filter((name) => name.startsWith("test-"));
      expect(dirs).toHaveLength(1);
      return path.join(runDir(id), "eval", dirs[0]!);
    };
    const metrics = runIds.map((id) => JSON.parse(readFileSync(path.join(evalDir(id), "metrics.json"), "utf8")) as { pairs: number; metrics: Record<string, number | null> });
    for (const m of metrics) expect(m.pairs).toBe(EXAMPLES);

    // the table: one row per rank (one seed each), every cell the run's metrics.json value x100
    const table = JSON.parse(await peftctl("table", "smoke", "--format", "json")) as TableJson;
    expect(table.rows.map((row) => row.runs)).toEqual(refs.map((ref) => [ref]));
    // the paper's columns in its order (a column no scorer filled, such as toxicity, may be left out)
    const columns = table.columns.map((c) => c.key);
    expect(columns).toEqual(TABLE_METRICS.filter((metric) => columns.includes(metric)));
    for (const metric of ["bleu-1", "bleu-4", "rouge-l", "meteor", "dist-1", "dist-3"]) expect(columns).toContain(metric);
    table.rows.forEach((row, i) => {
      for (const metric of columns) {
        const value = metrics[i]!.metrics[metric];
        expect(row.cells[metric]!.mean, `${row.label} ${metric}`).toBe(typeof value === "number" ? value * 100 : null);
      }
    });
    expect(table.rows.map((row) => row.label)).toEqual(["builtin:tiny-llama lora r4", "builtin:tiny-llama lora r8"]);

    // a blind sheet of 3 contexts, filled by two raters: alice prefers r8, bob rates every response 3 but r4's fluency 2
    const sheetDir = path.join(work, "sheet");
    await peftctl("human-eval", "export", "smoke", "--samples", "3", "--seed", "1", "-o", sheetDir);
    const key = JSON.parse(readFileSync(path.join(sheetDir, "key.json"), "utf8")) as HumanEvalKey;
    const rate: Record<string, (system: string, criterion: string) => number> = {
      alice: (system: string) => (system === refs[1] ? 4 : 2),
      bob: (system: string, criterion: string) => (system === refs[0] && criterion === "fluency" ? 2 : 3),
    };
    const [header, ...rows] = parse(readFileSync(path.join(sheetDir, "sheet.csv"), "utf8"), { bom: true }) as string[][];
    expect(rows).toHaveLength(3 * 2);
    const ratingFiles = Object.entries(rate).map(([rater, score]) => {
      const filled = rows.map((row) => {
        const system = key.items.find((item) => item.item === row[1])!.responses[row[2]!]!;
        return [...row.slice(0, 5), ...CRITERIA.map((criterion) => String(score(system, criterion)))];
      });
      const file = path.join(work, `${rater}.csv`);
      writeFileSync(file, stringify([header!, ...filled]));
      return file;
    });
    await peftctl("human-eval", "import", ...ratingFiles, "--key", path.join(sheetDir, "key.json"));
    const humanFile = path.join(sheetDir, "human-eval.json");
    const human = JSON.parse(readFileSync(humanFile, "utf8")) as { systems: Array<{ system: string; scores: Record<string, { mean: number }> }> };
    expect(human.systems.find((s) => s.system === refs[1])!.scores.overall!.mean).toBe((4 + 3) / 2);
    expect(human.systems.find((s) => s.system === refs[0])!.scores.fluency!.mean).toBe((2 + 2) / 2);

    const withHuman = JSON.parse(await peftctl("table", "smoke", "--human", humanFile, "--format", "json")) as TableJson;
    expect(withHuman.columns.filter((c) => c.kind === "human").map((c) => c.key)).toEqual([...CRITERIA]);
    withHuman.rows.forEach((row, i) => {
      const scores = human.systems.find((s) => s.system === refs[i])!.scores;
      for (const criterion of CRITERIA) expect(row.cells[criterion]!.mean, `${row.label} ${criterion}`).toBe(scores[criterion]!.mean);
    });

    // the report, in Chromium: no console error, nothing fetched, the charts hold the events' numbers, the table is table's
    const reportFile = path.join(work, "report.html");
    expect(await peftctl("report", "smoke", "--human", humanFile, "-o", reportFile)).toContain(`wrote ${reportFile}: 2 run(s)`);
    const page = await readReportPage(reportFile);
    expect(page.errors).toEqual([]);
    expect(page.requests).toEqual([`file://${reportFile}`]);
    const chart = (id: string) => page.charts.find((c) => c.id === id)!;
    runIds.forEach((id, i) => {
      const events = jsonLines(path.join(runDir(id), "events.jsonl"));
      const progress = events.filter((e) => e.type === "progress");
      const evals = events.filter((e) => e.type === "eval");
      expect(progress.map((e) => e.step)).toEqual([2, 4, 6]); // one attempt: each step once
      expect(evals.map((e) => e.step)).toEqual([3, 6]);
      const of = (chartId: string, series: string) => chart(chartId).datasets.filter((d) => d.run === refs[i] && d.series === series).map((d) => d.data);
      expect(of("loss", "train_loss")).toEqual([progress.map((e) => ({ x: e.step, y: e.loss }))]);
      expect(of("loss", "eval_loss")).toEqual([evals.map((e) => ({ x: e.step, y: e.loss }))]);
      expect(of("lr", "lr")).toEqual([progress.map((e) => ({ x: e.step, y: e.lr }))]);
      expect(of("tokens_per_s", "tokens_per_s")).toEqual([progress.map((e) => ({ x: e.step, y: e.tokens_per_s }))]);
      // the sweep's charts: the run's overall rating at its rank
      expect(chart("sweep:method.r:overall").datasets[0]!.data.filter((p) => p.run === refs[i])).toEqual([
        { x: [4, 8][i], y: human.systems.find((s) => s.system === refs[i])!.scores.overall!.mean, run: refs[i] },
      ]);
      // the generations beside their references, as generations.jsonl has them
      const generations = jsonLines(path.join(evalDir(id), "generations.jsonl")) as unknown as Array<{ id: string; response: string; predicted_strategy: string | null }>;
      const shown = (g: (typeof generations)[number]) => `${g.predicted_strategy ? `[${g.predicted_strategy}] ` : ""}${g.response === "" ? "(empty)" : g.response}`;
      expect(page.generations.filter((g) => g.run === refs[i]).map((g) => [g.id, g.response])).toEqual(generations.map((g) => [g.id, shown(g)]));
    });
    expect(page.table).toEqual({ columns: withHuman.columns, rows: withHuman.rows });
  });
});
