/**
 * `peftctl stop`: SIGTERM, through the executor, to the shims that status.json records as running
 * (Executor.signalRecorded: a reused pid is never signalled). The shim checkpoints and exits 75.
 * The run's controller, when one is alive, sees stop_requested_at and marks the run interrupted
 * instead of retrying; when none is (an orphan), stop settles the run itself once the shim has exited.
 */
import { isHolderAlive, lockHolder, acquireRunLock } from "../runs/lock.ts";
import { nowIso, readJob, readStatus, updateStatus, type RunRef, type RunState } from "../runs/store.ts";
import type { Executor } from "./executor.ts";
import { executorFor, recordedJobAlive, waitForRecordedEnd } from "./executors.ts";
import { reclaimOrphan } from "./orphans.ts";

export type StopResult = { run: RunRef; outcome: "stopped" | "killed" | "dequeued" | "not running"; state: RunState };

async function waitUntil(predicate: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (predicate()) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return predicate();
}

export type StopOptions = { waitMs?: number; executor?: Executor; env?: NodeJS.ProcessEnv };

export async function stopRuns(runs: readonly RunRef[], options: StopOptions = {}): Promise<StopResult[]> {
  const waitMs = options.waitMs ?? 120_000;
  const executors = new Map(runs.map((run) => [run, options.executor ?? executorFor(readJob(run.dir).resources, options.env)]));
  const executorOf = (run: RunRef) => executors.get(run)!;
  const current = runs.map((run) => ({ run, status: readStatus(run.dir) }));
  const targets = current.filter(({ run, status }) => status.state === "running" && recordedJobAlive(executorOf(run), run, status));
  // Queued runs of a live controller first, so that stopping a running one frees no slot for them.
  const dequeued = new Set<RunRef>();
  for (const { run, status } of current) {
    const holder = lockHolder(run.dir);
    if (status.state === "queued" && holder && isHolderAlive(holder)) {
      updateStatus(run.dir, () => ({ stop_requested_at: nowIso() }));
      dequeued.add(run);
    }
  }
  for (const { run, status } of targets) {
    updateStatus(run.dir, () => ({ stop_requested_at: nowIso() }));
    executorOf(run).signalRecorded(run, status, "SIGTERM");
  }
  const results: StopResult[] = [];
  for (const run of runs) {
    const target = targets.find((t) => t.run === run);
    if (!target) {
      // A dequeued run's controller checks stop_requested_at before launching it.
      if (dequeued.has(run)) await waitUntil(() => readStatus(run.dir).state !== "queued", 5_000);
      results.push({ run, outcome: dequeued.has(run) ? "dequeued" : "not running", state: readStatus(run.dir).state });
      continue;
    }
    const executor = executorOf(run);
    let outcome: StopResult["outcome"] = "stopped";
    if (!(await waitForRecordedEnd(executor, run, target.status, waitMs))) {
      executor.signalRecorded(run, target.status, "SIGKILL");
      outcome = "killed";
      await waitForRecordedEnd(executor, run, target.status, 10_000);
    }
    const holder = lockHolder(run.dir);
    if (holder && isHolderAlive(holder)) {
      // Its controller records the end; give it a moment so the state we print is the settled one.
      await waitUntil(() => readStatus(run.dir).state !== "running", 10_000);
    } else {
      const lock = acquireRunLock(run.dir, "peftctl stop");
      try {
        await reclaimOrphan(run, { graceMs: 0, executor });
      } finally {
        lock.release();
      }
    }
    results.push({ run, outcome, state: readStatus(run.dir).state });
  }
  return results;
}
