/**
 * Controller overhead of the SSH executor against a local start (figures, not a test).
 *
 * Two SSH hosts on loopback (test/ssh/hosts.ts: sshd on 127.0.0.2 and 127.0.0.3, installed by
 * scripts/install-test-servers.sh; run as root), jobs running the FAKE trainer
 * (test/fixtures/fake-trainer.py, 2 steps of 50 ms) so that what is measured is the controller and
 * the transport, not training. Per job: submit (Executor.start) to its first event; the first job on
 * a host pays for the shim's code and the data going over (cold), later ones only for the run dir
 * and the start (warm); then 8 jobs at once over both hosts. The baseline is the local executor,
 * measured in the same run. bench/remote.ts measures Slurm the same way.
 *
 *   npx tsx bench/remote-ssh.ts
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import type { Executor } from "../src/launch/executor.ts";
import { LocalExecutor } from "../src/launch/local.ts";
import { SshExecutor } from "../src/launch/ssh/executor.ts";
import { launchSweep } from "../src/launch/sweep.ts";
import { readJob, readStatus, writeJob, type RunRef } from "../src/runs/store.ts";
import { projectRoot } from "../src/shim.ts";
import { fakeEnv, fakeTrainer, makeRun } from "../test/launch/helpers.ts";
import { startTestHosts } from "../test/ssh/hosts.ts";
import { timedFirstEvents } from "./first-event.ts";

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function measure(label: string, executor: Executor, runs: RunRef[], env: NodeJS.ProcessEnv) {
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const report = await launchSweep({ runs, env, executor: timedFirstEvents(executor, samples), cpuSlots: 8 });
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (report.succeeded.length !== runs.length) throw new Error(`${label}: ${report.failed.length} failed: ${readStatus(report.failed[0]!.dir).error?.message}`);
  const row = { label, jobs: runs.length, firstEventMs: median(samples), cpuMsPerJob: (cpu.user + cpu.system) / 1000 / runs.length, wallS };
  console.log(
    `${label.padEnd(30)} jobs ${String(row.jobs).padStart(2)}  submit->first event median ${row.firstEventMs.toFixed(0).padStart(5)} ms  controller CPU ${row.cpuMsPerJob.toFixed(1).padStart(6)} ms/job  wall ${wallS.toFixed(1)} s`,
  );
  return row;
}

const dataFile = path.join(projectRoot, "data/samples/extes-sample.json");

function runs(prefix: string, count: number, ssh: ReturnType<typeof sshSettings> | null): RunRef[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-bench-ssh-"));
  return Array.from({ length: count }, (_, i) => {
    const run = makeRun(dir, `${prefix}-${String(i).padStart(2, "0")}`, { fake: { steps: 2, step_ms: 50, checkpoint_every: 100 } });
    const job = readJob(run.dir);
    const resources = ssh ? { ...job.resources, executor: "ssh", ssh } : job.resources;
    writeJob(run.dir, { ...job, data: { ...job.data, path: dataFile }, resources } as typeof job);
    return run;
  });
}

function sshSettings(hosts: Awaited<ReturnType<typeof startTestHosts>>) {
  return {
    config_file: hosts.configFile,
    lost_after_s: 60,
    hosts: hosts.hosts.map((h) => ({ host: h.alias, python: "python3", workdir: h.workdir, cpu_slots: 4 })),
  };
}

const hosts = await startTestHosts();
try {
  const env = fakeEnv();
  const ssh = sshSettings(hosts);
  const sshExecutor = () => new SshExecutor(ssh, { shimScript: fakeTrainer, pollMs: 200 });
  console.log("controller overhead: local executor vs SSH (two sshd hosts on loopback, ControlMaster); fake trainer, 2 steps of 50 ms");
  const local = await measure("local", new LocalExecutor({ env }), runs("local", 1, null), env);
  const localMany = await measure("local, 8 at once", new LocalExecutor({ env }), runs("local", 8, null), env);
  const cold = await measure("ssh, cold (code + data over)", sshExecutor(), runs("cold", 1, ssh), env);
  const warm = await measure("ssh, warm", sshExecutor(), runs("warm", 1, ssh), env);
  const many = await measure("ssh, 8 at once over 2 hosts", sshExecutor(), runs("many", 8, ssh), env);
  console.log(`ssh vs local, one job: submit->first event cold x${(cold.firstEventMs / local.firstEventMs).toFixed(1)}, warm x${(warm.firstEventMs / local.firstEventMs).toFixed(1)} (+${(warm.firstEventMs - local.firstEventMs).toFixed(0)} ms)`);
  console.log(`ssh vs local, 8 jobs: submit->first event x${(many.firstEventMs / localMany.firstEventMs).toFixed(1)}, controller CPU per job x${(many.cpuMsPerJob / localMany.cpuMsPerJob).toFixed(1)}`);
} finally {
  hosts.stop();
}
