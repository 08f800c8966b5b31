/**
 * Run dirs for planned jobs: job.json, config.yaml (the config snapshot) and status.json (queued).
 * A run dir that exists already is kept as it is: job.json is written once and never rewritten
 * (an out-of-memory back-off lives in status.json) but for its unhashed `report` label, and its
 * snapshot is the config the run started with. Run ids include a hash of the job, so a changed job (other model, method, data or training
 * values) is a new run id, never a rewrite.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { canonicalJson } from "../config/canonical.ts";
import { UserError } from "../errors.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import { hasRun, initialStatus, readJob, runFile, writeJob, writeStatus, type RunRef } from "./store.ts";

function prepareRun(spec: JobSpec, snapshotYaml: string): RunRef {
  const dir = spec.run_dir;
  const ref = { experiment: spec.experiment, runId: spec.run_id, dir };
  if (hasRun(dir)) {
    const existing = readJob(dir);
    if (existing.fingerprints.job !== spec.fingerprints.job) {
      throw new UserError("PEFTCTL_USAGE", `${runFile(dir, "job")} holds another job (fingerprint ${existing.fingerprints.job.slice(0, 12)}, planned ${spec.fingerprints.job.slice(0, 12)})`, [
        "run ids include a hash of the job, so this means the run dir was edited or copied by hand; move it away and run again",
      ]);
    }
    // The table label and the trackers change no run id (identity.ts): the config's current ones are the
    // run's, so a tracker added to the config logs the run's next attempt.
    const refreshed = withUnhashed(withUnhashed(existing, "report", spec.report), "logging", spec.logging);
    if (refreshed !== existing) writeJob(dir, refreshed);
    if (!existsSync(runFile(dir, "status"))) writeStatus(dir, initialStatus(spec));
    return ref;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(runFile(dir, "config"), snapshotYaml);
  writeJob(dir, spec);
  writeStatus(dir, initialStatus(spec));
  return ref;
}

/** `job` with its unhashed `field` set to `value` (removed when undefined); `job` itself when it has it already. */
function withUnhashed<K extends "report" | "logging">(job: JobSpec, field: K, value: JobSpec[K]): JobSpec {
  if (canonicalJson(job[field] ?? null) === canonicalJson(value ?? null)) return job;
  const { [field]: _old, ...rest } = job;
  return (value === undefined ? rest : { ...rest, [field]: value }) as JobSpec;
}

export function prepareRuns(specs: readonly JobSpec[], snapshotYaml: string): RunRef[] {
  return specs.map((spec) => prepareRun(spec, snapshotYaml));
}
