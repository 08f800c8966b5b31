/**
 * The scheduler: places runs on device slots, supervises attempts through an Executor, writes every
 * state change to the run store, and decides what an attempt's end means (retry, back off, fail).
 *
 * Order: longest-processing-time first when every run has an estimate of its work (the plan's
 * token estimate), which keeps a sweep's makespan near its lower bound; else the order given.
 * A run that does not fit the free devices is passed over for one that does (backfill).
 */
import os from "node:os";
import { smallerMicroBatch } from "../config/batch.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import { newestCompleteCheckpoint } from "../runs/checkpoints.ts";
import { BAD_INPUT_KINDS, ShimExit, type ShimEvent } from "../runs/events.ts";
import { nowIso, readJob, readStatus, updateStatus, type RunError, type RunRef, type RunStatus } from "../runs/store.ts";
import { hostOfDevices, isCpuDevice, type DevicePool } from "./devices.ts";
import type { Executor, JobHandle, JobResult } from "./executor.ts";

export type ScheduledRun = {
  run: RunRef;
  /** Relative amount of work (e.g. training tokens x steps); enables longest-first ordering. */
  estimatedWork?: number;
};

export type SchedulerHooks = {
  onEvent?(run: RunRef, event: ShimEvent): void;
  onStatus?(run: RunRef, status: RunStatus): void;
  /**
   * Called once a run has succeeded (the place for the Hub auto-push). Awaited, but whatever it
   * throws is reported through onHookError and never changes the run's state.
   */
  onRunSucceeded?(run: RunRef, status: RunStatus, job: JobSpec): Promise<void> | void;
  onHookError?(run: RunRef, error: unknown): void;
};

export type SchedulerOptions = SchedulerHooks & {
  executor: Executor;
  pool: DevicePool;
  /** How long jobs get to checkpoint after SIGTERM before SIGKILL (also after a second interrupt). */
  killGraceMs?: number;
  /** Minimum interval between status.json writes for progress events of one run. */
  progressWriteMs?: number;
};

export type SweepResult = {
  succeeded: RunRef[];
  failed: RunRef[];
  interrupted: RunRef[];
  /** Runs never started because the sweep was interrupted. */
  notStarted: RunRef[];
};

/** What an attempt's end means. */
export type Outcome =
  | { kind: "succeeded"; adapterPath: string | null }
  | { kind: "interrupted" }
  | { kind: "retry"; reason: "interrupted" | "lost" }
  | { kind: "oom" }
  | { kind: "failed"; error: Required<RunError> };

/** Decides what an attempt's end means; `stopRequested`: we (or `peftctl stop`) asked it to stop. */
export function classifyResult(result: JobResult, stopRequested: boolean): Outcome {
  const last = result.lastEvent;
  // Its host stopped answering: whatever the job does there, this attempt is lost to us.
  if (result.placementLost) return stopRequested ? { kind: "interrupted" } : { kind: "retry", reason: "lost" };
  if (result.exitCode === ShimExit.done) {
    return { kind: "succeeded", adapterPath: last?.type === "done" ? last.adapter_path : null };
  }
  const exitCode = shimExitCode(result);
  if (stopRequested && (exitCode === ShimExit.interrupted || exitCode === null)) return { kind: "interrupted" };
  const errorEvent = last?.type === "error" ? last : undefined;
  switch (exitCode) {
    case ShimExit.interrupted:
      return { kind: "retry", reason: "interrupted" };
    case ShimExit.outOfMemory:
      return { kind: "oom" };
    case ShimExit.badInput:
      // Not retried; a plain re-run retries it only where the shim says the job itself is fine (environment).
      return { kind: "failed", error: { kind: errorEvent?.kind ?? "spec", message: result.error ?? "bad job spec or data", retryable: errorEvent?.retryable ?? false } };
    case ShimExit.noSpace:
      // Retrying now would fill the disk again: the run fails, and the next `peftctl run` resumes it.
      return {
        kind: "failed",
        error: {
          kind: "disk_full",
          message: `${result.error ?? "no space left on the run's filesystem"}; free space there, then run peftctl run (or resume) again: it continues from the newest checkpoint`,
          retryable: true,
        },
      };
    case null:
      if (result.signal === null) {
        // Neither an exit code nor a signal: the process never started (no such Python, no permission).
        return { kind: "failed", error: { kind: "launch", message: result.error ?? "the shim could not be started", retryable: true } };
      }
      // Killed by a signal nobody here sent (the OOM killer, a node problem): the process was lost.
      return { kind: "retry", reason: "lost" };
    default:
      return {
        kind: "failed",
        error: {
          kind: errorEvent?.kind ?? "internal",
          message: result.error ?? `the shim exited with code ${result.exitCode}`,
          retryable: errorEvent?.retryable ?? true,
        },
      };
  }
}

