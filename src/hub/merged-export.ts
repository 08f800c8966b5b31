import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { planRunExport, runExport } from "../export/export-run.ts";
import { log } from "../log.ts";
import type { RunRef } from "../runs/store.ts";

/** Where `peftctl push --merged` keeps the run's merged model, inside the run dir. */
export const MERGED_EXPORT = path.join("export", "merged");

/** A merged model directory as the shim writes it (atomically: present means whole). */
function isModelDir(dir: string): boolean {
  return existsSync(path.join(dir, "config.json")) && readdirSync(dir).some((name) => name.endsWith(".safetensors"));
}

/**
 * The run's final adapter merged into its base (`peftctl export --merge`, the base's dtype) at
 * <run>/export/merged, exported on the first push and reused by the next ones, so an unchanged run
 * pushes the same bytes again (and so no commit). Throws the export's PeftctlError (a method that
 * cannot merge is a UserError naming it).
 */
export async function mergedModelDir(runDir: string): Promise<string> {
  const dir = path.join(runDir, MERGED_EXPORT);
  if (existsSync(dir) && isModelDir(dir)) return dir;
  const run: RunRef = { experiment: path.basename(path.dirname(runDir)), runId: path.basename(runDir), dir: runDir };
  const target = planRunExport(run, { checkpoint: null, merge: true, dtype: null, outDir: dir, force: true });
  log().info(`${run.runId}: merging the adapter into the base for the push (${dir})`);
  const outcome = await runExport(target); // the controller's environment, as every shim gets it
  if (!outcome.ok) throw outcome.error;
  return dir;
}
