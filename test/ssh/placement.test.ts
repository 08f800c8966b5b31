/**
 * The scheduler's side of a lost SSH host (pure bookkeeping, no ssh): an attempt that ends with
 * placementLost is retried on another host's devices, the lost host gets no new job, and a run no
 * host can take any more fails instead of waiting forever. The real executor's path is in sweep.test.ts.
 */
import { describe, expect, it } from "vitest";
import { DevicePool } from "../../src/launch/devices.ts";
import type { Executor, JobHandle, JobResult, StartRequest } from "../../src/launch/executor.ts";
import { Scheduler } from "../../src/launch/scheduler.ts";
import { readStatus } from "../../src/runs/store.ts";
import { makeRun, tempRunsDir } from "../launch/helpers.ts";

/** An executor whose hosts in `lostHosts` stop answering during every attempt placed there. */
function executorLosing(lostHosts: Set<string>, starts: StartRequest[]): Executor {
  return {
    kind: "test",
    prepare: async () => {},
    collect: async () => {},
    signalRecorded: () => false,
    start: async (request) => {
      starts.push(request);
      const lost = lostHosts.has(request.devices[0]!.split(":")[0]!);
      const result: JobResult = lost
        ? { failed: true, exitCode: null, signal: null, durationMs: 1, lastEvent: undefined, error: "host has not answered", placementLost: true }
        : { failed: false, exitCode: 0, signal: null, durationMs: 1, lastEvent: undefined, error: undefined };
      const handle: JobHandle = { pid: null, pidStartTime: null, onEvent: () => {}, signal: () => {}, wait: async () => result };
      return handle;
    },
  };
}

describe("placing runs again after a lost host", () => {
  it("retries the lost host's run on the other host and sends nothing more to the lost one", async () => {
    const runsDir = tempRunsDir();
    const runs = ["a", "b", "c"].map((id) => makeRun(runsDir, id, { retries: 2 }));
    const starts: StartRequest[] = [];
    const pool = DevicePool.across([
      { host: "gpu-a", gpuIds: [], cpuSlots: 1 },
      { host: "gpu-b", gpuIds: [], cpuSlots: 1 },
    ]);
    const scheduler = new Scheduler({ executor: executorLosing(new Set(["gpu-a"]), starts), pool });
    const result = await scheduler.run(runs.map((run) => ({ run })));
    expect(result.succeeded).toHaveLength(3);
    const onA = starts.filter((s) => s.devices[0] === "gpu-a:cpu");
    expect(onA).toHaveLength(1); // the first placement only
    const moved = onA[0]!.run;
    expect(starts.filter((s) => s.run.dir === moved.dir).map((s) => s.devices[0])).toEqual(["gpu-a:cpu", "gpu-b:cpu"]);
    expect(starts.filter((s) => s.run.dir === moved.dir).map((s) => s.attempt)).toEqual([1, 2]);
    expect(readStatus(moved.dir)).toMatchObject({ state: "succeeded", host: "gpu-b", attempts: 2 });
  });

  it("fails the runs no host can take once every host is lost", async () => {
    const runsDir = tempRunsDir();
    const runs = ["a", "b"].map((id) => makeRun(runsDir, id, { retries: 2 }));
    const pool = DevicePool.across([{ host: "gpu-a", gpuIds: [], cpuSlots: 1 }]);
    const result = await new Scheduler({ executor: executorLosing(new Set(["gpu-a"]), []), pool }).run(runs.map((run) => ({ run })));
    expect(result.failed).toHaveLength(2);
    for (const run of runs) expect(readStatus(run.dir).error).toMatchObject({ kind: "resources", message: "every host of resources.ssh stopped answering" });
  });
});
