import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.ts";
import type { JobSpec } from "../../src/plan/jobspec.ts";

const root = path.join(import.meta.dirname, "../..");
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "peftctl-plan-"));
  copyFileSync(path.join(root, "data/samples/extes-sample.json"), path.join(dir, "extes.json"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, body: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, body);
  return file;
}

const SWEEP = `name: sweep
model: { base: huggyllama/llama-7b, dtype: bfloat16 }
method: { kind: lora, r: 8, target_modules: [q_proj, v_proj] }
data: { format: extes, path: extes.json, max_length: 1024 }
train: { batch_size: 64, micro_batch_size: 8, epochs: 2 }
resources: { gpus: 1, gpu_memory_gb: 80 }
sweep: { method: grid, parameters: { method.r: [8, 16], train.gradient_checkpointing: [false, true] } }
`;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const out = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}

describe("peftctl plan", () => {
  it("prints the job table with estimates and launches nothing", async () => {
    const runs = path.join(dir, "runs");
    const { code, stdout, stderr } = await cli(["plan", config("sweep.yaml", SWEEP), "--runs-dir", runs]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.split("\n");
    expect(lines[0]).toBe("sweep: 4 jobs");
    expect(lines[2]).toMatch(/^RUN ID\s+METHOD\s+LR\s+MICRO X ACCUM\s+GPUS\s+EXECUTOR\s+PEAK GIB\s+TRAIN TOKENS$/);
    const rows = lines.slice(3, 7);
    expect(rows[0]).toMatch(/^sweep-r8-gradient_checkpointing_false-[0-9a-f]{6}\s+lora r8\s+3e-4\s+8 x 8\s+1\s+local\s+58\.\d\s+\d+(\.\d)?k$/);
    expect(rows[1]).toMatch(/^sweep-r8-gradient_checkpointing_true-[0-9a-f]{6}\s+lora r8 .* 18\.\d\s/);
    expect(rows.filter((row) => /lora r16/.test(row))).toHaveLength(2);
    expect(stdout).toMatch(/train tokens: estimated tokens trained on/);
    expect(existsSync(runs)).toBe(false);
  });

  it("--json prints the resolved job specs and nothing else on stdout", async () => {
    const runs = path.join(dir, "runs");
    const { code, stdout } = await cli(["plan", config("sweep.yaml", SWEEP), "--json", "--runs-dir", runs, "--set", "train.lr=0.001"]);
    expect(code).toBe(0);
    const specs = JSON.parse(stdout) as JobSpec[];
    expect(specs).toHaveLength(4);
    for (const spec of specs) {
      expect(spec.schema_version).toBe(2);
      expect(spec.run_dir).toBe(path.join(runs, "sweep", spec.run_id));
      expect(spec.data.path).toBe(path.join(dir, "extes.json"));
      expect(spec.train).toMatchObject({ lr: 0.001, gradient_accumulation_steps: 8 });
      expect(spec.fingerprints.job).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.keys(spec.sweep_values).sort()).toEqual(["method.r", "train.gradient_checkpointing"]);
    }
  });

  it("warnings go to stderr: memory above gpu_memory_gb ('!'), missing data ('?'), unknown model ('?')", async () => {
    const body = SWEEP.replace("gpu_memory_gb: 80", "gpu_memory_gb: 40").replace("path: extes.json", "path: missing.json");
    const { code, stdout, stderr } = await cli(["plan", config("tight.yaml", body), "--runs-dir", path.join(dir, "runs")]);
    expect(code).toBe(0);
    expect(stderr).toMatch(/2 of 4 job\(s\) are estimated to need more than resources.gpu_memory_gb 40/);
    expect(stderr).toMatch(/missing\.json/);
    expect(stdout).toMatch(/58\.\d!\s+\?$/m);

    const unknown = SWEEP.replace("huggyllama/llama-7b", "someone/mystery-7b");
    const result = await cli(["plan", config("unknown.yaml", unknown), "--runs-dir", path.join(dir, "runs")]);
    expect(result.stderr.match(/memory estimate of someone\/mystery-7b shown as "\?": no config.json for someone\/mystery-7b/g)).toHaveLength(1);
    expect(result.stdout).toMatch(/lora r8 .*\s\?\s+\d/);
  });

  it("a bad swept value or config is exit 2 with a message, no stack trace", async () => {
    const bad = SWEEP.replace("method.r: [8, 16]", "train.micro_batch_size: [8, 7]");
    const { code, stdout, stderr } = await cli(["plan", config("bad.yaml", bad), "--runs-dir", path.join(dir, "runs")]);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    // Found by validation, at the swept value: the plan itself checks nothing.
    expect(stderr).toMatch(/bad\.yaml:7:66: sweep\.parameters\["train\.micro_batch_size"\]\[1\]: batch_size 64 is not a multiple of micro_batch_size 7/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it("the binary: --json output is JSON on stdout, diagnostics only on stderr", async () => {
    const body = SWEEP.replace("path: extes.json", "path: missing.json");
    const result = await execa(path.join(root, "bin/peftctl.js"), ["plan", config("bin.yaml", body), "--json", "--runs-dir", path.join(dir, "runs")], {
      reject: false,
    });
    expect(result.exitCode).toBe(0);
    expect((JSON.parse(result.stdout) as JobSpec[]).map((spec) => spec.experiment)).toEqual(["sweep", "sweep", "sweep", "sweep"]);
    expect(result.stderr).toMatch(/missing\.json/);
  });
});
