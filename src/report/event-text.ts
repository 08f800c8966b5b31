/** The wording of shim events, one line each: `peftctl logs` and the live progress view say the same. */
import type { ShimEvent } from "../runs/events.ts";

/** What an event says, without its time. */
export function eventText(event: ShimEvent): string {
  switch (event.type) {
    case "start":
      return `start attempt ${event.attempt} on ${event.device}${event.resumed_from_step !== null ? `, resumed from step ${event.resumed_from_step}` : ""} (pid ${event.pid})`;
    case "data":
      return `data: ${event.examples.train}/${event.examples.valid}/${event.examples.test} train/valid/test examples, ${event.train_tokens} train tokens`;
    case "progress":
      return `step ${event.step}/${event.total_steps} loss ${event.loss.toFixed(4)} lr ${event.lr.toExponential(2)} ${event.tokens_per_s.toFixed(0)} tok/s`;
    case "eval":
      return `eval at step ${event.step}: loss ${event.loss.toFixed(4)}, perplexity ${event.perplexity.toFixed(2)}`;
    case "checkpoint":
      return `checkpoint at step ${event.step}: ${event.path}`;
    case "interrupted":
      return `interrupted at step ${event.step} by ${event.signal}; checkpoint ${event.checkpoint ?? "none"}`;
    case "done":
      return `done at step ${event.step}: ${Object.entries(event.metrics).map(([k, v]) => `${k}=${v}`).join(" ")}; adapter ${event.adapter_path}`;
    case "error":
      return `error (${event.kind}${event.retryable ? ", retryable" : ""}): ${event.message}`;
    case "warning":
      return `warning (${event.source}): ${event.message}`;
  }
}

/** One `peftctl logs` line: the event's time of day (UTC, HH:MM:SS) and what it says. */
export function describeEvent(event: ShimEvent): string {
  return `${event.t.slice(11, 19)} ${eventText(event)}`;
}
