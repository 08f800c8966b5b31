/**
 * Rules that involve more than one field: the one place each of them is written. They run on the
 * merged config and, when there is a sweep, on every point the sweep plans (a swept value can break
 * a rule that the config alone keeps), so the plan takes a validated Experiment and checks nothing.
 *
 * A rule reads fields through `get`, which gives a field's parsed value (its default when absent)
 * or undefined when the field itself is invalid: a typo elsewhere in a section must not hide a rule.
 */
import type { z } from "zod";
import { slurmTimeSeconds, SweepSchema, type Experiment } from "./schema.ts";
import { batchLayout } from "./batch.ts";
import type { KeyPath } from "./diagnostics.ts";
import { messageText, reportIssues, type Report } from "./issues.ts";
import { isPlainObject, setOwn } from "./merge.ts";
import { methodKindOf, resolveKeyPath } from "./schema-paths.ts";
import { describePoint, pointResolver, type JobConfig, type ResolvedPoint, type SectionFailure, type SweepPoint } from "./sweep-points.ts";
import { didYouMean } from "./suggest.ts";
import { expandSweep, sweepSize } from "./sweep.ts";

/** Keys a sweep may not vary: they name or shape the experiment itself. */
const NOT_SWEEPABLE = new Set(["name", "description", "extends", "$schema", "sweep"]);

/** Findings of one rule on one sweep point reported by name; the rest are counted. */
const POINTS_SHOWN = 3;

type Get = (field: string) => unknown;
/** What a rule found: `fields` in the order they should carry the message (the first set one wins). */
type Finding = { fields: string[]; message: string };
/**
 * A rule over the fields it `reads`: `check` gets their parsed values, and runs only when every one
 * of them is valid (a field in `optional` may also be absent).
 */
type CrossFieldRule = {
  severity: "error" | "warning";
  reads: readonly string[];
  optional?: readonly string[];
  // The values are the fields' parsed values, typed by the schema; `any` keeps each rule free of casts.
  check(values: Record<string, any>, isSet: (field: string) => boolean): Finding[];
};

const batchRule: CrossFieldRule = {
  severity: "error",
  reads: ["train.batch_size", "train.micro_batch_size", "resources.gpus"],
  check({ "train.batch_size": batch, "train.micro_batch_size": micro, "resources.gpus": gpus }) {
    if (batchLayout({ batch_size: batch, micro_batch_size: micro, gpus })) return [];
    const perStep = micro * Math.max(1, gpus);
    const unit = gpus > 1 ? `micro_batch_size x gpus = ${micro} x ${gpus} = ${perStep}` : `micro_batch_size ${micro}`;
    const lower = Math.max(perStep, batch - (batch % perStep));
    return [
      {
        fields: ["train.batch_size", "train.micro_batch_size"],
        message: `batch_size ${batch} is not a multiple of ${unit}: gradient accumulation needs a whole number of micro-batches (try batch_size ${lower === batch ? lower + perStep : lower})`,
      },
    ];
  },
};

/** Prefix tuning hands every layer its prefix through the key/value cache, which neither
 * activation checkpointing nor a compiled layer (recompiled once per layer index) can take. */
const prefixTrainingRule: CrossFieldRule = {
  severity: "error",
  reads: ["method.kind", "train.gradient_checkpointing", "train.compile"],
  check({ "method.kind": kind, "train.gradient_checkpointing": checkpointing, "train.compile": compile }) {
    if (kind !== "prefix") return [];
    const findings: Finding[] = [];
    if (checkpointing) {
      findings.push({ fields: ["train.gradient_checkpointing", "method.kind"], message: "prefix tuning does not work with gradient checkpointing: its prefix is a per-layer key/value cache; turn it off or use lora" });
    }
    if (compile) {
      findings.push({ fields: ["train.compile", "method.kind"], message: "prefix tuning cannot be compiled: its per-layer key/value cache recompiles every layer; turn compile off or use lora" });
    }
    return findings;
  },
};

