/**
 * The plan: Experiment -> one resolved JobSpec per sweep point, with memory and token estimates.
 * Pure: no file system, no environment, no clock; everything it needs comes in as arguments, so the
 * same config plans to the same jobs and run ids on every machine.
 */
import path from "node:path";
import { ExperimentSchema, type Experiment } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { canonicalJson, sha256Hex } from "./canonical.ts";
import { JOB_SCHEMA_VERSION, type JobSpec } from "./jobspec.ts";
import { GIB, estimateMemory, type MemoryEstimate } from "./memory.ts";
import { RUN_HASH_LENGTH, runId, sweepSlugger } from "./runid.ts";
import { expandSweep, type SweepPoint } from "./sweep.ts";
import { estimateTrainTokens, type DataSummary, type TokenEstimate } from "./tokens.ts";

export type { DataSummary } from "./tokens.ts";
export type { MemoryEstimate } from "./memory.ts";

export type PlanOptions = {
  /** Absolute run store root; run_dir = <runsDir>/<experiment>/<run_id>. */
  runsDir: string;
  /** A cheap scan of the data file (tokens.ts summarizeData); absent or null: tokens unknown. */
  dataSummary?: DataSummary | null;
  /**
   * The directory of the config file. Absolute paths in the job (data.path, a local model.base) are
   * hashed relative to it, so run ids do not depend on where the checkout lives. Without it only the
   * file name is hashed.
   */
  pathRoot?: string;
};

export type JobEstimate = MemoryEstimate & { trainTokens: number | null; trainTokensKind: TokenEstimate["kind"] };
export type PlannedJob = { spec: JobSpec; estimate: JobEstimate };
export type Plan = { experiment: string; jobs: PlannedJob[]; warnings: string[] };

/** Longest hash suffix tried when two runs' ids would otherwise collide. */
const MAX_HASH_LENGTH = 16;

type Resolved = { values: SweepPoint; experiment: Experiment; train: JobSpec["train"]; hash: string; fingerprint: string };

export function planExperiment(experiment: Experiment, options: PlanOptions): Plan {
  const expansion = expandSweep(experiment.sweep);
  const warnings = [...expansion.warnings];
  const { sweep: _sweep, extends: _extends, $schema: _schema, description: _description, ...config } = experiment;

  const resolve = jobResolver(config, options);
  const resolved: Resolved[] = [];
  const seen = new Set<string>();
  let duplicates = 0;
  for (const values of expansion.points) {
    const job = resolve(values);
    if (seen.has(job.hash)) {
      duplicates++;
      continue;
    }
    seen.add(job.hash);
    resolved.push(job);
  }
  if (duplicates > 0) {
    warnings.push(`${duplicates} sweep point(s) resolve to a job already planned (a value listed twice?); planned ${resolved.length} distinct job(s)`);
  }

  const ids = assignRunIds(experiment.name, resolved, Object.keys(experiment.sweep?.parameters ?? {}));
  const estimateOf = memoizedEstimates(options.dataSummary);
  const jobs = resolved.map((job, index): PlannedJob => {
    const run_id = ids[index]!;
    const { model, method, data, eval: evaluation, checkpoint, resources, hub } = job.experiment;
    const spec: JobSpec = {
      schema_version: JOB_SCHEMA_VERSION,
      run_id,
      experiment: experiment.name,
      run_dir: path.join(options.runsDir, experiment.name, run_id),
      sweep_values: job.values,
      model,
      method,
      data,
      train: job.train,
      eval: evaluation,
      checkpoint,
      resources,
      ...(hub === undefined ? {} : { hub }),
      fingerprints: { job: job.fingerprint },
    };
    return { spec, estimate: estimateOf(job.experiment) };
  });
  warnings.push(...estimateWarnings(jobs));
  return { experiment: experiment.name, jobs, warnings };
}

type Config = Omit<Experiment, "sweep" | "extends" | "$schema" | "description">;
type Section = keyof Config;
/** The experiment's sections that make up a job (the rest shape the experiment, not a run). */
const JOB_SECTIONS: readonly Section[] = ["name", "model", "method", "data", "train", "eval", "checkpoint", "resources", "hub"];
type SectionResult = { value: unknown; canonical: string; key: string };

/**
 * The memory estimate depends on a few fields only, and jobs of one plan share their section objects
 * (see jobResolver), so each distinct combination is estimated once; the token estimate is cheap.
 */
function memoizedEstimates(dataSummary: DataSummary | null | undefined): (experiment: Experiment) => JobEstimate {
  const ids = new WeakMap<object, number>();
  let next = 0;
  const objectId = (value: object): number => {
    let id = ids.get(value);
    if (id === undefined) {
      id = next++;
      ids.set(value, id);
    }
    return id;
  };
  const memory = new Map<string, MemoryEstimate>();
  return (experiment) => {
    const { model, method, data, train, resources } = experiment;
    const key = `${objectId(model)},${objectId(method)},${data.max_length},${train.micro_batch_size},${train.gradient_checkpointing},${resources.gpus}`;
    let estimate = memory.get(key);
    if (estimate === undefined) {
      estimate = estimateMemory(experiment);
      memory.set(key, estimate);
    }
    const tokens = estimateTrainTokens(experiment, dataSummary);
    return { ...estimate, trainTokens: tokens.tokens, trainTokensKind: tokens.kind };
  };
}

