/** stop and orphan reclaiming signal the jobs that status.json records through the executor, never on their own. */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import type { Executor } from "../../src/launch/executor.ts";
import { LocalExecutor } from "../../src/launch/local.ts";
import { reclaimOrphan } from "../../src/launch/orphans.ts";
import { stopRuns } from "../../src/launch/stop.ts";
import { isSameProcessAlive, processStartTime } from "../../src/runs/proc.ts";
import { readStatus, updateStatus, type RunRef, type RunStatus } from "../../src/runs/store.ts";
import { makeRun, tempRunsDir } from "./helpers.ts";

/** A process in its own group recorded as the run's shim, as a controller that died would leave it. */
function recordLongProcess(run: RunRef): { pid: number; startTime: number } {
  const child = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
  const pid = child.pid!;
  const startTime = processStartTime(pid)!;
  updateStatus(run.dir, () => ({ state: "running", pid, pid_start_time: startTime }));
  return { pid, startTime };
}

/** The local executor, recording every signalRecorded call. */
function recordingExecutor(): { executor: Executor; signals: Array<[string, NodeJS.Signals, boolean]> } {
  const local = new LocalExecutor();
  const signals: Array<[string, NodeJS.Signals, boolean]> = [];
  const executor: Executor = {
    kind: "recording",
    prepare: (run) => local.prepare(run),
    start: (request) => local.start(request),
    collect: (run) => local.collect(run),
    signalRecorded(run: RunRef, status: RunStatus, signal: NodeJS.Signals) {
      const delivered = local.signalRecorded(run, status, signal);
      signals.push([run.runId, signal, delivered]);
      return delivered;
    },
  };
  return { executor, signals };
}

describe("signalling recorded jobs", () => {
  it("peftctl stop signals through the executor and settles a run without a controller", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "orphan");
    const { pid, startTime } = recordLongProcess(run);
    const { executor, signals } = recordingExecutor();
    const [result] = await stopRuns([run], { waitMs: 10_000, executor });
    expect(result).toMatchObject({ outcome: "stopped", state: "interrupted" });
    // Then stop settles the run as an orphan's; by then nothing runs to be signalled.
    expect(signals).toEqual([
      ["orphan", "SIGTERM", true],
      ["orphan", "SIGTERM", false],
    ]);
    expect(isSameProcessAlive(pid, startTime)).toBe(false);
    expect(readStatus(run.dir)).toMatchObject({ state: "interrupted", pid: null });
  });

  it("reclaiming an orphan signals through the executor; the local one never signals a pid that was reused", async () => {
    const runsDir = tempRunsDir();
    const run = makeRun(runsDir, "reused");
    const { pid, startTime } = recordLongProcess(run);
    try {
      updateStatus(run.dir, () => ({ pid_start_time: startTime + 1 })); // the recorded shim is gone; another process has its pid
      const { executor, signals } = recordingExecutor();
      const { outcome, status } = await reclaimOrphan(run, { graceMs: 1_000, executor });
      expect(outcome).toBe("finished");
      expect(status.state).toBe("interrupted");
      expect(signals).toEqual([["reused", "SIGTERM", false]]);
      expect(isSameProcessAlive(pid, startTime)).toBe(true);
    } finally {
      process.kill(-pid, "SIGKILL");
    }
  });
});
