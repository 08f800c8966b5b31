/**
 * What a run id's hash and a job's fingerprint cover, declared field by field: adding a field to the
 * job spec is then a decision about identity, not an accident (a test checks that every field of
 * JobSpecSchema is either hashed or listed here as left out).
 *
 * Run ids and fingerprints must stay stable across versions of peftctl, or old runs would stop
 * resuming; the view hashed is therefore versioned on its own (IDENTITY_VERSION), apart from the job
 * spec's schema_version.
 */
import path from "node:path";
import { EvalSchema, FILE_PATH_KEYS } from "../config/schema.ts";
import type { JobSection } from "../config/sweep-points.ts";
import { canonicalJson, sha256Hex } from "../config/canonical.ts";

/** The hashed view's version: the run ids issued so far were made with it (under job schema_version 1). */
export const IDENTITY_VERSION = 1;

/** Sections hashed into the run id: the whole job but what only labels or locates it. */
export const RUN_ID_SECTIONS = ["checkpoint", "data", "eval", "experiment", "hub", "method", "model", "resources", "train"] as const;
/** Sections of the job fingerprint: what changes the trained weights (checked before resuming). */
export const FINGERPRINT_SECTIONS = ["data", "method", "model", "train"] as const;
/**
 * Top-level fields in neither: they name, place or label the run, or version the file. `report` (the
 * table label) and `logging` (the experiment trackers, which see the training but change nothing in it)
 * are refreshed in an existing run's job.json when the config changes them (src/runs/prepare.ts).
 */
export const UNHASHED_FIELDS = ["schema_version", "run_id", "run_dir", "sweep_values", "fingerprints", "report", "logging"] as const;
/** Fields that follow from hashed ones (batch_size / micro_batch_size), left out so each thing is hashed once. */
export const DERIVED_FIELDS: Readonly<Partial<Record<JobSection, readonly string[]>>> = { train: ["micro_batches_per_step"] };
/**
 * Fields added after run ids were first issued, by dotted path inside their section, with the value
 * every earlier job implicitly had: hashed only when set to something else, so that earlier runs keep
 * their ids and fingerprints. eval.generate's decoding settings (`peftctl eval`) count at their schema defaults.
 */
const DECODING_SETTINGS = ["do_sample", "temperature", "top_p", "top_k", "num_beams", "min_new_tokens", "no_repeat_ngram_size", "repetition_penalty", "seed", "batch_size"] as const;
const generateDefaults = EvalSchema.shape.generate.parse(undefined);
export const LATER_FIELDS: Readonly<Partial<Record<JobSection, Readonly<Record<string, unknown>>>>> = {
  train: { compile: false },
  // The data sources of issue 13 (a `datasets` split, column names, a chat template, a system prompt): absent before, hashed only when set.
  data: { source: undefined, columns: undefined, chat_template: undefined, system_prompt: undefined },
  // Absent (no quantization) before QLoRA came, so hashed only when set.
  model: { quantization: undefined },
  // Absent before containers came (issue 13): an image counts only where one is set.
  resources: { container: undefined },
  eval: Object.fromEntries(DECODING_SETTINGS.map((key) => [`generate.${key}`, generateDefaults[key]])),
  // The model card's fields of issue 13: absent before, hashed only when set away from the default.
  hub: { base_model: undefined, language: ["en"] },
};
/**
 * Fields whose default was removed, with that default: a job without them is hashed as if it held it,
 * as every earlier job did, so their ids stay. hub.license defaulted to apache-2.0 until the model card
 * took the base model's license (src/hub/model-card.ts).
 */
export const FORMER_DEFAULTS: Readonly<Partial<Record<JobSection, Readonly<Record<string, unknown>>>>> = {
  hub: { license: "apache-2.0" },
};

type HashedSection = (typeof RUN_ID_SECTIONS)[number];

/**
 * The canonical JSON of one section as hashed. Absolute paths (the config's FILE_PATH_KEYS, a local
 * model.base) are made relative to `pathRoot` (the config's directory), or cut to their file name
 * without it, so ids do not depend on where the checkout lives.
 */
export function hashedSection(name: JobSection, value: unknown, pathRoot: string | undefined): string {
  if (value === undefined || value === null) return "null";
  if (name === "model") {
    const model = { ...(value as { base: string }) } as Record<string, unknown> & { base: string };
    for (const [dotted, implicit] of Object.entries(LATER_FIELDS.model ?? {})) dropWhenEqual(model, dotted.split("."), implicit);
    return canonicalJson({ ...model, base: portablePath(model.base, pathRoot) });
  }
  const paths = FILE_PATH_KEYS.filter((keys) => keys[0] === name).map((keys) => keys.slice(1));
  const derived = DERIVED_FIELDS[name] ?? [];
  const later = Object.entries(LATER_FIELDS[name] ?? {});
  const former = Object.entries(FORMER_DEFAULTS[name] ?? {});
  if (paths.length === 0 && derived.length === 0 && later.length === 0 && former.length === 0) return canonicalJson(value);
  const kept = structuredClone(value) as Record<string, unknown>;
  for (const [key, implicit] of former) if (kept[key] === undefined) kept[key] = implicit;
  for (const keys of paths) portablePathAt(kept, keys, pathRoot);
  for (const key of derived) delete kept[key];
  for (const [dotted, implicit] of later) dropWhenEqual(kept, dotted.split("."), implicit);
  return canonicalJson(kept);
}

/** Makes the path string at `keys` portable, where there is one. */
function portablePathAt(target: Record<string, unknown>, keys: readonly string[], root: string | undefined): void {
  const parent = keys.slice(0, -1).reduce<unknown>((node, key) => (typeof node === "object" && node !== null ? (node as Record<string, unknown>)[key] : undefined), target);
  const last = keys.at(-1)!;
  if (typeof parent !== "object" || parent === null) return;
  const member = (parent as Record<string, unknown>)[last];
  if (typeof member === "string") (parent as Record<string, unknown>)[last] = portablePath(member, root);
}

/** Removes the member at `keys` when it equals `implicit`. */
function dropWhenEqual(target: Record<string, unknown>, keys: string[], implicit: unknown): void {
  const [head, ...rest] = keys as [string, ...string[]];
  const member = target[head];
  if (rest.length === 0) {
    if (canonicalJson(member) === canonicalJson(implicit)) delete target[head];
    return;
  }
  if (typeof member !== "object" || member === null || Array.isArray(member)) return;
  dropWhenEqual(member as Record<string, unknown>, rest, implicit);
}

/** The run id's hash and the job fingerprint from each section's hashedSection text. */
export function jobIdentity(sections: Readonly<Record<HashedSection, string>>): { hash: string; fingerprint: string } {
  const object = (names: readonly string[], extra: Record<string, string> = {}) => {
    const members: Record<string, string> = { ...extra };
    for (const name of names) members[name] = sections[name as HashedSection];
    return `{${Object.keys(members)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${members[key]}`)
      .join(",")}}`;
  };
  return {
    hash: sha256Hex(object(RUN_ID_SECTIONS, { schema_version: String(IDENTITY_VERSION) })),
    fingerprint: sha256Hex(object(FINGERPRINT_SECTIONS)),
  };
}

function portablePath(value: string, root: string | undefined): string {
  if (!path.isAbsolute(value)) return value;
  if (root !== undefined && path.isAbsolute(root)) return path.relative(root, value).split(path.sep).join("/");
  return path.basename(value);
}
