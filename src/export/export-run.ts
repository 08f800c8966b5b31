/**
 * `peftctl export`: the controller's side of `python -m peftshim export` (python/peftshim/export.py,
 * which documents the JSON lines it writes; `ExportLineSchema` reads them here).
 *
 * The run and its adapter are resolved as `peftctl eval` and `chat` resolve them (`adapterOf`: the
 * final adapter or a checkpoint's). The shim is spawned directly with the executor's Python and
 * environment (`shimPython`, `shimEnv`), on the CPU: exporting is a short one-off that merges in float32,
 * not a job for the scheduler. The shim writes the output directory atomically; this side only refuses
 * a directory that would lose something (a non-empty one without --force, the run itself, its adapter).
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { execa } from "execa";
import { z } from "zod";
import { FailureError, UserError, type PeftctlError } from "../errors.ts";
import { adapterOf } from "../eval/run-eval.ts";
import type { JobSpec } from "../plan/jobspec.ts";
import { ShimExit } from "../runs/events.ts";
import { readJob, requireOneRun, runFile, type RunRef } from "../runs/store.ts";
import { shimEnv, shimPython } from "../shim.ts";

export type ExportRequest = {
  /** `step-N` for a checkpoint's adapter; null: the final one. */
  checkpoint: string | null;
  merge: boolean;
  /** float32 | bfloat16 | float16 (the shim checks); null: the base's (merged) or as saved (adapter). */
  dtype: string | null;
  /** The directory to write (made absolute here). */
  outDir: string;
  /** Replace an existing non-empty outDir. */
  force: boolean;
  maxShardSize?: string;
};

export type ExportTarget = { run: RunRef; job: JobSpec; adapter: string; label: string; outDir: string; merge: boolean; dtype: string | null; maxShardSize: string | null };

const ExportedSchema = z.object({
  type: z.literal("exported"),
  dir: z.string(),
  merged: z.boolean(),
  method: z.string(),
  dtype: z.string(),
  adapter: z.string(),
  files: z.array(z.string()),
  bytes: z.number(),
});
export type Exported = Omit<z.infer<typeof ExportedSchema>, "type">;

const ExportLineSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("stage"), stage: z.enum(["load", "merge", "save"]) }),
  ExportedSchema,
  z.object({ type: z.literal("error"), kind: z.string(), message: z.string() }),
]);

export type ExportOutcome = { ok: true; exported: Exported } | { ok: false; error: PeftctlError };

/** Whether `inner` is `outer` or lies inside it. */
function within(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

/** Why writing `outDir` would lose something, or null. */
export function outDirProblem(outDir: string, run: RunRef, adapter: string, force: boolean): string | null {
  if (within(run.dir, outDir)) return `${outDir} holds the run ${run.experiment}/${run.runId} itself; choose a directory outside it (or under ${path.join(run.dir, "export")})`;
  if (within(outDir, adapter) || within(outDir, runFile(run.dir, "checkpoints"))) return `${outDir} is inside the run's adapter or checkpoints; choose another directory`;
  if (!existsSync(outDir)) return null;
  if (!statSync(outDir).isDirectory()) return `${outDir} exists and is not a directory`;
  if (readdirSync(outDir).length > 0 && !force) return `${outDir} exists and is not empty; pass --force to replace it, or choose another directory`;
  return null;
}

/** The one run `target` names, its adapter and the output directory; a UserError (exit 2) when any is wrong. */
export function planExport(runsDir: string, target: string, request: ExportRequest): ExportTarget {
  return planRunExport(requireOneRun(runsDir, target), request, target);
}

/** planExport of a run already found (`peftctl push --merged`). */
export function planRunExport(run: RunRef, request: ExportRequest, target = `${run.experiment}/${run.runId}`): ExportTarget {
  const found = adapterOf(run, { checkpoint: request.checkpoint, base: false });
  if ("problem" in found) throw new UserError("PEFTCTL_USAGE", `cannot export '${target}'`, [found.problem]);
  const adapter = found.adapter!;
  const outDir = path.resolve(request.outDir);
  const problem = outDirProblem(outDir, run, adapter, request.force);
  if (problem !== null) throw new UserError("PEFTCTL_USAGE", `-o ${request.outDir}: ${problem}`);
  return { run, job: readJob(run.dir), adapter, label: found.label, outDir, merge: request.merge, dtype: request.dtype, maxShardSize: request.maxShardSize ?? null };
}

/** The shim's argv for `target`. */
export function exportArgs(target: ExportTarget): string[] {
  const args = ["-m", "peftshim", "export", "--job", runFile(target.run.dir, "job"), "--out", target.outDir, "--adapter", target.adapter];
  if (target.merge) args.push("--merge");
  if (target.dtype !== null) args.push("--dtype", target.dtype);
  if (target.maxShardSize !== null) args.push("--max-shard-size", target.maxShardSize);
  return args;
}

/**
 * Runs the shim's export; never throws: the outcome is the result (exit 2 is a UserError with the
 * shim's message, any other failure a FailureError with its stderr's last lines).
 */
export async function runExport(target: ExportTarget, options: { env?: NodeJS.ProcessEnv; onStage?: (stage: string) => void } = {}): Promise<ExportOutcome> {
  const env = options.env ?? process.env;
  const child = execa(shimPython(env), exportArgs(target), {
    cwd: target.run.dir,
    env: { ...shimEnv(env), CUDA_VISIBLE_DEVICES: "" },
    extendEnv: false,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
  });
  let stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => {
    stderrTail = [...stderrTail.slice(-19), line];
  });
  let exported: Exported | null = null;
  let error: string | null = null;
  for await (const raw of createInterface({ input: child.stdout! })) {
    let parsed: z.infer<typeof ExportLineSchema>;
    try {
      parsed = ExportLineSchema.parse(JSON.parse(raw));
    } catch {
      continue; // a library's print on stdout is no line of the protocol
    }
    if (parsed.type === "stage") options.onStage?.(parsed.stage);
    else if (parsed.type === "error") error = parsed.message;
    else {
      const { type: _type, ...rest } = parsed;
      exported = rest;
    }
  }
  const result = await child;
  const code = typeof result.exitCode === "number" ? result.exitCode : null;
  const name = `${target.run.experiment}/${target.run.runId}`;
  if (code === ShimExit.done && exported !== null) return { ok: true, exported };
  if (code === ShimExit.badInput) return { ok: false, error: new UserError("PEFTCTL_USAGE", `cannot export ${name}: ${error ?? "the shim refused the export"}`) };
  const why = code === null ? (result.shortMessage ?? "no exit code") : `exit ${code}`;
  return { ok: false, error: new FailureError("PEFTCTL_JOB_FAILED", `export of ${name} failed (${why})${error ? `: ${error}` : ""}`, stderrTail) };
}
