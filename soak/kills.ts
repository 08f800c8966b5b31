/**
 * kill -9 at random moments: N trials of the controller (`bin/peftctl.js run`) and N of the trainer (the
 * shim, its pid from status.json), each in its own runs dir, killed after a seeded delay or just after a
 * seeded checkpoint event; then `peftctl run` again until the run succeeds. The final adapter must equal
 * the uninterrupted reference run's (<= 1e-6), no checkpointed step trained again, no stack trace.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { readStatus } from "../src/runs/store.ts";
import { Tally } from "./report.ts";
import { CHECKPOINT_EVERY, MAX_STEPS, RUN_BOUND_MS, TRAIN_ENV, checkAgainstReference, referenceRun, runDirIn, stackTraceIn, tinyConfig } from "./training.ts";
import { CLI, int, peftctl, pool, root, scratch, seeded, sleep } from "./util.ts";

type Target = "controller" | "trainer";
type Moment = { kind: "delay"; ms: number } | { kind: "after-checkpoint"; step: number; ms: number };

function checkpointSteps(runDir: string | undefined): number[] {
  const file = runDir && path.join(runDir, "events.jsonl");
  if (!file || !existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter((l) => l.includes('"checkpoint"')).flatMap((l) => {
    try {
      const e = JSON.parse(l) as { type: string; step: number };
      return e.type === "checkpoint" ? [e.step] : [];
    } catch {
      return []; // a line being appended
    }
  });
}

async function waitFor(test: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (test()) return true;
    await sleep(100);
  }
  return false;
}

function trainerPid(runDir: string | undefined): number | null {
  if (!runDir) return null;
  try {
    const status = readStatus(runDir);
    return status.state === "running" ? status.pid : null;
  } catch {
    return null; // status.json mid-rename
  }
}

async function trial(target: Target, index: number, seed: number, referenceSeconds: number): Promise<{ problems: string[]; moment: Moment; killed: boolean; reruns: number }> {
  const random = seeded((seed * 7919 + index * 2 + (target === "trainer" ? 1 : 0)) >>> 0);
  const dir = scratch(`kills/${target}-${index}`);
  const config = tinyConfig(dir);
  const runsDir = path.join(dir, "runs");
  const moment: Moment = random() < 0.5
    ? { kind: "delay", ms: int(random, 500, Math.max(1000, Math.floor(referenceSeconds * 1000 * 0.9))) }
    : { kind: "after-checkpoint", step: CHECKPOINT_EVERY * int(random, 1, MAX_STEPS / CHECKPOINT_EVERY - 1), ms: int(random, 0, 400) };
  const outputs: string[] = [];
  const controller = spawn(process.execPath, [CLI, "--runs-dir", runsDir, "run", config], { cwd: root, env: TRAIN_ENV, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  controller.stdout.on("data", (c: Buffer) => (output += c));
  controller.stderr.on("data", (c: Buffer) => (output += c));
  const exited = new Promise<void>((resolve) => controller.on("close", () => resolve()));
  let gone = false;
  void exited.then(() => (gone = true));
  const started = Date.now();
  if (moment.kind === "delay") {
    // for the trainer, the clock starts once it runs
    if (target === "trainer") await waitFor(() => gone || trainerPid(runDirIn(runsDir)) !== null, RUN_BOUND_MS);
    await Promise.race([sleep(moment.ms), exited]);
  } else {
    await waitFor(() => gone || checkpointSteps(runDirIn(runsDir)).includes(moment.step), RUN_BOUND_MS);
    await Promise.race([sleep(moment.ms), exited]);
  }
  let killed = false;
  if (!gone) {
    const pid = target === "controller" ? controller.pid! : trainerPid(runDirIn(runsDir));
    if (pid) {
      try {
        process.kill(pid, "SIGKILL");
        killed = true;
      } catch {
        /* it ended on its own in between */
      }
    }
  }
  await Promise.race([exited, sleep(RUN_BOUND_MS - (Date.now() - started))]);
  outputs.push(output);
  let reruns = 0;
  for (; reruns < 4; reruns++) {
    const runDir = runDirIn(runsDir);
    if (runDir && readStatus(runDir).state === "succeeded") break;
    const again = await peftctl(["--runs-dir", runsDir, "run", config], { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
    outputs.push(again.stdout + again.stderr);
    if (again.timedOut) outputs.push(`(rerun ${reruns + 1} timed out)`);
  }
  const problems = [...(await checkAgainstReference(runDirIn(runsDir))), ...stackTraceIn(outputs)];
  return { problems, moment, killed, reruns };
}

export async function runKills(options: { seed: number; trials: number; jobs: number }): Promise<Tally> {
  const tally = new Tally();
  const reference = await referenceRun();
  tally.note(`reference run (uninterrupted, ${MAX_STEPS} steps, a checkpoint every ${CHECKPOINT_EVERY}): ${reference.seconds.toFixed(1)} s`);
  const trials = (["controller", "trainer"] as const).flatMap((target) => Array.from({ length: options.trials }, (_, index) => ({ target, index })));
  let killedCount = 0;
  await pool(trials, options.jobs, async ({ target, index }) => {
    const began = Date.now();
    const { problems, moment, killed, reruns } = await trial(target, index, options.seed, reference.seconds);
    if (killed) killedCount++;
    const when = moment.kind === "delay" ? `${moment.ms} ms` : `${moment.ms} ms after checkpoint ${moment.step}`;
    console.log(`  kill ${target} #${index}: ${killed ? "killed" : "ended before the kill"} at ${when}, ${reruns} rerun(s), ${((Date.now() - began) / 1000).toFixed(0)} s${problems.length ? ": FAILED" : ""}`);
    tally.record(`kill -9 ${target} #${index} at ${when}`, problems, `npx tsx soak/main.ts --only kills --seed ${options.seed} --trials ${index + 1} (trial ${target} #${index}; run dir ${scratch(`kills/${target}-${index}`)})`);
  });
  tally.note(`${killedCount} of ${trials.length} trials killed their target while it ran (the rest ended first); seed ${options.seed}`);
  return tally;
}
