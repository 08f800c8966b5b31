/**
 * Controller overhead of remote executors against a local start (figures, not a test).
 *
 * Slurm: a one-node cluster started here from the Debian packages (test/slurm/cluster.ts; run as
 * root, scripts/install-test-servers.sh installs them), jobs running the FAKE trainer
 * (test/fixtures/fake-trainer.py) so that what is measured is the controller and the cluster, not
 * training. Per job: submit (Executor.start) to its first event, the time of sbatch alone, the
 * controller's CPU time; then how that grows with 10 and 100 jobs queued at once (the node runs 8 at
 * a time), and one squeue call over 100 job ids. The baseline is the local executor, measured in the same run.
 *
 *   npx tsx bench/remote.ts [--jobs 100]
 */
import { mkdtempSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { queueStates } from "../src/launch/slurm/commands.ts";
import { SlurmExecutor } from "../src/launch/slurm/executor.ts";
import { LocalExecutor } from "../src/launch/local.ts";
import type { Executor } from "../src/launch/executor.ts";
import { timedFirstEvents } from "./first-event.ts";
import { launchSweep } from "../src/launch/sweep.ts";
import { readJob, readStatus, writeJob, type RunRef } from "../src/runs/store.ts";
import { fakeEnv, makeRun } from "../test/launch/helpers.ts";
import { startCluster } from "../test/slurm/cluster.ts";

const { values } = parseArgs({ options: { jobs: { type: "string", default: "100" } } });
const maxJobs = Number(values.jobs);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function measure(label: string, executor: Executor, runs: RunRef[], env: NodeJS.ProcessEnv, slots: number) {
  const samples: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const report = await launchSweep({ runs, env, executor: timedFirstEvents(executor, samples), cpuSlots: slots });
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (report.succeeded.length !== runs.length) throw new Error(`${label}: ${report.failed.length} failed: ${readStatus(report.failed[0]!.dir).error?.message}`);
  const first = [...samples].sort((a, b) => a - b);
  const row = {
    label,
    jobs: runs.length,
    firstEventMedianMs: quantile(first, 0.5),
    firstEventP90Ms: quantile(first, 0.9),
    controllerCpuMsPerJob: (cpu.user + cpu.system) / 1000 / runs.length,
    wallS: wallMs / 1000,
  };
  console.log(
    `${label.padEnd(28)} jobs ${String(row.jobs).padStart(4)}  submit->first event median ${row.firstEventMedianMs.toFixed(0).padStart(6)} ms  p90 ${row.firstEventP90Ms.toFixed(0).padStart(6)} ms  controller CPU ${row.controllerCpuMsPerJob.toFixed(1).padStart(6)} ms/job  wall ${row.wallS.toFixed(1)} s`,
  );
  return row;
}

function runs(dir: string, count: number, slurm: { partition: string } | null): RunRef[] {
  return Array.from({ length: count }, (_, i) => {
    const run = makeRun(dir, `job-${String(i).padStart(3, "0")}`, { fake: { steps: 2, step_ms: 50, checkpoint_every: 100 } });
    if (slurm) {
      const job = readJob(run.dir);
      writeJob(run.dir, { ...job, resources: { ...job.resources, executor: "slurm", slurm: { partition: slurm.partition, time: "10:00", extra_args: [], signal_grace_s: 30 } } } as typeof job);
    }
    return run;
  });
}

const cluster = await startCluster();
try {
  const env = fakeEnv({ SLURM_CONF: cluster.env.SLURM_CONF });
  const fresh = () => mkdtempSync(path.join(cluster.sharedDir, "bench-"));
  console.log(`controller overhead: local executor vs Slurm (one-node cluster, 8 job slots); fake trainer, 2 steps of 50 ms`);
  const local1 = await measure("local", new LocalExecutor({ env }), runs(fresh(), 1, null), env, 8);
  const localMany = await measure("local, 8 slots", new LocalExecutor({ env }), runs(fresh(), Math.min(maxJobs, 100), null), env, 8);
  const rows = [];
  for (const count of [1, 10, maxJobs].filter((n, i, all) => all.indexOf(n) === i)) {
    rows.push(await measure("slurm", new SlurmExecutor({ env }), runs(fresh(), count, { partition: cluster.partition }), env, 8));
  }
  const ids = Array.from({ length: 100 }, (_, i) => String(i + 1));
  const t0 = performance.now();
  await queueStates(ids, env);
  console.log(`one squeue call over 100 job ids: ${(performance.now() - t0).toFixed(0)} ms (the controller makes one per second for all its jobs)`);
  const one = rows[0]!;
  console.log(`slurm vs local, one job: submit->first event x${(one.firstEventMedianMs / local1.firstEventMedianMs).toFixed(1)}, controller CPU x${(one.controllerCpuMsPerJob / local1.controllerCpuMsPerJob).toFixed(1)}`);
  const many = rows.at(-1)!;
  console.log(`slurm, ${many.jobs} jobs vs one: controller CPU per job x${(many.controllerCpuMsPerJob / one.controllerCpuMsPerJob).toFixed(2)}; local ${localMany.jobs} jobs: x${(localMany.controllerCpuMsPerJob / local1.controllerCpuMsPerJob).toFixed(2)}`);
} finally {
  await cluster.stop();
}
