/**
 * `peftctl export` and `peftctl push --merged` on a real training run: `peftctl run configs/smoke.yaml`
 * (one sweep point, 4 steps, the real shim), then the CLI as a user runs it. The merged directory loads
 * with plain transformers and gives the logits of base + adapter; bad input is exit 2 with a message and
 * loses nothing; `push --merged` uploads the merged model with its card to the Hub emulator through the
 * real @huggingface/hub client, and an unchanged run pushes nothing the second time.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readStatus } from "../../src/runs/store.ts";
import { projectRoot, shimEnv, shimPython } from "../../src/shim.ts";
import { HubEmulator } from "../hub/emulator.ts";

const CLI = path.join(projectRoot, "bin", "peftctl.js");
const TOKEN = "hf_exportMergedPushToken0000000000wxyz";

let root: string;
let runsDir: string;
let runDir: string;
let runId: string;
let hub: HubEmulator;
let env: NodeJS.ProcessEnv;

async function peftctl(...args: string[]) {
  return execa(process.execPath, [CLI, ...args], { env, cwd: projectRoot, reject: false, maxBuffer: 16 << 20 });
}

/** max |logits(merged DIR) - logits(base + the run's adapter)| in float32, and how far the adapter moves the base. */
function logitGap(dir: string): { merged: number; adapter: number } {
  const script = `
import dataclasses, json, sys, torch
from pathlib import Path
from transformers import AutoModelForCausalLM
from peftshim.generate import setup_model
from peftshim.spec import load_spec
spec = load_spec(Path(sys.argv[1]))
spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, dtype="float32"))
model, tokenizer = setup_model(spec, spec.run_dir / "adapter", lambda: iter(()), device=torch.device("cpu"))
ids = torch.tensor([tokenizer("I have been feeling so alone since I moved here.")["input_ids"]])
merged = AutoModelForCausalLM.from_pretrained(sys.argv[2])
with torch.no_grad():
    want = model(input_ids=ids).logits
    with model.disable_adapter():
        base = model(input_ids=ids).logits
    got = merged(input_ids=ids).logits
print(json.dumps({"merged": (got - want).abs().max().item(), "adapter": (want - base).abs().max().item()}))
`;
  const out = execFileSync(shimPython(), ["-c", script, path.join(runDir, "job.json"), dir], { env: shimEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return JSON.parse(out.trim().split("\n").pop()!);
}

function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).map((name) => [name, readFileSync(path.join(dir, name)).toString("base64")]));
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "peftctl-export-"));
  runsDir = path.join(root, "runs");
  hub = new HubEmulator([{ token: TOKEN, name: "alice", orgs: ["peft-org"] }]);
  await hub.start();
  env = { ...process.env, HF_TOKEN: TOKEN, HF_ENDPOINT: hub.url, HF_HOME: path.join(root, "hf-home"), PEFTCTL_RUNS_DIR: runsDir };
  const sets = ["sweep.parameters.method.r=[4]", "train.max_steps=4", "eval.every_steps=2", "checkpoint.every_steps=2", "eval.generate.samples=0", "hub.repo=peft-org/smoke-export", "hub.auto_push=false"];
  const trained = await peftctl("run", "configs/smoke.yaml", ...sets.flatMap((s) => ["--set", s]));
  runId = readdirSync(path.join(runsDir, "smoke"))[0]!;
  runDir = path.join(runsDir, "smoke", runId);
  expect(readStatus(runDir).state, trained.stdout + trained.stderr).toBe("succeeded");
}, 600_000);

afterAll(async () => {
  await hub.stop();
  rmSync(root, { recursive: true, force: true });
});

