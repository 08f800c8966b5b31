import type { Command } from "commander";
import { UserError } from "../../errors.ts";
import { stopRuns } from "../../launch/stop.ts";
import { requireRuns } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

/** `peftctl stop <run|experiment>`: SIGTERM to the running shims; they checkpoint, exit 75, and are marked interrupted. */
export function registerStop(program: Command): void {
  program
    .command("stop")
    .description("stop running runs: they save a checkpoint and are marked interrupted ('peftctl resume' continues them)")
    .argument("<target>", "run id, experiment name, or <experiment>/<run_id>")
    .option("--wait <seconds>", "how long to wait for them to stop before SIGKILL", parseSeconds, 120)
    .action(async (target: string, options: { wait: number }, command: Command) => {
      const context = cliContext(command);
      const results = await stopRuns(requireRuns(context.runsDir, target), { waitMs: options.wait * 1000 });
      if (context.json) {
        process.stdout.write(`${JSON.stringify(results.map((r) => ({ run: r.run.runId, outcome: r.outcome, state: r.state })), null, 2)}\n`);
        return;
      }
      for (const r of results) process.stdout.write(`${r.run.experiment}/${r.run.runId}: ${r.outcome} (${r.state})\n`);
    });
}

function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds < 0) throw new UserError("PEFTCTL_USAGE", `--wait: expected a number of seconds >= 0, got '${value}'`);
  return seconds;
}
