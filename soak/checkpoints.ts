/**
 * Corrupt checkpoints: a run killed (controller and trainer, kill -9) just after its checkpoint at step 8
 * (checkpoints 6 and 8 on disk) is copied aside; each trial restores that copy in place, breaks its
 * checkpoints one way, and runs `peftctl run` again. It must never load a corrupt checkpoint (it resumes
 * from the newest valid one, or from scratch when none is), never print a stack trace, and end with the
 * uninterrupted run's adapter (<= 1e-6).
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { readEvents, readStatus } from "../src/runs/store.ts";
import { Tally } from "./report.ts";
import { RUN_BOUND_MS, TRAIN_ENV, checkAgainstReference, referenceRun, runDirIn, stackTraceIn, tinyConfig } from "./training.ts";
import { CLI, peftctl, pool, root, scratch, sleep, tail } from "./util.ts";

type Corruption = {
  kind: string;
  /** The step the next attempt must resume from (null: from scratch); "clear-refusal" allows a clear exit 1/2 instead. */
  resume: number | null;
  lenient?: boolean;
  apply: (checkpoints: string) => void;
};

const step = (n: number) => `step-${String(n).padStart(6, "0")}`;
/** Every checkpoint dir (the prune of the oldest may not have happened when the run was killed). */
const steps = (c: string) => readdirSync(c).filter((name) => name.startsWith("step-"));
const garbage = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + 7) % 256));

const CORRUPTIONS: Corruption[] = [
  { kind: "MANIFEST deleted", resume: 6, apply: (c) => rmSync(path.join(c, step(8), "MANIFEST.json")) },
  { kind: "MANIFEST garbage", resume: 6, apply: (c) => writeFileSync(path.join(c, step(8), "MANIFEST.json"), garbage(300)) },
  { kind: "MANIFEST truncated", resume: 6, apply: (c) => { const f = path.join(c, step(8), "MANIFEST.json"); writeFileSync(f, readFileSync(f).subarray(0, 40)); } },
  { kind: "MANIFEST valid JSON, wrong shape", resume: 6, apply: (c) => writeFileSync(path.join(c, step(8), "MANIFEST.json"), JSON.stringify({ step: "8", files: [] })) },
  { kind: "weights garbage (sha256 mismatch)", resume: 6, apply: (c) => writeFileSync(path.join(c, step(8), "trainable.safetensors"), garbage(2048)) },
  { kind: "optimizer state truncated", resume: 6, apply: (c) => truncateSync(path.join(c, step(8), "optimizer.pt"), 10) },
  { kind: "adapter dir replaced by a file", resume: 6, apply: (c) => { rmSync(path.join(c, step(8), "adapter"), { recursive: true }); writeFileSync(path.join(c, step(8), "adapter"), "not a dir"); } },
  { kind: "an empty newer checkpoint dir", resume: 8, apply: (c) => mkdirSync(path.join(c, step(10))) },
  { kind: "a file where a checkpoint dir should be", resume: 8, apply: (c) => writeFileSync(path.join(c, step(10)), "x") },
  { kind: "a half-written temporary dir", resume: 8, apply: (c) => { cpSync(path.join(c, step(8)), path.join(c, `.tmp-${step(10)}`), { recursive: true }); rmSync(path.join(c, `.tmp-${step(10)}`, "MANIFEST.json")); truncateSync(path.join(c, `.tmp-${step(10)}`, "optimizer.pt"), 100); } },
  { kind: "every checkpoint bad", resume: null, apply: (c) => { for (const s of steps(c)) writeFileSync(path.join(c, s, "MANIFEST.json"), "{"); } },
  { kind: "every checkpoint an empty dir", resume: null, apply: (c) => { for (const s of steps(c)) { rmSync(path.join(c, s), { recursive: true }); mkdirSync(path.join(c, s)); } } },
  { kind: "checkpoints/ is a file", resume: null, lenient: true, apply: (c) => { rmSync(c, { recursive: true }); writeFileSync(c, "x"); } },
];

