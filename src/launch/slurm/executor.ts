/**
 * The Slurm executor: each attempt of a run is one sbatch job on a cluster whose nodes share the
 * run dirs' filesystem (the usual Slurm setup). The job writes events.jsonl, stdout.log and
 * stderr.log in the run dir itself (--output/--error, --open-mode=append), so the controller follows
 * them as the local executor does, and one squeue call per interval (SlurmQueue) gives every job's state.
 *
 * Jobs outlive their controller by design: a restarted controller reattaches to the job ids that
 * status.json records (and finds an unrecorded one by its job name), so no run is submitted twice.
 * A requeue (preemption, `scontrol requeue`, or exit 75 where the cluster sets RequeueExit=75) runs
 * the same batch script again, which resumes from the newest checkpoint; the handle follows the job
 * through it. Where the cluster does not requeue, exit 75 ends the job and the scheduler's retry
 * submits a new one.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ShimExit, type ShimEvent } from "../../runs/events.ts";
import { EventTail, fileSize } from "../../runs/follow.ts";
import { nowIso, readEvents, readJob, readStatus, updateStatus, writeFileAtomic, type RunRef, type RunStatus, type SlurmRecord } from "../../runs/store.ts";
import { shimEnv } from "../../shim.ts";
import { containerCommand, passedByName } from "../container.ts";
import { DevicePool } from "../devices.ts";
import type { Executor, JobHandle, JobResult, StartRequest } from "../executor.ts";
import { shimCommand, taskFiles } from "../local.ts";
import { isFinalState, jobEnd, liveJobsNamed, queueStates, queueStatesSync, signalJob, signalJobSync, submitJob, type JobEnd, type QueueEntry } from "./commands.ts";
import { SlurmQueue } from "./queue.ts";
import { batchScript, RUN_DIR_NOT_VISIBLE_EXIT, sbatchArgs, slurmJobName, VISIBILITY_TOKEN_FILE } from "./script.ts";

export type SlurmExecutorOptions = {
  env?: NodeJS.ProcessEnv;
  /** How often squeue is asked (one call for all jobs) and events.jsonl read. */
  pollMs?: number;
  /** How long squeue may keep failing before an attempt is given up as lost (its job may still run: the next `run` reattaches). */
  unreachableMs?: number;
};

/** Slurm places jobs itself: every run gets a slot at once and waits in the cluster's queue, not ours. */
class ClusterPool extends DevicePool {
  constructor() {
    super([], Number.POSITIVE_INFINITY);
  }
  override satisfiable(): boolean {
    return true;
  }
  override take(_gpus: number): string[] {
    return ["slurm"];
  }
  override give(): void {}
}

/** status.json's slurm.state between writing the intent to submit and sbatch's answer. */
const SUBMITTING = "SUBMITTING";

type Files = { dir: string; events: string; stdout: string; stderr: string };

