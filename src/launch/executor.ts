/**
 * What the scheduler needs from a place that runs shims. The local executor (local.ts) is the first;
 * SSH hosts and Slurm fit the same shape: prepare copies the run dir over, start launches the shim
 * there, the handle follows events.jsonl (tail over SSH, or the shared filesystem), signal sends a
 * signal (kill over SSH, scancel --signal), signalRecorded does the same for a job of an earlier
 * controller from what status.json recorded, collect copies the run dir back. The scheduler and the
 * run store never see which one it is.
 */
import type { ShimEvent } from "../runs/events.ts";
import type { RunRef, RunStatus } from "../runs/store.ts";
import type { DevicePool } from "./devices.ts";

/**
 * What the shim is started for: training (`train`, the default), or `generate` for `peftctl eval`:
 * responses written to `outDir` (settings.json, generations.jsonl, events.jsonl, stdout.log,
 * stderr.log), `args` the generate subcommand's own (--split, --limit, --adapter | --base). A generate
 * task runs in one process on the first of `devices`.
 */
export type ShimTask = { kind: "train" } | { kind: "generate"; outDir: string; /** the job the shim reads; default: the run's job.json */ jobFile?: string; args: string[] };

export type StartRequest = {
  run: RunRef;
  /** 1-based; passed to the shim as --attempt. */
  attempt: number;
  /** Pass --resume: continue from the newest valid checkpoint. */
  resume: boolean;
  /** Device ids from the pool: GPU ids (CUDA_VISIBLE_DEVICES), or ["cpu"]. */
  devices: string[];
  /** Processes per job (torchrun --nproc_per_node) when > 1. */
  processes: number;
  /** The micro-batch this attempt trains with: job.json's, or a smaller one after running out of memory. */
  microBatchSize: number;
  /** Default: train. */
  task?: ShimTask;
};

/** How one attempt ended. Never thrown: a failed job is data, not an exception. */
export type JobResult = {
  failed: boolean;
  /** null when unknowable (the process was not our child, or it was killed by a signal). */
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  lastEvent: ShimEvent | undefined;
  /** The shim's error event message, else the tail of stderr, else what went wrong around it. */
  error: string | undefined;
  /**
   * The place the job ran on stopped answering (an SSH host past resources.ssh.lost_after_s): the
   * attempt counts as lost, and the scheduler places the retry on another host's devices.
   */
  placementLost?: boolean;
};

export interface JobHandle {
  /** The shim's process id (leader of its process group) where there is one. */
  readonly pid: number | null;
  readonly pidStartTime: number | null;
  /** Called for every event the attempt emits, in order. */
  onEvent(listener: (event: ShimEvent) => void): void;
  /** SIGTERM: checkpoint and exit 75; SIGKILL: now. Reaches every process of the job. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves when the attempt has ended and its last events were delivered. */
  wait(): Promise<JobResult>;
}

export interface Executor {
  readonly kind: string;
  /** Makes the run dir available where the job runs (a no-op locally). */
  prepare(run: RunRef): Promise<void>;
  start(request: StartRequest): Promise<JobHandle>;
  /**
   * Signals the job that a run's status records as running: one started by an earlier controller
   * (an orphan, or a job `peftctl stop` is asked to stop), so there is no handle for it. False when
   * that job no longer runs; a recorded process id that now belongs to another process is never signalled.
   */
  signalRecorded(run: RunRef, status: RunStatus, signal: NodeJS.Signals): boolean;
  /** Brings the run's files back into the run store (a no-op locally). */
  collect(run: RunRef): Promise<void>;
  /**
   * Whether the job that status.json records still runs (or waits in a queue). Default: the recorded
   * process id with its start time is alive on this host.
   */
  recordedAlive?(run: RunRef, status: RunStatus): boolean;
  /**
   * For executors whose jobs outlive their controller by design (a Slurm job): the handle of the job
   * an earlier controller submitted, followed to its end instead of being stopped and started again
   * (undefined: none is recorded or it is gone without a trace). Orphans are not reclaimed then.
   */
  reattach?(run: RunRef, status: RunStatus): Promise<JobHandle | undefined>;
  /** For executors that place jobs themselves (a cluster's scheduler): the pool the scheduler takes slots from. */
  devicePool?(): DevicePool;
}
