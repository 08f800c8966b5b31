import type { Command } from "commander";
import { requireRuns } from "../../runs/store.ts";
import { cliContext } from "../context.ts";
import { cpuSlotsOption, retryFailedOption } from "../options.ts";
import { trackSweep } from "../track.ts";

/** `peftctl resume <experiment>`: `run` on the experiment's stored job.json files; no config needed. */
export function registerResume(program: Command): void {
  program
    .command("resume")
    .description("finish an experiment's runs from their stored job.json (no config needed)")
    .argument("<experiment>", "experiment name (or one run id)")
    .addOption(cpuSlotsOption())
    .addOption(retryFailedOption())
    .action(async (target: string, options: { cpuSlots?: number; retryFailed?: boolean }, command: Command) => {
      const context = cliContext(command);
      const runs = requireRuns(context.runsDir, target);
      const { exitCode } = await trackSweep(runs, { json: context.json, cpuSlots: options.cpuSlots, retryFailed: options.retryFailed });
      process.exitCode = exitCode;
    });
}
