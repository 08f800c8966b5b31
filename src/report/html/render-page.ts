/**
 * The report's HTML page (pure): one self-contained file. Tables and generations are written here as
 * escaped HTML; the charts are drawn in the browser by the inlined charting library (Chart.js) and the
 * page's client script from the chart data inlined as JSON. A Content-Security-Policy allows exactly
 * the page's two scripts (by hash) and no network at all.
 */
import { createHash } from "node:crypto";
import type { ResultsTable } from "../../eval/table.ts";
import { cellText } from "../results-table.ts";
import type { Generation } from "../../eval/human-eval/sheet.ts";
import { checkInlineScript, escapeHtml, jsonForScript } from "./escape.ts";
import type { ReportData, RunGenerations, RunSummary } from "./report-data.ts";

/** The scripts the page inlines: the charting library's minified UMD build and the client script that draws the charts. */
export type PageAssets = { chartJs: string; client: string };

/** The id of the <script type="application/json"> the client script reads. */
export const DATA_ELEMENT_ID = "report-data";

const STYLE = `
:root { font-family: system-ui, sans-serif; color: #1d2330; background: #fff; }
body { margin: 0 auto; max-width: 1400px; padding: 1rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d4dc; } h3 { margin-bottom: 0.3rem; }
.meta, .note { color: #5a6270; font-size: 0.9rem; }
.warnings { background: #fff6e0; border: 1px solid #e8c66a; padding: 0.5rem 1rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #e2e5ea; padding: 0.3rem 0.6rem; vertical-align: top; }
th { text-align: left; background: #f4f6f9; }
table.results td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.results td.best { font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 1rem; }
.charts.small { grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); }
figure.chart { margin: 0; }
.chart-box { position: relative; height: 300px; }
.charts.small .chart-box { height: 240px; }
table.generations { width: 100%; table-layout: fixed; }
table.generations td { white-space: pre-wrap; overflow-wrap: anywhere; }
table.generations col.n { width: 3rem; } table.generations col.context { width: 40%; }
.turn { margin-bottom: 0.3rem; } .role { font-weight: bold; color: #5a6270; }
.strategy { display: inline-block; font-size: 0.8rem; color: #2d5b9a; }
.empty { color: #9aa1ad; font-style: italic; }
`;

