/**
 * The run store: runs/<experiment>/<run_id>/ with job.json, config.yaml, status.json, events.jsonl,
 * stdout.log, stderr.log, env.json, metrics.json, checkpoints/, adapter/.
 *
 * The files are the source of truth: every status change is written atomically (temp file, fsync,
 * rename), so a controller killed at any moment leaves either the old or the new status, never half.
 */
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.ts";
import { migrateJob, type JobSpec } from "../plan/jobspec.ts";
import { parseEventLine, type ShimEvent } from "./events.ts";

export const RUN_FILES = {
  job: "job.json",
  config: "config.yaml",
  status: "status.json",
  events: "events.jsonl",
  stdout: "stdout.log",
  stderr: "stderr.log",
  env: "env.json",
  metrics: "metrics.json",
  lock: ".lock",
  statusLock: ".status.lock",
  checkpoints: "checkpoints",
  adapter: "adapter",
} as const;

/** queued -> running -> succeeded | failed | interrupted; resume takes failed/interrupted back to queued. */
export type RunState = "queued" | "running" | "succeeded" | "failed" | "interrupted";

export type RunError = { kind: string; message: string; retryable?: boolean };

/**
 * A micro-batch back-off after an out-of-memory exit: the attempt that ran out of memory and the
 * micro-batch later attempts train with (the global batch is kept; job.json is never rewritten).
 * Entries written before the back-off lived here alone also carry gradient_accumulation_steps.
 */
export type OomBackoff = { attempt: number; micro_batch_size: number; at: string };

/** The Hub publisher's record of a push (src/hub writes it through updateStatus). */
export type PushRecord = {
  state: "pushed" | "failed";
  repo: string;
  revision?: string;
  url?: string;
  commit?: string;
  error?: string;
  at: string;
};

/**
 * The Slurm job of a run's current attempt (resources.executor: slurm), as the controller last saw it
 * in squeue: a restarted controller reattaches to `job_id` instead of submitting again.
 */
export type SlurmRecord = {
  job_id: string;
  /**
   * squeue's state: PENDING, RUNNING, COMPLETING, ... or the final one (COMPLETED, FAILED, CANCELLED,
   * TIMEOUT, ...); SUBMITTING (job_id "") from just before sbatch until its answer, REFUSED when sbatch refused it.
   */
  state: string;
  /** squeue's reason while PENDING (Resources, Priority, BeginTime, ...); null otherwise. */
  reason: string | null;
  nodes: string | null;
  submitted_at: string;
};

/**
 * The job of a run's current attempt on an SSH host (resources.executor: ssh): enough for a restarted
 * controller to reattach, for `peftctl stop` to signal it, and to tell a reused pid apart there.
 */
export type SshRecord = {
  /** The host as resources.ssh.hosts names it (an address or an ssh config alias). */
  host: string;
  pid: number;
  /** /proc/<pid>/stat field 22 on that host. */
  pid_start_time: number | null;
  /** The run dir there. */
  dir: string;
  /** Where the attempt's events, logs, pid and exit_code files are there (the run dir, or a generate task's output dir). */
  task_dir: string;
  /** Bytes of events.jsonl there that the run store has (events are streamed from that offset). */
  events_offset: number;
};

export type RunStatus = {
  schema_version: 1;
  run_id: string;
  experiment: string;
  state: RunState;
  /** Attempts started so far (the shim's --attempt of the newest one). */
  attempts: number;
  host: string | null;
  /** The shim's process (the process-group leader); null when none is running. */
  pid: number | null;
  /** Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22): tells a pid reused by another process apart. */
  pid_start_time: number | null;
  /** Device ids the run was given (CUDA_VISIBLE_DEVICES), or ["cpu"]. */
  devices: string[];
  created_at: string;
  updated_at: string;
  started_at: string | null;
  ended_at: string | null;
  step: number | null;
  total_steps: number | null;
  best_eval_loss: number | null;
  exit_code: number | null;
  signal: string | null;
  error: RunError | null;
  oom_backoffs: OomBackoff[];
  adapter_path: string | null;
  /** Set by `peftctl stop`: the attempt's exit 75 then means interrupted, not "retry". */
  stop_requested_at: string | null;
  push: PushRecord | null;
  /** Set for runs on Slurm (src/launch/slurm); null elsewhere. */
  slurm: SlurmRecord | null;
  /** Set for runs on SSH hosts (src/launch/ssh); null elsewhere. */
  ssh: SshRecord | null;
};

