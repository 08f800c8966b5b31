/** The status table of `peftctl status`, and the summary at the end of `peftctl run` / `resume`. */
import os from "node:os";
import { isSameProcessAlive } from "../runs/proc.ts";
import { readStatus, type RunRef, type RunStatus } from "../runs/store.ts";
import { formatDuration, renderTable } from "./format.ts";

export type StatusRow = RunStatus & { dir: string; elapsed_s: number | null };

export function statusRows(runs: readonly RunRef[], now = Date.now()): StatusRow[] {
  return runs.map((run) => {
    const status = readStatus(run.dir);
    const start = status.started_at ? Date.parse(status.started_at) : null;
    const end = status.state === "running" ? now : status.ended_at ? Date.parse(status.ended_at) : now;
    return Object.assign(status, { dir: run.dir, elapsed_s: start === null ? null : (end - start) / 1000 }); // status is this row's own copy
  });
}

export function renderStatusTable(rows: readonly StatusRow[]): string {
  return renderTable(
    ["RUN", "STATE", "STEP", "BEST EVAL", "ELAPSED", "DEVICE", "NOTE"],
    rows.map((row) => [
      `${row.experiment}/${row.run_id}`,
      row.state,
      row.step === null ? "-" : `${row.step}/${row.total_steps ?? "?"}`,
      row.best_eval_loss === null ? "-" : row.best_eval_loss.toFixed(4),
      formatDuration(row.elapsed_s),
      row.slurm?.nodes && row.state === "running" ? row.slurm.nodes : row.devices.length > 0 ? row.devices.join(",") : "-",
      note(row),
    ]),
  );
}

/** A Slurm run's job as squeue last showed it: "slurm 1234 PENDING (Resources)". */
export function slurmNote(slurm: NonNullable<RunStatus["slurm"]>): string {
  return `slurm ${slurm.job_id} ${slurm.state}${slurm.reason ? ` (${slurm.reason})` : ""}`;
}

function note(row: StatusRow): string {
  if (row.slurm && (row.state === "running" || row.state === "queued")) return slurmNote(row.slurm);
  if (row.state === "running" && !row.slurm && row.host === os.hostname() && !isSameProcessAlive(row.pid, row.pid_start_time)) {
    return "process gone (its controller died?): 'peftctl resume' settles and resumes it";
  }
  if (row.error) return `${row.error.kind}: ${row.error.message.split("\n")[0]!.slice(0, 80)}`;
  const notes: string[] = [];
  // job.json keeps the planned micro-batch; after out-of-memory back-offs only status.json knows the one in use.
  const backoff = row.oom_backoffs.at(-1);
  if (backoff) notes.push(`oom: micro-batch ${backoff.micro_batch_size}`);
  if (row.attempts > 1) notes.push(`${row.attempts} attempts`);
  return notes.join(", ");
}

/** The end of a sweep: the status table, then where the adapters of succeeded runs are. */
export function renderSweepSummary(rows: readonly StatusRow[]): string {
  const adapters = rows.filter((row) => row.state === "succeeded" && row.adapter_path);
  const adapterLines = adapters.length > 0 ? `\nadapters:\n${adapters.map((row) => `  ${row.run_id}: ${row.adapter_path}`).join("\n")}\n` : "";
  return `${renderStatusTable(rows)}\n${adapterLines}`;
}
