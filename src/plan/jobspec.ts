/**
 * The job spec: one run's fully resolved config, written by the controller to
 * runs/<experiment>/<run_id>/job.json and read by the shim (python/peftshim/spec.py).
 * No `extends`, no sweep, no secrets.
 *
 * This zod schema is the one definition of the file. `npm run schema` writes it out as
 * schema/job.schema.json, which the shim validates every job.json against; a test fails when that
 * file is stale, and a contract test runs the shim's parser on planned jobs.
 */
import { z } from "zod";
import {
  CheckpointSchema,
  DataSchema,
  EvalSchema,
  ReportSchema,
  LoggingSchema,
  ExperimentSchema,
  HubSchema,
  MethodSchema,
  ModelSchema,
  ResourcesSchema,
  TrainSchema,
} from "../config/schema.ts";
import { dataParallelDevices } from "../config/batch.ts";

export const JOB_SCHEMA_VERSION = 2;

const absolutePath = z.string().regex(/^\//, "expected an absolute path (the controller resolves it)");

const JobTrainSchema = TrainSchema.extend({
  gradient_accumulation_steps: z.number().int().positive().describe("Micro-batches per device per optimizer step: batch_size / (micro_batch_size x devices)."),
  micro_batches_per_step: z.number().int().positive().describe("Micro-batches per optimizer step over all devices: batch_size / micro_batch_size."),
});

export const JobSpecSchema = z
  .strictObject({
    schema_version: z.literal(JOB_SCHEMA_VERSION),
    run_id: z.string().min(1),
    experiment: ExperimentSchema.shape.name,
    run_dir: absolutePath.describe("Absolute path of the run directory."),
    sweep_values: z.record(z.string(), z.unknown()).describe('The swept key paths and this run\'s values, e.g. { "method.r": 8 }; empty without a sweep.'),
    model: ModelSchema,
    method: MethodSchema,
    data: DataSchema.extend({ path: absolutePath.describe("The data file, absolute.") }),
    train: JobTrainSchema,
    eval: EvalSchema,
    checkpoint: CheckpointSchema,
    resources: ResourcesSchema,
    hub: HubSchema.optional(),
    report: ReportSchema.optional(),
    logging: LoggingSchema.optional(),
    fingerprints: z
      .strictObject({ job: z.string().regex(/^[0-9a-f]{64}$/).describe("sha256 (hex) of what changes the trained weights: model, method, data, train.") })
      .describe("Fingerprints the shim checks before resuming a checkpoint."),
  })
  .describe("A peftctl job spec (job.json): one run's fully resolved config.");

export type JobSpec = z.output<typeof JobSpecSchema>;

/**
 * A job.json as read from disk, brought to the current schema_version. One step per version:
 * version 1 (before train.compile and train.micro_batches_per_step) gains both; a version 2 file from
 * before eval.generate's decoding settings gains their defaults (withGenerateDefaults). The shim has the
 * matching step (spec.py); nothing else special-cases old files.
 */
export function migrateJob(raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null || (raw as { schema_version?: unknown }).schema_version !== 1) return raw;
  const v1 = raw as { train: Record<string, unknown>; resources: { gpus: number }; eval: { generate?: unknown } };
  const accumulation = v1.train.gradient_accumulation_steps as number;
  // eval.generate's decoding settings came with version 2: their defaults, from the schema itself.
  const generate = EvalSchema.shape.generate.safeParse(v1.eval?.generate);
  return {
    ...v1,
    schema_version: 2,
    train: { compile: false, ...v1.train, micro_batches_per_step: accumulation * dataParallelDevices(v1.resources.gpus) },
    ...(generate.success ? { eval: { ...v1.eval, generate: generate.data } } : {}),
  };
}

export const JOB_JSON_SCHEMA_PATH = "schema/job.schema.json";

/** The JSON Schema of job.json as the controller writes it: every default filled in, so every field required. */
export function renderJobJsonSchema(): string {
  const schema = z.toJSONSchema(JobSpecSchema, { io: "output", target: "draft-2020-12" });
  return `${JSON.stringify({ ...schema, title: "peftctl job spec (job.json)" }, null, 2)}\n`;
}
