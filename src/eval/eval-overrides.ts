/**
 * `peftctl eval --set eval.key=value`: evaluation settings changed after a run was planned (decoding,
 * eval.data, eval.embeddings, eval.toxicity) without retraining. Values are read as `--set` of
 * validate/plan/run reads them (the key's type, from the schema); the result is validated by the
 * config's own EvalSchema, every problem listed at once.
 */
import path from "node:path";
import { isPlainObject } from "../config/merge.ts";
import { EvalSchema, FILE_PATH_KEYS } from "../config/schema.ts";
import { parseTypedText, resolveKeyPath } from "../config/schema-paths.ts";
import { didYouMean } from "../config/suggest.ts";
import { UserError } from "../errors.ts";
import type { JobSpec } from "../plan/jobspec.ts";

type EvalSettings = JobSpec["eval"];

/** The job's eval section with `sets` applied; relative paths are resolved against the working directory. */
export function applyEvalOverrides(evaluation: EvalSettings, sets: readonly string[]): EvalSettings {
  if (sets.length === 0) return evaluation;
  const problems: string[] = [];
  const root: Record<string, unknown> = { eval: structuredClone(evaluation) };
  sets.forEach((assignment, index) => {
    const where = `--set ${index + 1} (${assignment})`;
    const equals = assignment.indexOf("=");
    const dotted = equals < 0 ? assignment : assignment.slice(0, equals);
    const segments = dotted.split(".");
    if (equals <= 0 || segments.some((segment) => segment === "")) return problems.push(`${where}: expected eval.key=value`);
    if (segments[0] !== "eval" || segments.length < 2) return problems.push(`${where}: only eval.* settings can change after training (the rest is the run's identity)`);
    const resolved = resolveKeyPath(dotted);
    if (resolved.missing) {
      return problems.push(`${where}: no such key${didYouMean(segments[resolved.missing.resolvedSegments] ?? "", resolved.missing.validKeys)}`);
    }
    let value = parseTypedText(assignment.slice(equals + 1), resolved.schemas);
    if (typeof value === "string" && FILE_PATH_KEYS.some((key) => key.join(".") === dotted)) value = path.resolve(value);
    let node = root;
    for (const [depth, segment] of resolved.path.entries()) {
      if (depth === resolved.path.length - 1) node[segment] = value;
      else {
        if (!isPlainObject(node[segment])) node[segment] = {};
        node = node[segment] as Record<string, unknown>;
      }
    }
  });
  if (problems.length === 0) {
    const parsed = EvalSchema.safeParse(root.eval);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) problems.push(`eval.${issue.path.join(".")}: ${issue.message}`);
  }
  throw new UserError("PEFTCTL_USAGE", `--set: ${problems.length} problem(s) with the evaluation settings`, problems);
}
