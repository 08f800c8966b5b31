import path from "node:path";
import type { Command } from "commander";
import { prepareRuns } from "../../launch/prepare.ts";
import { trackSweep, type TrackOptions } from "../../launch/track.ts";
import { log } from "../../log.ts";
import { planConfig } from "../../experiment.ts";
import { autoPushRun } from "../../hub/auto-push.ts";
import { cliContext } from "../context.ts";
import { cpuSlotsOption, retryFailedOption, setOption } from "../options.ts";

/**
 * After a run succeeds: the Hub auto-push when the config has `hub:` with auto_push. autoPushRun
 * never throws; its outcome (commit or error) lands in status.json's `push`, and the run stays succeeded.
 */
export const onRunSucceeded: TrackOptions["onRunSucceeded"] = async (run, _status, job) => {
  const result = await autoPushRun(run.dir, job);
  if (result && !result.ok) log().warn(`${path.basename(run.dir)}: push to the Hub failed (the run stays succeeded): ${result.error.message}`);
  else if (result?.ok) log().info(`${path.basename(run.dir)}: pushed to ${result.url}`);
};

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
        onRunSucceeded,
      });
      process.exitCode = exitCode;
    });
}
