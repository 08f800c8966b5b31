/**
 * The plan: Experiment -> one resolved JobSpec per sweep point, with memory and token estimates.
 * Pure: no file system, no environment, no clock; everything it needs comes in as arguments, so the
 * same config plans to the same jobs and run ids on every machine.
 */
import path from "node:path";
import { batchLayout } from "../config/batch.ts";
import { canonicalJson } from "../config/canonical.ts";
import type { Experiment } from "../config/schema.ts";
import { describePoint, pointResolver, type JobConfig, type ResolvedSection, type SweepPoint } from "../config/sweep-points.ts";
import { hashedSection, jobIdentity } from "./identity.ts";
import { JOB_SCHEMA_VERSION, type JobSpec } from "./jobspec.ts";
import { BUILTIN_ARCHITECTURES, type Architecture } from "./architectures.ts";
import { GIB, estimateMemory, type MemoryEstimate } from "./memory.ts";
import { RUN_HASH_LENGTH, runId, sweepSlugger } from "./runid.ts";
import { expandSweep, type SweepWarning } from "../config/sweep.ts";
import { estimateTrainTokens, type DataSummary, type TokenEstimate } from "./tokens.ts";

export type { DataSummary } from "./tokens.ts";
export type { MemoryEstimate } from "./memory.ts";

export type PlanOptions = {
  /** Absolute run store root; run_dir = <runsDir>/<experiment>/<run_id>. */
  runsDir: string;
  /** The shim's count of the data file (src/experiment.ts reads it); absent or null: tokens unknown. */
  dataSummary?: DataSummary | null;
  /**
   * The directory of the config file. Absolute paths in the job (data.path, a local model.base) are
   * hashed relative to it, so run ids do not depend on where the checkout lives. Without it only the
   * file name is hashed.
   */
  pathRoot?: string;
  /**
   * The base models' shapes by modelKey(model), as read from their config.json (src/models reads them
   * for planConfig; plannedModels lists the ones a plan needs). Built-in models need no entry; any
   * other model without one is estimated as "?".
   */
  architectures?: ReadonlyMap<string, ArchitectureLookup>;
};

/** A base model's shape, or why there is none (shown with the "?" of its estimate). */
export type ArchitectureLookup = { architecture: Architecture; source: string } | { architecture: null; reason: string };

/** The key of a base model in PlanOptions.architectures: its base and revision. */
export function modelKey(model: Pick<Experiment["model"], "base" | "revision">): string {
  return `${model.base}\u0000${model.revision ?? ""}`;
}

/** The distinct base models (base and revision) the experiment's jobs use, sweep included. */
export function plannedModels(experiment: Experiment): Experiment["model"][] {
  const { sweep: _sweep, extends: _extends, $schema: _schema, description: _description, ...config } = experiment;
  const resolvePoint = pointResolver(config);
  const models = new Map<string, Experiment["model"]>();
  for (const values of expandSweep(experiment.sweep).points) {
    const point = resolvePoint(values);
    if (point.ok && !models.has(modelKey(point.config.model))) models.set(modelKey(point.config.model), point.config.model);
  }
  return [...models.values()];
}

function lookupIn(architectures: PlanOptions["architectures"], model: Experiment["model"]): ArchitectureLookup {
  const builtin = BUILTIN_ARCHITECTURES[model.base];
  if (builtin !== undefined) return { architecture: builtin, source: "built-in" };
  return architectures?.get(modelKey(model)) ?? { architecture: null, reason: `no config.json of ${model.base} was read` };
}

export type JobEstimate = MemoryEstimate & { trainTokens: number | null; trainTokensKind: TokenEstimate["kind"] };
export type PlannedJob = { spec: JobSpec; estimate: JobEstimate };
/** What the plan found, at the config key it concerns: the caller positions it (src/experiment.ts). */
export type PlanWarning = SweepWarning;
export type Plan = { experiment: string; jobs: PlannedJob[]; warnings: PlanWarning[] };

