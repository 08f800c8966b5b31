/**
 * The job spec: one run's fully resolved config, written by the controller to
 * runs/<experiment>/<run_id>/job.json and read by the shim (python/peftshim/spec.py).
 * No `extends`, no sweep, no secrets.
 */
import type { Experiment } from "../config/schema.ts";

export const JOB_SCHEMA_VERSION = 1;

export type JobSpec = {
  schema_version: typeof JOB_SCHEMA_VERSION;
  run_id: string;
  experiment: string;
  /** Absolute path of the run directory. */
  run_dir: string;
  /** The swept key paths and this run's values, e.g. { "method.r": 8 }. Empty without a sweep. */
  sweep_values: Record<string, unknown>;
  model: Experiment["model"];
  method: Experiment["method"];
  /** data.path is absolute. */
  data: Experiment["data"];
  train: Experiment["train"] & {
    /** batch_size / (micro_batch_size x data-parallel devices). */
    gradient_accumulation_steps: number;
  };
  eval: Experiment["eval"];
  checkpoint: Experiment["checkpoint"];
  resources: Experiment["resources"];
  hub?: Experiment["hub"];
  fingerprints: {
    /** sha256 (hex) of everything that changes the trained weights: model, method, data, train. */
    job: string;
  };
};
