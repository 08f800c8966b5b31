import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { shimCommand } from "../../src/launch/local.ts";
import { classifyResult, effectiveMicroBatchSize, orderRuns, type Scheduler } from "../../src/launch/scheduler.ts";
import { launchSweep } from "../../src/launch/sweep.ts";
import { readEvents, readJob, readStatus, runFile, updateStatus, type RunRef } from "../../src/runs/store.ts";
import { fakeEnv, makeRun, tempRunsDir } from "./helpers.ts";

function starts(run: RunRef) {
  return readEvents(run.dir).filter((e) => e.type === "start");
}

/** What the fake trainer recorded of each attempt it was started for. */
function fakeAttempts(run: RunRef): Array<{ attempt: number; argv: string[]; micro_batch_size: number }> {
  return readFileSync(path.join(run.dir, "fake-attempts.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { attempt: number; argv: string[]; micro_batch_size: number });
}

describe("scheduler with the fake trainer", () => {
  it("runs jobs to success and records status", async () => {
    const runsDir = tempRunsDir();
    const a = makeRun(runsDir, "a", { fake: { steps: 6, step_ms: 30 } });
    const b = makeRun(runsDir, "b", { fake: { steps: 6, step_ms: 30 } });
    const report = await launchSweep({ runs: [a, b], env: fakeEnv(), cpuSlots: 2 });
    expect(report.succeeded.map((r) => r.runId).sort()).toEqual(["a", "b"]);
    const status = readStatus(a.dir);
    expect(status).toMatchObject({ state: "succeeded", step: 6, total_steps: 6, best_eval_loss: 1.5, attempts: 1, devices: ["cpu"] });
    expect(status.adapter_path).toMatch(/adapter$/);
    expect(starts(a)).toHaveLength(1);
  });

  it("places jobs on simulated GPUs: never two on one GPU, N-GPU jobs get N distinct GPUs", async () => {
    const runsDir = tempRunsDir();
    const runs = [
      ...["g1a", "g1b", "g1c"].map((id) => makeRun(runsDir, id, { gpus: 1, fake: { steps: 5, step_ms: 60 } })),
      ...["g2a", "g2b"].map((id) => makeRun(runsDir, id, { gpus: 2, fake: { steps: 5, step_ms: 60 } })),
      makeRun(runsDir, "cpu0", { gpus: 0, fake: { steps: 3, step_ms: 30 } }),
    ];
    const report = await launchSweep({ runs, env: fakeEnv({ PEFTCTL_FAKE_GPUS: "0,1,2" }), cpuSlots: 1 });
    expect(report.succeeded).toHaveLength(6);
    const spans = runs.map((run) => {
      const events = readEvents(run.dir);
      const start = events.find((e) => e.type === "start")!;
      const done = events.find((e) => e.type === "done")!;
      return { run: run.runId, device: start.type === "start" ? start.device : "", from: Date.parse(start.t), to: Date.parse(done.t) };
    });
    for (const span of spans.filter((s) => s.run.startsWith("g2"))) expect(new Set(span.device.split(",")).size).toBe(2);
    expect(spans.find((s) => s.run === "cpu0")!.device).toBe("cpu");
    for (const a of spans) {
      for (const b of spans) {
        if (a === b || a.device === "cpu" || b.device === "cpu") continue;
        const shared = a.device.split(",").some((d) => b.device.split(",").includes(d));
        const overlap = a.from < b.to && b.from < a.to;
        expect(shared && overlap, `${a.run} and ${b.run} shared GPU ${a.device}/${b.device}`).toBe(false);
      }
    }
    // Parallelism happened: some GPU jobs overlapped in time.
    const gpuSpans = spans.filter((s) => s.device !== "cpu");
    expect(gpuSpans.some((a) => gpuSpans.some((b) => a !== b && a.from < b.to && b.from < a.to))).toBe(true);
  });

  it("runs GPU jobs on the CPU when there is no GPU (a notice says so), and fails jobs that need more GPUs than the host has", async () => {
    const runsDir = tempRunsDir();
    const onCpu = makeRun(runsDir, "on-cpu", { gpus: 2, fake: { steps: 2, step_ms: 10 } });
    const notices: Array<[string | undefined, string]> = [];
    const report = await launchSweep({ runs: [onCpu], env: fakeEnv({ PEFTCTL_FAKE_GPUS: "" }), onNotice: (run, message) => notices.push([run?.runId, message]) });
    expect(report.succeeded).toHaveLength(1);
    expect(readStatus(onCpu.dir).devices).toEqual(["cpu"]);
    expect(notices).toEqual([[undefined, "no GPU found (nvidia-smi): 1 job(s) asking for GPUs run on the CPU, 1 at a time (--cpu-slots)"]]);
    const tooBig = makeRun(runsDir, "too-big", { gpus: 2, fake: { steps: 2, step_ms: 10 } });
    const second = await launchSweep({ runs: [tooBig], env: fakeEnv({ PEFTCTL_FAKE_GPUS: "0" }) });
    expect(second.failed).toHaveLength(1);
    expect(readStatus(tooBig.dir).error).toMatchObject({ kind: "resources", message: "needs 2 GPUs; this host has 1" });
    expect(readEvents(tooBig.dir)).toHaveLength(0);
  });

  it("fails a run whose shim cannot be started, saying why", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "no-python", { fake: { steps: 2 } });
    const report = await launchSweep({ runs: [run], env: fakeEnv({ PEFTCTL_PYTHON: "/nonexistent/python3" }) });
    expect(report.failed).toHaveLength(1);
    expect(readStatus(run.dir).error).toMatchObject({ kind: "launch" });
    expect(readStatus(run.dir).error!.message).toContain("/nonexistent/python3");
  });

  it("retries exit 75 with --resume from the checkpoint", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "i", { retries: 1, fake: { steps: 8, step_ms: 20, behaviour: "interrupt", at_step: 3 } });
    const report = await launchSweep({ runs: [run], env: fakeEnv() });
    expect(report.succeeded).toHaveLength(1);
    const s = starts(run);
    expect(s.map((e) => e.type === "start" && [e.attempt, e.resumed_from_step])).toEqual([
      [1, null],
      [2, 3],
    ]);
    expect(readStatus(run.dir).attempts).toBe(2);
  });

  it("retries a lost process (killed by a signal) and gives up after resources.retries", async () => {
    const runsDir = tempRunsDir();
    const once = makeRun(runsDir, "lost-once", { retries: 1, fake: { steps: 4, step_ms: 20, behaviour: "crash", at_step: 2, on_attempts: [1] } });
    const always = makeRun(runsDir, "lost-always", { retries: 2, fake: { steps: 4, step_ms: 20, behaviour: "crash", at_step: 2, on_attempts: [1, 2, 3, 4] } });
    const report = await launchSweep({ runs: [once, always], env: fakeEnv(), cpuSlots: 2 });
    expect(report.succeeded.map((r) => r.runId)).toEqual(["lost-once"]);
    expect(report.failed.map((r) => r.runId)).toEqual(["lost-always"]);
    const failed = readStatus(always.dir);
    expect(failed.attempts).toBe(3);
    expect(failed.error).toMatchObject({ kind: "lost", retryable: true });
    expect(failed.signal).toBe("SIGKILL");
  });

  it("backs off on out of memory in status.json only (6 -> 3 -> 1): job.json untouched, the next attempt gets --micro-batch-size", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "oom", { retries: 3, micro: 6, accumulation: 2, fake: { steps: 4, step_ms: 20, behaviour: "oom", at_step: 1, oom_above: 1 } });
    const jobBytes = readFileSync(runFile(run.dir, "job"));
    const report = await launchSweep({ runs: [run], env: fakeEnv() });
    expect(report.succeeded).toHaveLength(1);
    expect(readFileSync(runFile(run.dir, "job")).equals(jobBytes)).toBe(true);
    const status = readStatus(run.dir);
    expect(status.oom_backoffs.map((b) => [b.attempt, b.micro_batch_size])).toEqual([
      [1, 3],
      [2, 1],
    ]);
    expect(status.attempts).toBe(3);
    const attempts = fakeAttempts(run);
    expect(attempts.map((a) => [a.attempt, a.micro_batch_size])).toEqual([
      [1, 6],
      [2, 3],
      [3, 1],
    ]);
    // The planned micro-batch is job.json's, so the first attempt's command line has no flag.
    expect(attempts.map((a) => a.argv.slice(3))).toEqual([
      ["--attempt", "1"],
      ["--attempt", "2", "--micro-batch-size", "3"],
      ["--attempt", "3", "--micro-batch-size", "1"],
    ]);
  });

  it("fails out of memory at micro-batch 1 for good", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "oom-1", { retries: 3, micro: 2, accumulation: 1, fake: { steps: 4, step_ms: 20, behaviour: "oom", at_step: 1, oom_above: 0 } });
    const report = await launchSweep({ runs: [run], env: fakeEnv() });
    expect(report.failed).toHaveLength(1);
    const status = readStatus(run.dir);
    expect(status).toMatchObject({ state: "failed", attempts: 2, exit_code: 3 });
    expect(status.error).toMatchObject({ kind: "oom", retryable: false });
    expect(status.error!.message).toMatch(/^out of memory at micro_batch_size 1: CUDA out of memory \(fake\)/);
    expect(status.oom_backoffs.map((b) => b.micro_batch_size)).toEqual([1]);
  });

  it("fails exit 2 at once with the shim's message, no retry", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "bad", { retries: 3, fake: { steps: 4, step_ms: 20, behaviour: "bad-input", at_step: 1 } });
    const report = await launchSweep({ runs: [run], env: fakeEnv() });
    expect(report.failed).toHaveLength(1);
    const status = readStatus(run.dir);
    expect(status).toMatchObject({ state: "failed", attempts: 1, exit_code: 2 });
    expect(status.error).toMatchObject({ kind: "spec", message: "train.lr: must be positive (fake)", retryable: false });
    // Re-running skips it (not retryable) unless asked to.
    const again = await launchSweep({ runs: [run], env: fakeEnv() });
    expect(again.skipped.map((s) => s.run.runId)).toEqual(["bad"]);
    expect(readStatus(run.dir).attempts).toBe(1);
  });

  it("skips succeeded runs on a re-run and calls onRunSucceeded once per success; a throwing hook fails nothing", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "hooked", { fake: { steps: 3, step_ms: 20 } });
    const seen: string[] = [];
    const hookErrors: unknown[] = [];
    const first = await launchSweep({
      runs: [run],
      env: fakeEnv(),
      onRunSucceeded: (r) => {
        seen.push(r.runId);
        throw new Error("push failed");
      },
      onHookError: (_r, e) => hookErrors.push(e),
    });
    expect(first.succeeded).toHaveLength(1);
    expect(readStatus(run.dir).state).toBe("succeeded");
    expect(hookErrors).toHaveLength(1);
    const second = await launchSweep({ runs: [run], env: fakeEnv(), onRunSucceeded: (r) => void seen.push(r.runId) });
    expect(second.skipped.map((s) => s.reason)).toEqual(["succeeded already"]);
    expect(seen).toEqual(["hooked"]);
    expect(starts(run)).toHaveLength(1);
  });

  it("interrupt(): jobs get SIGTERM, checkpoint, and are marked interrupted; queued ones stay queued", async () => {
    const runsDir = tempRunsDir();
    const running = makeRun(runsDir, "r1", { fake: { steps: 200, step_ms: 20 } });
    const queued = makeRun(runsDir, "r2", { fake: { steps: 5, step_ms: 20 } });
    let scheduler: Scheduler | undefined;
    const report = await launchSweep({
      runs: [running, queued],
      env: fakeEnv(),
      cpuSlots: 1,
      onScheduler: (s) => (scheduler = s),
      onEvent: (_run, event) => {
        if (event.type === "progress" && event.step === 5) scheduler!.interrupt();
      },
    });
    expect(report.interrupted.map((r) => r.runId)).toEqual(["r1"]);
    expect(report.notStarted.map((r) => r.runId)).toEqual(["r2"]);
    expect(readStatus(running.dir).state).toBe("interrupted");
    expect(readStatus(queued.dir).state).toBe("queued");
    const last = readEvents(running.dir).at(-1)!;
    expect(last.type).toBe("interrupted");
  });
});

