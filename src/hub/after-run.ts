import type { JobSpec } from "../plan/jobspec.ts";
import type { RunRef } from "../runs/store.ts";
import { autoPushRun } from "./auto-push.ts";
import type { PushOptions } from "./types.ts";

/** What the auto-push made of a run, for the command layer to show at `level`. */
export type AfterRunNotice = { level: "info" | "warn"; message: string };

/**
 * The after-success hook of `run` and `resume`: the Hub auto-push (autoPushRun), worded for the user.
 * undefined when the job has nothing to push. Never throws, and a failed push leaves the run succeeded.
 */
export async function afterRunSucceeded(run: RunRef, job: Pick<JobSpec, "hub">, options: PushOptions = {}): Promise<AfterRunNotice | undefined> {
  const result = await autoPushRun(run.dir, job, options);
  if (!result) return undefined;
  if (result.ok) return { level: "info", message: `${run.runId}: pushed to ${result.url}` };
  return { level: "warn", message: `${run.runId}: push to the Hub failed (the run stays succeeded): ${result.error.message}` };
}
