/**
 * Rules that involve more than one field, checked on the merged config. Each section is parsed
 * on its own so that a mistake in one section does not hide a rule broken in another.
 */
import { z } from "zod";
import { CheckpointSchema, EvalSchema, ExperimentSchema, ModelSchema, ResourcesSchema, SplitSchema, SweepSchema, TrainSchema } from "./schema.ts";
import type { KeyPath } from "./diagnostics.ts";
import { reportIssues, type Report } from "./issues.ts";
import { isPlainObject, setOwn } from "./merge.ts";
import { methodKindOf, resolveKeyPath } from "./schema-paths.ts";
import { didYouMean } from "./suggest.ts";

/** Keys a sweep may not vary: they name or shape the experiment itself. */
const NOT_SWEEPABLE = new Set(["name", "description", "extends", "$schema", "sweep"]);

function section(root: Record<string, unknown>, key: string): unknown {
  return root[key] ?? {};
}

// Only the fields a rule needs, unknown keys ignored: a typo elsewhere in the section must not hide the rule.
const BatchFields = z.object({ batch_size: TrainSchema.shape.batch_size, micro_batch_size: TrainSchema.shape.micro_batch_size });
const GpuFields = z.object({ gpus: ResourcesSchema.shape.gpus });
const SplitFields = z.object(SplitSchema.shape);
const MaxStepsFields = z.object({ max_steps: TrainSchema.shape.max_steps });
const DtypeFields = z.object({ dtype: ModelSchema.shape.dtype });
const LayerFields = z.object({ gradient_checkpointing: TrainSchema.shape.gradient_checkpointing, compile: TrainSchema.shape.compile });
const EveryStepsFields = { eval: z.object({ every_steps: EvalSchema.shape.every_steps }), checkpoint: z.object({ every_steps: CheckpointSchema.shape.every_steps }) };

export function checkRules(root: unknown, report: Report, warn: Report): void {
  if (!isPlainObject(root)) return;
  checkBatch(root, report);
  checkPrefixTraining(root, report);
  checkHalfPrecisionFullFineTuning(root, warn);
  checkSplit(root, report);
  checkIntervals(root, warn);
  checkSweep(root, report, warn);
}

function checkBatch(root: Record<string, unknown>, report: Report): void {
  const train = BatchFields.safeParse(section(root, "train"));
  const resources = GpuFields.safeParse(section(root, "resources"));
  if (!train.success || !resources.success) return;
  const { batch_size: batch, micro_batch_size: micro } = train.data;
  const gpus = resources.data.gpus;
  const perStep = micro * Math.max(1, gpus);
  if (batch % perStep === 0) return;
  const unit = gpus > 1 ? `micro_batch_size x gpus = ${micro} x ${gpus} = ${perStep}` : `micro_batch_size ${micro}`;
  const lower = Math.max(perStep, batch - (batch % perStep));
  const trainSection = isPlainObject(root.train) ? root.train : {};
  const where: KeyPath = "batch_size" in trainSection ? ["train", "batch_size"] : "micro_batch_size" in trainSection ? ["train", "micro_batch_size"] : ["train"];
  report(
    where,
    `batch_size ${batch} is not a multiple of ${unit}: gradient accumulation needs a whole number of micro-batches (try batch_size ${lower === batch ? lower + perStep : lower})`,
  );
}

/** Prefix tuning hands every layer its prefix through the key/value cache, which neither
 * activation checkpointing nor a compiled layer (recompiled once per layer index) can take. */
function checkPrefixTraining(root: Record<string, unknown>, report: Report): void {
  if (methodKindOf(root) !== "prefix") return;
  const train = LayerFields.safeParse(section(root, "train"));
  if (!train.success) return;
  if (train.data.gradient_checkpointing) {
    report(["train", "gradient_checkpointing"], "prefix tuning does not work with gradient checkpointing: its prefix is a per-layer key/value cache; turn it off or use lora");
  }
  if (train.data.compile) {
    report(["train", "compile"], "prefix tuning cannot be compiled: its per-layer key/value cache recompiles every layer; turn compile off or use lora");
  }
}

