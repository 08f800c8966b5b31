/**
 * `make soak`: the long robustness suite, apart from `make test`. Each class is a list of trials judged by
 * its invariants; the table at the end gives tried / failed / seconds per class and every failure with how
 * to replay it. Exit 1 when anything failed.
 *
 *   npx tsx soak/main.ts [--only configs,data,kills,checkpoints,controllers,disk,hub] [--quick] [--seed N] [--jobs N] [--trials N]
 */
import { parseArgs } from "node:util";
import { runCheckpoints } from "./checkpoints.ts";
import { runConfigs } from "./configs.ts";
import { runControllers } from "./controllers.ts";
import { runData } from "./data.ts";
import { runDisk } from "./disk.ts";
import { runHub } from "./hub.ts";
import { runKills } from "./kills.ts";
import { renderTable, type ClassResult, type Tally } from "./report.ts";
import { scratch } from "./util.ts";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    quick: { type: "boolean", default: false },
    seed: { type: "string" },
    jobs: { type: "string" },
    trials: { type: "string" },
    mutants: { type: "string" },
  },
});
const quick = values.quick!;
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const jobs = values.jobs !== undefined ? Number(values.jobs) : 2;
const trials = values.trials !== undefined ? Number(values.trials) : quick ? 2 : 20;
const mutants = values.mutants !== undefined ? Number(values.mutants) : quick ? 300 : 5_000;

const CLASSES: Record<string, () => Promise<Tally>> = {
  configs: () => runConfigs({ seed, count: mutants, cliSample: quick ? 10 : 200, jobs: jobs + 1 }),
  data: () => runData({ jobs, runSample: quick ? 2 : 8 }),
  kills: () => runKills({ seed, trials, jobs }),
  checkpoints: () => runCheckpoints({ jobs }),
  controllers: () => runControllers({ trials: quick ? 1 : 3 }),
  disk: () => runDisk(),
  hub: () => runHub({ quick }),
};
const only = values.only ? values.only.split(",") : Object.keys(CLASSES);
const unknown = only.filter((name) => !(name in CLASSES));
if (unknown.length > 0) {
  console.error(`soak: unknown class ${unknown.join(", ")} (classes: ${Object.keys(CLASSES).join(", ")})`);
  process.exit(2);
}

console.log(`soak: seed ${seed}${quick ? " (quick)" : ""}, classes ${only.join(", ")}, scratch ${scratch(".")}`);
const results: ClassResult[] = [];
for (const name of only) {
  console.log(`== ${name}`);
  const began = Date.now();
  let tally: Tally;
  try {
    tally = await CLASSES[name]!();
  } catch (caught) {
    // a class that cannot run at all (no root for the tmpfs, the reference run failing) is one failed trial, not a crash
    const { Tally: Fresh } = await import("./report.ts");
    tally = new Fresh();
    tally.record(`${name} could not run`, [caught instanceof Error ? caught.message : String(caught)], `npx tsx soak/main.ts --only ${name} --seed ${seed}`);
  }
  results.push({ name, tried: tally.tried, failed: tally.failed, seconds: (Date.now() - began) / 1000, notes: tally.notes });
  console.log(`   ${name}: ${tally.tried} tried, ${tally.failed.length} failed, ${((Date.now() - began) / 1000).toFixed(0)} s`);
}
console.log("\n" + renderTable(results));
// exit, not exitCode: a push a hub trial found hanging (its failure) still holds a socket and would keep the process alive
process.exit(results.some((r) => r.failed.length > 0) ? 1 : 0);
