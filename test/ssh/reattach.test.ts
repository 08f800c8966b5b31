/**
 * A job on an SSH host outlives its controller: kill -9 of the controller leaves the shim running
 * there (setsid), a new controller reattaches and follows it without starting it again or repeating
 * an event; `peftctl stop` signals it over ssh (it checkpoints, exit 75, the run is interrupted);
 * the next `peftctl run` resumes it from the checkpoint it synced back.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newestCompleteCheckpoint } from "../../src/runs/checkpoints.ts";
import { listRuns, readEvents, readStatus, type RunRef } from "../../src/runs/store.ts";
import { bin, root, until, writeExperiment } from "./fixture.ts";
import { startTestHosts, type TestHosts } from "./hosts.ts";

let hosts: TestHosts;

beforeAll(async () => {
  hosts = await startTestHosts();
});
afterAll(() => hosts?.stop());

function progressSteps(run: RunRef): number[] {
  return readEvents(run.dir).flatMap((e) => (e.type === "progress" ? [e.step] : []));
}

/** Whether the recorded shim runs on its host, asked over ssh the way a person would. */
async function aliveThere(host: string, pid: number): Promise<boolean> {
  const result = await execa("ssh", ["-F", hosts.configFile, "-o", "BatchMode=yes", host, `kill -0 ${pid}`], { reject: false });
  return result.exitCode === 0;
}

describe("SSH jobs and their controller", () => {
  it("reattaches after kill -9 of the controller, stops over ssh, resumes from the synced checkpoint", { timeout: 30 * 60_000 }, async () => {
    const work = mkdtempSync(path.join(os.tmpdir(), "peftctl-ssh-reattach-"));
    const runsDir = path.join(work, "runs");
    const config = writeExperiment(path.join(work, "ssh.yaml"), { name: "ssh-reattach", rValues: [4], steps: 16, executor: "ssh", hosts });
    const args = ["--runs-dir", runsDir, "run", config];

    const first = execa(bin, args, { reject: false, cwd: root });
    let run: RunRef | undefined;
    await until(
      () => {
        run = listRuns(runsDir, "ssh-reattach")[0];
        return (run !== undefined && progressSteps(run).length > 0) || first.exitCode !== null;
      },
      15 * 60_000,
      "the first progress event streamed back",
    );
    first.kill("SIGKILL");
    await first;
    const recorded = readStatus(run!.dir);
    expect(recorded.state).toBe("running");
    expect(recorded.ssh, "status.json records the job there").not.toBeNull();
    expect(await aliveThere(recorded.ssh!.host, recorded.ssh!.pid)).toBe(true);
    const seenBefore = progressSteps(run!).length;

    // A new controller follows the same shim: more events arrive, no new start.
    const second = execa(bin, args, { reject: false, cwd: root });
    await until(() => progressSteps(run!).length > seenBefore + 1 && newestCompleteCheckpoint(run!.dir) !== undefined, 15 * 60_000, "events after the reattach and a synced checkpoint");
    expect(readEvents(run!.dir).filter((e) => e.type === "start")).toHaveLength(1);
    expect(readStatus(run!.dir).ssh?.pid).toBe(recorded.ssh!.pid);

    const before = readStatus(run!.dir);
    const stop = await execa(bin, ["--runs-dir", runsDir, "stop", `ssh-reattach/${run!.runId}`], { reject: false, cwd: root });
    expect(stop.exitCode, stop.stderr).toBe(0);
    expect(stop.stdout, JSON.stringify(before)).toMatch(/: stopped \(interrupted\)/);
    const stopped = await second;
    expect(stopped.exitCode, stopped.stderr).toBe(130);
    expect(readStatus(run!.dir).state).toBe("interrupted");
    expect(await aliveThere(recorded.ssh!.host, recorded.ssh!.pid)).toBe(false);
    const interrupted = readEvents(run!.dir).filter((e) => e.type === "interrupted");
    expect(interrupted).toHaveLength(1);

    const third = await execa(bin, args, { reject: false, cwd: root });
    expect(third.exitCode, third.stderr).toBe(0);
    const status = readStatus(run!.dir);
    expect(status.state).toBe("succeeded");
    const events = readEvents(run!.dir);
    const starts = events.flatMap((e) => (e.type === "start" ? [e] : []));
    expect(starts.map((s) => s.attempt)).toEqual([1, 2]);
    expect(starts[1]!.resumed_from_step).toBeGreaterThan(0);
    // Each attempt's events once: progress steps rise within an attempt, none is repeated.
    const secondStart = events.indexOf(starts[1]!);
    for (const part of [events.slice(0, secondStart), events.slice(secondStart)]) {
      const steps = part.flatMap((e) => (e.type === "progress" ? [e.step] : []));
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect(new Set(steps).size).toBe(steps.length);
    }
    expect(events.filter((e) => e.type === "done")).toHaveLength(1);
    expect(status.adapter_path).toBe(path.join(run!.dir, "adapter"));

    // No key reaches the run's files or logs: the ssh config names it, the job does not.
    const privateKey = readFileSync(path.join(hosts.dir, "client_ed25519"), "utf8").split("\n")[1]!;
    for (const file of ["job.json", "status.json", "events.jsonl", "stdout.log", "stderr.log", "env.json"]) {
      const text = readFileSync(path.join(run!.dir, file), "utf8");
      expect(text).not.toContain("client_ed25519");
      expect(text).not.toContain(privateKey);
    }
  });
});
