import type { Command } from "commander";
import { renderStatusTable, statusRows } from "../../report/status-table.ts";
import { allRuns, requireRuns } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

/** `peftctl status [experiment] [--json]`: run, state, step/total, best eval loss, elapsed, device. */
export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("the state of every run (or of one experiment's runs)")
    .argument("[experiment]", "experiment name, run id, or <experiment>/<run_id>")
    .action(async (target: string | undefined, _options: unknown, command: Command) => {
      const context = cliContext(command);
      const runs = target ? requireRuns(context.runsDir, target) : allRuns(context.runsDir);
      const rows = statusRows(runs);
      if (context.json) {
        process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      } else if (rows.length === 0) {
        process.stdout.write(`no runs in ${context.runsDir}\n`);
      } else {
        process.stdout.write(`${renderStatusTable(rows)}\n`);
      }
    });
}