/** The last lines of a log written since `fromOffset`. */
function logTail(file: string, fromOffset: number, lines = 15): string {
  try {
    return readFileSync(file).subarray(fromOffset).toString("utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/** The exit code a job that vanished from Slurm's records most likely had, from the last event it wrote. */
function exitFromEvent(last: ShimEvent | undefined): number | null {
  if (!last) return null;
  if (last.type === "done") return ShimExit.done;
  if (last.type === "interrupted") return ShimExit.interrupted;
  if (last.type === "error") return last.kind === "oom" ? ShimExit.outOfMemory : last.kind === "internal" ? 1 : ShimExit.badInput;
  return null;
}

export class SlurmExecutor implements Executor {
  readonly kind = "slurm";
  private readonly env: NodeJS.ProcessEnv;
  private readonly pollMs: number;
  private readonly unreachableMs: number;
  private readonly queue: SlurmQueue;

  constructor(options: SlurmExecutorOptions = {}) {
    this.env = options.env ?? process.env;
    this.pollMs = options.pollMs ?? 1_000;
    this.unreachableMs = options.unreachableMs ?? 120_000;
    this.queue = new SlurmQueue(this.env, this.pollMs);
  }

  async prepare(_run: RunRef): Promise<void> {}

  async collect(_run: RunRef): Promise<void> {}

  devicePool(): DevicePool {
    return new ClusterPool();
  }

  private liveEntrySync(status: RunStatus): QueueEntry | undefined {
    const id = status.slurm?.job_id;
    if (!id) return undefined;
    const entry = queueStatesSync([id], this.env).get(id);
    return entry && !isFinalState(entry.state) ? entry : undefined;
  }

  recordedAlive(run: RunRef, status: RunStatus): boolean {
    const entry = this.liveEntrySync(status);
    if (!entry) return false;
    // A stopped job back in the queue (its exit 75 under RequeueExit=75) is not to run again: cancelled, it has ended.
    if (entry.state === "PENDING" && readStatus(run.dir).stop_requested_at !== null) {
      signalJobSync(entry.jobId, "SIGKILL", true, this.env);
      return false;
    }
    return true;
  }

  signalRecorded(_run: RunRef, status: RunStatus, signal: NodeJS.Signals): boolean {
    const entry = this.liveEntrySync(status);
    if (!entry) return false;
    signalJobSync(entry.jobId, signal, entry.state === "PENDING", this.env);
    return true;
  }

  async reattach(run: RunRef, status: RunStatus): Promise<JobHandle | undefined> {
    if (!status.slurm) return undefined;
    let live: QueueEntry | undefined;
    if (status.slurm.state === SUBMITTING) {
      // A controller killed between sbatch and recording the job's id: the job has the run's name.
      live = (await liveJobsNamed(slurmJobName(readJob(run.dir)), this.env))[0];
    } else {
      live = (await queueStates([status.slurm.job_id], this.env)).get(status.slurm.job_id);
      if (live && isFinalState(live.state)) live = undefined;
    }
    if (!live) return undefined;
    const files = taskFiles({ run } as StartRequest);
    const submittedAt = status.slurm?.job_id === live.jobId ? status.slurm.submitted_at : nowIso();
    this.record(run, { job_id: live.jobId, state: live.state, reason: live.reason, nodes: live.nodes, submitted_at: submittedAt });
    return this.follow(run, live.jobId, files, { train: true, lastEvent: readEvents(run.dir).at(-1), submittedAt });
  }

  async start(request: StartRequest): Promise<JobHandle> {
    const { run } = request;
    const job = readJob(run.dir);
    const task = request.task?.kind ?? "train";
    const train = task === "train";
    const files = taskFiles(request);
    const processes = train ? Math.max(1, job.resources.gpus) : 1;
    const shim = shimCommand({ ...request, processes }, job.train.micro_batch_size, this.env);
    // In a container the node's own GPUs (gres: CUDA_VISIBLE_DEVICES) are handed in at run time (container.ts).
    const command = job.resources.container
      ? containerCommand({
          command: shim,
          container: job.resources.container,
          job,
          task,
          gpus: { inherit: train ? job.resources.gpus : Math.min(1, job.resources.gpus) },
          env: { PEFTCTL_NPROC: String(processes) },
          passEnv: passedByName(this.env),
        })
      : shim;
    const token = randomUUID();
    writeFileAtomic(path.join(run.dir, VISIBILITY_TOKEN_FILE), `${token}\n`);
    const script = batchScript({ runDir: run.dir, command, token, processes, gpus: train ? job.resources.gpus : Math.min(1, job.resources.gpus) });
    // Intent first: a controller killed before it records the job id leaves this, and the next one
    // looks the job up by its name instead of submitting it again (reattach).
    if (train) this.record(run, { job_id: "", state: SUBMITTING, reason: null, nodes: null, submitted_at: nowIso() });
    let jobId: string;
    try {
      jobId = await submitJob(script, sbatchArgs(job, files, task), shimEnv(this.env));
    } catch (error) {
      if (train) this.record(run, { job_id: "", state: "REFUSED", reason: null, nodes: null, submitted_at: nowIso() });
      return endedHandle({ failed: true, exitCode: null, signal: null, durationMs: 0, lastEvent: undefined, error: error instanceof Error ? error.message : String(error) });
    }
    const submittedAt = nowIso();
    if (train) this.record(run, { job_id: jobId, state: "PENDING", reason: null, nodes: null, submitted_at: submittedAt });
    return this.follow(run, jobId, files, { train, lastEvent: undefined, submittedAt });
  }

  private record(run: RunRef, slurm: SlurmRecord): void {
    updateStatus(run.dir, () => ({ slurm }));
  }

  /** Follows one Slurm job to its end, through requeues. */
  private follow(run: RunRef, jobId: string, files: Files, options: { train: boolean; lastEvent: ShimEvent | undefined; submittedAt: string }): JobHandle {
    const startedAt = Date.now();
    const tail = new EventTail(files.events);
    const stderrOffset = fileSize(files.stderr);
    const listeners: Array<(event: ShimEvent) => void> = [];
    let lastEvent = options.lastEvent;
    let eventsSeen = 0;
    let errorEvent: Extract<ShimEvent, { type: "error" }> | undefined;
    let stopping = false;
    let seen: QueueEntry | undefined;
    let failingSince: number | undefined;
    let ending = false;

    const deliver = () => {
      let events: ShimEvent[];
      try {
        events = tail.poll();
      } catch {
        return; // events.jsonl briefly unreadable: the next poll reads it
      }
      for (const event of events) {
        lastEvent = event;
        eventsSeen += 1;
        if (event.type === "error") errorEvent = event;
        // A requeued job's shim counts its attempt up (SLURM_RESTART_COUNT): status.json's attempts follows it.
        if (event.type === "start" && options.train) updateStatus(run.dir, (current) => (event.attempt > current.attempts ? { attempts: event.attempt } : {}));
        for (const listener of listeners) listener(event);
      }
    };
    const stopAsked = () => stopping || readStatus(run.dir).stop_requested_at !== null;

    const resultOf = (end: JobEnd | undefined): JobResult => {
      const base = { durationMs: Date.now() - startedAt, lastEvent };
      const failure = (exitCode: number | null, signal: string | null, error?: string): JobResult => ({
        ...base,
        failed: exitCode !== ShimExit.done,
        exitCode,
        signal,
        error: exitCode === ShimExit.done ? undefined : (error ?? errorEvent?.message ?? (logTail(files.stderr, stderrOffset) || undefined)),
      });
      if (!end) {
        // slurmctld forgot the job and there is no accounting: its last event tells what it did.
        const code = exitFromEvent(lastEvent);
        return code === null ? failure(null, "SIGKILL", `Slurm job ${jobId} is gone from squeue and sacct without an exit code`) : failure(code, null);
      }
      const node = seen?.nodes ? ` on ${seen.nodes}` : "";
      if (end.exitCode === RUN_DIR_NOT_VISIBLE_EXIT || (end.reason === "JobLaunchFailure" && eventsSeen === 0)) {
        return failure(
          ShimExit.badInput,
          null,
          `Slurm job ${jobId} could not use the run dir ${run.dir}${node}: the runs dir must be on a filesystem the nodes share (see README, 'Running on a Slurm cluster'); pass --runs-dir DIR on such a filesystem`,
        );
      }
      if (end.state === "CANCELLED") {
        if (stopAsked()) return failure(lastEvent?.type === "interrupted" ? ShimExit.interrupted : null, "SIGTERM");
        return failure(1, null, `Slurm job ${jobId} was cancelled outside peftctl (scancel); 'peftctl run' again starts it anew`);
      }
      if (end.state === "TIMEOUT" && end.exitCode !== ShimExit.interrupted) {
        return failure(null, end.signal ?? "SIGKILL", `Slurm job ${jobId} reached its time limit before it could checkpoint: raise resources.slurm.time or signal_grace_s`);
      }
      return failure(end.exitCode, end.signal);
    };

    const done = new Promise<JobResult>((resolve) => {
      const finish = async (end: JobEnd | undefined, overrideError?: string) => {
        unfollow();
        deliver();
        if (options.train) {
          updateStatus(run.dir, (current) =>
            current.slurm?.job_id === jobId ? { slurm: { ...current.slurm, state: end?.state ?? "UNKNOWN", reason: end?.reason ?? null } } : {},
          );
        }
        const result = resultOf(end);
        resolve(overrideError ? { ...result, failed: true, exitCode: null, signal: null, error: overrideError } : result);
      };
      const unfollow = this.queue.follow(jobId, (report) => {
        deliver();
        if (ending) return;
        if ("error" in report) {
          failingSince ??= Date.now();
          if (Date.now() - failingSince > this.unreachableMs) {
            ending = true;
            const message = report.error instanceof Error ? report.error.message : String(report.error);
            void finish(undefined, `cannot reach Slurm for ${Math.round(this.unreachableMs / 1000)} s (${message}); job ${jobId} may still run: 'peftctl run' again reattaches to it`);
          }
          return;
        }
        failingSince = undefined;
        const entry = report.entry;
        if (entry && !isFinalState(entry.state)) {
          if (options.train && (entry.state !== seen?.state || entry.reason !== seen?.reason || entry.nodes !== seen?.nodes)) {
            this.record(run, { job_id: jobId, state: entry.state, reason: entry.reason, nodes: entry.nodes, submitted_at: options.submittedAt });
          }
          // A stopped job that went back to the queue (its exit 75 under RequeueExit=75) is not to run again.
          if (entry.state === "PENDING" && seen && seen.state !== "PENDING" && stopAsked()) void signalJob(jobId, "SIGKILL", true, this.env).catch(() => {});
          seen = entry;
          return;
        }
        ending = true;
        void jobEnd(jobId, this.env)
          .catch(() => undefined)
          .then((end) => finish(end));
      });
    });

    return {
      pid: null,
      pidStartTime: null,
      onEvent: (listener) => listeners.push(listener),
      signal: (signal) => {
        stopping = true;
        void signalJob(jobId, signal, seen === undefined || seen.state === "PENDING", this.env).catch(() => {});
      },
      wait: () => done,
    };
  }
}

/** The handle of an attempt that never reached the cluster (sbatch refused it). */
function endedHandle(result: JobResult): JobHandle {
  return { pid: null, pidStartTime: null, onEvent: () => {}, signal: () => {}, wait: async () => result };
}