/** Full fine-tuning updates the weights in their own dtype (the shim keeps no fp32 master copy). */
function checkHalfPrecisionFullFineTuning(root: Record<string, unknown>, warn: Report): void {
  if (methodKindOf(root) !== "full") return;
  const model = DtypeFields.safeParse(section(root, "model"));
  const resources = GpuFields.safeParse(section(root, "resources"));
  if (!model.success || !resources.success) return;
  const dtype = model.data.dtype === "auto" ? (resources.data.gpus > 0 ? "bfloat16" : "float32") : model.data.dtype;
  if (dtype === "float32") return;
  const where: KeyPath = isPlainObject(root.model) && "dtype" in root.model ? ["model", "dtype"] : ["method", "kind"];
  warn(
    where,
    `full fine-tuning in ${dtype}${model.data.dtype === "auto" ? " (auto on a GPU)" : ""} updates ${dtype} weights directly, and AdamW steps smaller than about 0.4% of a weight are rounded away; set model.dtype: float32 for a faithful baseline`,
  );
}

function checkSplit(root: Record<string, unknown>, report: Report): void {
  const data = isPlainObject(root.data) ? root.data : undefined;
  if (!data) return;
  const split = SplitFields.safeParse(data.split ?? {});
  if (!split.success) return;
  const { train, valid, test } = split.data;
  const sum = train + valid + test;
  const where: KeyPath = isPlainObject(data.split) ? ["data", "split"] : ["data"];
  if (Math.abs(sum - 1) > 1e-6) report(where, `train + valid + test must sum to 1, got ${train} + ${valid} + ${test} = ${Number(sum.toFixed(6))}`);
  if (train === 0) report(where, "train must be > 0: there would be nothing to train on");
}

function checkIntervals(root: Record<string, unknown>, warn: Report): void {
  const train = MaxStepsFields.safeParse(section(root, "train"));
  if (!train.success || train.data.max_steps === undefined) return;
  const maxSteps = train.data.max_steps;
  for (const [name, schema] of Object.entries(EveryStepsFields)) {
    const parsed = schema.safeParse(section(root, name));
    if (parsed.success && parsed.data.every_steps > maxSteps && isPlainObject(root[name]) && "every_steps" in (root[name] as object)) {
      warn([name, "every_steps"], `every_steps ${parsed.data.every_steps} > train.max_steps ${maxSteps}: it happens only at the end`);
    }
  }
}

function checkSweep(root: Record<string, unknown>, report: Report, warn: Report): void {
  if (root.sweep === undefined) return;
  const sweep = SweepSchema.safeParse(root.sweep);
  if (!sweep.success) return; // the schema's own issues are already reported
  const { method, parameters, n } = sweep.data;
  const at = (key: string, ...rest: (string | number)[]): KeyPath => ["sweep", "parameters", key, ...rest];
  if (method === "random" && n === undefined) report(["sweep", "n"], "a random sweep needs `n`, the number of runs to sample");
  if (method !== "random" && n !== undefined) warn(["sweep", "n"], `n is ignored by a ${method} sweep (it runs every combination${method === "zip" ? " in step" : ""})`);
  if (Object.keys(parameters).length === 0) report(["sweep", "parameters"], "a sweep needs at least one parameter");

  const kind = methodKindOf(root);
  const listLengths: [string, number][] = [];
  for (const [key, values] of Object.entries(parameters)) {
    if (!checkSweepKey(key, kind, report)) continue;
    if (Array.isArray(values)) {
      listLengths.push([key, values.length]);
      values.forEach((value, index) => checkSweepValue(root, key, value, at(key, index), report));
    } else {
      if (method !== "random") {
        report(at(key), `a range (min/max) needs sweep.method: random; a ${method} sweep takes a list of values`, "key");
      }
      checkRange(root, key, values, report);
    }
  }
  if (method === "zip" && listLengths.length > 1) {
    const [firstKey, firstLength] = listLengths[0]!;
    for (const [key, length] of listLengths.slice(1)) {
      if (length !== firstLength) {
        report(at(key), `zip lists must have equal lengths: \`${key}\` has ${length} values, \`${firstKey}\` has ${firstLength}`, "key");
      }
    }
  }
}