/** A run stopped by kill -9 of both processes right after its checkpoint at step 8, in `dir`. */
async function prepare(dir: string): Promise<{ config: string; runsDir: string; runDir: string }> {
  const config = tinyConfig(dir);
  const runsDir = path.join(dir, "runs");
  const controller = spawn(process.execPath, [CLI, "--runs-dir", runsDir, "run", config], { cwd: root, env: TRAIN_ENV, stdio: "ignore" });
  const until = Date.now() + RUN_BOUND_MS;
  for (;;) {
    const runDir = runDirIn(runsDir);
    if (runDir && existsSync(path.join(runDir, "events.jsonl")) && readFileSync(path.join(runDir, "events.jsonl"), "utf8").includes('"type":"checkpoint","step":8')) {
      const pid = readStatus(runDir).pid;
      process.kill(controller.pid!, "SIGKILL");
      if (pid) process.kill(pid, "SIGKILL");
      await sleep(500);
      return { config, runsDir, runDir };
    }
    if (controller.exitCode !== null || Date.now() > until) throw new Error(`could not stop the run at its checkpoint 8 (controller exit ${controller.exitCode})`);
    await sleep(50);
  }
}

export async function runCheckpoints(options: { jobs: number }): Promise<Tally> {
  const tally = new Tally();
  await referenceRun();
  const lanes = Math.max(1, Math.min(options.jobs, 2));
  const prepared = await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    const state = await prepare(scratch(`checkpoints/lane-${lane}`));
    const backup = path.join(scratch(`checkpoints/lane-${lane}`), "pristine");
    cpSync(state.runDir, backup, { recursive: true });
    tally.note(`lane ${lane}: killed at checkpoint 8 with ${readdirSync(path.join(state.runDir, "checkpoints")).join(", ")} on disk`);
    return { ...state, backup, busy: Promise.resolve() };
  }));
  await pool(CORRUPTIONS, lanes, async (corruption, index) => {
    const lane = prepared[index % lanes]!;
    const run = async () => {
      rmSync(lane.runDir, { recursive: true, force: true });
      cpSync(lane.backup, lane.runDir, { recursive: true });
      corruption.apply(path.join(lane.runDir, "checkpoints"));
      const eventsBefore = readEvents(lane.runDir).length;
      const done = await peftctl(["--runs-dir", lane.runsDir, "run", lane.config], { env: TRAIN_ENV, timeoutMs: RUN_BOUND_MS });
      const output = done.stdout + done.stderr;
      const problems = stackTraceIn([output]);
      if (done.timedOut) problems.push(`no exit within ${RUN_BOUND_MS} ms`);
      const starts = readEvents(lane.runDir).slice(eventsBefore).flatMap((e) => (e.type === "start" ? [e] : []));
      if (corruption.lenient && done.code !== 0) {
        if (done.code !== 1 && done.code !== 2) problems.push(`exit ${done.code}`);
        if (!/checkpoints/.test(output)) problems.push(`a refusal that does not name checkpoints/: ${tail(output, 3)}`);
      } else {
        if (done.code !== 0) problems.push(`exit ${done.code}: ${tail(output, 4)}`);
        const resumed = starts[0]?.resumed_from_step ?? null;
        if (starts.length === 0) problems.push("no attempt started");
        else if (resumed !== corruption.resume) problems.push(`resumed from step ${resumed}, expected ${corruption.resume ?? "a fresh start"}`);
        problems.push(...(await checkAgainstReference(lane.runDir, { steps: false })));
      }
      tally.record(`checkpoint: ${corruption.kind}`, problems, `npx tsx soak/main.ts --only checkpoints (kind "${corruption.kind}"; run dir ${lane.runDir})`);
      console.log(`  ${corruption.kind}: exit ${done.code}, resumed from ${starts.map((s) => s.resumed_from_step ?? "scratch").join(",") || "(no attempt)"}${problems.length ? ": FAILED" : ""}`);
    };
    // trials of one lane share its run dir: one at a time
    const next = lane.busy.then(run);
    lane.busy = next.catch(() => undefined);
    await next;
  });
  return tally;
}
