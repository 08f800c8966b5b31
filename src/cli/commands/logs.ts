import { existsSync, readFileSync } from "node:fs";
import { Option, type Command } from "commander";
import { describeEvent } from "../../report/event-text.ts";
import type { ShimEvent } from "../../runs/events.ts";
import { EventTail, fileSize } from "../../runs/follow.ts";
import { readStatus, requireOneRun, runFile } from "../../runs/store.ts";
import { cliContext } from "../context.ts";
import { stdoutClosed } from "../stdout.ts";

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
        // Follow while the run is running or queued (and someone reads); a last read catches its final lines.
        while (!stopped && !stdoutClosed()) {
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
