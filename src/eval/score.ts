/**
 * `scorePairs`: the automatic metrics of a pairs file, computed by `python -m peftmetrics score`
 * (python/peftmetrics) in the controller's Python on the CPU (nltk, the METEOR 1.5 jar and java live
 * there, not in GPU images).
 *
 * The outcome is a result object: `{ ok: true, report }`, or `{ ok: false, error }` when the scorer ran
 * and failed (METEOR could not start, an unexpected crash). What the user can fix throws a UserError
 * (exit 2): bad input (the scorer's exit 2, whose one-line message names file and line) and a
 * controller Python that cannot be started.
 */
import { execa } from "execa";
import { UserError } from "../errors.ts";
import type { MetricsReport } from "../runs/eval-metrics.ts";
import { shimEnv, shimPython } from "../shim.ts";

export type ScoreOptions = {
  /** The pairs file (JSON Lines); relative to the current directory. */
  pairs: string;
  hypField?: string;
  refField?: string;
  /** Word vectors in GloVe text format. */
  embeddings?: string;
  /** A toxicity scorer (eval.toxicity.command): a command line, or its words. */
  toxicityCommand?: string | readonly string[];
  env?: NodeJS.ProcessEnv;
};

export type ScoreResult = { ok: true; report: MetricsReport } | { ok: false; error: string };

const BAD_INPUT = 2;

export async function scorePairs(options: ScoreOptions): Promise<ScoreResult> {
  const env = options.env ?? process.env;
  const python = shimPython(env);
  const args = ["-m", "peftmetrics", "score", "--pairs", options.pairs];
  if (options.hypField !== undefined) args.push("--hyp-field", options.hypField);
  if (options.refField !== undefined) args.push("--ref-field", options.refField);
  if (options.embeddings !== undefined) args.push("--embeddings", options.embeddings);
  if (options.toxicityCommand !== undefined) args.push("--toxicity-command", toxicityCommandLine(options.toxicityCommand));
  const result = await execa(python, args, { env: shimEnv(env), reject: false, stripFinalNewline: true });
  const said = (result.stderr ?? "").trim().split("\n").at(-1)?.replace(/^peftmetrics: /, "") ?? "";
  if (result.exitCode === undefined && result.signal === undefined) {
    const why = (result as { code?: string }).code ?? "it did not start";
    throw new UserError("PEFTCTL_USAGE", `cannot run the controller's Python (${python}) to score: ${why}; run 'make install' or set PEFTCTL_PYTHON`);
  }
  if (result.exitCode === BAD_INPUT) {
    throw new UserError("PEFTCTL_DATA_INVALID", said || `${options.pairs}: bad input`);
  }
  if (result.exitCode !== 0) {
    return { ok: false, error: said || `the scorer exited with ${result.exitCode ?? result.signal ?? "an error"}` };
  }
  try {
    const report = JSON.parse(result.stdout) as MetricsReport;
    if (typeof report !== "object" || report === null || typeof report.metrics !== "object" || typeof report.pairs !== "number") {
      return { ok: false, error: "the scorer printed no metrics report" };
    }
    return { ok: true, report };
  } catch {
    return { ok: false, error: "the scorer's output is not JSON" };
  }
}

/** The words of a command as one line that python's shlex.split gives back word for word. */
export function toxicityCommandLine(command: string | readonly string[]): string {
  if (typeof command === "string") return command;
  return command.map((word) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'"'"'`)}'`)).join(" ");
}
