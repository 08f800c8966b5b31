/**
 * Shims left behind by a controller that was killed (kill -9, a lost SSH session).
 *
 * Choice: a new controller STOPS an orphan rather than adopting it. It sends SIGTERM to the
 * orphan's process group (the shim checkpoints and exits 75), waits, escalates to SIGKILL after the
 * grace period, and then the run is resumed from its newest checkpoint like any interrupted run.
 * Adopting would leave the new controller unable to know the exit code, to place the job on its own
 * device slots, or to apply retries; stopping keeps one code path (start, follow, classify) and the
 * cost is at most the steps since the orphan's checkpoint. An orphan that finished while no
 * controller watched is judged by its last event: `done` -> succeeded, anything else -> interrupted.
 *
 * The executor signals it (Executor.signalRecorded), so a reused pid is never signalled.
 * The exception is a job that outlives its controller by design, a Slurm job: it keeps its place in
 * the cluster's queue and the scheduler reattaches to it (Executor.reattach); only its end is settled here.
 */
import { nowIso, readEvents, readJob, readStatus, updateStatus, type RunRef, type RunStatus } from "../runs/store.ts";
import type { Executor } from "./executor.ts";
import { executorFor, recordedJobAlive, waitForRecordedEnd } from "./executors.ts";

export type OrphanOutcome = "none" | "stopped" | "finished";

export type ReclaimOptions = { graceMs?: number; executor?: Executor };

/** Stops a still-running shim of a dead controller and settles the run's state. Call with the run's lock held. */
export async function reclaimOrphan(run: RunRef, options: ReclaimOptions = {}): Promise<{ outcome: OrphanOutcome; status: RunStatus }> {
  const status = readStatus(run.dir);
  if (status.state !== "running") return { outcome: "none", status };
  const executor = options.executor ?? executorFor(readJob(run.dir).resources);
  // A job that outlives its controller by design (Slurm) is reattached to by the scheduler, not stopped.
  if (executor.reattach && recordedJobAlive(executor, run, status)) return { outcome: "none", status };
  let outcome: OrphanOutcome = "finished";
  if (executor.signalRecorded(run, status, "SIGTERM")) {
    outcome = "stopped";
    if (!(await waitForRecordedEnd(executor, run, status, options.graceMs ?? 120_000))) {
      executor.signalRecorded(run, status, "SIGKILL");
      await waitForRecordedEnd(executor, run, status, 10_000);
    }
  }
  const last = readEvents(run.dir).at(-1);
  const settled = updateStatus(run.dir, () =>
    last?.type === "done"
      ? { state: "succeeded", pid: null, pid_start_time: null, ended_at: nowIso(), step: last.step, adapter_path: last.adapter_path }
      : { state: "interrupted", pid: null, pid_start_time: null, ended_at: nowIso(), ...(last && "step" in last ? { step: last.step } : {}) },
  );
  return { outcome, status: settled };
}
