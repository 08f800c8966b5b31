/**
 * The blind rating sheet, pure: which contexts, the order of the responses, the CSV and HTML the
 * raters see, and the key (item + response letter -> run) they never see.
 *
 * Nothing a rater sees names a system: items are `item-NNN`, responses are letters shuffled per item
 * with a seeded generator, and the example id, the run ids and the eval dirs live in the key only.
 */
import { stringify } from "csv-stringify/sync";
import { seededUniform } from "../../config/sweep.ts";
import { UserError } from "../../errors.ts";

/** The five criteria of the ExTES paper's human evaluation, in its order. */
export const CRITERIA = ["fluency", "identification", "comforting", "suggestion", "overall"] as const;
export type Criterion = (typeof CRITERIA)[number];

export const CRITERION_TEXT: Record<Criterion, string> = {
  fluency: "the response is fluent, coherent and natural",
  identification: "the response explores and identifies the seeker's situation and problem",
  comforting: "the response comforts the seeker, with empathy and understanding",
  suggestion: "the response offers helpful, appropriate suggestions",
  overall: "overall, how good the response is as emotional support",
};

export type Scale = { min: number; max: number };
export const DEFAULT_SCALE: Scale = { min: 1, max: 5 };

export type Turn = { role: "user" | "assistant"; text: string };

/** One line of eval/<split>-<hash>/generations.jsonl (written by `peftctl eval`). */
export type Generation = {
  id: string;
  context: Turn[];
  reference: string;
  reference_strategy: string | null;
  response: string;
  predicted_strategy: string | null;
};

/** A system: a run (label `experiment/run_id`) and its generations. */
export type SystemInput = { system: string; generations: readonly Generation[] };

export type SheetItem = {
  item: string;
  exampleId: string;
  context: Turn[];
  responses: Array<{ letter: string; system: string; text: string }>;
};

export type Sheet = { seed: number; scale: Scale; systems: string[]; items: SheetItem[] };

export const KEY_KIND = "peftctl-human-eval-key";

export type HumanEvalKey = {
  kind: typeof KEY_KIND;
  version: 1;
  created_at: string;
  seed: number;
  split: string;
  scale: Scale;
  criteria: Criterion[];
  /** Every system, with the eval dir its generations came from (relative to the runs dir). */
  systems: Array<{ system: string; eval_dir: string }>;
  items: Array<{ item: string; example_id: string; responses: Record<string, string> }>;
};


