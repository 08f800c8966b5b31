/**
 * The Slurm executor against a real one-node cluster (test/slurm/cluster.ts), with the FAKE trainer
 * (test/fixtures/fake-trainer.py, no torch) so the cluster's behaviour is what is tested: sbatch,
 * squeue states, GPUs through gres, a requeue, stop of a running and of a pending job, a run dir the
 * node cannot see, a job sbatch refuses.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { launchSweep } from "../../src/launch/sweep.ts";
import { stopRuns } from "../../src/launch/stop.ts";
import { renderStatusTable, statusRows } from "../../src/report/status-table.ts";
import { readEvents, readJob, readStatus, updateStatus, writeJob, type RunRef } from "../../src/runs/store.ts";
import { SlurmExecutor } from "../../src/launch/slurm/executor.ts";
import { fakeEnv, fakeTrainer, makeRun, type FakeBehaviour } from "../launch/helpers.ts";
import { startCluster, type Cluster } from "./cluster.ts";

let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster();
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
});

function slurmRun(runsDir: string, runId: string, options: { fake?: FakeBehaviour; gpus?: number; slurm?: Record<string, unknown> } = {}): RunRef {
  const run = makeRun(runsDir, runId, { fake: options.fake, gpus: options.gpus });
  const job = readJob(run.dir);
  writeJob(run.dir, {
    ...job,
    resources: { ...job.resources, executor: "slurm", slurm: { partition: cluster.partition, time: "10:00", extra_args: [], signal_grace_s: 30, ...options.slurm } },
  } as typeof job);
  return run;
}

function runsDir(): string {
  return mkdtempSync(path.join(cluster.sharedDir, "runs-"));
}

function attempts(run: RunRef): Array<{ attempt: number; argv: string[] }> {
  return readFileSync(path.join(run.dir, "fake-attempts.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
}

function env() {
  return fakeEnv({ SLURM_CONF: cluster.env.SLURM_CONF });
}

async function waitFor<T>(what: string, get: () => T | undefined, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = get();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${cluster.logs()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("slurm executor on a one-node cluster", () => {
  test("a run is one sbatch job: events followed, the job's id and final state in status.json, GPUs through gres", async () => {
    const dir = runsDir();
    const cpu = slurmRun(dir, "cpu-run", { fake: { steps: 4, step_ms: 50 } });
    const gpu = slurmRun(dir, "gpu-run", { fake: { steps: 4, step_ms: 50 }, gpus: 2 });
    const report = await launchSweep({ runs: [cpu, gpu], env: env() });
    expect(report.succeeded.map((r) => r.runId).sort()).toEqual(["cpu-run", "gpu-run"]);
    for (const run of [cpu, gpu]) {
      const status = readStatus(run.dir);
      expect(status.slurm?.state).toBe("COMPLETED");
      const shown = execFileSync("scontrol", ["show", "job", "-o", status.slurm!.job_id], { env: cluster.env, encoding: "utf8" });
      expect(shown).toContain(`JobName=peftctl:fake-exp/${run.runId}`);
      expect(readEvents(run.dir).at(-1)?.type).toBe("done");
      expect(attempts(run)).toHaveLength(1);
    }
    // The fake trainer reports CUDA_VISIBLE_DEVICES as its device: Slurm's, from gres; none for a CPU job.
    const deviceOf = (run: RunRef) => readEvents(run.dir).find((e) => e.type === "start")!.device;
    expect(deviceOf(gpu)).toBe("0,1");
    expect(deviceOf(cpu)).toBe("cpu");
  });

  test("scontrol requeue after a checkpoint: the same job resumes from it, attempt 2, no step trained twice", async () => {
    const dir = runsDir();
    const run = slurmRun(dir, "requeued", { fake: { steps: 30, step_ms: 150, checkpoint_every: 5 } });
    const sweep = launchSweep({ runs: [run], env: env() });
    await waitFor("the first checkpoint", () => readEvents(run.dir).some((e) => e.type === "checkpoint"));
    const jobId = readStatus(run.dir).slurm!.job_id;
    execFileSync("scontrol", ["requeue", jobId], { env: cluster.env });
    const report = await sweep;
    expect(report.succeeded).toHaveLength(1);
    const events = readEvents(run.dir);
    const interrupted = events.find((e) => e.type === "interrupted");
    expect(interrupted).toBeDefined();
    const starts = events.filter((e) => e.type === "start");
    expect(starts.map((e) => e.attempt)).toEqual([1, 2]);
    expect(starts[1]!.resumed_from_step).toBe(interrupted!.step);
    const steps = events.filter((e) => e.type === "progress").map((e) => e.step);
    expect(new Set(steps).size).toBe(steps.length);
    expect(readStatus(run.dir).slurm!.job_id).toBe(jobId); // requeued, not submitted again
    expect(readStatus(run.dir).attempts).toBe(2);
    expect(attempts(run)[1]!.argv).toContain("--resume");
  }, 120_000);

  test("stop: a running job checkpoints and is not requeued; a pending one is cancelled at once and shown PENDING with its reason", async () => {
    const dir = runsDir();
    const running = slurmRun(dir, "to-stop", { fake: { steps: 200, step_ms: 100 } });
    const pending = slurmRun(dir, "pending", { fake: { steps: 2 }, slurm: { extra_args: ["--begin=now+3600"] } });
    const sweep = launchSweep({ runs: [running, pending], env: env() });
    await waitFor("progress", () => readEvents(running.dir).some((e) => e.type === "progress"));
    await waitFor("the pending reason", () => readStatus(pending.dir).slurm?.reason === "BeginTime");
    expect(renderStatusTable(statusRows([pending]))).toMatch(/slurm \d+ PENDING \(BeginTime\)/);
    const started = Date.now();
    const results = await stopRuns([running, pending], { waitMs: 60_000, env: env() });
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(results.map((r) => r.state)).toEqual(["interrupted", "interrupted"]);
    const report = await sweep;
    expect(report.interrupted).toHaveLength(2);
    expect(readEvents(running.dir).at(-1)?.type).toBe("interrupted");
    expect(attempts(running)).toHaveLength(1);
    const states = execFileSync("squeue", ["-h", "-t", "all", "-o", "%i|%T", "-j", [running, pending].map((r) => readStatus(r.dir).slurm!.job_id).join(",")], { env: cluster.env, encoding: "utf8" });
    expect(states).not.toMatch(/PENDING|RUNNING/);
  }, 120_000);

  test("a secret in the controller's environment reaches the job, never job.json, status.json, the logs or the batch script", async () => {
    const dir = runsDir();
    const run = slurmRun(dir, "secret", { fake: { steps: 2, step_ms: 50 } });
    const secret = "hf_not_for_files_0123456789";
    // The "trainer": records a hash of the token it got, then is the fake trainer.
    const wrapper = path.join(dir, "wrapper.py");
    writeFileSync(
      wrapper,
      [
        "import hashlib, os, runpy, sys",
        'job = sys.argv[sys.argv.index("--job") + 1]',
        'open(os.path.join(os.path.dirname(job), "token.sha256"), "w").write(hashlib.sha256(os.environ["HF_TOKEN"].encode()).hexdigest())',
        `sys.argv = [${JSON.stringify(fakeTrainer)}] + sys.argv[1:]`,
        'runpy.run_path(sys.argv[0], run_name="__main__")',
        "",
      ].join("\n"),
    );
    const report = await launchSweep({ runs: [run], env: { ...env(), HF_TOKEN: secret, PEFTCTL_SHIM_SCRIPT: wrapper } });
    expect(report.succeeded).toHaveLength(1);
    expect(readFileSync(path.join(run.dir, "token.sha256"), "utf8")).toBe(createHash("sha256").update(secret).digest("hex"));
    const grep = spawnSync("grep", ["-rl", secret, run.dir], { encoding: "utf8" });
    expect(grep.status, grep.stdout).toBe(1); // 1: no file holds it
    const script = execFileSync("scontrol", ["write", "batch_script", readStatus(run.dir).slurm!.job_id, "-"], { env: cluster.env, encoding: "utf8" });
    expect(script).toContain("exec ");
    expect(script).not.toContain(secret);
  });

  test("a submission whose id a killed controller never recorded is found by its job name and followed, not submitted again", async () => {
    const run = slurmRun(runsDir(), "unrecorded", { fake: { steps: 2 } });
    // What a controller killed between sbatch and recording the id leaves: the intent, and the job.
    updateStatus(run.dir, () => ({ state: "running", slurm: { job_id: "", state: "SUBMITTING", reason: null, nodes: null, submitted_at: new Date().toISOString() } }));
    const jobId = execFileSync("sbatch", ["--parsable", "--job-name=peftctl:fake-exp/unrecorded", "--output=/dev/null", "--wrap", "sleep 3"], { env: cluster.env, encoding: "utf8" }).trim();
    const executor = new SlurmExecutor({ env: env() });
    const handle = await executor.reattach(run, readStatus(run.dir));
    expect(handle).toBeDefined();
    expect(readStatus(run.dir).slurm!.job_id).toBe(jobId);
    const result = await handle!.wait();
    expect(result.exitCode).toBe(0);
    // Nothing recorded and nothing named after the run: nothing to reattach to.
    const fresh = slurmRun(runsDir(), "fresh", { fake: { steps: 2 } });
    expect(await executor.reattach(fresh, readStatus(fresh.dir))).toBeUndefined();
  });

  test("a run dir the node cannot see fails at once with what to do; a job sbatch refuses fails with sbatch's reason", async () => {
    const hidden = mkdtempSync(path.join(cluster.hiddenDir, "runs-"));
    const invisible = slurmRun(hidden, "invisible", { fake: { steps: 2 } });
    const refused = slurmRun(runsDir(), "refused", { fake: { steps: 2 }, slurm: { partition: "no-such-partition" } });
    const report = await launchSweep({ runs: [invisible, refused], env: env() });
    expect(report.failed).toHaveLength(2);
    const invisibleError = readStatus(invisible.dir).error!;
    expect(invisibleError.message).toMatch(/filesystem the nodes share/);
    expect(invisibleError.retryable).toBe(false);
    expect(readStatus(refused.dir).error!.message).toMatch(/sbatch refused the job: .*partition/i);
  }, 120_000);
});

describe("slurm executor on a cluster without RequeueExit", () => {
  let plain: Cluster;
  beforeAll(async () => {
    plain = await startCluster({ requeueExit: false });
  }, 90_000);
  afterAll(async () => {
    await plain?.stop();
  });

  test("exit 75 after a checkpoint ends the job; the controller submits a new one that resumes", async () => {
    const dir = mkdtempSync(path.join(plain.sharedDir, "runs-"));
    const run = makeRun(dir, "resubmitted", { fake: { steps: 6, step_ms: 50, checkpoint_every: 2, behaviour: "interrupt", at_step: 3, on_attempts: [1] } });
    const job = readJob(run.dir);
    writeJob(run.dir, { ...job, resources: { ...job.resources, executor: "slurm", slurm: { partition: plain.partition, time: "10:00", extra_args: [], signal_grace_s: 30 } } } as typeof job);
    const submitted: string[] = [];
    const report = await launchSweep({
      runs: [run],
      env: fakeEnv({ SLURM_CONF: plain.env.SLURM_CONF }),
      onEvent: (_run, event) => {
        const id = readStatus(run.dir).slurm?.job_id;
        if (event.type === "start" && id) submitted.push(id);
      },
    });
    expect(report.succeeded).toHaveLength(1);
    expect(new Set(submitted).size).toBe(2);
    const runs = attempts(run);
    expect(runs.map((a) => a.attempt)).toEqual([1, 2]);
    expect(runs[1]!.argv).toContain("--resume");
    expect(readEvents(run.dir).filter((e) => e.type === "interrupted")).toHaveLength(1);
    expect(readStatus(run.dir).attempts).toBe(2);
  }, 120_000);
});
