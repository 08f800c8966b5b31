/**
 * Which executor runs a job: the one place that maps `resources.executor` to an Executor, used by
 * everything that starts or signals jobs (run/resume, stop, orphan reclaiming, eval).
 */
import { UserError } from "../errors.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import { isSameProcessAlive, waitForExit } from "../runs/proc.ts";
import type { RunRef, RunStatus } from "../runs/store.ts";
import type { Executor } from "./executor.ts";
import { LocalExecutor } from "./local.ts";
import { SlurmExecutor } from "./slurm/executor.ts";
import { SshExecutor } from "./ssh/executor.ts";
import { canonicalJson } from "../config/canonical.ts";

export type ExecutorKind = JobSpec["resources"]["executor"];

export function executorFor(resources: Pick<JobSpec["resources"], "executor"> & Partial<Pick<JobSpec["resources"], "ssh">>, env: NodeJS.ProcessEnv = process.env): Executor {
  const kind: ExecutorKind = resources.executor;
  switch (kind) {
    case "local":
      return new LocalExecutor({ env });
    case "slurm":
      return new SlurmExecutor({ env });
    case "ssh":
      if (!resources.ssh) throw new UserError("PEFTCTL_SSH", "resources.executor is ssh but resources.ssh lists no hosts");
      return new SshExecutor(resources.ssh);
    default:
      throw new UserError("PEFTCTL_USAGE", `resources.executor ${String(kind)} has no executor here`);
  }
}

/** The one executor of a session over several jobs (a sweep's runs share their resources.executor). */
export function executorForJobs(jobs: ReadonlyArray<Pick<JobSpec, "run_id" | "resources">>, env: NodeJS.ProcessEnv = process.env): Executor {
  const kinds = [...new Set(jobs.map((job) => job.resources.executor))];
  if (kinds.length > 1) {
    throw new UserError("PEFTCTL_USAGE", `these runs ask for different executors (${kinds.join(", ")}); run each experiment on its own`, [
      ...kinds.map((kind) => `  ${kind}: ${jobs.filter((job) => job.resources.executor === kind).map((job) => job.run_id).slice(0, 3).join(", ")}`),
    ]);
  }
  if (kinds[0] === "ssh") {
    // One executor serves the session: its hosts must be those of every run.
    const hostSets = new Set(jobs.map((job) => canonicalJson(job.resources.ssh ?? null)));
    if (hostSets.size > 1) throw new UserError("PEFTCTL_SSH", "these runs name different resources.ssh settings; run each set of hosts on its own", []);
    return executorFor(jobs[0]!.resources, env);
  }
  return executorFor({ executor: kinds[0] ?? "local" }, env);
}

/** Whether the job status.json records as running still runs: the executor's answer, else the recorded pid and its start time. */
export function recordedJobAlive(executor: Executor, run: RunRef, status: RunStatus): boolean {
  return executor.recordedAlive ? executor.recordedAlive(run, status) : isSameProcessAlive(status.pid, status.pid_start_time);
}

/** Waits until the recorded job has ended (true) or `ms` passed (false). */
export async function waitForRecordedEnd(executor: Executor, run: RunRef, status: RunStatus, ms: number): Promise<boolean> {
  if (!executor.recordedAlive) return waitForExit(status.pid, status.pid_start_time, ms);
  const deadline = Date.now() + ms;
  // Each look may be a call to a cluster's controller (squeue): once a second is plenty.
  while (executor.recordedAlive(run, status)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  return true;
}
