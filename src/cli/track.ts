/**
 * What `run` and `resume` do once run dirs exist: launch the sweep with live progress, log what the
 * launch code and the Hub auto-push report, then print the status table and the adapters, and turn
 * the outcome into an exit code (`sweepExitCode`).
 */
import { ExitCode } from "../errors.ts";
import { afterRunSucceeded } from "../hub/after-run.ts";
import { launchSweep, type SweepReport } from "../launch/sweep.ts";
import { log } from "../log.ts";
import { ProgressView } from "../report/progress.ts";
import { renderSweepSummary, statusRows } from "../report/status-table.ts";
import { BAD_INPUT_KINDS } from "../runs/events.ts";
import type { RunRef, RunStatus } from "../runs/store.ts";

export type TrackOptions = {
  json: boolean;
  estimates?: Map<string, number>;
  configPath?: string;
  cpuSlots?: number;
  retryFailed?: boolean;
};

export async function trackSweep(runs: RunRef[], options: TrackOptions): Promise<{ exitCode: number; report: SweepReport }> {
  const view = new ProgressView(runs, { mode: ProgressView.modeFor(options.json) });
  let report: SweepReport;
  try {
    report = await launchSweep({
      runs,
      estimates: options.estimates,
      configPath: options.configPath,
      cpuSlots: options.cpuSlots,
      retryFailed: options.retryFailed,
      handleSignals: true,
      onEvent: (run, event) => view.onEvent(run, event),
      onStatus: (run, status) => view.onStatus(run, status),
      onNotice: (run, message) => log().warn(run ? `${run.runId}: ${message}` : message),
      onRunSucceeded: async (run, _status, job) => {
        const notice = await afterRunSucceeded(run, job);
        if (notice) log()[notice.level](notice.message);
      },
      onHookError: (run, error) => log().warn(`${run.runId}: after-success hook failed (the run stays succeeded): ${error instanceof Error ? error.message : String(error)}`),
    });
  } finally {
    view.stop();
  }
  for (const { run, reason } of report.skipped) log().info(`${run.runId}: skipped (${reason})`);

  const rows = statusRows(runs);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ runs: rows, skipped: report.skipped.map((s) => ({ run: s.run.runId, reason: s.reason })) }, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${renderSweepSummary(rows)}`);
  }
  // The shim's own words for what the user has to fix, whole (the table cuts them short).
  for (const row of rows) {
    if (isBadInputFailure(row)) log().error(`${row.run_id}: ${row.error!.kind}: ${row.error!.message}`);
  }
  return { exitCode: sweepExitCode(rows, report.interruptedByUser), report };
}

function isBadInputFailure(status: Pick<RunStatus, "state" | "error">): boolean {
  return status.state === "failed" && status.error !== null && (BAD_INPUT_KINDS as readonly string[]).includes(status.error.kind);
}

/**
 * 130 when the user interrupted (Ctrl-C here or `peftctl stop` elsewhere), before failures; else 2
 * when every failed run was refused for bad input (spec, data, fingerprint, environment: a user
 * error, also beside runs that succeeded); 1 when any run failed otherwise; 0.
 */
export function sweepExitCode(statuses: ReadonlyArray<Pick<RunStatus, "state" | "error">>, interruptedByUser: boolean): number {
  if (interruptedByUser || statuses.some((s) => s.state === "interrupted")) return ExitCode.interrupted;
  const failed = statuses.filter((s) => s.state === "failed");
  if (failed.length === 0) return ExitCode.ok;
  return failed.every(isBadInputFailure) ? ExitCode.usage : ExitCode.failure;
}
