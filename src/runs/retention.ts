/**
 * Retention (`peftctl gc`): what may go from finished runs. Full training states beyond
 * checkpoint.keep_last (the newest complete ones stay; torn ones without a MANIFEST.json go; the
 * adapter-only checkpoints the shim kept for checkpoint.keep_adapters stay), and temporary leftovers of
 * interrupted writes (.tmp-* dirs of the shim, .*.tmp files of the store). Running and queued runs,
 * and runs whose lock a live controller holds, are never touched.
 */
import { readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { listCheckpoints } from "./checkpoints.ts";
import { isHolderAlive, lockHolder } from "./lock.ts";
import { readJob, readStatus, runFile, type RunRef } from "./store.ts";

export type GcItem = { run: RunRef; path: string; bytes: number; reason: string };

function diskUsage(target: string): number {
  let stat;
  try {
    stat = statSync(target);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(target).reduce((sum, name) => sum + diskUsage(path.join(target, name)), 0);
}

function temporaries(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((name) => name.startsWith(".tmp-") || (name.startsWith(".") && name.endsWith(".tmp")))
      .map((name) => path.join(dir, name));
  } catch {
    return [];
  }
}

export function planGc(runs: readonly RunRef[]): GcItem[] {
  const items: GcItem[] = [];
  for (const run of runs) {
    const status = readStatus(run.dir);
    if (status.state === "running" || status.state === "queued") continue;
    const holder = lockHolder(run.dir);
    if (holder && isHolderAlive(holder)) continue;
    const keepLast = readJob(run.dir).checkpoint?.keep_last ?? 2;
    const checkpoints = listCheckpoints(run.dir);
    const fullStates = checkpoints.filter((c) => c.complete && c.fullState);
    const kept = new Set(fullStates.slice(-keepLast).map((c) => c.path));
    for (const checkpoint of checkpoints) {
      if (kept.has(checkpoint.path) || (checkpoint.complete && !checkpoint.fullState)) continue;
      const reason = checkpoint.complete ? `beyond checkpoint.keep_last=${keepLast}` : "incomplete checkpoint (no MANIFEST.json)";
      items.push({ run, path: checkpoint.path, bytes: diskUsage(checkpoint.path), reason });
    }
    for (const temp of [...temporaries(run.dir), ...temporaries(runFile(run.dir, "checkpoints"))]) {
      items.push({ run, path: temp, bytes: diskUsage(temp), reason: "temporary leftover of an interrupted write" });
    }
  }
  return items;
}

export function applyGc(items: readonly GcItem[]): void {
  for (const item of items) rmSync(item.path, { recursive: true, force: true });
}
