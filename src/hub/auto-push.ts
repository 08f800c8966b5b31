import type { JobSpec } from "../plan/jobspec.ts";
import { pushRun } from "./push-run.ts";
import type { PushOptions, PushResult } from "./types.ts";

/**
 * The run hook's half of publishing: pushes a run that just succeeded when its config has a `hub:`
 * section with auto_push (the default). undefined when there is nothing to do. Never throws, and
 * a failed push only lands in status.json's `push`, so the run stays succeeded.
 */
export async function autoPushRun(runDir: string, job: Pick<JobSpec, "hub">, options: PushOptions = {}): Promise<PushResult | undefined> {
  if (!job.hub || job.hub.auto_push === false) return undefined;
  return pushRun(runDir, options);
}
