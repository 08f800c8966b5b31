/**
 * The checkpoint index of a run: checkpoints/step-NNNNNN/ directories; one counts only with its
 * MANIFEST.json, which the shim writes last (python/peftshim/checkpoint.py), so a torn checkpoint
 * is never resumed from and is what retention removes first.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { runFile } from "./store.ts";

export type CheckpointEntry = {
  step: number;
  path: string;
  complete: boolean;
  /** false for a checkpoint the shim has already thinned to its adapter (checkpoint.keep_adapters). */
  fullState: boolean;
};

function manifestFullState(manifestPath: string): boolean {
  try {
    return (JSON.parse(readFileSync(manifestPath, "utf8")) as { full_state?: unknown }).full_state !== false;
  } catch {
    return true;
  }
}

const STEP_DIR = /^step-(\d+)$/;

/** Checkpoint dirs of a run, oldest first. */
export function listCheckpoints(runDir: string): CheckpointEntry[] {
  const dir = runFile(runDir, "checkpoints");
  // not a directory (a damaged run dir): no checkpoints here; the shim refuses it with its name
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir)
    .map((name) => ({ name, match: STEP_DIR.exec(name) }))
    .filter(({ name, match }) => match && statSync(path.join(dir, name)).isDirectory())
    .map(({ name, match }) => {
      const manifest = path.join(dir, name, "MANIFEST.json");
      const complete = existsSync(manifest);
      return { step: Number(match![1]), path: path.join(dir, name), complete, fullState: complete && manifestFullState(manifest) };
    })
    .sort((a, b) => a.step - b.step);
}

export function newestCompleteCheckpoint(runDir: string): CheckpointEntry | undefined {
  return listCheckpoints(runDir)
    .filter((c) => c.complete)
    .at(-1);
}
