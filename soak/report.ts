/** Trials, their verdicts, and the closing table (class -> tried / failed / seconds, then every failure with its replay). */
export type Failure = { trial: string; problem: string; replay: string };
export type ClassResult = { name: string; tried: number; failed: Failure[]; seconds: number; notes: string[] };

export class Tally {
  tried = 0;
  readonly failed: Failure[] = [];
  readonly notes: string[] = [];
  /** Records one trial: `problems` empty means it passed. */
  record(trial: string, problems: string[], replay: string): void {
    this.tried++;
    if (problems.length > 0) this.failed.push({ trial, problem: problems.join("; "), replay });
  }
  note(line: string): void {
    this.notes.push(line);
    console.log(`  ${line}`);
  }
}

export function renderTable(results: ClassResult[]): string {
  const rows = [["CLASS", "TRIED", "FAILED", "SECONDS"], ...results.map((r) => [r.name, String(r.tried), String(r.failed.length), r.seconds.toFixed(0)])];
  const total = results.reduce((sum, r) => ({ tried: sum.tried + r.tried, failed: sum.failed + r.failed.length, seconds: sum.seconds + r.seconds }), { tried: 0, failed: 0, seconds: 0 });
  rows.push(["total", String(total.tried), String(total.failed), total.seconds.toFixed(0)]);
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const lines = rows.map((row) => row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join("  "));
  const out = [lines.join("\n")];
  for (const r of results) {
    for (const note of r.notes) out.push(`${r.name}: ${note}`);
  }
  const failures = results.flatMap((r) => r.failed.map((f) => ({ ...f, name: r.name })));
  if (failures.length > 0) {
    out.push("", "FAILURES");
    for (const f of failures) out.push(`- [${f.name}] ${f.trial}: ${f.problem}\n    replay: ${f.replay}`);
  }
  return out.join("\n");
}
