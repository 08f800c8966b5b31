/**
 * Sweep points -> the config sections of each job. `validate` resolves every point with this (so
 * a swept value that breaks its section, or a rule, is reported at the sweep), and the plan builds
 * its jobs from the same resolution, trusting it.
 *
 * A section's result depends only on the swept values inside it, so it is parsed once per distinct
 * set of those values, not once per point: a 10,000-run grid over four keys parses a few hundred
 * sections.
 */
import type { z } from "zod";
import { canonicalJson } from "./canonical.ts";
import { ExperimentSchema, type Experiment } from "./schema.ts";

export type SweepPoint = Record<string, unknown>;

/** The experiment's sections that make up a job (the rest shape the experiment, not a run). */
export const JOB_SECTIONS = ["name", "model", "method", "data", "train", "eval", "checkpoint", "resources", "hub", "report", "logging"] as const;
export type JobSection = (typeof JOB_SECTIONS)[number];
export type JobConfig = Pick<Experiment, JobSection>;

/** One section as a point resolves it; `key` identifies the swept values it was built from. */
export type ResolvedSection = { section: JobSection; key: string; value: unknown };
export type SectionFailure = { section: JobSection; sweptKeys: string[]; issues: z.core.$ZodIssue[] };
export type ResolvedPoint =
  | { ok: true; values: SweepPoint; config: JobConfig; sections: Record<JobSection, ResolvedSection> }
  | { ok: false; values: SweepPoint; failures: SectionFailure[] };

export function pointResolver(config: JobConfig): (values: SweepPoint) => ResolvedPoint {
  const cache = new Map<string, ResolvedSection | SectionFailure>();
  const base: Record<string, unknown> = config;

  const section = (name: JobSection, swept: Array<[string, string[], unknown]>): ResolvedSection | SectionFailure => {
    const key = swept.length === 0 ? name : `${name}\u0000${canonicalJson(swept.map(([, path, value]) => [path, value]))}`;
    const cached = cache.get(key);
    if (cached !== undefined) return cached;
    let candidate: unknown = base[name];
    for (const [, path, value] of swept) {
      // As with `extends`, another method kind is another method: it starts from its own defaults.
      const otherKind = name === "method" && path.length === 1 && path[0] === "kind" && value !== asObject(candidate).kind;
      candidate = path.length === 0 ? value : withPath(otherKind ? {} : asObject(candidate), path, value);
    }
    const parsed = ExperimentSchema.shape[name].safeParse(candidate);
    const result: ResolvedSection | SectionFailure = parsed.success
      ? { section: name, key, value: parsed.data }
      : { section: name, sweptKeys: swept.map(([dotted]) => dotted), issues: parsed.error.issues };
    cache.set(key, result);
    return result;
  };

  return (values) => {
    const touched = new Map<JobSection, Array<[string, string[], unknown]>>();
    for (const [dotted, value] of Object.entries(values)) {
      const [head, ...rest] = dotted.split(".") as [JobSection, ...string[]];
      touched.set(head, [...(touched.get(head) ?? []), [dotted, rest, value]]);
    }
    // method.kind first, so that a point's other method keys land on the method it picks.
    touched.get("method")?.sort(([a], [b]) => Number(b === "method.kind") - Number(a === "method.kind"));
    const sections = {} as Record<JobSection, ResolvedSection>;
    const failures: SectionFailure[] = [];
    for (const name of JOB_SECTIONS) {
      const result = section(name, touched.get(name) ?? []);
      if ("issues" in result) failures.push(result);
      else sections[name] = result;
    }
    if (failures.length > 0) return { ok: false, values, failures };
    const resolved = {} as Record<JobSection, unknown>;
    for (const name of JOB_SECTIONS) resolved[name] = sections[name].value;
    return { ok: true, values, config: resolved as JobConfig, sections };
  };
}

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** Copy-on-write set of a dotted path: only the objects along the path are copied. */
function withPath(target: Record<string, unknown>, keys: string[], value: unknown): Record<string, unknown> {
  const [head, ...rest] = keys as [string, ...string[]];
  if (rest.length === 0) return { ...target, [head]: value };
  return { ...target, [head]: withPath(asObject(target[head]), rest, value) };
}

export function describePoint(values: SweepPoint): string {
  return Object.entries(values)
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(", ");
}
