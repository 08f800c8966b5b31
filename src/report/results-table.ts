/**
 * The text forms of `peftctl table`'s results table (src/eval/table.ts): Markdown, CSV, LaTeX
 * (booktabs) and JSON. A cell is the value, `mean ± std` over seeds, or n/a; the best of a column is
 * bold in Markdown and LaTeX, ends in `*` in CSV and has `best: true` in JSON.
 */
import type { Cell, Column, ResultsTable } from "../eval/table.ts";

export const TABLE_FORMATS = ["md", "csv", "latex", "json"] as const;
export type TableFormat = (typeof TABLE_FORMATS)[number];

const NA = "n/a";

function seedsText(seeds: readonly number[]): string {
  return String(seeds.length);
}

/** A cell as tables print it: the mean, `mean<pm>std` over seeds, or n/a. */
export function cellText(cell: Cell, column: Column, pm: string): string {
  if (cell.mean === null) return NA;
  const mean = cell.mean.toFixed(column.digits);
  return cell.std === null ? mean : `${mean}${pm}${cell.std.toFixed(column.digits)}`;
}

const header = (table: ResultsTable) => ["Model", "Seeds", ...table.columns.map((c) => c.title)];

export function renderMarkdown(table: ResultsTable): string {
  const escape = (text: string) => text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|");
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  const rows = table.rows.map((row) =>
    line([
      escape(row.label),
      seedsText(row.seeds),
      ...table.columns.map((column) => {
        const cell = row.cells[column.key]!;
        const text = cellText(cell, column, " ± ");
        return cell.best ? `**${text}**` : text;
      }),
    ]),
  );
  return [line(header(table)), line(["---", ...header(table).slice(1).map(() => "---:")]), ...rows].join("\n") + "\n";
}

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function renderCsv(table: ResultsTable): string {
  const line = (cells: readonly string[]) => cells.map(csvField).join(",");
  const rows = table.rows.map((row) =>
    line([
      row.label,
      seedsText(row.seeds),
      ...table.columns.map((column) => {
        const cell = row.cells[column.key]!;
        const text = cellText(cell, column, " ± ");
        return cell.best ? `${text}*` : text;
      }),
    ]),
  );
  return [line(header(table)), ...rows].join("\n") + "\n";
}

const LATEX_SPECIALS: Record<string, string> = {
  "\\": "\\textbackslash{}",
  _: "\\_",
  "%": "\\%",
  "&": "\\&",
  "#": "\\#",
  $: "\\$",
  "{": "\\{",
  "}": "\\}",
  "~": "\\textasciitilde{}",
  "^": "\\textasciicircum{}",
};

export function escapeLatex(text: string): string {
  return text.replace(/[\\_%&#${}~^]/g, (c) => LATEX_SPECIALS[c]!);
}

export function renderLatex(table: ResultsTable): string {
  const line = (cells: readonly string[]) => `${cells.join(" & ")} \\\\`;
  const rows = table.rows.map((row) =>
    line([
      escapeLatex(row.label),
      seedsText(row.seeds),
      ...table.columns.map((column) => {
        const cell = row.cells[column.key]!;
        const text = cellText(cell, column, " $\\pm$ ");
        return cell.best ? `\\textbf{${text}}` : text;
      }),
    ]),
  );
  return [
    `\\begin{tabular}{l${"r".repeat(table.columns.length + 1)}}`,
    "\\toprule",
    line(header(table).map(escapeLatex)),
    "\\midrule",
    ...rows,
    "\\bottomrule",
    "\\end{tabular}",
    "",
  ].join("\n");
}

/** The table as data: values already scaled (`scale`), each cell {mean, std, n, best}. */
export function renderJson(table: ResultsTable): string {
  return `${JSON.stringify(
    {
      split: table.split,
      scale: table.scale,
      columns: table.columns.map((c) => ({ key: c.key, title: c.title, kind: c.kind })),
      rows: table.rows.map((row) => ({ label: row.label, runs: row.runs, seeds: row.seeds, cells: row.cells })),
    },
    null,
    2,
  )}\n`;
}

export function renderResultsTable(table: ResultsTable, format: TableFormat): string {
  switch (format) {
    case "md":
      return renderMarkdown(table);
    case "csv":
      return renderCsv(table);
    case "latex":
      return renderLatex(table);
    case "json":
      return renderJson(table);
  }
}