/** Longest hash suffix tried when two runs' ids would otherwise collide. */
const MAX_HASH_LENGTH = 16;

type Resolved = { values: SweepPoint; config: JobConfig; train: JobSpec["train"]; hash: string; fingerprint: string };

export function planExperiment(experiment: Experiment, options: PlanOptions): Plan {
  const expansion = expandSweep(experiment.sweep);
  const warnings: PlanWarning[] = [...expansion.warnings];
  const { sweep: _sweep, extends: _extends, $schema: _schema, description: _description, ...config } = experiment;

  const resolve = jobResolver(config, options);
  const resolved: Resolved[] = [];
  const seen = new Map<string, SweepPoint>();
  let duplicates = 0;
  let firstDuplicate: [SweepPoint, SweepPoint] | undefined;
  for (const values of expansion.points) {
    const job = resolve(values);
    const earlier = seen.get(job.hash);
    if (earlier !== undefined) {
      duplicates++;
      firstDuplicate ??= [earlier, values];
      continue;
    }
    seen.set(job.hash, values);
    resolved.push(job);
  }
  if (firstDuplicate !== undefined) warnings.push(duplicateWarning(experiment, duplicates, resolved.length, firstDuplicate));

  const ids = assignRunIds(experiment.name, resolved, Object.keys(experiment.sweep?.parameters ?? {}));
  const estimateOf = memoizedEstimates(options.dataSummary, options.architectures);
  const jobs = resolved.map((job, index): PlannedJob => {
    const run_id = ids[index]!;
    const { model, method, data, eval: evaluation, checkpoint, resources, hub, report, logging } = job.config;
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
      ...(report === undefined ? {} : { report }),
      ...(logging === undefined ? {} : { logging }),
      fingerprints: { job: job.fingerprint },
    };
    return { spec, estimate: estimateOf(job.config) };
  });
  warnings.push(...estimateWarnings(jobs, Object.keys(experiment.sweep?.parameters ?? {}), options.architectures));
  return { experiment: experiment.name, jobs, warnings };
}

/**
 * The memory estimate depends on a few fields only, and jobs of one plan share their section objects
 * (see pointResolver), so each distinct combination is estimated once; the token estimate is cheap.
 */
function memoizedEstimates(dataSummary: DataSummary | null | undefined, architectures: PlanOptions["architectures"]): (config: JobConfig) => JobEstimate {
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
  return (config) => {
    const { model, method, data, train, resources } = config;
    const key = `${objectId(model)},${objectId(method)},${data.max_length},${train.micro_batch_size},${train.gradient_checkpointing},${resources.gpus}`;
    let estimate = memory.get(key);
    if (estimate === undefined) {
      estimate = estimateMemory(config, lookupIn(architectures, model).architecture);
      memory.set(key, estimate);
    }
    const tokens = estimateTrainTokens(config, dataSummary);
    return { ...estimate, trainTokens: tokens.tokens, trainTokensKind: tokens.kind };
  };
}

/**
 * Sweep points -> jobs, through the same resolution `validate` checked every point with
 * (src/config/sweep-points.ts). Each section's hashed text is worked out once per distinct section.
 */
