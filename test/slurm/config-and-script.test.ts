/**
 * resources.executor: slurm in the config (positions, suggestions, the cross-field rule) and the
 * sbatch job built from a job (pure): its options, and a script bash accepts that execs the shim.
 */
import { execFileSync } from "node:child_process";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { slurmTimeSeconds } from "../../src/config/schema.ts";
import { shimCommand } from "../../src/launch/local.ts";
import { parseExitCode, parseQueue, parseScontrolJob } from "../../src/launch/slurm/commands.ts";
import { batchScript, sbatchArgs, shellQuote } from "../../src/launch/slurm/script.ts";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { diagnosticsOf, fixture, MINIMAL } from "../config/helpers.ts";

async function errorsOf(text: string): Promise<string[]> {
  return diagnosticsOf(await fixture({ "a.yaml": text }), "a.yaml");
}

describe("resources.slurm in the config", () => {
  test("executor slurm without its settings, a misspelt key, a bad time limit, a grace beyond it: each at its position", async () => {
    expect(await errorsOf(`${MINIMAL}resources:\n  executor: slurm\n`)).toEqual([
      expect.stringMatching(/^<dir>\/a\.yaml:10:13: resources\.executor: executor slurm needs resources\.slurm with at least partition and time/),
    ]);
    expect(await errorsOf(`${MINIMAL}resources:\n  executor: slurm\n  slurm:\n    partition: gpu\n    time: "1:00:00"\n    acount: lab\n`)).toEqual([
      "<dir>/a.yaml:14:5: resources.slurm.acount: unknown key `acount` (did you mean `account`?)",
    ]);
    const bad = await errorsOf(`${MINIMAL}resources:\n  executor: slurm\n  slurm: { partition: gpu, time: "1 hour" }\n`);
    expect(bad).toEqual([expect.stringMatching(/^<dir>\/a\.yaml:11:34: resources\.slurm\.time: expected a Slurm time limit/)]);
    expect(await errorsOf(`${MINIMAL}resources:\n  executor: slurm\n  slurm: { partition: gpu, time: "5:00", signal_grace_s: 300 }\n`)).toEqual([
      expect.stringMatching(/resources\.slurm\.signal_grace_s: signal_grace_s 300 is not below the time limit 5:00 \(300 s\)/),
    ]);
    expect(await errorsOf(`${MINIMAL}resources:\n  slurm: { partition: gpu, time: "1:00:00" }\n`)).toEqual([
      expect.stringMatching(/resources\.slurm: resources\.slurm is set but resources\.executor is local/),
    ]);
    expect(await errorsOf(`${MINIMAL}resources:\n  executor: slurm\n  slurm: { partition: gpu, time: "2-00:00:00", mem: 64G, gres: "gpu:a100:2" }\n`)).toEqual([]);
  });

  test("time limits as sbatch reads them", () => {
    expect(slurmTimeSeconds("90")).toBe(90 * 60);
    expect(slurmTimeSeconds("10:30")).toBe(10 * 60 + 30);
    expect(slurmTimeSeconds("4:00:00")).toBe(4 * 3600);
    expect(slurmTimeSeconds("1-12")).toBe(36 * 3600);
    expect(slurmTimeSeconds("2-01:30:05")).toBe(49 * 3600 + 30 * 60 + 5);
  });
});

const job = {
  experiment: "exp",
  run_id: "exp-r8-abc123",
  run_dir: "/shared/runs/exp/exp-r8-abc123",
  train: { micro_batch_size: 4 },
  resources: {
    executor: "slurm",
    gpus: 2,
    gpu_memory_gb: 80,
    retries: 2,
    slurm: { partition: "gpu", time: "4:00:00", account: "lab", qos: "high", constraint: "a100", cpus_per_task: 8, mem: "64G", extra_args: ["--exclusive"], signal_grace_s: 300 },
  },
} as unknown as JobSpec;

describe("the sbatch job", () => {
  test("options: requeue, append, the checkpoint signal, GPUs through gres, the user's settings", () => {
    const args = sbatchArgs(job, { stdout: "/shared/runs/exp/exp-r8-abc123/stdout.log", stderr: "/shared/runs/exp/exp-r8-abc123/stderr.log" });
    expect(args).toEqual(
      expect.arrayContaining([
        "--job-name=peftctl:exp/exp-r8-abc123",
        "--partition=gpu",
        "--time=4:00:00",
        "--requeue",
        "--open-mode=append",
        "--signal=B:TERM@300",
        "--gres=gpu:2",
        "--account=lab",
        "--qos=high",
        "--constraint=a100",
        "--cpus-per-task=8",
        "--mem=64G",
        "--output=/shared/runs/exp/exp-r8-abc123/stdout.log",
      ]),
    );
    expect(args.at(-1)).toBe("--exclusive");
  });

  test("the script execs the local executor's command line; bash parses it; the attempt follows SLURM_RESTART_COUNT", () => {
    const request = { run: { experiment: "exp", runId: job.run_id, dir: job.run_dir }, attempt: 3, resume: false, devices: ["slurm"], processes: 2, microBatchSize: 4 };
    const command = shimCommand(request, 4, { PEFTCTL_PYTHON: "/opt/py it's/python" });
    const script = batchScript({ runDir: job.run_dir, command, token: "tok", processes: 2, gpus: 2 });
    expect(script).toContain("exec '/opt/py it'\\''s/python' -m torch.distributed.run --standalone --nproc_per_node 2 -m peftshim train --job /shared/runs/exp/exp-r8-abc123/job.json --attempt \"$attempt\"");
    expect(script).toContain("attempt=$(( 3 + ${SLURM_RESTART_COUNT:-0} ))");
    execFileSync("bash", ["-n"], { input: script });
    // Run it with `exec` replaced by echo: what the node would start, on a first run and on a restart.
    const shown = (restarts: string) =>
      execFileSync("bash", ["-c", script.replace(/^exec /m, "echo ").replace(/^if \[ "\$\(cat[\s\S]*?^fi$/m, ""), "x"], { env: { ...process.env, SLURM_RESTART_COUNT: restarts }, encoding: "utf8" }).trim();
    expect(shown("0")).toMatch(/--attempt 3$/);
    expect(shown("2")).toMatch(/--attempt 5 --resume$/);
    expect(shellQuote("a b")).toBe("'a b'");
    expect(path.isAbsolute(job.run_dir)).toBe(true);
  });

  test("squeue, scontrol and sacct output parsed", () => {
    expect(parseQueue("12|PENDING|Resources|\n13|RUNNING|None|node1\n")).toEqual([
      { jobId: "12", state: "PENDING", reason: "Resources", nodes: null },
      { jobId: "13", state: "RUNNING", reason: null, nodes: "node1" },
    ]);
    expect(parseScontrolJob("JobId=4 JobName=x JobState=FAILED Reason=NonZeroExitCode ExitCode=75:0").ExitCode).toBe("75:0");
    expect(parseExitCode("75:0")).toEqual({ exitCode: 75, signal: null });
    expect(parseExitCode("0:15")).toEqual({ exitCode: null, signal: "SIGTERM" });
  });
});