describe("peftctl export", () => {
  it("--merge writes a transformers model with the logits of base + adapter, and refuses to overwrite it without --force", async () => {
    const out = path.join(root, "merged");
    const result = await peftctl("export", runId, "--merge", "--dtype", "float32", "-o", out);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toContain(`smoke/${runId} -> ${out}: merged lora model (float32)`);
    const files = readdirSync(out).sort();
    expect(files).toEqual(expect.arrayContaining(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]));
    expect(files.some((name) => name.startsWith("adapter_"))).toBe(false);
    const gap = logitGap(out);
    expect(gap.adapter).toBeGreaterThan(1e-2); // the adapter changes the output, so the comparison means something
    expect(gap.merged).toBeLessThanOrEqual(1e-4);

    const before = snapshot(out);
    const again = await peftctl("export", runId, "--merge", "-o", out);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain("exists and is not empty; pass --force");
    expect(again.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(snapshot(out)).toEqual(before);

    const forced = await peftctl("export", runId, "--merge", "--dtype", "bfloat16", "-o", out, "--force", "--json");
    expect(forced.exitCode, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ run: `smoke/${runId}`, merged: true, dtype: "bfloat16", method: "lora" });
    expect(JSON.parse(readFileSync(path.join(out, "config.json"), "utf8")).dtype).toBe("bfloat16");
    expect(readdirSync(root).filter((name) => name.startsWith(".tmp-") || name.startsWith(".old-"))).toEqual([]);
  }, 300_000);

  it("without --merge writes a clean adapter directory, also of a checkpoint", async () => {
    const out = path.join(root, "adapter");
    const result = await peftctl("export", runId, "-o", out);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(["adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    expect(readFileSync(path.join(out, "adapter_model.safetensors")).equals(readFileSync(path.join(runDir, "adapter", "adapter_model.safetensors")))).toBe(true);

    mkdirSync(path.join(root, "empty"));
    const fromCheckpoint = await peftctl("export", runId, "--checkpoint", "step-2", "-o", path.join(root, "empty"));
    expect(fromCheckpoint.exitCode, fromCheckpoint.stderr).toBe(0);
    expect(readdirSync(path.join(root, "empty"))).toEqual(expect.arrayContaining(["adapter_model.safetensors", "tokenizer.json"]));
  }, 300_000);

  it("bad input is exit 2 with a message, and writes nothing", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["export", "no-such-run", "-o", path.join(root, "x1")], /no-such-run/],
      [["export", runId, "--checkpoint", "step-999", "-o", path.join(root, "x2")], /no complete checkpoint step-000999/],
      [["export", runId, "--checkpoint", "latest", "-o", path.join(root, "x3")], /--checkpoint: expected step-N/],
      [["export", runId, "--merge", "--dtype", "int8", "-o", path.join(root, "x4")], /--dtype: expected one of float32, bfloat16, float16/],
      [["export", runId, "-o", runDir, "--force"], /holds the run smoke\/.* itself/],
      [["export", runId, "-o", path.join(runDir, "adapter", "inside")], /inside the run's adapter or checkpoints/],
      [["export", runId], /required option '-o, --output <dir>'/],
    ];
    writeFileSync(path.join(root, "a-file"), "x");
    cases.push([["export", runId, "-o", path.join(root, "a-file")], /exists and is not a directory/]);
    for (const [args, message] of cases) {
      const result = await peftctl(...args);
      expect(result.exitCode, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
    for (const name of ["x1", "x2", "x3", "x4"]) expect(readdirSync(root)).not.toContain(name);
    expect(readStatus(runDir).state).toBe("succeeded");
    expect(statSync(path.join(runDir, "adapter", "adapter_model.safetensors")).isFile()).toBe(true);
  }, 300_000);
});

describe("methods that cannot merge", () => {
  it("export --merge and push --merged of a prefix-tuning run are exit 2 naming the method", async () => {
    const job = JSON.parse(readFileSync(path.join(runDir, "job.json"), "utf8"));
    const prefixId = "smoke-prefix-000000";
    const prefixDir = path.join(runsDir, "smoke", prefixId);
    mkdirSync(path.join(prefixDir, "adapter"), { recursive: true });
    writeFileSync(path.join(prefixDir, "job.json"), JSON.stringify({ ...job, run_id: prefixId, run_dir: prefixDir, method: { kind: "prefix", num_virtual_tokens: 4 } }));
    writeFileSync(path.join(prefixDir, "status.json"), JSON.stringify({ ...readStatus(runDir), run_id: prefixId, adapter_path: path.join(prefixDir, "adapter") }));
    for (const name of ["adapter_config.json", "adapter_model.safetensors"]) writeFileSync(path.join(prefixDir, "adapter", name), readFileSync(path.join(runDir, "adapter", name)));
    for (const args of [["export", prefixId, "--merge", "-o", path.join(root, "prefix-merged")], ["push", prefixId, "--merged"]]) {
      const result = await peftctl(...args);
      expect(result.exitCode, result.stderr).toBe(2);
      expect(result.stderr).toContain("method prefix cannot be merged into the base model");
      expect(result.stderr).toContain("export without --merge");
    }
    expect(readdirSync(root)).not.toContain("prefix-merged");
    rmSync(prefixDir, { recursive: true, force: true });
  }, 300_000);
});

describe("peftctl push --merged", () => {
  it("uploads the merged model and its card to <repo>-merged; an unchanged run pushes nothing again", async () => {
    const result = await peftctl("push", runId, "--merged");
    expect(result.exitCode, result.stderr).toBe(0);
    const repo = `peft-org/smoke-export-merged-${runId.slice("smoke-".length)}`;
    expect(result.stdout).toContain(`${hub.url}/${repo}`);
    const files = hub.files(repo);
    const exported = path.join(runDir, "export", "merged");
    for (const name of readdirSync(exported)) {
      expect(files.get(name)?.equals(readFileSync(path.join(exported, name))), name).toBe(true);
    }
    expect(files.has("adapter_config.json")).toBe(false);
    expect(files.has("peftctl/job.json")).toBe(true);
    const card = files.get("README.md")!.toString("utf8");
    const meta = parse(/^---\n([\s\S]*?)\n---\n/.exec(card)![1]!) as Record<string, unknown>;
    expect(meta).toMatchObject({ library_name: "transformers", license: "apache-2.0", language: ["en"], pipeline_tag: "text-generation" });
    expect(meta.base_model).toBeUndefined(); // builtin:tiny-llama is on no Hub
    expect(card).toContain(`AutoModelForCausalLM.from_pretrained("${repo}")`);
    expect(card).not.toContain("PeftModel");
    expect(card).not.toContain(root); // no local path of this machine in the card

    const commits = hub.history(repo).length;
    const again = await peftctl("push", runId, "--merged");
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout).toContain("(unchanged");
    expect(hub.history(repo)).toHaveLength(commits);
    expect(hub.allStoredBytes(repo).toString("latin1").includes(TOKEN)).toBe(false);
  }, 300_000);
});
