/**
 * The controller as a process (bin/peftctl.js resume <experiment>) with the FAKE trainer: Ctrl-C,
 * kill -9 of the controller and recovery, and the per-run lock.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa, type ResultPromise } from "execa";
import { describe, expect, it } from "vitest";
import { acquireRunLock } from "../../src/runs/lock.ts";
import { isSameProcessAlive } from "../../src/runs/proc.ts";
import { readEvents, readStatus, type RunRef } from "../../src/runs/store.ts";
import { fakeEnv, makeRun, tempRunsDir } from "./helpers.ts";

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/peftctl.js");

function controller(runsDir: string, args: string[]): ResultPromise<{ reject: false; env: NodeJS.ProcessEnv }> {
  return execa(bin, ["--runs-dir", runsDir, ...args], { reject: false, env: fakeEnv() }) as never;
}

async function until(predicate: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const progressed = (run: RunRef, step: number) => () => readEvents(run.dir).some((e) => e.type === "progress" && e.step >= step);

describe("controller process", () => {
  it("Ctrl-C (SIGINT): jobs checkpoint and are marked interrupted, exit 130; resume finishes them", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "ctrlc", { fake: { steps: 40, step_ms: 50, checkpoint_every: 100 } });
    const child = controller(runsDir, ["resume", "fake-exp"]);
    await until(progressed(run, 3));
    child.kill("SIGINT");
    const result = await child;
    expect(result.exitCode, result.stderr).toBe(130);
    const status = readStatus(run.dir);
    expect(status.state).toBe("interrupted");
    const last = readEvents(run.dir).at(-1)!;
    expect(last).toMatchObject({ type: "interrupted", signal: "SIGTERM" });
    const again = await controller(runsDir, ["resume", "fake-exp"]);
    expect(again.exitCode, again.stderr).toBe(0);
    const starts = readEvents(run.dir).filter((e) => e.type === "start");
    expect(starts.map((e) => e.type === "start" && e.resumed_from_step)).toEqual([null, last.type === "interrupted" ? last.step : -1]);
    expect(readStatus(run.dir).state).toBe("succeeded");
  });

  it("a second Ctrl-C kills a job that ignores SIGTERM", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "hang", { fake: { steps: 1000, step_ms: 50, behaviour: "hang" } });
    const child = controller(runsDir, ["resume", "fake-exp"]);
    await until(progressed(run, 2));
    child.kill("SIGINT");
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const pid = readStatus(run.dir).pid;
    expect(isSameProcessAlive(pid, readStatus(run.dir).pid_start_time)).toBe(true); // SIGTERM ignored
    child.kill("SIGINT");
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toContain("killing running jobs");
    expect(readStatus(run.dir)).toMatchObject({ state: "interrupted", signal: "SIGKILL" });
  });

  it("kill -9 of the controller: the orphaned shim is stopped, then the run resumes; nothing runs twice", async () => {
    const runsDir = tempRunsDir();
    const a = makeRun(runsDir, "a", { fake: { steps: 150, step_ms: 50, checkpoint_every: 5 } });
    const b = makeRun(runsDir, "b", { fake: { steps: 5, step_ms: 20 } });
    const child = controller(runsDir, ["resume", "fake-exp"]);
    await until(progressed(a, 7));
    child.kill("SIGKILL");
    await child;
    const orphan = readStatus(a.dir);
    expect(orphan.state).toBe("running");
    expect(isSameProcessAlive(orphan.pid, orphan.pid_start_time)).toBe(true); // detached: it outlived the controller
    expect(readStatus(b.dir).state).toBe("queued");

    const again = await controller(runsDir, ["resume", "fake-exp"]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toContain("stopped the shim left running");
    expect(isSameProcessAlive(orphan.pid, orphan.pid_start_time)).toBe(false);
    for (const run of [a, b]) expect(readStatus(run.dir).state).toBe("succeeded");
    const events = readEvents(a.dir);
    const starts = events.filter((e) => e.type === "start");
    expect(starts.map((e) => e.type === "start" && e.attempt)).toEqual([1, 2]);
    // Never two writers: every event of attempt 1 comes before the start of attempt 2.
    const secondStart = events.indexOf(starts[1]!);
    expect(events.slice(0, secondStart).at(-1)!.type).toBe("interrupted");
    expect(events.filter((e) => e.type === "done")).toHaveLength(1);
    expect(readEvents(b.dir).filter((e) => e.type === "start")).toHaveLength(1);
  });

  it("a run locked by a live controller is a clear error (exit 2) naming the holder", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "locked", { fake: { steps: 3, step_ms: 20 } });
    const lock = acquireRunLock(run.dir, "test holder");
    try {
      const result = await controller(runsDir, ["resume", "fake-exp"]);
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(`pid ${process.pid}`);
      expect(result.stderr).not.toMatch(/at .*\.ts:\d+/); // no stack trace
      expect(readEvents(run.dir)).toHaveLength(0);
    } finally {
      lock.release();
    }
  });

  it("peftctl stop <experiment>: the shim checkpoints and is marked interrupted (not retried); queued runs never start", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "stopme", { retries: 3, fake: { steps: 100, step_ms: 50, checkpoint_every: 1000 } });
    const waiting = makeRun(runsDir, "waiting", { fake: { steps: 3, step_ms: 20 } });
    const child = controller(runsDir, ["resume", "fake-exp"]);
    await until(progressed(run, 3));
    const stop = await controller(runsDir, ["stop", "fake-exp"]);
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect(stop.stdout).toContain("fake-exp/stopme: stopped (interrupted)");
    expect(stop.stdout).toContain("fake-exp/waiting: dequeued (interrupted)");
    const result = await child;
    expect(result.exitCode).toBe(130); // interrupted by the user (through stop); the runs wait for resume
    expect(readStatus(run.dir)).toMatchObject({ state: "interrupted", attempts: 1 });
    expect(readStatus(waiting.dir)).toMatchObject({ state: "interrupted", attempts: 0 });
    expect(readEvents(waiting.dir)).toHaveLength(0);
    expect(readEvents(run.dir).at(-1)).toMatchObject({ type: "interrupted", signal: "SIGTERM" });
  });
});
