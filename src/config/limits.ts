/**
 * The bounds on what a config may hold, so that validating any input costs time and memory in
 * proportion to the file and ends quickly (README "Limits"). Each is far beyond what a real config
 * needs: the shipped ones are a few KiB, under 10 levels deep, with a few hundred values.
 */

/** Largest config file (each file of an `extends` chain). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Largest data file. The shim reads the whole file into memory (JSON or JSONL), so a file this size
 * already needs tens of GiB of RAM to train from; the bound is there to refuse a disk image or a
 * device early, not to tune memory. The corpora this tool is for (ExTES, ESConv) are under 100 MiB.
 */
export const MAX_DATA_BYTES = 4 * 1024 ** 3;

/** Deepest nesting of mappings and lists (after aliases are expanded). */
export const MAX_NESTING = 64;

/** Most values (every mapping, list, key and scalar, counted after aliases are expanded) in one file. */
export const MAX_VALUES = 100_000;

/** Most config files loaded for one config, counting a file each time it is extended. */
export const MAX_CONFIG_FILES = 64;

/** Most runs one sweep may plan, whatever sweep.max_runs says: plans are measured linear up to here (bench/plan.ts). */
export const MAX_SWEEP_RUNS = 100_000;

/** Problems reported by name per config; the rest are counted in one closing diagnostic. */
export const MAX_PROBLEMS = 50;

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${Number((bytes / 1024 ** 3).toFixed(1))} GiB`;
  if (bytes >= 1024 ** 2) return `${Number((bytes / 1024 ** 2).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} bytes`;
}