/** IA3 scales feed-forward modules at their input: each must be one of the adapted modules. */
const ia3FeedforwardRule: CrossFieldRule = {
  severity: "error",
  reads: ["method.kind", "method.target_modules", "method.feedforward_modules"],
  optional: ["method.target_modules", "method.feedforward_modules"],
  check({ "method.kind": kind, "method.target_modules": targets, "method.feedforward_modules": feedforward }) {
    if (kind !== "ia3" || targets === undefined || feedforward === undefined) return [];
    const outside = (feedforward as string[]).filter((name) => !(targets as string[]).includes(name));
    if (outside.length === 0) return [];
    return [{ fields: ["method.feedforward_modules", "method.target_modules"], message: `${outside.map((name) => `\`${name}\``).join(", ")} must also be in method.target_modules` }];
  },
};

/** Full fine-tuning updates the weights in their own dtype (the shim keeps no fp32 master copy). */
const halfPrecisionFullRule: CrossFieldRule = {
  severity: "warning",
  reads: ["method.kind", "model.dtype", "resources.gpus"],
  check({ "method.kind": kind, "model.dtype": setting, "resources.gpus": gpus }) {
    if (kind !== "full") return [];
    const dtype = setting === "auto" ? (gpus > 0 ? "bfloat16" : "float32") : setting;
    if (dtype === "float32") return [];
    return [
      {
        fields: ["model.dtype", "method.kind"],
        message: `full fine-tuning in ${dtype}${setting === "auto" ? " (auto on a GPU)" : ""} updates ${dtype} weights directly, and AdamW steps smaller than about 0.4% of a weight are rounded away; set model.dtype: float32 for a faithful baseline`,
      },
    ];
  },
};

/** A quantized base model trains only through an adapter: bitsandbytes' 4- and 8-bit weights take no gradient. */
const quantizedFullRule: CrossFieldRule = {
  severity: "error",
  reads: ["model.quantization", "method.kind"],
  optional: ["model.quantization"],
  check({ "model.quantization": quantization, "method.kind": kind }) {
    if (quantization === undefined || kind !== "full") return [];
    return [
      {
        fields: ["model.quantization", "method.kind"],
        message: `full fine-tuning cannot train a ${quantization.bits}-bit quantized model: its quantized weights take no gradient; use lora (QLoRA) or another adapter method, or remove model.quantization`,
      },
    ];
  },
};

/** The one split rule: the shim splits every dialogue by these fractions. */
const splitRule: CrossFieldRule = {
  severity: "error",
  reads: ["data.split.train", "data.split.valid", "data.split.test"],
  check({ "data.split.train": train, "data.split.valid": valid, "data.split.test": test }) {
    const findings: Finding[] = [];
    const sum = train + valid + test;
    const fields = ["data.split", "data"];
    if (Math.abs(sum - 1) > 1e-6) findings.push({ fields, message: `train + valid + test must sum to 1, got ${train} + ${valid} + ${test} = ${Number(sum.toFixed(6))}` });
    if (train === 0) findings.push({ fields, message: "train must be > 0: there would be nothing to train on" });
    return findings;
  },
};

/** Intervals longer than the run happen only at its end (a warning, when the user set them). */
const intervalsRule: CrossFieldRule = {
  severity: "warning",
  reads: ["train.max_steps", "eval.every_steps", "checkpoint.every_steps"],
  optional: ["train.max_steps"],
  check(values, isSet) {
    const maxSteps = values["train.max_steps"] as number | undefined;
    if (maxSteps === undefined) return [];
    return ["eval.every_steps", "checkpoint.every_steps"].flatMap((field) => {
      const every = values[field] as number;
      if (every <= maxSteps || !isSet(field)) return [];
      return [{ fields: [field], message: `every_steps ${every} > train.max_steps ${maxSteps}: it happens only at the end` }];
    });
  },
};

/** A Slurm job needs its partition and time limit; the checkpoint signal must come before that limit. */
const slurmRule: CrossFieldRule = {
  severity: "error",
  reads: ["resources.executor", "resources.slurm"],
  optional: ["resources.slurm"],
  check({ "resources.executor": executor, "resources.slurm": slurm }, isSet) {
    if (executor !== "slurm") {
      return slurm ? [{ fields: ["resources.slurm"], message: `resources.slurm is set but resources.executor is ${executor}: set executor: slurm, or remove the slurm settings` }] : [];
    }
    if (!slurm) {
      // Set but invalid: its own error says why.
      if (isSet("resources.slurm")) return [];
      return [{ fields: ["resources.executor"], message: "executor slurm needs resources.slurm with at least partition and time, e.g. slurm: { partition: gpu, time: \"4:00:00\" }" }];
    }
    const limit = slurmTimeSeconds(slurm.time);
    if (slurm.signal_grace_s >= limit) {
      return [{ fields: ["resources.slurm.signal_grace_s", "resources.slurm.time"], message: `signal_grace_s ${slurm.signal_grace_s} is not below the time limit ${slurm.time} (${limit} s): the job would be told to checkpoint before it starts` }];
    }
    return [];
  },
};

/** SSH hosts come with executor ssh, and executor ssh needs them. */
const sshRule: CrossFieldRule = {
  severity: "error",
  reads: ["resources.executor", "resources.ssh"],
  optional: ["resources.ssh"],
  check({ "resources.executor": executor, "resources.ssh": ssh }, isSet) {
    if (executor !== "ssh") {
      return ssh ? [{ fields: ["resources.ssh"], message: `resources.ssh is set but resources.executor is ${executor}: set executor: ssh, or remove the ssh settings` }] : [];
    }
    if (ssh || isSet("resources.ssh")) return [];
    return [{ fields: ["resources.executor"], message: "executor ssh needs resources.ssh with its hosts, e.g. ssh: { hosts: [{ host: gpu-a, python: /opt/venv/bin/python, workdir: /scratch/peftctl }] }" }];
  },
};

/** The rule's findings, or none when a field it needs is invalid (that field's own error says why). */
function runRule(rule: CrossFieldRule, get: Get, isSet: (field: string) => boolean): Finding[] {
  const values: Record<string, unknown> = {};
  for (const field of rule.reads) {
    values[field] = get(field);
    if (values[field] === undefined && !rule.optional?.includes(field)) return [];
  }
  return rule.check(values, isSet);
}

const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [batchRule, prefixTrainingRule, ia3FeedforwardRule, halfPrecisionFullRule, quantizedFullRule, splitRule, intervalsRule, slurmRule, sshRule];

/** `experiment`: the schema's parse of `root` when it succeeded (the loader has it), for the sweep points. */
export function checkRules(root: unknown, report: Report, warn: Report, experiment?: Experiment): void {
  if (!isPlainObject(root)) return;
  const sink = { error: report, warning: warn };
  for (const rule of CROSS_FIELD_RULES) {
    for (const finding of runRule(rule, (field) => fieldOf(root, field), (field) => setIn(root, field))) {
      const field = finding.fields.find((candidate) => setIn(root, candidate)) ?? finding.fields[0]!;
      sink[rule.severity](setIn(root, field) ? field.split(".") : field.split(".").slice(0, 1), finding.message);
    }
  }
  if (experiment && checkSweep(root, report, warn)) checkSweepPoints(root, experiment, report, warn);
}

/** A field of the raw config, parsed by its own schema: its default when absent, undefined when invalid. */
function fieldOf(root: Record<string, unknown>, field: string): unknown {
  const { path, schemas } = resolveKeyPath(field, { methodKind: methodKindOf(root) });
  let value: unknown = root;
  for (const segment of path) value = isPlainObject(value) ? value[segment] : undefined;
  for (const schema of schemas) {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
  }
  return undefined;
}

function setIn(root: Record<string, unknown>, field: string): boolean {
  let value: unknown = root;
  for (const segment of field.split(".")) {
    if (!isPlainObject(value) || !(segment in value)) return false;
    value = value[segment];
  }
  return true;
}

/** The sweep's own shape; true when it is valid and small enough for its points to be checked. */
function checkSweep(root: Record<string, unknown>, report: Report, warn: Report): boolean {
  if (root.sweep === undefined) return false;
  const sweep = SweepSchema.safeParse(root.sweep);
  if (!sweep.success) return false; // the schema's own issues are already reported
  let errors = 0;
  const fail: Report = (...args) => {
    errors++;
    report(...args);
  };
  const { method, parameters, n, max_runs: maxRuns } = sweep.data;
  const at = (key: string, ...rest: (string | number)[]): KeyPath => ["sweep", "parameters", key, ...rest];
  if (method === "random" && n === undefined) fail(["sweep", "n"], "a random sweep needs `n`, the number of runs to sample");
  if (method !== "random" && n !== undefined) warn(["sweep", "n"], `n is ignored by a ${method} sweep (it runs every combination${method === "zip" ? " in step" : ""})`);
  if (Object.keys(parameters).length === 0) fail(["sweep", "parameters"], "a sweep needs at least one parameter");

  // The size first: a sweep too large to plan is not worth checking value by value.
  const domains = Object.values(parameters);
  if (method === "random" || domains.every((domain) => Array.isArray(domain))) {
    const size = sweepSize(sweep.data);
    if (size > maxRuns) {
      const where: KeyPath = isPlainObject(root.sweep) && "max_runs" in root.sweep ? ["sweep", "max_runs"] : method === "random" ? ["sweep", "n"] : ["sweep", "parameters"];
      const what = method === "grid" ? `a grid of ${domains.map((values) => (values as unknown[]).length).join(" x ")} = ${size.toLocaleString("en-US")} runs` : `${size.toLocaleString("en-US")} runs`;
      report(where, `this sweep plans ${what}, more than sweep.max_runs ${maxRuns.toLocaleString("en-US")}; sweep fewer values, or raise sweep.max_runs if you mean it`);
      return false;
    }
  }

  const kind = methodKindOf(root);
  const listLengths: [string, number][] = [];
  for (const [key, values] of Object.entries(parameters)) {
    if (!checkSweepKey(key, kind, fail)) continue;
    if (Array.isArray(values)) {
      listLengths.push([key, values.length]);
      values.forEach((value, index) => checkSweepValue(root, key, value, at(key, index), fail));
    } else {
      if (method !== "random") {
        fail(at(key), `a range (min/max) needs sweep.method: random; a ${method} sweep takes a list of values`, "key");
      }
      checkRange(root, key, values, fail);
    }
  }
  if (method === "zip" && listLengths.length > 1) {
    const [firstKey, firstLength] = listLengths[0]!;
    for (const [key, length] of listLengths.slice(1)) {
      if (length !== firstLength) {
        fail(at(key), `zip lists must have equal lengths: \`${key}\` has ${length} values, \`${firstKey}\` has ${firstLength}`, "key");
      }
    }
  }
  return errors === 0;
}

