/** status, ls, logs, gc and stop as commands (bin/peftctl.js), over run dirs made by the FAKE trainer's helpers. */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PassThrough } from "node:stream";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { describeEvent } from "../../src/report/event-text.ts";
import { ProgressView } from "../../src/report/progress.ts";
import { renderStatusTable, statusRows } from "../../src/report/status-table.ts";
import type { ShimEvent } from "../../src/runs/events.ts";
import { runFile, updateStatus, readStatus } from "../../src/runs/store.ts";
import { launchSweep } from "../../src/launch/sweep.ts";
import { fakeEnv, makeRun, tempRunsDir } from "../launch/helpers.ts";

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/peftctl.js");
const peftctl = (runsDir: string, ...args: string[]) => execa(bin, ["--runs-dir", runsDir, ...args], { reject: false });

function event(runId: string, fields: object): string {
  return JSON.stringify({ v: 1, t: "2026-01-01T10:00:00.000Z", run_id: runId, ...fields });
}

describe("status, ls, logs, gc, stop", () => {
  it("shows runs, counts, events and what gc would remove", async () => {
    const runsDir = tempRunsDir();
    const ok = makeRun(runsDir, "run-ok", { experiment: "exp" });
    const bad = makeRun(runsDir, "run-bad", { experiment: "exp" });
    makeRun(runsDir, "run-q", { experiment: "other" });
    updateStatus(ok.dir, () => ({ state: "succeeded", step: 10, total_steps: 10, best_eval_loss: 1.23456, devices: ["0"], started_at: "2026-01-01T10:00:00Z", ended_at: "2026-01-01T10:01:05Z" }));
    updateStatus(bad.dir, () => ({ state: "failed", error: { kind: "data", message: "data.path: no such file", retryable: false } }));
    writeFileSync(runFile(ok.dir, "events"), `${event("run-ok", { type: "eval", step: 10, loss: 1.23456, perplexity: 3.43 })}\n`);
    for (const step of [2, 5, 10, 15]) {
      const dir = path.join(ok.dir, "checkpoints", `step-${String(step).padStart(6, "0")}`);
      mkdirSync(dir, { recursive: true });
      // step 2 is an adapter the shim kept for checkpoint.keep_adapters after dropping its training state
      writeFileSync(path.join(dir, "MANIFEST.json"), step === 2 ? `{"full_state": false}` : "{}");
    }

    const status = await peftctl(runsDir, "status", "exp");
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/exp\/run-ok\s+succeeded\s+10\/10\s+1\.2346\s+1:05\s+0/);
    expect(status.stdout).toContain("data: data.path: no such file");
    const json = JSON.parse((await peftctl(runsDir, "--json", "status")).stdout) as Array<{ run_id: string; state: string }>;
    expect(json.map((r) => [r.run_id, r.state])).toEqual([
      ["run-bad", "failed"],
      ["run-ok", "succeeded"],
      ["run-q", "queued"],
    ]);

    const ls = await peftctl(runsDir, "ls");
    expect(ls.stdout).toMatch(/exp\s+2\s+0\s+0\s+1\s+1\s+0/);
    expect(ls.stdout).toMatch(/other\s+1\s+1\s+0\s+0\s+0\s+0/);

    const logs = await peftctl(runsDir, "logs", "run-ok");
    expect(logs.stdout.trim()).toBe("10:00:00 eval at step 10: loss 1.2346, perplexity 3.43");

    const dry = await peftctl(runsDir, "gc", "--dry-run");
    expect(dry.stdout).toContain("exp/run-ok/checkpoints/step-000005");
    expect(dry.stdout).toContain("would remove 1 item(s)");
    expect(dry.stdout).not.toContain("step-000002");
    expect((await peftctl(runsDir, "gc")).stdout).toContain("removed 1 item(s)");
    expect((await peftctl(runsDir, "gc", "--dry-run")).stdout).toContain("nothing to remove");

    const missing = await peftctl(runsDir, "status", "nope");
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("no run or experiment named 'nope'");
    const stop = await peftctl(runsDir, "stop", "exp");
    expect(stop.stdout).toContain("exp/run-ok: not running (succeeded)");
    expect(readStatus(ok.dir).state).toBe("succeeded");
  });
});

