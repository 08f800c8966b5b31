/**
 * Sweep expansion: `sweep` of an experiment -> the list of points, each a map from a dotted key
 * path ("method.r") to this run's value. Pure and deterministic: a random sweep draws from a PRNG
 * seeded by `sweep.seed`, so the same config always expands to the same points.
 */
import { canonicalJson } from "./canonical.ts";
import type { KeyPath } from "./diagnostics.ts";
import type { Sweep } from "./schema.ts";
import type { SweepPoint } from "./sweep-points.ts";

/** A finding about the sweep, at the config key it concerns (the caller positions it). */
export type SweepWarning = { path: KeyPath; message: string };
export type SweepExpansion = { points: SweepPoint[]; warnings: SweepWarning[] };

type Range = { min: number; max: number; distribution: "uniform" | "log_uniform" | "int_uniform" };
type Domain = unknown[] | Range;

/** Significant digits kept of a continuous draw: enough for any lr, short enough to read in an id. */
const DRAW_SIGNIFICANT_DIGITS = 4;

/**
 * The points of a validated sweep (src/config checks it: ranges only with random, zip lists of one
 * length, n for random, at most sweep.max_runs points).
 */
export function expandSweep(sweep: Sweep | undefined): SweepExpansion {
  if (sweep === undefined) return { points: [{}], warnings: [] };
  const entries = Object.entries(sweep.parameters) as Array<[string, Domain]>;
  switch (sweep.method) {
    case "grid":
      return { points: grid(listsOnly(entries)), warnings: [] };
    case "zip":
      return { points: zip(listsOnly(entries)), warnings: [] };
    case "random":
      return random(entries, sweep);
  }
}

/** How many points a sweep expands to (random: at most, before repeated draws are dropped), without expanding it. */
export function sweepSize(sweep: Sweep): number {
  const lengths = Object.values(sweep.parameters).map((domain) => (Array.isArray(domain) ? domain.length : Number.POSITIVE_INFINITY));
  switch (sweep.method) {
    case "grid":
      return lengths.reduce((product, length) => product * length, 1);
    case "zip":
      return lengths[0] ?? 0;
    case "random":
      return sweep.n ?? 0;
  }
}

function listsOnly(entries: Array<[string, Domain]>): Array<[string, unknown[]]> {
  return entries.map(([key, domain]) => {
    if (!Array.isArray(domain)) throw new Error(`sweep.parameters.${key}: a range in a grid or zip sweep (validation lets none through)`);
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

/** The i-th value of every list together (validation made them one length). */
function zip(entries: Array<[string, unknown[]]>): SweepPoint[] {
  const [, firstValues] = entries[0]!;
  return firstValues.map((_, index) => Object.fromEntries(entries.map(([key, values]) => [key, values[index]])));
}

function random(entries: Array<[string, Domain]>, sweep: Sweep): SweepExpansion {
  const n = sweep.n ?? 0;
  const next = seededUniform(sweep.seed);
  const points: SweepPoint[] = [];
  const seen = new Set<string>();
  let repeats = 0;
  for (let draw = 0; draw < n; draw++) {
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
  const warnings: SweepWarning[] =
    repeats > 0
      ? [{ path: ["sweep", "n"], message: `random sweep drew the same values ${repeats} time(s) out of n=${sweep.n}; planned ${points.length} distinct job(s)` }]
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