/**
 * Resolves sweep points into jobs. Every section a point changes is re-validated with its zod
 * schema (the config loader checked that swept keys exist; a swept value can still be of the wrong
 * type). A section's result depends only on the swept values inside it, so it is validated and
 * serialised once per distinct set of those values, not once per job: a 10,000-run grid over four
 * keys validates a few hundred sections.
 */
function jobResolver(config: Config, options: PlanOptions): (values: SweepPoint) => Resolved {
  const cache = new Map<string, SectionResult>();
  const trainCanonicals = new Map<string, string>();
  const portableConfig: Record<string, unknown> = config;

  const section = (name: Section, values: Array<[string[], unknown]>, point: SweepPoint): SectionResult => {
    const key = values.length === 0 ? name : `${name}\u0000${canonicalJson(values)}`;
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    let candidate: unknown = portableConfig[name];
    for (const [keys, value] of values) {
      const base = typeof candidate === "object" && candidate !== null && !Array.isArray(candidate) ? (candidate as Record<string, unknown>) : {};
      candidate = keys.length === 0 ? value : withPath(base, keys, value);
    }
    const schema = ExperimentSchema.shape[name];
    const parsed = schema.safeParse(candidate);
    if (!parsed.success) throw invalidPoint(point, parsed.error.issues.map((issue) => ({ ...issue, path: [name, ...issue.path] })));
    const value: unknown = parsed.data;
    const result = { key, value, canonical: canonicalJson(value === undefined ? null : portable(name, value, options.pathRoot)) };
    cache.set(key, result);
    return result;
  };

  return (values) => {
    const touched = new Map<Section, Array<[string[], unknown]>>();
    for (const [key, value] of Object.entries(values)) {
      const [head, ...rest] = key.split(".") as [string, ...string[]];
      // name is a job section (it is hashed) but names the experiment: no run may change it.
      if (head === "name" || !(JOB_SECTIONS as readonly string[]).includes(head)) {
        throw new UserError("PEFTCTL_CONFIG_INVALID", `sweep.parameters.${key}: ${head} cannot be swept; sweep keys of model, method, data, train, eval, checkpoint, resources or hub`);
      }
      const name = head as Section;
      touched.set(name, [...(touched.get(name) ?? []), [rest, value]]);
    }
    const parts = {} as Record<Section, SectionResult>;
    for (const name of JOB_SECTIONS) parts[name] = section(name, touched.get(name) ?? [], values);
    const experiment = {} as Record<Section, unknown>;
    for (const name of JOB_SECTIONS) experiment[name] = parts[name].value;
    return finishJob(values, experiment as Config as Experiment, parts);
  };

  function finishJob(values: SweepPoint, experiment: Experiment, parts: Record<Section, SectionResult>): Resolved {
    const { train } = experiment;
    const devices = Math.max(experiment.resources.gpus, 1);
    const perStep = train.micro_batch_size * devices;
    if (train.batch_size % perStep !== 0) {
      throw new UserError(
        "PEFTCTL_CONFIG_INVALID",
        `train.batch_size ${train.batch_size} is not a multiple of train.micro_batch_size ${train.micro_batch_size} x ${devices} device(s)` +
          (Object.keys(values).length > 0 ? ` (sweep point ${describePoint(values)})` : "") +
          `; choose a batch_size divisible by ${perStep}`,
      );
    }
    const accumulation = train.batch_size / perStep;
    const trainWithAccumulation = { ...train, gradient_accumulation_steps: accumulation };
    const trainKey = `${parts.train.key}\u0000${accumulation}`;
    let trainCanonical = trainCanonicals.get(trainKey);
    if (trainCanonical === undefined) {
      // train.compile came after the first runs: left out while false (its default), it keeps their
      // run ids and job fingerprints, so they still resume; compiled runs are their own runs.
      const { compile, ...eager } = trainWithAccumulation;
      trainCanonical = canonicalJson(compile ? trainWithAccumulation : eager);
      trainCanonicals.set(trainKey, trainCanonical);
    }
    const fingerprintCanonical = `{"data":${parts.data.canonical},"method":${parts.method.canonical},"model":${parts.model.canonical},"train":${trainCanonical}}`;
    // The hash covers the whole job but run_id, run_dir, fingerprints and the sweep values (which
    // only label what the sections already say), with machine-independent paths.
    const hashCanonical =
      `{"checkpoint":${parts.checkpoint.canonical},"data":${parts.data.canonical},"eval":${parts.eval.canonical},` +
      `"experiment":${parts.name.canonical},"hub":${parts.hub.canonical},"method":${parts.method.canonical},` +
      `"model":${parts.model.canonical},"resources":${parts.resources.canonical},"schema_version":${JOB_SCHEMA_VERSION},"train":${trainCanonical}}`;
    return { values, experiment, train: trainWithAccumulation, hash: sha256Hex(hashCanonical), fingerprint: sha256Hex(fingerprintCanonical) };
  }
}