/**
 * The shim's own exit code. torchrun (multi-GPU jobs) exits 1 whatever its workers exited with, so
 * there the last event tells: `interrupted` is exit 75, an `error` of kind oom exit 3, disk_full
 * exit 4, a bad-input kind (spec, data, fingerprint, environment) exit 2.
 */
function shimExitCode(result: JobResult): number | null {
  const last = result.lastEvent;
  if (result.exitCode === null || result.exitCode === ShimExit.done) return result.exitCode;
  if (last?.type === "interrupted") return ShimExit.interrupted;
  if (last?.type === "error" && last.kind === "oom") return ShimExit.outOfMemory;
  if (last?.type === "error" && last.kind === "disk_full") return ShimExit.noSpace;
  if (last?.type === "error" && (BAD_INPUT_KINDS as readonly string[]).includes(last.kind)) return ShimExit.badInput;
  return result.exitCode;
}

/** The micro-batch a run's next attempt trains with: that of its newest out-of-memory back-off, else job.json's. */
export function effectiveMicroBatchSize(job: Pick<JobSpec, "train">, status: Pick<RunStatus, "oom_backoffs">): number {
  return status.oom_backoffs.at(-1)?.micro_batch_size ?? job.train.micro_batch_size;
}

/** Longest first when every run has an estimate, else the given order (FIFO). */
export function orderRuns(runs: readonly ScheduledRun[]): ScheduledRun[] {
  const estimable = runs.length > 0 && runs.every((r) => typeof r.estimatedWork === "number" && r.estimatedWork > 0);
  if (!estimable) return [...runs];
  return [...runs].sort((a, b) => b.estimatedWork! - a.estimatedWork!);
}

type Active = { run: RunRef; handle?: JobHandle; devices: string[] };

export class Scheduler {
  private readonly options: SchedulerOptions;
  private readonly active = new Map<string, Active>();
  private stopping = false;
  private killTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  /** Retries spent per run dir, kept across placements (a run moved off a lost host keeps its count). */
  private readonly retriesUsed = new Map<string, number>();