function checkSweepKey(key: string, kind: string | undefined, report: Report): boolean {
  const where: KeyPath = ["sweep", "parameters", key];
  const root = key.split(".")[0]!;
  if (root === "logging") {
    // Trackers change no run id (identity.ts): the points would be one run each, planned once.
    report(where, "cannot sweep over `logging`: the trackers are the experiment's, they change no run id; set them once outside the sweep", "key");
    return false;
  }
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

/** Copy-on-write placement of `value` at `keyPath`: only the objects along the path are copied. */
function withPath(target: Record<string, unknown>, keyPath: readonly string[], value: unknown): Record<string, unknown> {
  const [head, ...rest] = keyPath as [string, ...string[]];
  const copy: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(target)) setOwn(copy, key, member);
  setOwn(copy, head, rest.length === 0 ? value : withPath(isPlainObject(target[head]) ? target[head] : {}, rest, value));
  return copy;
}

/**
 * Issues a sweep value has at its own key: the value is parsed by that key's schema alone (so the
 * cost is the value's, not the config's, once per listed value), and the issues come with the
 * config as it would be, for the messages' suggestions.
 */
function valueIssues(root: Record<string, unknown>, key: string, value: unknown): { config: Record<string, unknown>; keyPath: string[]; issues: z.core.$ZodIssue[] } {
  const kind = methodKindOf(root);
  const { path: keyPath, schemas } = resolveKeyPath(key, { methodKind: key === "method.kind" ? undefined : kind });
  const config = withPath(root, keyPath, value);
  let issues: z.core.$ZodIssue[] | undefined;
  for (const schema of schemas) {
    const parsed = schema.safeParse(value, { reportInput: true });
    if (parsed.success) return { config, keyPath, issues: [] };
    issues ??= parsed.error.issues;
  }
  return { config, keyPath, issues: issues ?? [] };
}

