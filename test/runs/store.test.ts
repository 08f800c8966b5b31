import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { PeftctlError } from "../../src/errors.ts";
import { acquireRunLock, lockHolder } from "../../src/runs/lock.ts";
import { isSameProcessAlive, processStartTime } from "../../src/runs/proc.ts";
import { applyGc, planGc } from "../../src/runs/retention.ts";
import { findRuns, listExperiments, readEvents, readStatus, requireOneRun, requireRuns, runFile, updateStatus } from "../../src/runs/store.ts";
import { makeRun, tempRunsDir } from "../launch/helpers.ts";

describe("run store", () => {
  it("finds runs by experiment, run id, and experiment/run id", () => {
    const runsDir = tempRunsDir();
    makeRun(runsDir, "r1", { experiment: "exp-a" });
    makeRun(runsDir, "r2", { experiment: "exp-a" });
    makeRun(runsDir, "r3", { experiment: "exp-b" });
    mkdirSync(path.join(runsDir, "empty-dir"));
    expect(listExperiments(runsDir)).toEqual(["exp-a", "exp-b"]);
    expect(findRuns(runsDir, "exp-a").map((r) => r.runId)).toEqual(["r1", "r2"]);
    expect(findRuns(runsDir, "r3").map((r) => r.experiment)).toEqual(["exp-b"]);
    expect(findRuns(runsDir, "exp-a/r2").map((r) => r.runId)).toEqual(["r2"]);
    expect(findRuns(runsDir, "nope")).toEqual([]);
    expect(() => requireRuns(runsDir, "nope")).toThrow(/no run or experiment named 'nope'/);
    expect(() => requireOneRun(runsDir, "exp-a")).toThrow(/names 2 runs/);
  });

  it("updates status.json atomically (no temp files left) and keeps fields it was not asked to change", () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "r1");
    updateStatus(run.dir, () => ({ state: "running", pid: 123 }));
    updateStatus(run.dir, (current) => ({ attempts: current.attempts + 1 }));
    expect(readStatus(run.dir)).toMatchObject({ state: "running", pid: 123, attempts: 1 });
    expect(readdirSync(run.dir).filter((name) => name.endsWith(".tmp"))).toEqual([]);
  });

  it("loses no update when two processes change one status.json at once (the controller and `peftctl stop`)", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "r1");
    const store = path.resolve("src/runs/store.ts");
    // Each process read-modify-writes its own counter: an update made between another's read and write would be lost.
    const bump = (field: "attempts" | "step") =>
      execa(process.execPath, ["--import", "tsx", "--input-type=module", "-e",
        `const { updateStatus } = await import(${JSON.stringify(store)});
         for (let i = 0; i < 300; i++) updateStatus(${JSON.stringify(run.dir)}, (s) => ({ ${field}: (s.${field} ?? 0) + 1 }));`]);
    await Promise.all([bump("attempts"), bump("step"), bump("attempts")]);
    expect(readStatus(run.dir)).toMatchObject({ attempts: 600, step: 300 });
    expect(existsSync(runFile(run.dir, "statusLock"))).toBe(false);
  }, 120_000);

  it("skips a torn last line of events.jsonl", () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "r1");
    const line = JSON.stringify({ v: 1, t: new Date().toISOString(), run_id: "r1", type: "eval", step: 3, loss: 1, perplexity: 2.7 });
    writeFileSync(runFile(run.dir, "events"), `${line}\nnot json\n{"v":1,"t":"x","ty`);
    expect(readEvents(run.dir).map((e) => e.type)).toEqual(["eval"]);
  });
});

describe("process identity and locks", () => {
  it("tells a live process from a dead one and from a reused pid", async () => {
    const start = processStartTime(process.pid);
    expect(start).toBeGreaterThan(0);
    expect(isSameProcessAlive(process.pid, start)).toBe(true);
    expect(isSameProcessAlive(process.pid, start! + 1)).toBe(false);
    const child = execa("true");
    await child;
    expect(isSameProcessAlive(child.pid!, null)).toBe(false);
  });

  it("refuses a lock held by a live process, naming it, and takes over a dead holder's lock", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "r1");
    const holder = execa("sleep", ["30"]);
    writeFileSync(runFile(run.dir, "lock"), JSON.stringify({ pid: holder.pid, start_time: processStartTime(holder.pid!), host: os.hostname(), acquired_at: "now", command: "peftctl run" }));
    let error: unknown;
    try {
      acquireRunLock(run.dir, "second");
    } catch (e) {
      error = e;
    }
    holder.kill();
    await holder.catch(() => undefined);
    expect(error).toBeInstanceOf(PeftctlError);
    expect((error as PeftctlError).exitCode).toBe(2);
    expect((error as PeftctlError).message).toContain(`pid ${holder.pid} on ${os.hostname()}`);
    const mine = acquireRunLock(run.dir, "first");
    mine.release();
    expect(existsSync(runFile(run.dir, "lock"))).toBe(false);

    // A lock left by a process that has exited (kill -9 of a controller).
    const dead = execa("true");
    await dead;
    writeFileSync(runFile(run.dir, "lock"), JSON.stringify({ pid: dead.pid, start_time: 1, host: os.hostname(), acquired_at: "then" }));
    const taken = acquireRunLock(run.dir, "new");
    expect(lockHolder(run.dir)?.pid).toBe(process.pid);
    taken.release();
  });
});

describe("retention (gc)", () => {
  it("removes checkpoints beyond keep_last, torn checkpoints and temp leftovers of finished runs only", () => {
    const runsDir = tempRunsDir();
    const done = makeRun(runsDir, "done");
    const running = makeRun(runsDir, "running");
    for (const run of [done, running]) {
      for (const step of [5, 10, 15, 20]) {
        const dir = path.join(run.dir, "checkpoints", `step-${String(step).padStart(6, "0")}`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, "weights.bin"), Buffer.alloc(1000));
        if (step !== 20) writeFileSync(path.join(dir, "MANIFEST.json"), "{}");
      }
      mkdirSync(path.join(run.dir, "checkpoints", ".tmp-step-000025"));
    }
    updateStatus(done.dir, () => ({ state: "succeeded" }));
    updateStatus(running.dir, () => ({ state: "running" }));
    const items = planGc([done, running]);
    expect(items.every((i) => i.run.runId === "done")).toBe(true);
    // keep_last is 2 (helpers): steps 10 and 15 stay; 5 goes, 20 (no manifest) goes, the .tmp dir goes.
    expect(items.map((i) => path.basename(i.path)).sort()).toEqual([".tmp-step-000025", "step-000005", "step-000020"]);
    expect(items.find((i) => i.path.endsWith("step-000005"))!.bytes).toBe(1002);
    applyGc(items);
    expect(readdirSync(path.join(done.dir, "checkpoints")).sort()).toEqual(["step-000010", "step-000015"]);
    expect(readdirSync(path.join(running.dir, "checkpoints"))).toHaveLength(5);
  });
});
