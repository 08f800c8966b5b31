/**
 * The local executor: runs the shim as a child process on this host, through execa.
 *
 * The shim runs detached in its own process group with stdout/stderr going straight to
 * stdout.log/stderr.log (files, not pipes): a kill -9 of the controller then leaves it running and
 * writing (the orphan case, handled in orphans.ts), and a terminal's Ctrl-C reaches it only through
 * the controller, which sends SIGTERM to the whole group (torchrun and its workers included).
 * Events are followed from events.jsonl, which the shim appends to, so an orphan's events can be
 * read by a later controller the same way. A `generate` task (`peftctl eval`, StartRequest.task) runs
 * `python -m peftshim generate` the same way, its events and logs in the task's output directory.
 */
import { closeSync, mkdirSync, openSync, readFileSync, watch, type FSWatcher } from "node:fs";
import path from "node:path";
import { execa, execaSync } from "execa";
import type { JobSpec } from "../plan/jobspec.ts";
import type { ShimEvent } from "../runs/events.ts";
import { EventTail, fileSize } from "../runs/follow.ts";
import { isSameProcessAlive, processStartTime, signalGroup } from "../runs/proc.ts";
import { readJob, runFile, type RunRef, type RunStatus } from "../runs/store.ts";
import { shimEnv, shimPython } from "../shim.ts";
import { containerCommand, containerKillArgv, passedByName } from "./container.ts";
import { simulatedGpuIds } from "./devices.ts";
import type { Executor, JobHandle, JobResult, StartRequest } from "./executor.ts";

export type LocalExecutorOptions = {
  env?: NodeJS.ProcessEnv;
  /** How often events.jsonl is read while a job runs. */
  pollMs?: number;
};

/**
 * The argv that starts one attempt. PEFTCTL_SHIM_SCRIPT replaces the shim by a script run as is,
 * without torchrun, with the process count in PEFTCTL_NPROC (the scheduler tests' fake trainer).
 * --micro-batch-size only after an out-of-memory back-off, when the attempt's micro-batch is not
 * job.json's `plannedMicroBatchSize`.
 */
export function shimCommand(request: StartRequest, plannedMicroBatchSize: number, env: NodeJS.ProcessEnv): { file: string; args: string[] } {
  const python = shimPython(env);
  const task = request.task;
  if (task?.kind === "generate") {
    const generateArgs = ["generate", "--job", task.jobFile ?? runFile(request.run.dir, "job"), "--out", task.outDir, ...task.args];
    return { file: python, args: env.PEFTCTL_SHIM_SCRIPT ? [env.PEFTCTL_SHIM_SCRIPT, ...generateArgs] : ["-m", "peftshim", ...generateArgs] };
  }
  const jobArgs = ["train", "--job", runFile(request.run.dir, "job"), "--attempt", String(request.attempt)];
  if (request.microBatchSize !== plannedMicroBatchSize) jobArgs.push("--micro-batch-size", String(request.microBatchSize));
  if (request.resume) jobArgs.push("--resume");
  if (env.PEFTCTL_SHIM_SCRIPT) return { file: python, args: [env.PEFTCTL_SHIM_SCRIPT, ...jobArgs] };
  if (request.processes > 1) {
    // torchrun as a module of the shim's Python: no reliance on a torchrun script on PATH.
    // --standalone gives each job its own rendezvous on a free port, so jobs can share a host.
    const launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", String(request.processes)];
    return { file: python, args: [...launcher, "-m", "peftshim", ...jobArgs] };
  }
  return { file: python, args: ["-m", "peftshim", ...jobArgs] };
}

/** The job the task's shim reads: a generate task's own job.json (eval --set), else the run's. */
function taskJob(request: StartRequest, runJob: JobSpec): JobSpec {
  const task = request.task;
  return task?.kind === "generate" && task.jobFile ? (JSON.parse(readFileSync(task.jobFile, "utf8")) as JobSpec) : runJob;
}

/**
 * A SIGKILL cannot travel through an attached `docker run` (its --sig-proxy passes on what it can
 * catch): the container is killed by its name too (container.ts). Best effort: one already gone is fine.
 */
function killContainer(job: JobSpec, signal: NodeJS.Signals, task: "train" | "generate", env: NodeJS.ProcessEnv): void {
  const argv = signal === "SIGKILL" && job.resources.container ? containerKillArgv(job.resources.container, job.run_id, signal, task) : null;
  if (argv) execaSync("docker", argv, { env, reject: false, timeout: 15_000, stdio: "ignore" });
}

/** Where an attempt's events and logs go: the run dir for training, the output dir of a generate task. */
export function taskFiles(request: StartRequest): { dir: string; events: string; stdout: string; stderr: string } {
  const task = request.task;
  if (task?.kind === "generate") {
    mkdirSync(task.outDir, { recursive: true });
    const inOut = (name: string) => path.join(task.outDir, name);
    return { dir: task.outDir, events: inOut("events.jsonl"), stdout: inOut("stdout.log"), stderr: inOut("stderr.log") };
  }
  const dir = request.run.dir;
  return { dir, events: runFile(dir, "events"), stdout: runFile(dir, "stdout"), stderr: runFile(dir, "stderr") };
}

