/**
 * No silent CPU fallback: a host whose nvidia-smi lists a GPU (a stand-in on PATH here) while the
 * shim's torch has no CUDA (this machine's CPU wheel, the real shim). `peftctl run` places the job on
 * GPU 0; the shim refuses at start with an `environment` error naming what it found, nothing is
 * trained, and the controller shows it and exits 2. A job that asks for no GPU is not refused.
 */
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { listRuns, readEvents, readStatus } from "../../src/runs/store.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");

function fakeNvidiaSmi(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "nvsmi-"));
  const script = path.join(dir, "nvidia-smi");
  writeFileSync(script, "#!/bin/sh\necho '0, GPU-aaa, NVIDIA H100 80GB HBM3, 81559'\n");
  chmodSync(script, 0o755);
  return dir;
}

function config(dir: string, gpus: number): string {
  const file = path.join(dir, `gpus-${gpus}.yaml`);
  writeFileSync(
    file,
    [
      `name: no-cuda-${gpus}`,
      "model: { base: builtin:tiny-llama, dtype: float32 }",
      "method: { kind: lora, r: 4, alpha: 8, target_modules: [q_proj, v_proj] }",
      `data: { format: extes, path: ${JSON.stringify(path.join(root, "data/samples/extes-sample.json"))}, max_length: 128 }`,
      "train: { max_steps: 2, lr: 1.0e-2, batch_size: 4, micro_batch_size: 4, warmup_steps: 1, log_every_steps: 1 }",
      "eval: { every_steps: 2, generate: { samples: 0 } }",
      "checkpoint: { every_steps: 2, keep_last: 1 }",
      `resources: { gpus: ${gpus} }`,
      "",
    ].join("\n"),
  );
  return file;
}

describe("a job placed on a GPU that torch cannot use", () => {
  it("is refused at start with an environment error (exit 2), not trained on the CPU", { timeout: 5 * 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-nocuda-"));
    const runsDir = path.join(dir, "runs");
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${fakeNvidiaSmi()}:${process.env.PATH}` };
    delete env.PEFTCTL_FAKE_GPUS;
    delete env.CUDA_VISIBLE_DEVICES;
    const result = await execa(bin, ["--runs-dir", runsDir, "run", config(dir, 1)], { reject: false, cwd: root, env });

    const [run] = listRuns(runsDir, "no-cuda-1");
    const status = readStatus(run!.dir);
    expect(status.devices).toEqual(["0"]);
    expect(status.state).toBe("failed");
    expect(status.error?.kind).toBe("environment");
    const torch = (await execa(path.join(root, ".venv/bin/python"), ["-c", "import torch; print(torch.__version__)"])).stdout.trim();
    expect(status.error?.message).toContain(`torch ${torch}`);
    expect(status.error?.message).toContain("CPU-only build (torch.version.cuda is None)");
    expect(status.error?.message).toContain("GPU 0");
    const events = readEvents(run!.dir);
    expect(events.some((e) => e.type === "progress" || e.type === "start")).toBe(false);
    expect(result.stderr).toContain("environment: the job was placed on GPU 0");
    expect(result.stdout).toContain("failed: the job was placed on GPU 0");
    expect(result.exitCode).toBe(2);
  });

  it("a job that asks for no GPU trains on the CPU of the same host", { timeout: 5 * 60_000 }, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "peftctl-nocuda-"));
    const runsDir = path.join(dir, "runs");
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${fakeNvidiaSmi()}:${process.env.PATH}` };
    delete env.PEFTCTL_FAKE_GPUS;
    const result = await execa(bin, ["--runs-dir", runsDir, "run", config(dir, 0)], { reject: false, cwd: root, env });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(readStatus(listRuns(runsDir, "no-cuda-0")[0]!.dir).state).toBe("succeeded");
  });
});
