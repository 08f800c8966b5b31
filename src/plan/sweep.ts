/**
 * Sweep expansion: `sweep` of an experiment -> the list of points, each a map from a dotted key
 * path ("method.r") to this run's value. Pure and deterministic: a random sweep draws from a PRNG
 * seeded by `sweep.seed`, so the same config always expands to the same points.
 */
import type { Sweep } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { canonicalJson } from "./canonical.ts";

export type SweepPoint = Record<string, unknown>;
export type SweepExpansion = { points: SweepPoint[]; warnings: string[] };

type Range = { min: number; max: number; distribution: "uniform" | "log_uniform" | "int_uniform" };
type Domain = unknown[] | Range;

/** Significant digits kept of a continuous draw: enough for any lr, short enough to read in an id. */
const DRAW_SIGNIFICANT_DIGITS = 4;

export function expandSweep(sweep: Sweep | undefined): SweepExpansion {
  if (sweep === undefined) return { points: [{}], warnings: [] };
  const entries = Object.entries(sweep.parameters) as Array<[string, Domain]>;
  if (entries.length === 0) throw invalid("sweep.parameters", "lists no parameter to sweep");
  for (const [key, domain] of entries) {
    if (!Array.isArray(domain)) checkRange(key, domain);
  }
  switch (sweep.method) {
    case "grid":
      return { points: grid(listsOnly(entries, "grid")), warnings: [] };
    case "zip":
      return { points: zip(listsOnly(entries, "zip")), warnings: [] };
    case "random":
      return random(entries, sweep);
  }
}

function invalid(path: string, message: string): UserError {
  return new UserError("PEFTCTL_CONFIG_INVALID", `${path}: ${message}`);
}

function checkRange(key: string, range: Range): void {
  const where = `sweep.parameters.${key}`;
  if (range.min > range.max) throw invalid(where, `min ${range.min} is above max ${range.max}`);
  if (range.distribution === "log_uniform" && range.min <= 0) {
    throw invalid(where, `a log_uniform range needs min > 0 (got ${range.min})`);
  }
  if (range.distribution === "int_uniform" && (!Number.isInteger(range.min) || !Number.isInteger(range.max))) {
    throw invalid(where, `an int_uniform range needs integer bounds (got ${range.min}..${range.max})`);
  }
}

function listsOnly(entries: Array<[string, Domain]>, method: "grid" | "zip"): Array<[string, unknown[]]> {
  return entries.map(([key, domain]) => {
    if (!Array.isArray(domain)) {
      throw invalid(`sweep.parameters.${key}`, `a range {min, max} only works with sweep.method: random, not ${method}; give a list of values`);
    }
    return [key, domain];
  });
}

/** Cartesian product; the last key varies fastest, as in nested loops written in key order. */
function grid(entries: Array<[string, unknown[]]>): SweepPoint[] {
  let points: SweepPoint[] = [{}];
  for (const [key, values] of entries) {
    const next: SweepPoint[] = [];
    for (const point of points) {
      for (const value of values) next.push({ ...point, [key]: value });
    }
    points = next;
  }
  return points;
}

/** The i-th value of every list together; all lists must have the same length. */
function zip(entries: Array<[string, unknown[]]>): SweepPoint[] {
  const [firstKey, firstValues] = entries[0]!;
  for (const [key, values] of entries) {
    if (values.length !== firstValues.length) {
      throw invalid(
        `sweep.parameters.${key}`,
        `zip pairs the lists value by value, so they need the same length: ${key} has ${values.length}, ${firstKey} has ${firstValues.length}`,
      );
    }
  }
  return firstValues.map((_, index) => Object.fromEntries(entries.map(([key, values]) => [key, values[index]])));
}

function random(entries: Array<[string, Domain]>, sweep: Sweep): SweepExpansion {
  if (sweep.n === undefined) throw invalid("sweep.n", "a random sweep needs n, the number of samples to draw");
  const next = seededUniform(sweep.seed);
  const points: SweepPoint[] = [];
  const seen = new Set<string>();
  let repeats = 0;
  for (let draw = 0; draw < sweep.n; draw++) {
    const point: SweepPoint = {};
    for (const [key, domain] of entries) point[key] = sample(domain, next);
    const identity = canonicalJson(point);
    if (seen.has(identity)) {
      repeats++;
      continue;
    }
    seen.add(identity);
    points.push(point);
  }
  const warnings =
    repeats > 0
      ? [`random sweep drew the same values ${repeats} time(s) out of n=${sweep.n}; planned ${points.length} distinct job(s)`]
      : [];
  return { points, warnings };
}

function sample(domain: Domain, next: () => number): unknown {
  if (Array.isArray(domain)) return domain[Math.floor(next() * domain.length)];
  const { min, max, distribution } = domain;
  switch (distribution) {
    case "int_uniform":
      return min + Math.floor(next() * (max - min + 1));
    case "uniform":
      return roundDraw(min + next() * (max - min), min, max);
    case "log_uniform": {
      const low = Math.log(min);
      return roundDraw(Math.exp(low + next() * (Math.log(max) - low)), min, max);
    }
  }
}

function roundDraw(value: number, min: number, max: number): number {
  const rounded = Number(value.toPrecision(DRAW_SIGNIFICANT_DIGITS));
  return Math.min(max, Math.max(min, rounded));
}

/**
 * A seeded uniform generator on [0, 1): splitmix32 to spread the seed, then mulberry32. Own code
 * because Math.random cannot be seeded and a sweep only needs a few thousand well-mixed draws, not
 * a cryptographic or statistical-library generator.
 */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  state = Math.imul(state ^ (state >>> 16), 0x85ebca6b) >>> 0;
  state = Math.imul(state ^ (state >>> 13), 0xc2b2ae35) >>> 0;
  state = (state ^ (state >>> 16)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
