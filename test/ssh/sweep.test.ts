/**
 * The SSH executor end to end, against two real sshd hosts on 127.0.0.2 and 127.0.0.3 (hosts.ts)
 * with private work directories, and real shim training on the tiny model:
 * a 4-run sweep uses both hosts; one host is cut off mid-run (its sshd and sessions killed, and
 * its shim with it, as a host that went down) and its job finishes on the other host from the
 * checkpoint that was synced back; every adapter comes back equal to a local run of the same job.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestCompleteCheckpoint } from "../../src/runs/checkpoints.ts";
import { listRuns, readEvents, readJob, readStatus, type RunRef } from "../../src/runs/store.ts";
import { adapterDifference, bin, controllerEnv, root, until, writeExperiment } from "./fixture.ts";
import { startTestHosts, type TestHosts } from "./hosts.ts";

let hosts: TestHosts;

beforeAll(async () => {
  hosts = await startTestHosts();
});
afterAll(() => hosts?.stop());

/** Kills the shims running under a host's workdir (the host went down with its sshd). */
function killShimsOf(workdir: string): number[] {
  const killed: number[] = [];
  const runsRoot = path.join(workdir, "runs");
  for (const experiment of existsSync(runsRoot) ? readdirSync(runsRoot) : []) {
    for (const runId of readdirSync(path.join(runsRoot, experiment))) {
      const pidFile = path.join(runsRoot, experiment, runId, "pid");
      if (!existsSync(pidFile) || existsSync(path.join(runsRoot, experiment, runId, "exit_code"))) continue;
      const pid = Number(readFileSync(pidFile, "utf8"));
      try {
        process.kill(-pid, "SIGKILL");
        killed.push(pid);
      } catch {
        // ended already
      }
    }
  }
  return killed;
}

describe("resources.executor: ssh over two loopback hosts", () => {
  it("runs a 4-run sweep on both hosts, survives losing one mid-run, and brings back adapters equal to local runs", { timeout: 40 * 60_000 }, async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), "peftctl-ssh-e2e-"));
    const runsDir = path.join(work, "runs");
    const config = writeExperiment(path.join(work, "ssh.yaml"), { name: "ssh-e2e", rValues: [2, 4, 8, 16], steps: 6, executor: "ssh", hosts, lostAfterS: 4 });
    const controller = execa(bin, ["--runs-dir", runsDir, "run", config], { reject: false, cwd: root, env: controllerEnv() });

    // The first job placed on gpu-a, once a checkpoint of it has come back here.
    let victim: RunRef | undefined;
    await until(
      () => {
        victim = listRuns(runsDir, "ssh-e2e").find((run) => {
          const status = readStatus(run.dir);
          return status.state === "running" && status.host === "gpu-a" && newestCompleteCheckpoint(run.dir) !== undefined;
        });
        return victim !== undefined || controller.exitCode !== null;
      },
      20 * 60_000,
      "a checkpoint of gpu-a's job synced back",
    );
    expect(victim, "a job ran on gpu-a and synced a checkpoint back").toBeDefined();
    const syncedStep = newestCompleteCheckpoint(victim!.dir)!.step;
    hosts.cut("gpu-a");
    expect(killShimsOf(hosts.hosts[0]!.workdir).length).toBe(1);

    const result = await controller;
    expect(result.exitCode, `${result.stdout}\n${result.stderr}`).toBe(0);
    const runs = listRuns(runsDir, "ssh-e2e");
    expect(runs).toHaveLength(4);
    for (const run of runs) expect(readStatus(run.dir).state).toBe("succeeded");

    // Both hosts ran jobs; the lost one's job was restarted on the other from its synced checkpoint.
    const victimStatus = readStatus(victim!.dir);
    expect(victimStatus.host).toBe("gpu-b");
    const starts = readEvents(victim!.dir).flatMap((e) => (e.type === "start" ? [e] : []));
    expect(starts.map((s) => s.attempt)).toEqual([1, 2]);
    expect(starts[1]!.resumed_from_step).toBeGreaterThanOrEqual(syncedStep);
    const otherHosts = runs.filter((run) => run.dir !== victim!.dir).map((run) => readStatus(run.dir).host);
    expect(otherHosts).toContain("gpu-b");

    // Files reached the hosts only by rsync: each has its own copy of the run dir, job.json naming paths there.
    const remoteJob = JSON.parse(readFileSync(path.join(hosts.hosts[1]!.workdir, "runs", "ssh-e2e", victim!.runId, "job.json"), "utf8"));
    expect(remoteJob.run_dir).toBe(path.join(hosts.hosts[1]!.workdir, "runs", "ssh-e2e", victim!.runId));
    expect(remoteJob.data.path.startsWith(path.join(hosts.hosts[1]!.workdir, "data"))).toBe(true);
    expect(existsSync(path.join(hosts.hosts[0]!.workdir, "runs", "ssh-e2e", victim!.runId, "job.json"))).toBe(true);
    // The data file went over once per host, keyed by its content hash.
    for (const host of hosts.hosts) expect(readdirSync(path.join(host.workdir, "data"))).toHaveLength(1);
    // The run store's job.json is untouched: its own run dir and data file.
    expect(readJob(victim!.dir).run_dir).toBe(victim!.dir);

    // The same jobs run locally: equal adapters.
    const localConfig = writeExperiment(path.join(work, "local.yaml"), { name: "ssh-e2e", rValues: [2, 4, 8, 16], steps: 6, executor: "local" });
    const localRunsDir = path.join(work, "local-runs");
    const local = await execa(bin, ["--runs-dir", localRunsDir, "run", localConfig, "--cpu-slots", "2"], { reject: false, cwd: root });
    expect(local.exitCode, local.stderr).toBe(0);
    const localRuns = listRuns(localRunsDir, "ssh-e2e");
    expect(localRuns).toHaveLength(4);
    for (const run of runs) {
      const job = readJob(run.dir);
      const twin = localRuns.find((candidate) => readJob(candidate.dir).fingerprints.job === job.fingerprints.job);
      expect(twin, `a local run with the fingerprint of ${run.runId}`).toBeDefined();
      expect(await adapterDifference(path.join(run.dir, "adapter"), path.join(twin!.dir, "adapter"))).toBeLessThanOrEqual(1e-6);
    }
  });
});
