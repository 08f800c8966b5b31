/**
 * One controller session over prepared runs (what `run` and `resume` share): take the run locks,
 * settle orphans of a dead controller, skip what is done, launch the rest through the scheduler,
 * and turn Ctrl-C into a clean stop.
 *
 * Idempotent: succeeded runs are skipped, interrupted and retryable-failed runs resume from their
 * newest valid checkpoint, and the per-run lock means no run is ever driven by two controllers.
 */
import { acquireRunLock, type RunLock } from "../runs/lock.ts";
import { collectEnvironment, writeEnvironment } from "../runs/env.ts";
import { readJob, readStatus, updateStatus, type RunRef } from "../runs/store.ts";
import { shimPython } from "../shim.ts";
import { DevicePool, detectGpus } from "./devices.ts";
import type { Executor } from "./executor.ts";
import { executorForJobs } from "./executors.ts";
import { reclaimOrphan } from "./orphans.ts";
import { Scheduler, type SchedulerHooks, type ScheduledRun, type SweepResult } from "./scheduler.ts";

export type SweepOptions = SchedulerHooks & {
  runs: RunRef[];
  /** Relative work per run dir (the plan's estimate), for longest-first ordering. */
  estimates?: Map<string, number>;
  env?: NodeJS.ProcessEnv;
  executor?: Executor;
  /** Concurrent CPU jobs (default: $PEFTCTL_CPU_SLOTS or 1). */
  cpuSlots?: number;
  /** Also retry runs that failed with a non-retryable error (bad spec or data, since fixed). */
  retryFailed?: boolean;
  /** For env.json's git commit. */
  configPath?: string;
  killGraceMs?: number;
  orphanGraceMs?: number;
  /** Install SIGINT/SIGTERM handlers (the CLI); tests drive interrupt() themselves. */
  handleSignals?: boolean;
  /** Receives the scheduler as soon as it exists (tests, and callers that want to interrupt). */
  onScheduler?(scheduler: Scheduler): void;
  /**
   * What the user should hear that is no state change: a stopped orphan, GPU jobs on the CPU, a
   * Ctrl-C. Launch code shows nothing itself: the caller shows these. `run` when it is about one run.
   */
  onNotice?(run: RunRef | undefined, message: string): void;
};

export type SweepReport = SweepResult & {
  skipped: Array<{ run: RunRef; reason: string }>;
  interruptedByUser: boolean;
};

export async function launchSweep(options: SweepOptions): Promise<SweepReport> {
  const env = options.env ?? process.env;
  const inventory = await detectGpus(env);
  const cpuSlots = options.cpuSlots ?? (Number(env.PEFTCTL_CPU_SLOTS) || 1);
  const executor = options.executor ?? executorForJobs(options.runs.map((run) => readJob(run.dir)), env);
  const pool =
    executor.devicePool?.() ??
    new DevicePool(
      inventory.gpus.map((g) => g.id),
      cpuSlots,
    );

  const locks: RunLock[] = [];
  try {
    for (const run of options.runs) locks.push(acquireRunLock(run.dir));
  } catch (error) {
    for (const lock of locks) lock.release();
    throw error;
  }

  const report: SweepReport = { succeeded: [], failed: [], interrupted: [], notStarted: [], skipped: [], interruptedByUser: false };
  const removeHandlers: Array<() => void> = [];
  try {
    const toRun: ScheduledRun[] = [];
    // All orphans at once: each may take the whole grace period to checkpoint.
    const reclaimed = await Promise.all(options.runs.map((run) => reclaimOrphan(run, { graceMs: options.orphanGraceMs, executor })));
    for (const [index, run] of options.runs.entries()) {
      const { outcome, status } = reclaimed[index]!;
      if (outcome === "stopped") options.onNotice?.(run, "stopped the shim left running by a controller that died; it resumes from its checkpoint");
      if (status.state === "succeeded") {
        report.skipped.push({ run, reason: "succeeded already" });
        continue;
      }
      if (status.state === "failed" && status.error?.retryable === false && !options.retryFailed) {
        report.skipped.push({ run, reason: `failed: ${status.error.message} (fix it, then run with --retry-failed)` });
        continue;
      }
      updateStatus(run.dir, () => ({ state: "queued", stop_requested_at: null }));
      toRun.push({ run, estimatedWork: options.estimates?.get(run.dir) });
    }

    const gpuJobs = toRun.filter((r) => readJob(r.run.dir).resources.gpus > 0).length;
    if (gpuJobs > 0 && inventory.gpus.length === 0 && !executor.devicePool) {
      options.onNotice?.(undefined, `no GPU found (nvidia-smi): ${gpuJobs} job(s) asking for GPUs run on the CPU, ${pool.cpuSlots} at a time (--cpu-slots)`);
    }
    if (toRun.length > 0) {
      const environment = await collectEnvironment({ python: shimPython(env), configPath: options.configPath, gpus: inventory.gpus });
      for (const { run } of toRun) writeEnvironment(run.dir, environment);
    }

    const scheduler = new Scheduler({ ...options, executor, pool });
    options.onScheduler?.(scheduler);
    if (options.handleSignals) {
      const onSignal = (signal: NodeJS.Signals) => {
        report.interruptedByUser = true;
        if (!scheduler.isStopping) {
          options.onNotice?.(undefined, `${signal}: stopping; running jobs save a checkpoint and stop (press Ctrl-C again to kill them now)`);
        } else {
          options.onNotice?.(undefined, `${signal} again: killing running jobs`);
        }
        scheduler.interrupt();
      };
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, onSignal);
        removeHandlers.push(() => process.off(signal, onSignal));
      }
    }
    const result = await scheduler.run(toRun);
    report.interruptedByUser ||= scheduler.isStopping;
    Object.assign(report, result);
    for (const run of result.notStarted) updateStatus(run.dir, () => ({ state: readStatus(run.dir).attempts > 0 ? "interrupted" : "queued" }));
    return report;
  } finally {
    for (const remove of removeHandlers) remove();
    for (const lock of locks) lock.release();
  }
}