function scriptHash(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

function numberText(value: number | null, digits = 4): string {
  return value === null ? "n/a" : Number(value.toPrecision(digits)).toString();
}

function runsSection(runs: readonly RunSummary[]): string {
  const rows = runs.map(
    (run) =>
      `<tr data-run="${escapeHtml(run.ref)}"><td>${escapeHtml(run.name)}</td><td>${escapeHtml(run.label)}</td><td>${escapeHtml(run.swept || "-")}</td>` +
      `<td class="num">${run.last_step ?? "n/a"}</td><td class="num">${numberText(run.last_train_loss)}</td><td class="num">${numberText(run.best_eval_loss)}</td>` +
      `<td>${escapeHtml(run.eval_dir ?? "none")}</td></tr>`,
  );
  return `<section id="runs"><h2>Runs</h2><table class="runs"><thead><tr><th>Run</th><th>Configuration</th><th>Swept values</th><th>Last step</th><th>Last train loss</th><th>Best eval loss</th><th>Evaluation</th></tr></thead><tbody>${rows.join("")}</tbody></table></section>`;
}

function canvas(id: string, title: string): string {
  return `<figure class="chart"><div class="chart-box"><canvas data-chart="${escapeHtml(id)}" role="img" aria-label="${escapeHtml(title)}"></canvas></div></figure>`;
}

/** The cells carry their exact values (data-mean, data-std, data-n, data-best) beside the printed text. */
function resultsSection(table: ResultsTable | null, split: string): string {
  if (table === null) {
    return `<section id="results"><h2>Results</h2><p class="note">No run has metrics on the ${escapeHtml(split)} split yet: run <code>peftctl eval</code>, then make the report again.</p></section>`;
  }
  const head = `<tr><th>Model</th><th>Seeds</th>${table.columns.map((c) => `<th data-key="${escapeHtml(c.key)}" data-kind="${c.kind}">${escapeHtml(c.title)}</th>`).join("")}</tr>`;
  const rows = table.rows.map((row) => {
    const cells = table.columns.map((column) => {
      const cell = row.cells[column.key]!;
      const attrs = `data-key="${escapeHtml(column.key)}" data-mean="${cell.mean ?? ""}" data-std="${cell.std ?? ""}" data-n="${cell.n}" data-best="${cell.best}"`;
      return `<td class="num${cell.best ? " best" : ""}" ${attrs}>${escapeHtml(cellText(cell, column, " ± "))}</td>`;
    });
    return `<tr data-runs="${escapeHtml(row.runs.join(" "))}" data-seeds="${row.seeds.join(" ")}"><td class="label">${escapeHtml(row.label)}</td><td class="num">${row.seeds.length}</td>${cells.join("")}</tr>`;
  });
  const scale = table.scale === 100 ? "automatic metrics x100" : "automatic metrics as fractions";
  return (
    `<section id="results"><h2>Results</h2><p class="note">Split ${escapeHtml(table.split)}; ${scale}; seeds of one configuration as mean ± sample std; the best of each column in bold (as <code>peftctl table</code>).</p>` +
    `<table class="results" id="results-table" data-split="${escapeHtml(table.split)}" data-scale="${table.scale}"><thead>${head}</thead><tbody>${rows.join("")}</tbody></table></section>`
  );
}

function turnHtml(turn: Generation["context"][number]): string {
  return `<div class="turn"><span class="role">${escapeHtml(turn.role)}:</span> ${escapeHtml(turn.text)}</div>`;
}

function textCell(text: string, strategy: string | null): string {
  const tag = strategy ? `<span class="strategy">[${escapeHtml(strategy)}]</span> ` : "";
  return text === "" ? `${tag}<span class="empty">(empty)</span>` : `${tag}${escapeHtml(text)}`;
}

function generationsOfRun(run: RunGenerations): string {
  const heading = `<h3>${escapeHtml(run.name)}</h3>`;
  if (run.eval_dir === null) return `${heading}<p class="note">No generations on this split.</p>`;
  const rows = run.rows.map(
    (g, i) =>
      `<tr data-id="${escapeHtml(g.id)}"><td>${i + 1}</td><td class="context">${g.context.map(turnHtml).join("")}</td>` +
      `<td class="reference">${textCell(g.reference, g.reference_strategy)}</td><td class="response">${textCell(g.response, g.predicted_strategy)}</td></tr>`,
  );
  return (
    `${heading}<p class="note">The first ${run.rows.length} of ${run.total} from ${escapeHtml(run.eval_dir)}/generations.jsonl</p>` +
    `<table class="generations" data-run="${escapeHtml(run.run)}"><colgroup><col class="n"><col class="context"><col><col></colgroup>` +
    `<thead><tr><th>#</th><th>Context</th><th>Reference</th><th>Response</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
  );
}

export function renderReportPage(data: ReportData, assets: PageAssets): string {
  const chartJs = checkInlineScript("the charting library", assets.chartJs);
  const client = checkInlineScript("the report's client script", assets.client);
  const csp = `default-src 'none'; script-src ${scriptHash(chartJs)} ${scriptHash(client)}; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'`;
  const chartData = jsonForScript({ training: data.training, sweep: data.sweep });
  const warnings =
    data.warnings.length > 0 ? `<section class="warnings"><ul>${data.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul></section>` : "";
  const sweep =
    data.sweep.length > 0
      ? `<section id="sweep"><h2>Sweep</h2><p class="note">Each run's value of a table column against its swept value.</p><div class="charts small">${data.sweep.map((c) => canvas(c.id, c.title)).join("")}</div></section>`
      : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>${escapeHtml(data.title)}</h1><p class="meta">${data.runs.length} run(s); made ${escapeHtml(data.generated_at)} by peftctl report</p></header>
${warnings}
${runsSection(data.runs)}
<section id="training"><h2>Training</h2><div class="charts">${data.training.map((c) => canvas(c.id, c.title)).join("")}</div></section>
${resultsSection(data.table, data.split)}
${sweep}
<section id="generations"><h2>Generations</h2><p class="note">Split ${escapeHtml(data.split)}: each run's responses beside the references.</p>${data.generations.map(generationsOfRun).join("")}</section>
<script type="application/json" id="${DATA_ELEMENT_ID}">${chartData}</script>
<script>${chartJs}</script>
<script>${client}</script>
</body>
</html>
`;
}