describe("scheduling rules", () => {
  it("orders longest first when every run has an estimate, else keeps the order", () => {
    const ref = (id: string) => ({ experiment: "e", runId: id, dir: `/x/${id}` });
    expect(orderRuns([{ run: ref("a"), estimatedWork: 1 }, { run: ref("b"), estimatedWork: 3 }]).map((r) => r.run.runId)).toEqual(["b", "a"]);
    expect(orderRuns([{ run: ref("a"), estimatedWork: 1 }, { run: ref("b") }]).map((r) => r.run.runId)).toEqual(["a", "b"]);
  });

  it("an attempt's micro-batch is its newest back-off's, else job.json's; back-offs recorded with accumulation still read", () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "old-backoffs", { micro: 8 });
    const job = readJob(run.dir);
    expect(effectiveMicroBatchSize(job, readStatus(run.dir))).toBe(8);
    // status.json as controllers wrote it when a back-off also rewrote job.json.
    const old = [
      { attempt: 1, micro_batch_size: 4, gradient_accumulation_steps: 4, at: "2026-01-01T10:00:00.000Z" },
      { attempt: 2, micro_batch_size: 2, gradient_accumulation_steps: 8, at: "2026-01-01T10:01:00.000Z" },
    ];
    updateStatus(run.dir, () => ({ oom_backoffs: old }));
    expect(effectiveMicroBatchSize(job, readStatus(run.dir))).toBe(2);
  });

  it("classifies exit codes", () => {
    const base = { failed: true, signal: null, durationMs: 1, lastEvent: undefined, error: "boom" };
    expect(classifyResult({ ...base, exitCode: 75 }, false)).toEqual({ kind: "retry", reason: "interrupted" });
    expect(classifyResult({ ...base, exitCode: 75 }, true)).toEqual({ kind: "interrupted" });
    expect(classifyResult({ ...base, exitCode: 3 }, false)).toEqual({ kind: "oom" });
    expect(classifyResult({ ...base, exitCode: null, signal: "SIGKILL" }, false)).toEqual({ kind: "retry", reason: "lost" });
    expect(classifyResult({ ...base, exitCode: 2 }, false)).toMatchObject({ kind: "failed", error: { retryable: false } });
    // No space left: failed now (a retry would fill the disk again), retryable by the next `run`.
    expect(classifyResult({ ...base, exitCode: 4, error: "no space left on /data (writing /data/r/checkpoints/step-000004; 0 B free of 1.0 GiB)" }, false)).toEqual({
      kind: "failed",
      error: {
        kind: "disk_full",
        message: "no space left on /data (writing /data/r/checkpoints/step-000004; 0 B free of 1.0 GiB); free space there, then run peftctl run (or resume) again: it continues from the newest checkpoint",
        retryable: true,
      },
    });
  });

  it("reads torchrun's exit 1 by the workers' last event", () => {
    const base = { failed: true, signal: null, durationMs: 1, error: "boom", exitCode: 1 };
    const interrupted = { v: 1, t: "t", run_id: "r", type: "interrupted", step: 5, checkpoint: "/c", signal: "SIGTERM" } as const;
    const oom = { v: 1, t: "t", run_id: "r", type: "error", kind: "oom", message: "out of memory", retryable: true } as const;
    const internal = { ...oom, kind: "internal", message: "boom", retryable: false } as const;
    expect(classifyResult({ ...base, lastEvent: interrupted }, true)).toEqual({ kind: "interrupted" });
    expect(classifyResult({ ...base, lastEvent: interrupted }, false)).toEqual({ kind: "retry", reason: "interrupted" });
    expect(classifyResult({ ...base, lastEvent: oom }, false)).toEqual({ kind: "oom" });
    expect(classifyResult({ ...base, lastEvent: internal }, false)).toMatchObject({ kind: "failed", error: { kind: "internal", retryable: false } });
    expect(classifyResult({ ...base, lastEvent: undefined }, false)).toMatchObject({ kind: "failed", error: { kind: "internal" } });
    const diskFull = { ...oom, kind: "disk_full", message: "no space left on /data" } as const;
    expect(classifyResult({ ...base, lastEvent: diskFull }, false)).toMatchObject({ kind: "failed", error: { kind: "disk_full", retryable: true } });
    const noCuda = { ...oom, kind: "environment", message: "the job was placed on GPU 0,1 ..." } as const;
    expect(classifyResult({ ...base, lastEvent: noCuda }, false)).toMatchObject({ kind: "failed", error: { kind: "environment", retryable: true } });
    const badData = { ...oom, kind: "data", message: "no usable dialogue", retryable: false } as const;
    expect(classifyResult({ ...base, lastEvent: badData }, false)).toMatchObject({ kind: "failed", error: { kind: "data", retryable: false } });
  });

  it("launches multi-GPU jobs with torchrun", () => {
    const run = { experiment: "e", runId: "r", dir: "/runs/e/r" };
    const { args } = shimCommand({ run, attempt: 2, resume: true, devices: ["0", "1"], processes: 2, microBatchSize: 4 }, 4, { PEFTCTL_PYTHON: "py" });
    expect(args).toEqual(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "peftshim", "train", "--job", "/runs/e/r/job.json", "--attempt", "2", "--resume"]);
  });

  it("passes --micro-batch-size after --attempt only when the attempt's micro-batch is not job.json's", () => {
    const request = { run: { experiment: "e", runId: "r", dir: "/runs/e/r" }, attempt: 3, resume: true, devices: ["cpu"], processes: 1 };
    const env = { PEFTCTL_PYTHON: "py" };
    expect(shimCommand({ ...request, microBatchSize: 8 }, 8, env).args).toEqual(["-m", "peftshim", "train", "--job", "/runs/e/r/job.json", "--attempt", "3", "--resume"]);
    expect(shimCommand({ ...request, microBatchSize: 2 }, 8, env).args).toEqual([
      "-m",
      "peftshim",
      "train",
      "--job",
      "/runs/e/r/job.json",
      "--attempt",
      "3",
      "--micro-batch-size",
      "2",
      "--resume",
    ]);
  });
});
