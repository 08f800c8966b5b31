import type { Command } from "commander";
import { FailureError, InterruptedError, UserError } from "../../errors.ts";
import { evalEventText, evalOutcomeText, evalStartText } from "../../report/eval-text.ts";
import { EVAL_SPLITS, planEval, startEval, type EvalOutcome, type EvalSplit } from "../../eval/run-eval.ts";
import { ShimExit } from "../../runs/events.ts";
import { cliContext } from "../context.ts";
import { setOption } from "../options.ts";

type EvalCliOptions = { split: EvalSplit; limit?: number; checkpoint?: string; base?: boolean; set: string[] };

/** `peftctl eval <run|experiment>`: responses to the test split with each run's adapter (python -m peftshim generate). */
export function registerEval(program: Command): void {
  program
    .command("eval")
    .description("generate a response for every example of the test (or valid) split with each run's adapter, into <run_dir>/eval/<split>-<hash>/generations.jsonl")
    .argument("<target>", "run id, experiment name, or <experiment>/<run_id>")
    .option("--split <split>", "test or valid", parseSplit, "test")
    .option("--limit <n>", "only the split's first N examples", parseLimit)
    .option("--checkpoint <step-N>", "a checkpoint's adapter (checkpoints/step-N/adapter) instead of the final one")
    .option("--base", "the base model alone, without an adapter (a zero-shot row)")
    .addOption(setOption("change an eval setting for this evaluation (repeatable), e.g. --set eval.generate.num_beams=4 --set eval.data.path=esconv.json"))
    .action(async (target: string, options: EvalCliOptions, command: Command) => {
      const context = cliContext(command);
      const targets = planEval(context.runsDir, target, {
        split: options.split,
        limit: options.limit ?? null,
        checkpoint: options.checkpoint ?? null,
        base: Boolean(options.base),
        sets: options.set,
      });
      const say = (line: string | undefined) => {
        if (line !== undefined && !context.json) process.stdout.write(`${line}\n`);
      };
      const session = startEval(targets, {
        onStart: (t, devices) => say(evalStartText(t, devices)),
        onEvent: (t, event) => say(evalEventText(t, event)),
      });
      let interrupted = false;
      const onSignal = () => {
        interrupted = true;
        session.interrupt();
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
      let outcomes: EvalOutcome[];
      try {
        outcomes = await session.done;
      } finally {
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      }
      if (context.json) {
        const rows = outcomes.map((o) => ({ run: o.target.run.runId, outcome: o.outcome, rows: o.rows, dir: o.target.outDir, settings: o.target.settings, exit_code: o.exitCode, error: o.error ?? null }));
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else {
        for (const outcome of outcomes) say(evalOutcomeText(outcome));
      }
      throwForOutcomes(outcomes, interrupted);
    });
}

function throwForOutcomes(outcomes: EvalOutcome[], interrupted: boolean): void {
  if (interrupted || outcomes.some((o) => o.outcome === "interrupted")) throw new InterruptedError("eval interrupted; run the same command again to continue");
  const failed = outcomes.filter((o) => o.outcome === "failed");
  if (failed.length === 0) return;
  const details = failed.map((o) => `${o.target.run.runId}: ${o.error ?? `exit ${o.exitCode}`}`);
  if (failed.every((o) => o.exitCode === ShimExit.badInput)) throw new UserError("PEFTCTL_USAGE", `eval of ${failed.length} run(s) refused`, details);
  throw new FailureError("PEFTCTL_JOB_FAILED", `eval of ${failed.length} run(s) failed`, details);
}

function parseSplit(value: string): EvalSplit {
  if (!(EVAL_SPLITS as readonly string[]).includes(value)) throw new UserError("PEFTCTL_USAGE", `--split: expected test or valid, got '${value}'`);
  return value as EvalSplit;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError("PEFTCTL_USAGE", `--limit: expected a positive integer, got '${value}'`);
  return n;
}
