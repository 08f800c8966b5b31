/**
 * End to end, a 2-GPU job through the controller and torchrun with the real shim. This host has no
 * GPU, so the scheduler is shown two simulated ones (PEFTCTL_FAKE_GPUS): it places the job on both and
 * starts torchrun with 2 processes, which find no CUDA and train on the CPU over gloo. `peftctl stop`
 * mid-run must leave an interrupted run (torchrun exits 1; the last event says `interrupted`), and
 * `peftctl resume` must finish it from its checkpoint.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { listRuns, readEvents, readStatus } from "../../src/runs/store.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");

async function until(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("a 2-GPU job under torchrun", () => {
  it("trains data-parallel, stops as one and resumes to the end", { timeout: 10 * 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-ddp-"));
    const runsDir = path.join(dir, "runs");
    const config = path.join(dir, "ddp.yaml");
    writeFileSync(
      config,
      [
        `extends: ${path.join(root, "configs/smoke.yaml")}`,
        "name: ddp",
        "train: { max_steps: 60, batch_size: 8, micro_batch_size: 2, log_every_steps: 1 }",
        "checkpoint: { every_steps: 4 }",
        "eval: { every_steps: 30, generate: { samples: 1 } }",
        "resources: { gpus: 2 }",
        "sweep: { parameters: { method.r: [4] } }",
        "",
      ].join("\n"),
    );
    const env = { PEFTCTL_FAKE_GPUS: "0,1" };

    const first = execa(bin, ["--runs-dir", runsDir, "run", config], { reject: false, env });
    const progressed = () => listRuns(runsDir, "ddp").some((run) => readEvents(run.dir).some((e) => e.type === "progress" && e.step >= 3));
    await until(progressed, 5 * 60_000);
    // ~0.3 s a step here: 60 steps leave `peftctl stop` (a node start) ample time to land mid-run
    const stop = await execa(bin, ["--runs-dir", runsDir, "stop", "ddp"], { reject: false });
    expect(stop.exitCode, stop.stderr).toBe(0);
    const stopped = await first;
    expect(stopped.exitCode, stopped.stderr).toBe(130);

    const [run] = listRuns(runsDir, "ddp");
    expect(readStatus(run!.dir)).toMatchObject({ state: "interrupted", devices: ["0", "1"] });
    const interrupted = readEvents(run!.dir).at(-1)!;
    expect(interrupted.type).toBe("interrupted");

    const resumed = await execa(bin, ["--runs-dir", runsDir, "resume", "ddp"], { reject: false, env });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(readStatus(run!.dir).state).toBe("succeeded");
    const events = readEvents(run!.dir);
    const starts = events.flatMap((e) => (e.type === "start" ? [e] : []));
    expect(starts.map((s) => s.device)).toEqual(["cpu x 2 ranks", "cpu x 2 ranks"]); // rank 0 alone reports
    expect(starts[1]!.resumed_from_step).toBe(interrupted.type === "interrupted" ? interrupted.step : -1);
    expect(events.filter((e) => e.type === "done")).toHaveLength(1);
    const steps = events.flatMap((e) => (e.type === "progress" ? [e.step] : []));
    expect(new Set(steps).size).toBe(60); // every step reported once: no rank but 0 writes events
  });
});
