import path from "node:path";
import type { Command } from "commander";
import { formatBytes, renderTable } from "../../report/format.ts";
import { applyGc, planGc } from "../../runs/retention.ts";
import { allRuns, requireRuns } from "../../runs/store.ts";
import { cliContext } from "../context.ts";

/** `peftctl gc [experiment] [--dry-run]`: applies retention to finished runs. */
export function registerGc(program: Command): void {
  program
    .command("gc")
    .description("remove checkpoints beyond checkpoint.keep_last and temporary leftovers of finished runs")
    .argument("[experiment]", "limit to one experiment (or run)")
    .option("--dry-run", "list what would be removed, with sizes, and remove nothing")
    .action(async (target: string | undefined, options: { dryRun?: boolean }, command: Command) => {
      const context = cliContext(command);
      const runs = target ? requireRuns(context.runsDir, target) : allRuns(context.runsDir);
      const items = planGc(runs);
      const total = items.reduce((sum, item) => sum + item.bytes, 0);
      if (!options.dryRun) applyGc(items);
      if (context.json) {
        process.stdout.write(`${JSON.stringify({ dry_run: Boolean(options.dryRun), bytes: total, items: items.map((i) => ({ run: i.run.runId, path: i.path, bytes: i.bytes, reason: i.reason })) }, null, 2)}\n`);
        return;
      }
      if (items.length === 0) {
        process.stdout.write("nothing to remove\n");
        return;
      }
      process.stdout.write(
        `${renderTable(
          ["SIZE", "PATH", "WHY"],
          items.map((i) => [formatBytes(i.bytes), path.relative(context.runsDir, i.path), i.reason]),
        )}\n`,
      );
      process.stdout.write(`${options.dryRun ? "would remove" : "removed"} ${items.length} item(s), ${formatBytes(total)}\n`);
    });
}
