/**
 * End to end on a real one-node Slurm cluster with the real shim: the smoke sweep (shortened) through
 * `peftctl run` with resources.executor: slurm. One job is requeued (`scontrol requeue`) after its
 * first checkpoint, then the controller is killed with SIGKILL mid-sweep and `peftctl run` is started
 * again: it reattaches to the job ids in status.json. Both adapters equal a local run's (max
 * difference <= 1e-6), the requeued run has an `interrupted` event and trained no step twice, and
 * each run was submitted once (the job completion log lists one job id per run).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listRuns, readEvents, readStatus, type RunRef } from "../../src/runs/store.ts";
import { shimEnv, shimPython } from "../../src/shim.ts";
import { startCluster, type Cluster } from "./cluster.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");
const shortened = ["--set", "train.max_steps=8", "--set", "checkpoint.every_steps=4", "--set", "eval.every_steps=8", "--set", "eval.generate.samples=1"];

const MAX_DIFF = `
import sys
from safetensors.torch import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a.keys() == b.keys(), (sorted(a), sorted(b))
print(max(float((a[k] - b[k]).abs().max()) for k in a))
`;

let cluster: Cluster;
beforeAll(async () => {
  cluster = await startCluster();
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
});

async function until(what: string, predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${cluster.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const bySweepValue = (runs: RunRef[]) => new Map(runs.map((run) => [run.runId.split("-").slice(0, 2).join("-"), run]));

describe("peftctl run on Slurm with the real shim", () => {
  it("requeue after a checkpoint and kill -9 of the controller: the local run's adapters, each run submitted once", { timeout: 40 * 60_000 }, async () => {
    const env = { ...process.env, SLURM_CONF: cluster.env.SLURM_CONF };
    const localRuns = mkdtempSync(path.join(cluster.sharedDir, "local-"));
    const local = await execa(bin, ["--runs-dir", localRuns, "run", path.join(root, "configs/smoke.yaml"), ...shortened], { reject: false, cwd: root, env });
    expect(local.exitCode, local.stderr).toBe(0);

    const slurmRuns = mkdtempSync(path.join(cluster.sharedDir, "slurm-"));
    const config = path.join(slurmRuns, "smoke-slurm.yaml");
    writeFileSync(
      config,
      [
        `extends: ${path.join(root, "configs/smoke.yaml")}`,
        "resources:",
        "  executor: slurm",
        `  slurm: { partition: ${cluster.partition}, time: "30:00", signal_grace_s: 60 }`,
        "",
      ].join("\n"),
    );
    const args = ["--runs-dir", slurmRuns, "run", config, ...shortened];
    const first = execa(bin, args, { reject: false, cwd: root, env });
    let runs: RunRef[] = [];
    await until("a checkpoint", () => (runs = listRuns(slurmRuns, "smoke")).some((run) => readEvents(run.dir).some((e) => e.type === "checkpoint")), 20 * 60_000);
    const requeued = runs.find((run) => readEvents(run.dir).some((e) => e.type === "checkpoint"))!;
    const status = await execa(bin, ["--runs-dir", slurmRuns, "status", "smoke"], { reject: false, cwd: root, env });
    expect(status.stdout).toContain(`slurm ${readStatus(requeued.dir).slurm!.job_id} RUNNING`);
    execFileSync("scontrol", ["requeue", readStatus(requeued.dir).slurm!.job_id], { env });
    await until("the requeued job's interrupted event", () => readEvents(requeued.dir).some((e) => e.type === "interrupted"), 120_000);
    first.kill("SIGKILL");
    await first;
    const jobIds = new Map(runs.map((run) => [run.runId, readStatus(run.dir).slurm!.job_id]));
    expect(readStatus(requeued.dir).state).toBe("running");

    const second = await execa(bin, args, { reject: false, cwd: root, env });
    expect(second.exitCode, `${second.stdout}\n${second.stderr}`).toBe(0);

    const localBy = bySweepValue(listRuns(localRuns, "smoke"));
    const completions = readFileSync(path.join(cluster.dir, "log", "jobcomp.txt"), "utf8");
    for (const [key, run] of bySweepValue(runs)) {
      const finalStatus = readStatus(run.dir);
      expect(finalStatus.state).toBe("succeeded");
      expect(finalStatus.slurm!.job_id).toBe(jobIds.get(run.runId)); // reattached, not submitted again
      const submitted = new Set([...completions.matchAll(new RegExp(`JobId=(\\d+) .*Name=peftctl:smoke/${run.runId} `, "g"))].map((m) => m[1]));
      expect([...submitted]).toEqual([jobIds.get(run.runId)]);
      const events = readEvents(run.dir);
      const steps = events.flatMap((e) => (e.type === "progress" ? [e.step] : []));
      expect(new Set(steps).size, `steps ${steps}`).toBe(steps.length);
      expect(events.filter((e) => e.type === "done")).toHaveLength(1);
      if (run === requeued) {
        const interrupted = events.find((e) => e.type === "interrupted")!;
        expect(interrupted.checkpoint).not.toBeNull();
        const starts = events.flatMap((e) => (e.type === "start" ? [e] : []));
        expect(starts.map((s) => s.attempt)).toEqual([1, 2]);
        expect(starts[1]!.resumed_from_step).toBe(interrupted.step);
      }
      const reference = localBy.get(key)!;
      const diff = await execa(shimPython(), ["-c", MAX_DIFF, path.join(run.dir, "adapter", "adapter_model.safetensors"), path.join(reference.dir, "adapter", "adapter_model.safetensors")], {
        env: shimEnv(),
        cwd: root,
      });
      expect(Number(diff.stdout.trim()), `${key}: max difference from the local run`).toBeLessThanOrEqual(1e-6);
    }
  });
});
