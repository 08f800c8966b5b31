import { readFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { formatDiagnostic, loadExperiment } from "../../config/index.ts";
import { UserError } from "../../errors.ts";
import { prepareRuns } from "../../launch/prepare.ts";
import { trackSweep, type TrackOptions } from "../../launch/track.ts";
import { log } from "../../log.ts";
import { planExperiment } from "../../plan/index.ts";
import { summarizeData } from "../../plan/tokens.ts";
import { cliContext } from "../context.ts";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseCpuSlots(value: string): number {
  const slots = Number(value);
  if (!Number.isInteger(slots) || slots < 1) throw new UserError("PEFTCTL_USAGE", `--cpu-slots: expected a whole number >= 1, got '${value}'`);
  return slots;
}

/**
 * After a run succeeds: the place for the Hub auto-push (job.hub?.auto_push -> src/hub pushRun).
 * Left unset here; the lead wires it. Whatever it does, a failed push never fails the run.
 */
export const onRunSucceeded: TrackOptions["onRunSucceeded"] = undefined;

/** `peftctl run <config> [--set k=v ...]`: plan, prepare run dirs, launch, track until every job ends. */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description("plan, launch and track an experiment's runs; re-running skips finished runs and resumes interrupted ones")
    .argument("<config>", "experiment config (YAML)")
    .option("--set <key.path=value>", "override a config value (repeatable), e.g. --set method.r=16", collect, [])
    .option("--cpu-slots <n>", "concurrent jobs on the CPU when there is no GPU (default $PEFTCTL_CPU_SLOTS or 1)", parseCpuSlots)
    .option("--retry-failed", "also retry runs that failed with a non-retryable error (bad spec or data)")
    .action(async (file: string, options: { set: string[]; cpuSlots?: number; retryFailed?: boolean }, command: Command) => {
      const context = cliContext(command);
      const loaded = await loadExperiment(file, { set: options.set });
      for (const warning of loaded.warnings) log().warn(formatDiagnostic(warning));
      const { experiment } = loaded;
      let dataSummary = null;
      try {
        dataSummary = summarizeData(experiment.data.format, readFileSync(experiment.data.path, "utf8"));
      } catch {
        // Unreadable data: the shim reports it (exit 2) with the details; the plan just lacks token estimates.
      }
      const plan = planExperiment(experiment, { runsDir: context.runsDir, dataSummary, pathRoot: path.dirname(loaded.configPath) });
      for (const warning of plan.warnings) log().warn(warning);
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