/** A run found on disk. */
export type RunRef = { experiment: string; runId: string; dir: string };

export function runDirOf(runsDir: string, experiment: string, runId: string): string {
  return path.join(runsDir, experiment, runId);
}

export function runFile(dir: string, name: keyof typeof RUN_FILES): string {
  return path.join(dir, RUN_FILES[name]);
}

export function nowIso(): string {
  return new Date().toISOString();
}

/** Writes a file atomically: temp file in the same directory, fsync, rename over the target, fsync the directory. */
export function writeFileAtomic(file: string, content: string): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = openSync(temp, "w", 0o644);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  try {
    const dirFd = openSync(dir, "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

/** os.hostname() once per process: readStatus builds a default status for each of up to 10,000 runs. */
let controllerHost: string | undefined;

export function initialStatus(job: Pick<JobSpec, "run_id" | "experiment">): RunStatus {
  const now = nowIso();
  return {
    schema_version: 1,
    run_id: job.run_id,
    experiment: job.experiment,
    state: "queued",
    attempts: 0,
    host: (controllerHost ??= os.hostname()),
    pid: null,
    pid_start_time: null,
    devices: [],
    created_at: now,
    updated_at: now,
    started_at: null,
    ended_at: null,
    step: null,
    total_steps: null,
    best_eval_loss: null,
    exit_code: null,
    signal: null,
    error: null,
    oom_backoffs: [],
    adapter_path: null,
    stop_requested_at: null,
    push: null,
    slurm: null,
    ssh: null,
  };
}

export function hasRun(dir: string): boolean {
  return existsSync(runFile(dir, "job"));
}

/** The run's job spec, brought to the current schema_version (job.json itself is never rewritten). */
export function readJob(dir: string): JobSpec {
  return migrateJob(readJson<unknown>(runFile(dir, "job"))) as JobSpec;
}

export function writeJob(dir: string, job: JobSpec): void {
  writeJsonAtomic(runFile(dir, "job"), job);
}

/** The run's status; a run dir without status.json (prepared but never written) reads as queued. */
export function readStatus(dir: string): RunStatus {
  const file = runFile(dir, "status");
  // Read first and take a missing file from the error: `status` reads 10,000 of these, an existsSync each cost 10% of it.
  let stored: Partial<RunStatus>;
  try {
    stored = readJson<Partial<RunStatus>>(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return initialStatus(readJob(dir));
    throw error;
  }
  // Every status write carries the run's identity; job.json is read only for a status.json without it.
  const identity = stored.run_id && stored.experiment ? { run_id: stored.run_id, experiment: stored.experiment } : readJob(dir);
  return Object.assign(initialStatus(identity), stored);
}

export function writeStatus(dir: string, status: RunStatus): RunStatus {
  const next = { ...status, updated_at: nowIso() };
  writeJsonAtomic(runFile(dir, "status"), next);
  return next;
}

/**
 * Read-modify-write of status.json. `change` gets the current status and returns the fields to change.
 * Several processes update one run (its controller on every event, `peftctl stop`, `peftctl push`), so
 * the read and the write happen under the run's status lock: without it a stop written between the
 * controller's read and its write was lost.
 */
export function updateStatus(dir: string, change: (current: RunStatus) => Partial<RunStatus>): RunStatus {
  return withStatusLock(dir, () => {
    const current = readStatus(dir);
    return writeStatus(dir, { ...current, ...change(current) });
  });
}

/** A holder that kept the status lock this long died while holding it (an update takes milliseconds). */
const STATUS_LOCK_STALE_MS = 10_000;
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * The status lock is a file created with O_EXCL, removed after the update. Synchronous like every store
 * operation; waiters poll every 2 ms. A lock older than STATUS_LOCK_STALE_MS is taken over.
 */
function withStatusLock<T>(dir: string, critical: () => T): T {
  const file = runFile(dir, "statusLock");
  for (;;) {
    try {
      closeSync(openSync(file, "wx"));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (lockAgeMs(file) > STATUS_LOCK_STALE_MS) rmSync(file, { force: true });
      else Atomics.wait(pause, 0, 0, 2);
    }
  }
  try {
    return critical();
  } finally {
    rmSync(file, { force: true });
  }
}

function lockAgeMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0; // released meanwhile: try again at once
  }
}

/** Appends one event to a run dir's events.jsonl: for a shim on another host, whose events stream back here. */
export function appendEvent(dir: string, event: ShimEvent): void {
  mkdirSync(dir, { recursive: true });
  appendFileSync(runFile(dir, "events"), `${JSON.stringify(event)}\n`);
}

/** Every event in events.jsonl, in order; a torn last line (a killed writer) is skipped. */
export function readEvents(dir: string): ShimEvent[] {
  const file = runFile(dir, "events");
  if (!existsSync(file)) return [];
  const events: ShimEvent[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const event = parseEventLine(line);
    if (event) events.push(event);
  }
  return events;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Experiment names under the runs dir (directories holding at least one run). */
export function listExperiments(runsDir: string): string[] {
  if (!isDirectory(runsDir)) return [];
  return readdirSync(runsDir)
    .filter((name) => !name.startsWith(".") && isDirectory(path.join(runsDir, name)))
    .filter((name) => listRuns(runsDir, name).length > 0)
    .sort();
}

/** Runs of one experiment (run dirs that hold a job.json), sorted by run id. */
export function listRuns(runsDir: string, experiment: string): RunRef[] {
  const experimentDir = path.join(runsDir, experiment);
  if (!isDirectory(experimentDir)) return [];
  const runs: RunRef[] = [];
  for (const runId of readdirSync(experimentDir).sort()) {
    if (runId.startsWith(".")) continue;
    // An entry's name holds no separator, so this is path.join's result without its normalizing: `status` lists 10,000.
    const dir = `${experimentDir}${path.sep}${runId}`;
    if (existsSync(`${dir}${path.sep}${RUN_FILES.job}`)) runs.push({ experiment, runId, dir });
  }
  return runs;
}

/** Every run, each experiment dir listed once (listExperiments would list each a second time to drop the empty ones). */
export function allRuns(runsDir: string): RunRef[] {
  if (!isDirectory(runsDir)) return [];
  return readdirSync(runsDir)
    .filter((name) => !name.startsWith("."))
    .sort()
    .flatMap((experiment) => listRuns(runsDir, experiment));
}

/**
 * Resolves what a user typed: an experiment name (all its runs), a run id, or `<experiment>/<run_id>`.
 * Returns [] when nothing matches; see requireRuns for the user-facing error.
 */
export function findRuns(runsDir: string, target: string): RunRef[] {
  const slash = target.indexOf("/");
  if (slash > 0) {
    const experiment = target.slice(0, slash);
    const runId = target.slice(slash + 1);
    return listRuns(runsDir, experiment).filter((run) => run.runId === runId);
  }
  const asExperiment = listRuns(runsDir, target);
  if (asExperiment.length > 0) return asExperiment;
  return allRuns(runsDir).filter((run) => run.runId === target);
}

/** Like findRuns, but a target that matches nothing is a user error (exit 2) that says where it looked. */
export function requireRuns(runsDir: string, target: string): RunRef[] {
  const runs = findRuns(runsDir, target);
  if (runs.length === 0) {
    const experiments = listExperiments(runsDir);
    throw new UserError("PEFTCTL_RUN_NOT_FOUND", `no run or experiment named '${target}' in ${runsDir}`, [
      experiments.length > 0
        ? `experiments there: ${experiments.join(", ")} (see 'peftctl ls' and 'peftctl status <experiment>')`
        : "the runs dir holds no runs; pass --runs-dir DIR or set PEFTCTL_RUNS_DIR",
    ]);
  }
  return runs;
}

/** Exactly one run (logs); an experiment with several runs is a user error listing them. */
export function requireOneRun(runsDir: string, target: string): RunRef {
  const runs = requireRuns(runsDir, target);
  if (runs.length > 1) {
    throw new UserError("PEFTCTL_USAGE", `'${target}' names ${runs.length} runs; name one of them`, runs.map((r) => `  ${r.experiment}/${r.runId}`));
  }
  return runs[0]!;
}
