import type { Command } from "commander";
import { planConfig } from "../../experiment.ts";
import { log } from "../../log.ts";
import { COLUMN_NOTES, renderPlan } from "../../report/plan-table.ts";
import { cliContext } from "../context.ts";
import { setOption } from "../options.ts";

export function registerPlan(program: Command): void {
  program
    .command("plan")
    .description("expand an experiment's sweep into jobs and show them with memory and token estimates; launches nothing")
    .argument("<config>", "experiment config (YAML)")
    .addOption(setOption())
    .addHelpText("after", `\nColumns:\n${COLUMN_NOTES.map((line) => `  ${line}`).join("\n")}\n\nWith --json: the resolved job specs (job.json of each run) as a JSON array on stdout.`)
    .action(async (file: string, options: { set: string[] }, command: Command) => {
      const context = cliContext(command);
      const { plan, warnings } = await planConfig(file, { set: options.set, runsDir: context.runsDir });
      for (const warning of warnings) log().warn(warning);
      if (context.json) {
        process.stdout.write(`${JSON.stringify(plan.jobs.map((job) => job.spec), null, 2)}\n`);
        return;
      }
      process.stdout.write(renderPlan(plan));
    });
}
