/**
 * Two controllers at once: two `peftctl run` of the same config on the same runs dir, the second started
 * after a stagger. One drives the run (the run lock); each step is trained once; both exit cleanly
 * (0, or a clear refusal without a stack trace); the run ends with the uninterrupted run's adapter.
 */
import path from "node:path";
import { readEvents } from "../src/runs/store.ts";
import { Tally } from "./report.ts";
import { MAX_STEPS, RUN_BOUND_MS, TRAIN_ENV, checkAgainstReference, referenceRun, runDirIn, stackTraceIn, tinyConfig } from "./training.ts";
import { peftctl, scratch, sleep, tail } from "./util.ts";

const STAGGERS_MS = [0, 400, 3_000, 8_000];

export async function runControllers(options: { trials: number }): Promise<Tally> {
  const tally = new Tally();
  await referenceRun();
  for (let index = 0; index < options.trials; index++) {
    const stagger = STAGGERS_MS[index % STAGGERS_MS.length]!;
    const dir = scratch(`controllers/${index}`);
    const config = tinyConfig(dir);
    const runsDir = path.join(dir, "runs");
    const args = ["--runs-dir", runsDir, "run", config];
    const first = peftctl(args, { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
    await sleep(stagger);
    const second = peftctl(args, { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
    const done = await Promise.all([first, second]);
    const problems = stackTraceIn(done.map((d) => d.stdout + d.stderr));
    done.forEach((d, i) => {
      if (d.timedOut) problems.push(`controller ${i + 1}: no exit within ${RUN_BOUND_MS} ms`);
      else if (d.code !== 0 && !(d.code === 2 && /lock|running|another/i.test(d.stdout + d.stderr))) problems.push(`controller ${i + 1}: exit ${d.code}: ${tail(d.stdout + d.stderr, 3)}`);
    });
    const runDir = runDirIn(runsDir);
    const steps = runDir ? readEvents(runDir).flatMap((e) => (e.type === "progress" ? [e.step] : [])) : [];
    const starts = runDir ? readEvents(runDir).filter((e) => e.type === "start").length : 0;
    if (steps.length !== MAX_STEPS || new Set(steps).size !== MAX_STEPS) problems.push(`steps trained: ${steps.join(",")} (each of 1..${MAX_STEPS} once expected)`);
    if (starts !== 1) problems.push(`${starts} attempts started (one expected)`);
    problems.push(...(await checkAgainstReference(runDir)));
    const refusal = done.find((d) => d.code === 2);
    console.log(`  two controllers, second after ${stagger} ms: exits ${done.map((d) => d.code).join(" and ")}${refusal ? ` (refusal: ${tail(refusal.stderr || refusal.stdout, 1)})` : ""}${problems.length ? ": FAILED" : ""}`);
    tally.record(`two controllers, second ${stagger} ms later`, problems, `npx peftctl ${args.join(" ")} & sleep ${stagger / 1000}; npx peftctl ${args.join(" ")}`);
  }
  return tally;
}
