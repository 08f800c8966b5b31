/**
 * Run ids: `<experiment>-<slug of the swept values>-<6 hex>` (no sweep: `<experiment>-<6 hex>`).
 * The slug is for people; the 6 hex digits (of the hash of the resolved job, see index.ts) make ids
 * unique and tie each id to exactly one configuration.
 */
import type { Method } from "../config/schema.ts";
import type { SweepPoint } from "../config/sweep-points.ts";

export const RUN_HASH_LENGTH = 6;
const MAX_PART_LENGTH = 32;
const MAX_SLUG_LENGTH = 72;

/** "1e-4" rather than "0.0001", "3.2e-5" rather than "0.000032": short and unambiguous. */
export function formatSweepNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  const magnitude = Math.abs(value);
  const text = magnitude !== 0 && (magnitude < 1e-2 || magnitude >= 1e6) ? value.toExponential() : String(value);
  return text.replace("e+", "e");
}

function slugText(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[-.]+|[-.]+$/g, "");
}

function leaves(value: unknown): string[] {
  if (value === null || value === undefined) return ["none"];
  if (typeof value === "number") return [formatSweepNumber(value)];
  if (typeof value !== "object") return [String(value)];
  const children = Array.isArray(value) ? value : Object.keys(value).sort().map((key) => (value as Record<string, unknown>)[key]);
  return children.flatMap(leaves);
}

function valueText(value: unknown): string {
  return slugText(leaves(value).join("_")).slice(0, MAX_PART_LENGTH);
}

/**
 * One part per swept key, in sorted key order (so the order keys were written in does not matter):
 * the key's last segment (its full path where two swept keys share a last segment) then the value,
 * e.g. { "method.r": 8, "train.lr": 0.0003 } -> "r8-lr3e-4"; non-numbers get an underscore: "kind_lora".
 */
export function sweepSlug(values: SweepPoint): string {
  return sweepSlugger(Object.keys(values))(values);
}

/**
 * sweepSlug for many points over the same keys (a sweep): labels are worked out once and each
 * key's value text is remembered, which matters at 10,000 runs.
 */
export function sweepSlugger(keys: readonly string[]): (values: SweepPoint) => string {
  const sorted = [...keys].sort();
  const lastSegment = (key: string) => key.slice(key.lastIndexOf(".") + 1);
  const counts = new Map<string, number>();
  for (const key of sorted) counts.set(lastSegment(key), (counts.get(lastSegment(key)) ?? 0) + 1);
  const labels = sorted.map((key) => (counts.get(lastSegment(key))! > 1 ? key : lastSegment(key)));
  const partCache = sorted.map(() => new Map<unknown, string>());
  const part = (index: number, value: unknown): string => {
    const cache = partCache[index]!;
    const cacheable = value === null || typeof value !== "object";
    const cached = cacheable ? cache.get(value) : undefined;
    if (cached !== undefined) return cached;
    const text = typeof value === "number" ? `${labels[index]}${valueText(value)}` : `${labels[index]}_${valueText(value)}`;
    if (cacheable) cache.set(value, text);
    return text;
  };
  return (values) => {
    const joined = sorted.map((key, index) => part(index, values[key])).join("-");
    return slugText(joined).slice(0, MAX_SLUG_LENGTH).replace(/[-.]+$/, "");
  };
}

/** `hash` is the job hash already cut to length: the caller lengthens it where two ids would clash. */
export function runId(experiment: string, slug: string, hash: string): string {
  return slug === "" ? `${experiment}-${hash}` : `${experiment}-${slug}-${hash}`;
}

/** "lora r8", "adapter len10", "prefix 20vt", "full": a job's method in a few characters (also the results table's row labels). */
export function methodLabel(method: Method): string {
  switch (method.kind) {
    case "lora":
      return `lora r${method.r}`;
    case "adapter":
      return `adapter len${method.adapter_len}`;
    case "prefix":
    case "prompt":
      return `${method.kind} ${method.num_virtual_tokens}vt`;
    case "ia3":
    case "full":
      return method.kind;
  }
}
