/**
 * The files a config names (the config itself, what it extends, the data file) must be regular
 * files of bounded size: opening a FIFO blocks until someone writes to it, /dev/zero never ends, a
 * directory is no file. Each is stat'ed first, which opens nothing, and read only when it passed.
 */
import { constants, readdirSync, statSync, type Stats } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { formatBytes } from "./limits.ts";

export type FileCheck = { kind: "ok" } | { kind: "missing" } | { kind: "bad"; reason: string };

function typeOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a named pipe (FIFO)";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSocket()) return "a socket";
  return "not a plain file";
}

/** Why `stats` is not acceptable as a file of at most `maxBytes` (`what`: "a config file"), or undefined. */
function problemOf(stats: Stats, maxBytes: number, what: string): string | undefined {
  if (!stats.isFile()) return `is ${typeOf(stats)}, not a regular file: ${what} must be a regular file`;
  if (stats.size > maxBytes) return `is ${stats.size.toLocaleString("en-US")} bytes, more than the ${formatBytes(maxBytes)} ${what} may be`;
  return undefined;
}

/** Checks a path without opening it (symbolic links followed). */
export function checkRegularFile(file: string, maxBytes: number, what: string): FileCheck {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "missing" };
    return { kind: "bad", reason: `cannot be read (${code ?? (error as Error).message})` };
  }
  const reason = problemOf(stats, maxBytes, what);
  return reason === undefined ? { kind: "ok" } : { kind: "bad", reason };
}

/** The files that mark a directory written by `datasets`' save_to_disk (a Dataset, a DatasetDict). */
const SAVED_DATASET_MARKERS = ["dataset_info.json", "dataset_dict.json"];
/** A save_to_disk directory nests one level (a DatasetDict's splits); more entries than this is no data set. */
const MAX_SAVED_DATASET_ENTRIES = 10_000;

/**
 * data.path: a regular file of at most `maxBytes`, or a directory written by datasets' save_to_disk
 * whose files each are (the shim memory-maps them one by one). Stat'ed only; nothing is opened.
 */
export function checkDataPath(file: string, maxBytes: number): FileCheck {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch {
    return checkRegularFile(file, maxBytes, "a data file");
  }
  if (!stats.isDirectory()) return checkRegularFile(file, maxBytes, "a data file");
  if (!SAVED_DATASET_MARKERS.some((name) => checkRegularFile(path.join(file, name), maxBytes, "a data file").kind === "ok")) {
    return { kind: "bad", reason: `is a directory without ${SAVED_DATASET_MARKERS.join(" or ")}: a data directory must be one written by datasets' save_to_disk` };
  }
  let seen = 0;
  const walk = (dir: string, depth: number): FileCheck => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (++seen > MAX_SAVED_DATASET_ENTRIES) return { kind: "bad", reason: `holds more than ${MAX_SAVED_DATASET_ENTRIES.toLocaleString("en-US")} entries: not a save_to_disk directory` };
      const member = path.join(dir, entry.name);
      if (entry.isDirectory() && depth < 1) {
        const inner = walk(member, depth + 1);
        if (inner.kind !== "ok") return inner;
        continue;
      }
      const checked = checkRegularFile(member, maxBytes, "a data file");
      if (checked.kind !== "ok") return { kind: "bad", reason: `holds ${entry.name}, which ${checked.kind === "missing" ? "vanished" : checked.reason}` };
    }
    return { kind: "ok" };
  };
  try {
    return walk(file, 0);
  } catch (error) {
    return { kind: "bad", reason: `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  }
}

/**
 * Reads a file that `checkRegularFile` passed. It is opened non-blocking and checked again on the
 * open descriptor, and read no further than `maxBytes`, so a file swapped or grown in between
 * cannot block or flood the reader either.
 */
export async function readRegularFile(file: string, maxBytes: number, what: string): Promise<{ bytes: Buffer } | FileCheck> {
  const checked = checkRegularFile(file, maxBytes, what);
  if (checked.kind !== "ok") return checked;
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "missing" };
    return { kind: "bad", reason: `cannot be read (${code ?? (error as Error).message})` };
  }
  try {
    const reason = problemOf(await handle.stat(), maxBytes, what);
    if (reason !== undefined) return { kind: "bad", reason };
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) return { kind: "bad", reason: `grew past the ${formatBytes(maxBytes)} ${what} may be while it was read` };
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return { bytes: Buffer.concat(chunks, total) };
  } finally {
    await handle.close();
  }
}