function checkSweepValue(root: Record<string, unknown>, key: string, value: unknown, where: KeyPath, report: Report): void {
  const { config, keyPath, issues } = valueIssues(root, key, value);
  reportIssues(issues, config, (_, message) => report(where, () => `sweep value for \`${key}\`: ${messageText(message).replace(/, got .*$/, "")}, got ${JSON.stringify(value)}`), keyPath);
}

function checkRange(root: Record<string, unknown>, key: string, range: { min: number; max: number; distribution: string }, report: Report): void {
  const where: KeyPath = ["sweep", "parameters", key];
  if (range.min > range.max) report(where, `min ${range.min} is greater than max ${range.max}`);
  if (range.distribution === "log_uniform" && range.min <= 0) report([...where, "min"], "a log_uniform range needs min > 0");
  if (range.distribution === "int_uniform") {
    for (const bound of ["min", "max"] as const) {
      if (!Number.isInteger(range[bound])) report([...where, bound], `an int_uniform range needs integer bounds, got ${bound} ${range[bound]}`);
    }
  }
  for (const bound of ["min", "max"] as const) checkSweepValue(root, key, range[bound], [...where, bound], report);
  if (range.distribution !== "int_uniform") {
    const { issues } = valueIssues(root, key, Math.floor(range.min) + 0.5);
    if (issues.some((issue) => issue.code === "invalid_type" && issue.expected === "int")) {
      report(where, `\`${key}\` takes integers: use distribution: int_uniform`);
    }
  }
}

