/** The wording of `peftctl eval`: progress lines (the live view's "step x/y ... tok/s ETA", in rows) and outcomes. */
import { formatDuration, formatRate } from "./format.ts";
import { eventText } from "./event-text.ts";
import type { ShimEvent } from "../runs/events.ts";
import { shownPath, type EvalOutcome, type EvalTarget } from "../eval/run-eval.ts";

function adapterText(target: EvalTarget): string {
  return target.adapter === null ? "the base model alone" : target.settings.adapter;
}

export function evalStartText(target: EvalTarget, devices: string[]): string {
  const where = devices[0] === "cpu" ? "cpu" : `GPU ${devices.join(",")}`;
  const limit = target.settings.limit !== null ? ` (first ${target.settings.limit})` : "";
  return `${target.run.runId}: generating on the ${target.settings.split} split${limit} with ${adapterText(target)} on ${where} -> ${shownPath(target.outDir)}`;
}

/** One line for the events worth a line (progress, start, interrupted, error); undefined for the rest. */
export function evalEventText(target: EvalTarget, event: ShimEvent): string | undefined {
  switch (event.type) {
    case "progress":
      return `${target.run.runId}  rows ${event.step}/${event.total_steps}  ${formatRate(event.tokens_per_s)} tok/s  ETA ${formatDuration(event.eta_s)}`;
    case "start":
      return event.resumed_from_step !== null ? `${target.run.runId}: continuing after ${event.resumed_from_step} rows already written` : undefined;
    case "interrupted":
      return `${target.run.runId}: stopped after ${event.step} rows (${event.signal}); run the same command again to continue`;
    case "error":
      return `${target.run.runId}: ${eventText(event)}`;
    default:
      return undefined;
  }
}

export function evalOutcomeText(outcome: EvalOutcome): string {
  const { target, rows, metrics } = outcome;
  const file = shownPath(`${target.outDir}/generations.jsonl`);
  const scored = metrics === undefined ? "" : "error" in metrics ? `; scoring failed: ${metrics.error}` : metrics.scored ? `; metrics in ${shownPath(`${target.outDir}/metrics.json`)}` : "";
  switch (outcome.outcome) {
    case "generated":
      return `${target.run.runId}: ${rows} rows in ${file}${scored}`;
    case "already-complete":
      return `${target.run.runId}: already complete (${rows} rows in ${file})${scored || "; nothing changed"}`;
    case "interrupted":
      return `${target.run.runId}: interrupted with ${rows} rows in ${file}`;
    case "failed":
      return `${target.run.runId}: failed (exit ${outcome.exitCode ?? "by signal"}): ${outcome.error ?? "no message"}`;
  }
}