function checkSweepKey(key: string, kind: string | undefined, report: Report): boolean {
  const where: KeyPath = ["sweep", "parameters", key];
  const root = key.split(".")[0]!;
  if (NOT_SWEEPABLE.has(root)) {
    report(where, `cannot sweep over \`${root}\`: it names or shapes the experiment itself`, "key");
    return false;
  }
  const resolved = resolveKeyPath(key, { methodKind: key === "method.kind" ? undefined : kind });
  if (!resolved.missing) return true;
  const { resolvedSegments, validKeys } = resolved.missing;
  const known = key.split(".").slice(0, resolvedSegments);
  const wrong = key.split(".")[resolvedSegments] ?? "";
  if (known.length === 1 && known[0] === "method" && kind !== undefined && !resolveKeyPath(key).missing) {
    report(where, `sweep over \`${key}\`, which method ${kind} does not have`, "key");
    return false;
  }
  const suggestion = didYouMean(wrong, validKeys).replace(/`([^`]+)`/, (_, name: string) => `\`${[...known, name].join(".")}\``);
  report(where, `sweep over unknown key \`${key}\`${suggestion}`, "key");
  return false;
}

/** Places `value` at the dotted `key` of a copy of the config. */
function withValue(root: Record<string, unknown>, key: string, value: unknown): { config: Record<string, unknown>; keyPath: string[] } {
  const { path: keyPath } = resolveKeyPath(key);
  const config = structuredClone(root);
  let node: Record<string, unknown> = config;
  for (const segment of keyPath.slice(0, -1)) {
    if (!isPlainObject(node[segment])) setOwn(node, segment, {});
    node = node[segment] as Record<string, unknown>;
  }
  setOwn(node, keyPath.at(-1)!, value);
  return { config, keyPath };
}

/** Issues that a sweep value causes at its own key, reported at the value in the sweep. */
function valueIssues(root: Record<string, unknown>, key: string, value: unknown): { config: Record<string, unknown>; issues: ReturnType<typeof issuesUnder> } {
  const { config, keyPath } = withValue(root, key, value);
  return { config, issues: issuesUnder(config, keyPath) };
}

function issuesUnder(config: Record<string, unknown>, keyPath: string[]) {
  const result = ExperimentSchema.safeParse(config, { reportInput: true });
  if (result.success) return [];
  return result.error.issues.filter((issue) => keyPath.every((segment, index) => String(issue.path[index]) === segment || (issue.code === "unrecognized_keys" && index === issue.path.length && issue.keys.includes(segment))));
}

function checkSweepValue(root: Record<string, unknown>, key: string, value: unknown, where: KeyPath, report: Report): void {
  const { config, issues } = valueIssues(root, key, value);
  reportIssues(issues, config, (_, message) => report(where, `sweep value for \`${key}\`: ${message.replace(/, got .*$/, "")}, got ${JSON.stringify(value)}`));
}

function checkRange(root: Record<string, unknown>, key: string, range: { min: number; max: number; distribution: string }, report: Report): void {
  const where: KeyPath = ["sweep", "parameters", key];
  if (range.min > range.max) report(where, `min ${range.min} is greater than max ${range.max}`);
  if (range.distribution === "log_uniform" && range.min <= 0) report([...where, "min"], "a log_uniform range needs min > 0");
  for (const bound of ["min", "max"] as const) checkSweepValue(root, key, range[bound], [...where, bound], report);
  if (range.distribution !== "int_uniform") {
    const { issues } = valueIssues(root, key, Math.floor(range.min) + 0.5);
    if (issues.some((issue) => issue.code === "invalid_type" && issue.expected === "int")) {
      report(where, `\`${key}\` takes integers: use distribution: int_uniform`);
    }
  }
}
