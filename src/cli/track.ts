/**
 * What `run` and `resume` do once run dirs exist: launch the sweep with live progress, log what the
 * launch code and the Hub auto-push report, then print the status table and the adapters, and turn
 * the outcome into an exit code (0 all succeeded, 1 any failed, 130 any interrupted by the user:
 * Ctrl-C or `peftctl stop`).
 */
import { ExitCode } from "../errors.ts";
import { afterRunSucceeded } from "../hub/after-run.ts";
import { launchSweep, type SweepReport } from "../launch/sweep.ts";
import { log } from "../log.ts";
import { ProgressView } from "../report/progress.ts";
import { renderSweepSummary, statusRows } from "../report/status-table.ts";
import type { RunRef } from "../runs/store.ts";

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
  const anyFailed = rows.some((r) => r.state === "failed");
  // Interrupted by the user, through Ctrl-C here or `peftctl stop` elsewhere: 130, before failures.
  const anyInterrupted = report.interruptedByUser || rows.some((r) => r.state === "interrupted");
  const exitCode = anyInterrupted ? ExitCode.interrupted : anyFailed ? ExitCode.failure : ExitCode.ok;
  return { exitCode, report };
}
