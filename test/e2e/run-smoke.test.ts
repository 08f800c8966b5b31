/**
 * End to end with the real shim (transformers + peft on the CPU): a 2-run sweep of configs/smoke.yaml,
 * shortened with --set; kill -9 of the controller during the first run; `peftctl run` again. Both runs
 * succeed, neither ran twice, and each adapter loads with PeftModel.from_pretrained.
 */
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { readEvents, readStatus, type RunRef, listRuns } from "../../src/runs/store.ts";
import { isSameProcessAlive } from "../../src/runs/proc.ts";
import { shimEnv, shimPython } from "../../src/shim.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = path.join(root, "bin/peftctl.js");
const shortened = ["--set", "train.max_steps=12", "--set", "checkpoint.every_steps=4", "--set", "eval.every_steps=6", "--set", "eval.generate.samples=1"];

async function until(predicate: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const LOAD_ADAPTER = `
import sys, torch
from pathlib import Path
from peft import PeftModel
from transformers import PreTrainedTokenizerFast
from peftshim.model import build_builtin_model
adapter = Path(sys.argv[1])
tokenizer = PreTrainedTokenizerFast.from_pretrained(adapter)
base = build_builtin_model("builtin:tiny-llama", tokenizer, device=torch.device("cpu"), dtype=torch.float32, attn="sdpa")
model = PeftModel.from_pretrained(base, adapter)
ids = tokenizer("User: hello", return_tensors="pt").input_ids
print("loaded", type(model).__name__, tuple(model(ids).logits.shape))
`;

describe("peftctl run configs/smoke.yaml with the real shim", () => {
  it("survives kill -9 of the controller: both runs succeed once, the first resumes from its checkpoint", { timeout: 20 * 60_000 }, async () => {
    const runsDir = mkdtempSync(path.join(os.tmpdir(), "peftctl-e2e-"));
    const args = ["--runs-dir", runsDir, "run", path.join(root, "configs/smoke.yaml"), ...shortened];
    const first = execa(bin, args, { reject: false, cwd: root });
    let runs: RunRef[] = [];
    const started = () => {
      runs = listRuns(runsDir, "smoke");
      return runs.some((run) => readEvents(run.dir).some((e) => e.type === "checkpoint") && readEvents(run.dir).some((e) => e.type === "progress" && e.step >= 5));
    };
    await until(started, 10 * 60_000);
    first.kill("SIGKILL");
    await first;
    expect(runs).toHaveLength(2);
    const victim = runs.find((run) => readStatus(run.dir).state === "running")!;
    expect(victim, "one run was running when the controller died").toBeDefined();
    const orphan = readStatus(victim.dir);
    expect(isSameProcessAlive(orphan.pid, orphan.pid_start_time)).toBe(true);

    const second = await execa(bin, args, { reject: false, cwd: root });
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stdout).toContain("adapters:");
    expect(isSameProcessAlive(orphan.pid, orphan.pid_start_time)).toBe(false);

    for (const run of runs) {
      const status = readStatus(run.dir);
      expect(status.state).toBe("succeeded");
      const events = readEvents(run.dir);
      const starts = events.flatMap((e) => (e.type === "start" ? [e] : []));
      expect(starts.map((s) => s.attempt)).toEqual(starts.map((_, i) => i + 1)); // one start per attempt
      expect(events.filter((e) => e.type === "done")).toHaveLength(1);
      if (run === victim) {
        expect(starts).toHaveLength(2);
        expect(starts[1]!.resumed_from_step).toBeGreaterThan(0);
        // The first attempt ended (interrupted by the new controller) before the second began.
        expect(events[events.indexOf(starts[1]!) - 1]!.type).toBe("interrupted");
        // Steps after the resume point are not trained twice in the second attempt.
        const resumedSteps = events.slice(events.indexOf(starts[1]!)).flatMap((e) => (e.type === "progress" ? [e.step] : []));
        expect(Math.min(...resumedSteps)).toBeGreaterThan(starts[1]!.resumed_from_step!);
      } else {
        expect(starts).toHaveLength(1);
      }
      const adapter = status.adapter_path!;
      expect(readdirSync(adapter)).toContain("adapter_model.safetensors");
      expect(existsSync(path.join(run.dir, "env.json"))).toBe(true);
      const load = await execa(shimPython(), ["-c", LOAD_ADAPTER, adapter], { env: shimEnv(), reject: false });
      expect(load.exitCode, load.stderr).toBe(0);
      expect(load.stdout).toContain("loaded PeftModelForCausalLM");
    }
  });
});