/**
 * Every point of a valid sweep, resolved as the plan resolves it: a section the point's values break,
 * and every cross-field rule that reads a swept key, reported at the sweep. Each rule runs once per
 * distinct combination of the swept values it reads.
 */
function checkSweepPoints(root: Record<string, unknown>, experiment: Experiment, report: Report, warn: Report): void {
  if (experiment.sweep === undefined) return;
  const { sweep, ...config } = experiment;
  const sweptKeys = Object.keys(sweep.parameters);
  const resolve = pointResolver(config as JobConfig);
  const sink = { error: report, warning: warn };
  const shown = new Map<string, { count: number; where: KeyPath; severity: "error" | "warning" }>();
  const tell = (severity: "error" | "warning", key: string, message: string, values: SweepPoint) => {
    const seen = shown.get(message);
    if (seen !== undefined && seen.count >= POINTS_SHOWN) {
      seen.count++; // counted only: finding the value in its list costs the list's length
      return;
    }
    const where = sweptValueAt(sweep.parameters[key], key, values[key]);
    sink[severity](where, `${message} (sweep point ${describePoint(values)})`, "key");
    if (seen === undefined) shown.set(message, { count: 1, where, severity });
    else seen.count++;
  };
  const rules = CROSS_FIELD_RULES.map((rule) => ({ rule, swept: sweptKeys.filter((key) => rule.reads.some((field) => key === field || key.startsWith(`${field}.`) || field.startsWith(`${key}.`))) }))
    .filter(({ swept }) => swept.length > 0);
  const checked = rules.map(() => new Set<string>());

  for (const values of expandSweep(sweep).points) {
    const point = resolve(values);
    if (!point.ok) {
      for (const failure of point.failures) reportFailure(failure, point, tell);
      continue;
    }
    rules.forEach(({ rule, swept }, index) => {
      const combination = JSON.stringify(swept.map((key) => values[key]));
      if (checked[index]!.has(combination)) return;
      checked[index]!.add(combination);
      const get: Get = (field) => valueIn(point.config, field);
      for (const finding of runRule(rule, get, (field) => swept.includes(field) || setIn(root, field))) {
        const key = finding.fields.map((field) => swept.find((candidate) => candidate === field || candidate.startsWith(`${field}.`))).find((k) => k !== undefined) ?? swept[0]!;
        tell(rule.severity, key, finding.message, Object.fromEntries(swept.map((k) => [k, values[k]])));
      }
    });
  }
  for (const [message, { count, where, severity }] of shown) {
    if (count > POINTS_SHOWN) sink[severity](where, `${message}: ${count - POINTS_SHOWN} more sweep point(s) like the above`, "key");
  }
}

function reportFailure(failure: SectionFailure, point: ResolvedPoint, tell: (severity: "error", key: string, message: string, values: SweepPoint) => void): void {
  const values = Object.fromEntries(failure.sweptKeys.map((key) => [key, point.values[key]]));
  for (const issue of failure.issues) {
    const field = [failure.section, ...issue.path.map(String)].join(".");
    const problem = issue.code === "unrecognized_keys" ? `unknown key${issue.keys.length === 1 ? "" : "s"} ${issue.keys.map((key) => `\`${key}\``).join(", ")}` : issue.message;
    tell("error", failure.sweptKeys[0]!, `these swept values make an invalid ${failure.section}: ${field}: ${problem}`, values);
  }
}

/** Where a swept value sits: its item in the key's list, else the key (a range). */
function sweptValueAt(domain: unknown, key: string, value: unknown): KeyPath {
  const index = Array.isArray(domain) ? domain.findIndex((item) => JSON.stringify(item) === JSON.stringify(value)) : -1;
  return index >= 0 ? ["sweep", "parameters", key, index] : ["sweep", "parameters", key];
}

function valueIn(config: JobConfig, field: string): unknown {
  let value: unknown = config;
  for (const segment of field.split(".")) value = isPlainObject(value) ? value[segment] : undefined;
  return value;
}
