import { existsSync, readFileSync } from "node:fs";
import { Option, type Command } from "commander";
import { EventTail, fileSize } from "../../launch/follow.ts";
import type { ShimEvent } from "../../runs/events.ts";
import { readStatus, requireOneRun, runFile } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

/** One readable line per event. */
export function describeEvent(event: ShimEvent): string {
  const time = event.t.slice(11, 19);
  switch (event.type) {
    case "start":
      return `${time} start attempt ${event.attempt} on ${event.device}${event.resumed_from_step !== null ? `, resumed from step ${event.resumed_from_step}` : ""} (pid ${event.pid})`;
    case "data":
      return `${time} data: ${event.examples.train}/${event.examples.valid}/${event.examples.test} train/valid/test examples, ${event.train_tokens} train tokens`;
    case "progress":
      return `${time} step ${event.step}/${event.total_steps} loss ${event.loss.toFixed(4)} lr ${event.lr.toExponential(2)} ${event.tokens_per_s.toFixed(0)} tok/s`;
    case "eval":
      return `${time} eval at step ${event.step}: loss ${event.loss.toFixed(4)}, perplexity ${event.perplexity.toFixed(2)}`;
    case "checkpoint":
      return `${time} checkpoint at step ${event.step}: ${event.path}`;
    case "interrupted":
      return `${time} interrupted at step ${event.step} by ${event.signal}; checkpoint ${event.checkpoint ?? "none"}`;
    case "done":
      return `${time} done at step ${event.step}: ${Object.entries(event.metrics).map(([k, v]) => `${k}=${v}`).join(" ")}; adapter ${event.adapter_path}`;
    case "error":
      return `${time} error (${event.kind}${event.retryable ? ", retryable" : ""}): ${event.message}`;
  }
}

/** `peftctl logs <run> [-f] [--stream events|stdout|stderr]`. */
export function registerLogs(program: Command): void {
  program
    .command("logs")
    .description("a run's events (readable), stdout.log or stderr.log; -f follows while it runs")
    .argument("<run>", "run id or <experiment>/<run_id>")
    .addOption(new Option("--stream <name>", "what to show").choices(["events", "stdout", "stderr"]).default("events"))
    .option("-f, --follow", "keep printing new lines until the run stops running (Ctrl-C to leave)")
    .action(async (target: string, options: { stream: "events" | "stdout" | "stderr"; follow?: boolean }, command: Command) => {
      const context = cliContext(command);
      const run = requireOneRun(context.runsDir, target);
      const file = runFile(run.dir, options.stream);
      const printEvents = (events: ShimEvent[]) => {
        for (const e of events) process.stdout.write(`${context.json ? JSON.stringify(e) : describeEvent(e)}\n`);
      };
      let offset = 0;
      const printText = () => {
        const size = fileSize(file);
        if (size > offset) process.stdout.write(readFileSync(file).subarray(offset, size));
        offset = size;
      };
      const tail = new EventTail(file, 0);
      const poll = () => (options.stream === "events" ? printEvents(tail.poll()) : printText());
      if (!existsSync(file) && !options.follow) {
        process.stderr.write(`${file} does not exist yet (state: ${readStatus(run.dir).state})\n`);
        return;
      }
      poll();
      if (!options.follow) return;
      let stopped = false;
      const onSigint = () => (stopped = true);
      process.once("SIGINT", onSigint);
      try {
        // Follow while the run is running or queued; a last read catches its final lines.
        while (!stopped) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          poll();
          const state = readStatus(run.dir).state;
          if (state !== "running" && state !== "queued") break;
        }
        poll();
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}