/** The last lines of a log written since `fromOffset`: what a failed attempt said last. */
function logTail(file: string, fromOffset = 0, lines = 15): string {
  try {
    const text = readFileSync(file).subarray(fromOffset).toString("utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

export class LocalExecutor implements Executor {
  readonly kind = "local";
  private readonly env: NodeJS.ProcessEnv;
  private readonly pollMs: number;

  constructor(options: LocalExecutorOptions = {}) {
    this.env = options.env ?? process.env;
    this.pollMs = options.pollMs ?? 500;
  }

  async prepare(_run: RunRef): Promise<void> {}

  async collect(_run: RunRef): Promise<void> {}

  /** The recorded pid is trusted only with its start time, so a reused pid is never signalled. */
  signalRecorded(run: RunRef, status: RunStatus, signal: NodeJS.Signals): boolean {
    if (!status.pid || !isSameProcessAlive(status.pid, status.pid_start_time)) return false;
    const sent = signalGroup(status.pid, signal);
    killContainer(readJob(run.dir), signal, "train", this.env);
    return sent;
  }

  async start(request: StartRequest): Promise<JobHandle> {
    const { dir } = request.run;
    const files = taskFiles(request);
    const stderrFile = files.stderr;
    const stderrOffset = fileSize(stderrFile);
    const tail = new EventTail(files.events);
    const job = readJob(dir);
    const taskKind = request.task?.kind ?? "train";
    const devices = taskKind === "generate" ? request.devices.slice(0, 1) : request.devices;
    const onGpu = devices[0] !== "cpu";
    const simulatedGpus = onGpu && simulatedGpuIds(this.env) !== undefined;
    const command = shimCommand(request, job.train.micro_batch_size, this.env);
    const container = job.resources.container;
    // In a container the same command line runs inside the image (container.ts); its variables go in by name or value there.
    const { file, args } = container
      ? containerCommand({
          command,
          container,
          job: taskJob(request, job),
          task: taskKind,
          gpus: { ids: onGpu ? devices : [] },
          simulatedGpus,
          env: { PEFTCTL_NPROC: String(request.processes), ...(simulatedGpus ? { PEFTSHIM_SIMULATED_GPUS: "1" } : {}) },
          passEnv: passedByName(this.env),
        })
      : command;
    // File descriptors, not execa's { file } (which pipes through this process): the shim must keep
    // writing its logs after a kill -9 of the controller.
    const stdoutFd = openSync(files.stdout, "a");
    const stderrFd = openSync(stderrFile, "a");
    const startedAt = Date.now();
    const child = execa(file, args, {
      cwd: path.dirname(dir),
      env: {
        ...shimEnv(this.env),
        CUDA_VISIBLE_DEVICES: onGpu ? devices.join(",") : "",
        // GPU ids of PEFTCTL_FAKE_GPUS run on the CPU by design; on real ids the shim refuses a torch without CUDA.
        PEFTSHIM_SIMULATED_GPUS: simulatedGpus ? "1" : "",
        PEFTCTL_NPROC: String(request.processes),
      },
      extendEnv: false,
      detached: true,
      cleanup: false, // the controller decides what happens to its jobs on exit, not a signal-exit hook
      reject: false,
      stdin: "ignore",
      // execa's types only accept fd literals; any open fd works at run time.
      stdout: stdoutFd as 1,
      stderr: stderrFd as 2,
    });
    closeSync(stdoutFd);
    closeSync(stderrFd);
    const pid = child.pid ?? null;
    const pidStartTime = pid ? processStartTime(pid) : null;

    const listeners: Array<(event: ShimEvent) => void> = [];
    let lastEvent: ShimEvent | undefined;
    let errorEvent: Extract<ShimEvent, { type: "error" }> | undefined;
    const deliver = () => {
      let events: ShimEvent[];
      try {
        events = tail.poll();
      } catch {
        return; // events.jsonl briefly unreadable (replaced, permissions): the next poll reads it
      }
      for (const event of events) {
        lastEvent = event;
        if (event.type === "error") errorEvent = event;
        for (const listener of listeners) listener(event);
      }
    };
    // fs.watch for low latency where it works; the interval for filesystems where it does not.
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(files.dir, { persistent: false }, () => deliver());
      watcher.on("error", () => watcher?.close());
    } catch {
      watcher = undefined;
    }
    const timer = setInterval(deliver, this.pollMs);

    const done: Promise<JobResult> = child.then((result) => {
      clearInterval(timer);
      watcher?.close();
      deliver();
      const exitCode = typeof result.exitCode === "number" ? result.exitCode : null;
      const signal = result.signal ?? null;
      const failed = exitCode !== 0;
      let error: string | undefined;
      if (failed) {
        error = errorEvent?.message ?? (logTail(stderrFile, stderrOffset) || undefined);
        if (!error && exitCode === null) error = signal ? `killed by ${signal}` : `could not start ${file}: ${result.shortMessage}`;
      }
      return { failed, exitCode, signal, durationMs: Date.now() - startedAt, lastEvent, error };
    });

    return {
      pid,
      pidStartTime,
      onEvent: (listener) => listeners.push(listener),
      signal: (signal) => {
        if (pid) signalGroup(pid, signal);
        killContainer(job, signal, taskKind, this.env);
      },
      wait: () => done,
    };
  }
}