function jobResolver(config: JobConfig, options: PlanOptions): (values: SweepPoint) => Resolved {
  const resolvePoint = pointResolver(config);
  const hashedText = new Map<string, string>();
  const hashed = (section: ResolvedSection, value: unknown = section.value, variant = ""): string => {
    const key = `${section.key}\u0000${variant}`;
    let text = hashedText.get(key);
    if (text === undefined) {
      text = hashedSection(section.section, value, options.pathRoot);
      hashedText.set(key, text);
    }
    return text;
  };

  return (values) => {
    const point = resolvePoint(values);
    if (!point.ok) {
      const failure = point.failures[0]!;
      throw new Error(`sweep point ${describePoint(values)} breaks ${failure.section}: ${failure.issues[0]?.message} (validation should have reported it)`);
    }
    const { config: resolved, sections } = point;
    const layout = batchLayout({ ...resolved.train, gpus: resolved.resources.gpus });
    if (layout === undefined) throw new Error(`sweep point ${describePoint(values)}: batch_size does not divide into micro-batches (validation should have reported it)`);
    const train = { ...resolved.train, gradient_accumulation_steps: layout.gradient_accumulation_steps, micro_batches_per_step: layout.micro_batches_per_step };
    const identity = jobIdentity({
      checkpoint: hashed(sections.checkpoint),
      data: hashed(sections.data),
      eval: hashed(sections.eval),
      experiment: hashed(sections.name),
      hub: hashed(sections.hub),
      method: hashed(sections.method),
      model: hashed(sections.model),
      resources: hashed(sections.resources),
      train: hashed(sections.train, train, String(layout.devices)),
    });
    return { values, config: resolved, train, ...identity };
  };
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

/**
 * Points that resolve to a job already planned, at the list item that repeats an earlier one (the
 * usual cause), else at the sweep's parameters, naming the first such pair of points.
 */
function duplicateWarning(experiment: Experiment, duplicates: number, distinct: number, [earlier, later]: [SweepPoint, SweepPoint]): PlanWarning {
  const counts = `${duplicates} sweep point(s) resolve to a job already planned; planned ${distinct} distinct job(s)`;
  for (const [key, domain] of Object.entries(experiment.sweep?.parameters ?? {})) {
    if (!Array.isArray(domain)) continue;
    const firstIndex = new Map<string, number>();
    for (const [index, item] of domain.entries()) {
      const text = canonicalJson(item);
      const first = firstIndex.get(text);
      if (first !== undefined) return { path: ["sweep", "parameters", key, index], message: `\`${key}\` lists ${text} twice (items ${first} and ${index}): ${counts}` };
      firstIndex.set(text, index);
    }
  }
  return { path: ["sweep", "parameters"], message: `${counts} (${describePoint(later)} is the same job as ${describePoint(earlier)})` };
}

function estimateWarnings(jobs: PlannedJob[], sweptKeys: readonly string[], architectures: PlanOptions["architectures"]): PlanWarning[] {
  const warnings: PlanWarning[] = [];
  // A field the sweep varies is positioned at the sweep, where its values are.
  const at = (field: string) => (sweptKeys.includes(field) ? ["sweep", "parameters", field] : field.split("."));
  const unknownModels = new Map(jobs.filter((job) => job.estimate.peakBytes === null).map((job) => [modelKey(job.spec.model), job.spec.model]));
  for (const model of unknownModels.values()) {
    const lookup = lookupIn(architectures, model);
    const reason = lookup.architecture === null ? lookup.reason : "its shape is unknown";
    warnings.push({ path: at("model.base"), message: `memory estimate of ${model.base} shown as "?": ${reason}` });
  }
  for (const note of new Set(jobs.flatMap((job) => job.estimate.notes))) warnings.push({ path: at("method.target_modules"), message: `memory estimate: ${note}` });

  const tooBig = jobs.filter(exceedsGpuMemory);
  if (tooBig.length > 0) {
    const shown = tooBig.slice(0, 5).map((job) => `${job.spec.run_id} (${(job.estimate.peakBytes! / GIB).toFixed(1)} GiB)`);
    const more = tooBig.length > shown.length ? ` and ${tooBig.length - shown.length} more` : "";
    const limit = tooBig[0]!.spec.resources.gpu_memory_gb;
    warnings.push({
      path: at("resources.gpu_memory_gb"),
      message:
        `${tooBig.length} of ${jobs.length} job(s) are estimated to need more than resources.gpu_memory_gb ${limit} GiB per GPU: ` +
        `${shown.join(", ")}${more}; lower train.micro_batch_size or data.max_length, or set train.gradient_checkpointing: true`,
    });
  }
  return warnings;
}