function shuffle<T>(values: readonly T[], random: () => number): T[] {
  const out = [...values];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

function sameContext(a: readonly Turn[], b: readonly Turn[]): boolean {
  return a.length === b.length && a.every((turn, i) => turn.role === b[i]!.role && turn.text === b[i]!.text);
}

/**
 * Draws `samples` example ids present in every system's generations (the same contexts for all), in a
 * seeded random order, and shuffles the responses of each item with the same generator.
 */
export function buildSheet(inputs: readonly SystemInput[], options: { samples: number; seed: number; scale?: Scale }): Sheet {
  const scale = options.scale ?? DEFAULT_SCALE;
  const systems = [...inputs].sort((a, b) => (a.system < b.system ? -1 : a.system > b.system ? 1 : 0));
  if (systems.length === 0) throw new UserError("PEFTCTL_USAGE", "no runs to evaluate");
  if (systems.length > LETTERS.length) throw new UserError("PEFTCTL_USAGE", `${systems.length} runs: a sheet compares at most ${LETTERS.length}`);
  if (new Set(systems.map((s) => s.system)).size !== systems.length) throw new UserError("PEFTCTL_USAGE", "a run is named twice");
  if (!Number.isInteger(options.samples) || options.samples < 1) throw new UserError("PEFTCTL_USAGE", `--samples must be a positive whole number, got ${options.samples}`);
  const byId = systems.map((s) => new Map(s.generations.map((g) => [g.id, g])));
  const shared = [...byId[0]!.keys()].filter((id) => byId.every((m) => m.has(id))).sort();
  if (shared.length < options.samples) {
    throw new UserError("PEFTCTL_USAGE", `asked for ${options.samples} samples but only ${shared.length} example id(s) are in the generations of every run`, [
      ...systems.map((s, i) => `  ${s.system}: ${byId[i]!.size} generation(s)`),
      "pass a smaller --samples, or evaluate the runs on the same split (peftctl eval)",
    ]);
  }
  const random = seededUniform(options.seed);
  const chosen = shuffle(shared, random).slice(0, options.samples);
  const width = Math.max(3, String(chosen.length).length);
  const items = chosen.map((exampleId, n): SheetItem => {
    const context = byId[0]!.get(exampleId)!.context;
    systems.forEach((s, i) => {
      if (!sameContext(context, byId[i]!.get(exampleId)!.context)) {
        throw new UserError("PEFTCTL_DATA_INVALID", `example '${exampleId}' has a different context in ${s.system} than in ${systems[0]!.system}`, [
          "the runs were evaluated on different data; evaluate them on the same split",
        ]);
      }
    });
    const order = shuffle(systems.map((s, i) => ({ system: s.system, text: byId[i]!.get(exampleId)!.response })), random);
    return {
      item: `item-${String(n + 1).padStart(width, "0")}`,
      exampleId,
      context,
      responses: order.map((r, i) => ({ letter: LETTERS[i]!, system: r.system, text: r.text })),
    };
  });
  return { seed: options.seed, scale, systems: systems.map((s) => s.system), items };
}

export function scaleText(scale: Scale): string {
  return `${scale.min}-${scale.max}`;
}

function speaker(role: Turn["role"]): string {
  return role === "user" ? "Seeker" : "Supporter";
}

export function contextText(context: readonly Turn[]): string {
  return context.map((turn) => `${speaker(turn.role)}: ${turn.text}`).join("\n");
}

/** Sheet columns: the rating columns say the scale in their header (`fluency (1-5)`); the import reads the name before it. */
export function sheetColumns(scale: Scale): string[] {
  return ["rater", "item", "response", "context", "text", ...CRITERIA.map((c) => `${c} (${scaleText(scale)})`)];
}

/** The CSV: one row per response, rating cells empty, a byte order mark so that spreadsheets read UTF-8. */
export function sheetCsv(sheet: Sheet): string {
  const rows = sheet.items.flatMap((item) =>
    item.responses.map((r) => ["", item.item, r.letter, contextText(item.context), r.text, ...CRITERIA.map(() => "")]),
  );
  return `\uFEFF${stringify([sheetColumns(sheet.scale), ...rows], { record_delimiter: "unix" })}`;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.4}
.item{border-top:2px solid #888;margin-top:2rem;padding-top:1rem}.turn{margin:.2rem 0;white-space:pre-wrap}
.who{font-weight:bold}.response{background:#f4f4f4;padding:.6rem;margin:.8rem 0}.text{white-space:pre-wrap}
table{border-collapse:collapse}td,th{padding:.15rem .5rem;text-align:center}td.c{text-align:left}`;

/** Collects the checked ratings into the sheet's CSV columns (rater, item, response, criteria) and downloads it. */
const SCRIPT = `function peftctlCsv(){
var crit=JSON.parse(document.body.getAttribute('data-criteria'));
var rater=document.getElementById('rater').value.trim();
var q=function(s){s=String(s);return /[",\\n\\r]/.test(s)?'"'+s.replace(/"/g,'""')+'"':s;};
var lines=[['rater','item','response'].concat(crit).map(q).join(',')];
var rs=document.querySelectorAll('[data-response]');
for(var i=0;i<rs.length;i++){var el=rs[i];var row=[rater,el.getAttribute('data-item'),el.getAttribute('data-response')];
for(var j=0;j<crit.length;j++){var c=el.querySelector('input[data-criterion="'+crit[j]+'"]:checked');row.push(c?c.value:'');}
lines.push(row.map(q).join(','));}
var a=document.createElement('a');a.href='data:text/csv;charset=utf-8,'+encodeURIComponent(lines.join('\\n')+'\\n');
a.download='ratings-'+(rater||'rater').replace(/[^A-Za-z0-9_-]/g,'_')+'.csv';document.body.appendChild(a);a.click();a.remove();}`;

/** A self-contained HTML form: no network resources (a CSP forbids them), every text escaped. */
export function sheetHtml(sheet: Sheet): string {
  const values: number[] = [];
  for (let v = sheet.scale.min; v <= sheet.scale.max; v++) values.push(v);
  const scale = escapeHtml(scaleText(sheet.scale));
  const criteriaList = CRITERIA.map((c) => `<li><b>${c}</b>: ${escapeHtml(CRITERION_TEXT[c])}</li>`).join("\n");
  const items = sheet.items
    .map((item) => {
      const turns = item.context
        .map((t) => `<div class="turn"><span class="who">${speaker(t.role)}:</span> ${escapeHtml(t.text)}</div>`)
        .join("\n");
      const responses = item.responses
        .map((r) => {
          const rows = CRITERIA.map((c) => {
            const cells = values
              .map((v) => `<td><input type="radio" name="${escapeHtml(`${item.item}.${r.letter}.${c}`)}" value="${v}" data-criterion="${c}" aria-label="${c} ${v}"></td>`)
              .join("");
            return `<tr><td class="c">${c}</td>${cells}</tr>`;
          }).join("\n");
          return `<div class="response" data-item="${escapeHtml(item.item)}" data-response="${escapeHtml(r.letter)}">
<h3>Response ${escapeHtml(r.letter)}</h3>
<div class="text">${escapeHtml(r.text)}</div>
<table><tr><th></th>${values.map((v) => `<th>${v}</th>`).join("")}</tr>
${rows}
</table></div>`;
        })
        .join("\n");
      return `<section class="item"><h2>${escapeHtml(item.item)}</h2>
<h3>Conversation</h3>
${turns}
${responses}
</section>`;
    })
    .join("\n");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>Human evaluation</title>
<style>${STYLE}</style>
</head>
<body data-criteria="${escapeHtml(JSON.stringify(CRITERIA))}">
<h1>Human evaluation</h1>
<p>Each item shows a conversation between a help seeker and a supporter, then several candidate next
responses of the supporter, in no particular order. Rate every response on each criterion from
${sheet.scale.min} (worst) to ${sheet.scale.max} (best), scale ${scale}:</p>
<ul>
${criteriaList}
</ul>
<p><label>Your name or rater id: <input id="rater" type="text"></label>
<button type="button" onclick="peftctlCsv()">Download ratings (CSV)</button></p>
<p>${sheet.items.length} item(s), ${sheet.systems.length} response(s) each. When done, press the button and send the CSV file back
(or fill the CSV sheet instead of this page).</p>
${items}
<p><button type="button" onclick="peftctlCsv()">Download ratings (CSV)</button></p>
<script>${SCRIPT}</script>
</body></html>
`;
}

export function sheetKey(sheet: Sheet, meta: { split: string; evalDirs: Record<string, string>; createdAt: string }): HumanEvalKey {
  return {
    kind: KEY_KIND,
    version: 1,
    created_at: meta.createdAt,
    seed: sheet.seed,
    split: meta.split,
    scale: sheet.scale,
    criteria: [...CRITERIA],
    systems: sheet.systems.map((system) => ({ system, eval_dir: meta.evalDirs[system] ?? "" })),
    items: sheet.items.map((item) => ({
      item: item.item,
      example_id: item.exampleId,
      responses: Object.fromEntries(item.responses.map((r) => [r.letter, r.system])),
    })),
  };
}