describe("status table", () => {
  it("notes the micro-batch in use after out-of-memory back-offs (job.json keeps the planned one)", () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "backed-off", { experiment: "exp", micro: 8 });
    const at = "2026-01-01T10:00:00.000Z";
    updateStatus(run.dir, () => ({ state: "succeeded", attempts: 3, oom_backoffs: [{ attempt: 1, micro_batch_size: 4, at }, { attempt: 2, micro_batch_size: 2, at }] }));
    expect(renderStatusTable(statusRows([run])).split("\n")[1]).toMatch(/^exp\/backed-off\s+succeeded\s.*\s{2}oom: micro-batch 2, 3 attempts$/);
  });
});

describe("logs -f", () => {
  it("follows a running run's events until it ends", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "followed", { fake: { steps: 30, step_ms: 200 } });
    const sweep = launchSweep({ runs: [run], env: fakeEnv() });
    const follow = peftctl(runsDir, "logs", "-f", "followed");
    let stateAtFirstOutput: string | undefined;
    follow.stdout!.once("data", () => (stateAtFirstOutput = readStatus(run.dir).state));
    await sweep;
    const result = await follow;
    expect(stateAtFirstOutput).toBe("running"); // it printed while the run ran, then kept following
    expect(result.exitCode, result.stderr).toBe(0);
    const lines = result.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/start attempt 1 on cpu/);
    expect(lines.filter((l) => / step \d+\/30 /.test(l))).toHaveLength(30);
    expect(lines.at(-1)).toMatch(/done at step 30: eval_loss=1.5; adapter .*followed\/adapter$/);
  });
});

describe("progress view outside a terminal", () => {
  it("prints state changes, throttled progress lines and the sweep summary", () => {
    const out = new PassThrough();
    let text = "";
    out.on("data", (chunk) => (text += String(chunk)));
    const run = { experiment: "e", runId: "r1", dir: "/x/r1" };
    const view = new ProgressView([run, { experiment: "e", runId: "r2", dir: "/x/r2" }], { mode: "plain", out, plainEveryMs: 60_000 });
    view.onStatus(run, { state: "running", devices: ["cpu"], attempts: 1, error: null } as never);
    const progress = (step: number) => ({ v: 1, t: "x", run_id: "r1", type: "progress", step, total_steps: 3, epoch: 0, loss: 2 / step, lr: 1e-4, tokens_per_s: 1500, eta_s: 65 }) as const;
    view.onEvent(run, progress(1));
    view.onEvent(run, progress(2)); // throttled
    view.onEvent(run, progress(3)); // the last step always prints
    view.onStatus(run, { state: "succeeded", devices: ["cpu"], attempts: 1, error: null } as never);
    view.stop();
    expect(text.split("\n").filter(Boolean)).toEqual([
      "r1: running on cpu (attempt 1)",
      "sweep: 0 done, 1 running, 1 queued, 0 failed of 2",
      "r1  step 1/3  loss 2.0000  1.5k tok/s  ETA 1:05",
      "r1  step 3/3  loss 0.6667  1.5k tok/s  ETA 1:05",
      "r1: succeeded",
      "sweep: 1 done, 0 running, 1 queued, 0 failed of 2",
    ]);
  });

  it("says evals, errors and resumed starts in the words of peftctl logs", () => {
    const out = new PassThrough();
    let text = "";
    out.on("data", (chunk) => (text += String(chunk)));
    const run = { experiment: "e", runId: "r1", dir: "/x/r1" };
    const view = new ProgressView([run], { mode: "plain", out });
    const base = { v: 1, t: "2026-01-01T10:00:00.000Z", run_id: "r1" } as const;
    const start = { ...base, type: "start", pid: 7, versions: {}, device: "cpu", params: { trainable: 1, total: 2 } } as const;
    const events: ShimEvent[] = [
      { ...start, attempt: 1, resumed_from_step: null }, // said by the state change to running
      { ...base, type: "eval", step: 3, loss: 1.23456, perplexity: 3.43 },
      { ...base, type: "error", kind: "oom", message: "CUDA out of memory", retryable: true },
      { ...start, attempt: 2, resumed_from_step: 5 },
    ];
    for (const event of events) view.onEvent(run, event);
    view.stop();
    const lines = text.split("\n").filter(Boolean);
    expect(lines).toEqual([
      "r1: eval at step 3: loss 1.2346, perplexity 3.43",
      "r1: error (oom, retryable): CUDA out of memory",
      "r1: start attempt 2 on cpu, resumed from step 5 (pid 7)",
    ]);
    expect(lines.map((line) => line.replace("r1: ", "10:00:00 "))).toEqual(events.slice(1).map(describeEvent));
  });
});