function describePoint(values: SweepPoint): string {
  return Object.entries(values)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(", ");
}

function invalidPoint(values: SweepPoint, issues: Array<{ path: PropertyKey[]; message: string }>): UserError {
  return new UserError(
    "PEFTCTL_CONFIG_INVALID",
    `the sweep point ${describePoint(values)} gives an invalid config`,
    issues.map((issue) => `  ${issue.path.map(String).join(".")}: ${issue.message}`),
  );
}

/** Hashes see machine-independent paths: relative to the config's directory, or the file name. */
function portable(name: Section, value: unknown, root: string | undefined): unknown {
  if (name === "model") {
    const model = value as Experiment["model"];
    return { ...model, base: portablePath(model.base, root) };
  }
  if (name === "data") {
    const data = value as Experiment["data"];
    return { ...data, path: portablePath(data.path, root) };
  }
  return value;
}

/** Copy-on-write set of a dotted path: only the objects along the path are copied. */
function withPath(target: Record<string, unknown>, keys: string[], value: unknown): Record<string, unknown> {
  const [head, ...rest] = keys as [string, ...string[]];
  if (rest.length === 0) return { ...target, [head]: value };
  const child = target[head];
  const childObject = typeof child === "object" && child !== null && !Array.isArray(child) ? (child as Record<string, unknown>) : {};
  return { ...target, [head]: withPath(childObject, rest, value) };
}

function portablePath(value: string, root: string | undefined): string {
  if (!path.isAbsolute(value)) return value;
  if (root !== undefined && path.isAbsolute(root)) return path.relative(root, value).split(path.sep).join("/");
  return path.basename(value);
}

/**
 * `<name>-<slug>-<6 hex>`; where two different jobs would share an id (same slug, same 6 hex
 * digits, or slugs cut to the same prefix), both get more hex digits until every id is unique.
 */
function assignRunIds(name: string, jobs: Resolved[], sweptKeys: readonly string[]): string[] {
  const slugOf = sweepSlugger(sweptKeys);
  const slugs = jobs.map((job) => slugOf(job.values));
  const hashLength = jobs.map(() => RUN_HASH_LENGTH);
  for (;;) {
    const ids = jobs.map((job, index) => runId(name, slugs[index]!, job.hash.slice(0, hashLength[index])));
    const byId = new Map<string, number[]>();
    ids.forEach((id, index) => byId.set(id, [...(byId.get(id) ?? []), index]));
    const clashes = [...byId.values()].filter((indices) => indices.length > 1);
    if (clashes.length === 0) return ids;
    for (const indices of clashes) {
      for (const index of indices) {
        if (hashLength[index]! >= MAX_HASH_LENGTH) throw new Error(`run ids of distinct jobs still collide at ${MAX_HASH_LENGTH} hex digits`);
        hashLength[index]! += 2;
      }
    }
  }
}

/** Is the job's estimated peak above resources.gpu_memory_gb (GPU jobs of a known model only)? */
export function exceedsGpuMemory(job: PlannedJob): boolean {
  const { peakBytes } = job.estimate;
  return job.spec.resources.gpus > 0 && peakBytes !== null && peakBytes / GIB > job.spec.resources.gpu_memory_gb;
}

function estimateWarnings(jobs: PlannedJob[]): string[] {
  const warnings: string[] = [];
  const unknownModels = new Set(jobs.filter((job) => job.estimate.peakBytes === null).map((job) => job.spec.model.base));
  for (const base of unknownModels) {
    warnings.push(`model.base ${base} is not in the table of known architectures (src/plan/architectures.ts): its memory estimate is shown as "?"`);
  }
  for (const note of new Set(jobs.flatMap((job) => job.estimate.notes))) warnings.push(`memory estimate: ${note}`);

  const tooBig = jobs.filter(exceedsGpuMemory);
  if (tooBig.length > 0) {
    const shown = tooBig.slice(0, 5).map((job) => `${job.spec.run_id} (${(job.estimate.peakBytes! / GIB).toFixed(1)} GiB)`);
    const more = tooBig.length > shown.length ? ` and ${tooBig.length - shown.length} more` : "";
    const limit = tooBig[0]!.spec.resources.gpu_memory_gb;
    warnings.push(
      `${tooBig.length} of ${jobs.length} job(s) are estimated to need more than resources.gpu_memory_gb ${limit} GiB per GPU: ` +
        `${shown.join(", ")}${more}; lower train.micro_batch_size or data.max_length, or set train.gradient_checkpointing: true`,
    );
  }
  return warnings;
}