  constructor(options: SchedulerOptions) {
    this.options = options;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  /**
   * First call: no new launches, SIGTERM to every running job (they checkpoint and exit 75), SIGKILL
   * after the grace period. A second call: SIGKILL now.
   */
  interrupt(): void {
    if (this.stopping) {
      this.killAll();
      return;
    }
    this.stopping = true;
    for (const entry of this.active.values()) entry.handle?.signal("SIGTERM");
    this.killTimer = setTimeout(() => this.killAll(), this.options.killGraceMs ?? 120_000);
    this.killTimer.unref();
    this.wake?.();
  }

  private killAll(): void {
    for (const entry of this.active.values()) entry.handle?.signal("SIGKILL");
  }

  async run(runs: readonly ScheduledRun[]): Promise<SweepResult> {
    const { pool } = this.options;
    const result: SweepResult = { succeeded: [], failed: [], interrupted: [], notStarted: [] };
    const pending = orderRuns(runs);
    const running = new Set<Promise<void>>();

    // GPUs per run, read once (a placement pass looks at every pending run).
    const gpusOf = new Map(pending.map((p) => [p.run.dir, readJob(p.run.dir).resources.gpus]));
    // Runs that can never fit fail before anything starts (and when lost hosts leave too few devices).
    const failUnsatisfiable = () => {
      for (const scheduled of [...pending]) {
        const gpus = gpusOf.get(scheduled.run.dir)!;
        if (!pool.satisfiable(gpus)) {
          pending.splice(pending.indexOf(scheduled), 1);
          const message = pool.cpuSlots === 0 ? "every host of resources.ssh stopped answering" : `needs ${gpus} GPUs; this host has ${pool.gpuCount}`;
          this.setStatus(scheduled.run, { state: "failed", ended_at: nowIso(), error: { kind: "resources", message, retryable: true } });
          result.failed.push(scheduled.run);
        }
      }
    };
    failUnsatisfiable();

    while ((pending.length > 0 && !this.stopping) || running.size > 0) {
      failUnsatisfiable();
      if (!this.stopping) {
        for (let i = 0; i < pending.length; ) {
          const scheduled = pending[i]!;
          const devices = pool.take(gpusOf.get(scheduled.run.dir)!);
          if (!devices) {
            i++;
            continue;
          }
          pending.splice(i, 1);
          const task = this.drive(scheduled.run, devices, result)
            .then((next) => {
              // Its host was lost: placed again, on the devices of another host.
              if (next === "place-again") pending.unshift(scheduled);
            })
            .finally(() => {
            pool.give(devices);
            running.delete(task);
            this.wake?.();
          });
          running.add(task);
        }
      }
      if (running.size === 0) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
    if (this.killTimer) clearTimeout(this.killTimer);
    result.notStarted.push(...pending.map((p) => p.run));
    return result;
  }

  private setStatus(run: RunRef, change: Partial<RunStatus> | ((current: RunStatus) => Partial<RunStatus>)): RunStatus {
    const status = updateStatus(run.dir, typeof change === "function" ? change : () => change);
    this.options.onStatus?.(run, status);
    return status;
  }

  /**
   * Runs attempts of one run until it succeeds, fails, is interrupted, or its retries are spent;
   * "place-again" when the host it ran on stopped answering (JobResult.placementLost).
   */
  private async drive(run: RunRef, devices: string[], result: SweepResult): Promise<void | "place-again"> {
    const entry: Active = { run, devices };
    this.active.set(run.dir, entry);
    let retriesUsed = this.retriesUsed.get(run.dir) ?? 0;
    try {
      await this.options.executor.prepare(run);
      for (;;) {
        // `peftctl stop` may have asked while the run was waiting for devices or between attempts.
        const before = readStatus(run.dir);
        if (this.stopping || before.stop_requested_at !== null) {
          this.setStatus(run, { state: "interrupted", pid: null, pid_start_time: null, ended_at: nowIso() });
          result.interrupted.push(run);
          return;
        }
        const job = readJob(run.dir);
        // A job an earlier controller left running where jobs outlive it (a Slurm job) is followed, not started again.
        const reattached = await this.options.executor.reattach?.(run, before);
        const attempt = reattached ? Math.max(1, before.attempts) : before.attempts + 1;
        const resume = newestCompleteCheckpoint(run.dir) !== undefined;
        const microBatchSize = effectiveMicroBatchSize(job, before);
        const processes = isCpuDevice(devices[0]) ? 1 : devices.length;
        const handle = reattached ?? (await this.options.executor.start({ run, attempt, resume, devices, processes, microBatchSize }));
        entry.handle = handle;
        if (this.stopping) handle.signal("SIGTERM");
        this.setStatus(run, {
          state: "running",
          attempts: attempt,
          host: hostOfDevices(devices) ?? os.hostname(),
          pid: handle.pid,
          pid_start_time: handle.pidStartTime,
          devices,
          started_at: before.started_at ?? nowIso(),
          ended_at: null,
          exit_code: null,
          signal: null,
          error: null,
        });
        this.follow(run, handle);
        const attemptResult = await handle.wait();
        entry.handle = undefined;
        await this.options.executor.collect(run);
        const stopRequested = this.stopping || readStatus(run.dir).stop_requested_at !== null;
        const outcome = classifyResult(attemptResult, stopRequested);
        const ended = { pid: null, pid_start_time: null, exit_code: attemptResult.exitCode, signal: attemptResult.signal };
        const retries = job.resources.retries;

        if (outcome.kind === "succeeded") {
          const status = this.setStatus(run, { ...ended, state: "succeeded", ended_at: nowIso(), adapter_path: outcome.adapterPath });
          result.succeeded.push(run);
          await this.runSucceededHook(run, status, job);
          return;
        }
        if (outcome.kind === "interrupted") {
          this.setStatus(run, { ...ended, state: "interrupted", ended_at: nowIso() });
          result.interrupted.push(run);
          return;
        }
        if (outcome.kind === "failed") {
          this.setStatus(run, { ...ended, state: "failed", ended_at: nowIso(), error: outcome.error });
          result.failed.push(run);
          return;
        }
        if (retriesUsed >= retries) {
          const why = outcome.kind === "oom" ? "out of memory" : outcome.reason === "lost" ? "the process was lost" : "interrupted";
          this.setStatus(run, {
            ...ended,
            state: "failed",
            ended_at: nowIso(),
            error: { kind: outcome.kind === "oom" ? "oom" : outcome.reason, message: `${why}; ${retries} retries spent (resources.retries)`, retryable: true },
          });
          result.failed.push(run);
          return;
        }
        if (outcome.kind === "oom") {
          const smaller = smallerMicroBatch(microBatchSize);
          if (smaller === undefined) {
            this.setStatus(run, {
              ...ended,
              state: "failed",
              ended_at: nowIso(),
              error: { kind: "oom", message: `out of memory at micro_batch_size ${microBatchSize}: ${attemptResult.error ?? ""}`.trim(), retryable: false },
            });
            result.failed.push(run);
            return;
          }
          // Only status.json records the back-off: job.json (and its fingerprint) stays as planned.
          this.setStatus(run, (current) => ({
            ...ended,
            state: "queued",
            oom_backoffs: [...current.oom_backoffs, { attempt, micro_batch_size: smaller, at: nowIso() }],
          }));
        } else {
          this.setStatus(run, { ...ended, state: "queued" });
        }
        retriesUsed += 1;
        if (attemptResult.placementLost) {
          this.options.pool.markLost(devices);
          this.retriesUsed.set(run.dir, retriesUsed);
          return "place-again";
        }
      }
    } finally {
      this.active.delete(run.dir);
    }
  }

  private async runSucceededHook(run: RunRef, status: RunStatus, job: JobSpec): Promise<void> {
    if (!this.options.onRunSucceeded) return;
    try {
      await this.options.onRunSucceeded(run, status, job);
    } catch (error) {
      this.options.onHookError?.(run, error);
    }
  }

  /** Mirrors events into status.json: progress at most every progressWriteMs, everything else at once. */
  private follow(run: RunRef, handle: JobHandle): void {
    const interval = this.options.progressWriteMs ?? 2_000;
    let lastWrite = 0;
    // The newest position, written with whatever status write comes next (progress writes are throttled).
    const position: Partial<Pick<RunStatus, "step" | "total_steps">> = {};
    handle.onEvent((event) => {
      this.options.onEvent?.(run, event);
      if (event.type === "progress") {
        position.step = event.step;
        position.total_steps = event.total_steps;
        if (Date.now() - lastWrite < interval) return;
      } else if (event.type === "eval" || event.type === "checkpoint" || event.type === "interrupted" || event.type === "done") {
        position.step = event.step;
      } else if (event.type === "start") {
        if (event.resumed_from_step !== null) position.step = event.resumed_from_step;
      } else if (event.type !== "error") {
        return;
      }
      lastWrite = Date.now();
      this.setStatus(run, (current) => ({
        ...position,
        ...(event.type === "eval" ? { best_eval_loss: current.best_eval_loss === null ? event.loss : Math.min(current.best_eval_loss, event.loss) } : {}),
      }));
    });
  }
}
