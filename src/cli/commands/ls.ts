import type { Command } from "commander";
import { renderTable } from "../../report/format.ts";
import { listExperiments, listRuns, readStatus, type RunState } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

const STATES: RunState[] = ["queued", "running", "succeeded", "failed", "interrupted"];

/** `peftctl ls`: experiments in the runs dir with their run counts by state. */
export function registerLs(program: Command): void {
  program
    .command("ls")
    .description("experiments in the runs dir, with run counts by state")
    .action(async (_options: unknown, command: Command) => {
      const context = cliContext(command);
      const experiments = listExperiments(context.runsDir).map((name) => {
        const counts = Object.fromEntries(STATES.map((s) => [s, 0])) as Record<RunState, number>;
        const runs = listRuns(context.runsDir, name);
        for (const run of runs) counts[readStatus(run.dir).state] += 1;
        return { experiment: name, runs: runs.length, ...counts };
      });
      if (context.json) {
        process.stdout.write(`${JSON.stringify(experiments, null, 2)}\n`);
      } else if (experiments.length === 0) {
        process.stdout.write(`no experiments in ${context.runsDir}\n`);
      } else {
        process.stdout.write(
          `${renderTable(
            ["EXPERIMENT", "RUNS", ...STATES.map((s) => s.toUpperCase())],
            experiments.map((e) => [e.experiment, String(e.runs), ...STATES.map((s) => String(e[s]))]),
          )}\n`,
        );
      }
    });
}
