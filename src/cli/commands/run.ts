import path from "node:path";
import type { Command } from "commander";
import { log } from "../../log.ts";
import { planConfig } from "../../experiment.ts";
import { prepareRuns } from "../../runs/prepare.ts";
import { cliContext } from "../context.ts";
import { cpuSlotsOption, retryFailedOption, setOption } from "../options.ts";
import { trackSweep } from "../track.ts";

/** `peftctl run <config> [--set k=v ...]`: plan, prepare run dirs, launch, track until every job ends. */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description("plan, launch and track an experiment's runs; re-running skips finished runs and resumes interrupted ones")
    .argument("<config>", "experiment config (YAML)")
    .addOption(setOption())
    .addOption(cpuSlotsOption())
    .addOption(retryFailedOption())
    .action(async (file: string, options: { set: string[]; cpuSlots?: number; retryFailed?: boolean }, command: Command) => {
      const context = cliContext(command);
      const { loaded, plan, warnings } = await planConfig(file, { set: options.set, runsDir: context.runsDir });
      for (const warning of warnings) log().warn(warning);
      const { experiment } = loaded;
      const runs = prepareRuns(
        plan.jobs.map((job) => job.spec),
        loaded.snapshotYaml,
      );
      const estimates = new Map(plan.jobs.filter((j) => j.estimate.trainTokens !== null).map((j) => [j.spec.run_dir, j.estimate.trainTokens!]));
      log().info(`${experiment.name}: ${runs.length} run(s) in ${path.join(context.runsDir, experiment.name)}`);
      const { exitCode } = await trackSweep(runs, {
        json: context.json,
        estimates,
        configPath: loaded.configPath,
        cpuSlots: options.cpuSlots,
        retryFailed: options.retryFailed,
      });
      process.exitCode = exitCode;
    });
}
