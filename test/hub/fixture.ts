/**
 * Run directories for the Hub tests, in the run store layout, whose adapter is a real tiny peft
 * LoRA saved by test/hub/adapter_fixture.py (transformers + peft in .venv). The events and metrics
 * are written here the way the shim writes them.
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { JobSpec } from "../../src/plan/jobspec.ts";
import { initialStatus, writeJob, writeStatus } from "../../src/runs/store.ts";
import { shimEnv, shimPython } from "../../src/shim.ts";

export const FIXTURE_SCRIPT = path.join(import.meta.dirname, "adapter_fixture.py");

export type SavedAdapter = { adapterDir: string; baseDir: string; tokens: number[]; baseTokens: number[] };

/** Builds one random tiny LLaMA + LoRA adapter (a few seconds); copy it into as many runs as needed. */
export function saveAdapter(root: string): SavedAdapter {
  const adapterDir = path.join(root, "saved-adapter");
  const baseDir = path.join(root, "saved-base");
  const out = execFileSync(shimPython(), [FIXTURE_SCRIPT, "save", adapterDir, baseDir], { env: shimEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const result = JSON.parse(out.trim().split("\n").pop()!) as { tokens: number[]; base_tokens: number[] };
  return { adapterDir, baseDir, tokens: result.tokens, baseTokens: result.base_tokens };
}

/** Greedy tokens of base + PeftModel.from_pretrained(adapterDir). */
export function generateWithAdapter(baseDir: string, adapterDir: string): number[] {
  const out = execFileSync(shimPython(), [FIXTURE_SCRIPT, "generate", baseDir, adapterDir], { env: shimEnv(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return (JSON.parse(out.trim().split("\n").pop()!) as { tokens: number[] }).tokens;
}

export function fixtureJob(runDir: string, overrides: Partial<JobSpec> = {}): JobSpec {
  const experiment = overrides.experiment ?? "smoke";
  return {
    schema_version: 2,
    run_id: overrides.run_id ?? `${experiment}-a1b2c3`,
    experiment,
    run_dir: runDir,
    sweep_values: {},
    model: { base: "builtin:tiny-llama", dtype: "float32", attn: "sdpa", trust_remote_code: false },
    method: { kind: "lora", r: 4, alpha: 8, dropout: 0.05, target_modules: ["q_proj", "v_proj"], use_dora: false, use_rslora: false, bias: "none" },
    data: {
      format: "extes",
      path: "/data/extes-sample.json",
      strategy: "inline",
      max_length: 256,
      packing: true,
      split: { train: 0.8, valid: 0.1, test: 0.1, seed: 42 },
    },
    train: {
      epochs: 3,
      max_steps: 20,
      lr: 1e-3,
      lr_scheduler: "cosine",
      batch_size: 8,
      micro_batch_size: 4,
      warmup_steps: 5,
      weight_decay: 0,
      max_grad_norm: 1,
      gradient_checkpointing: false,
      compile: false,
      seed: 1337,
      log_every_steps: 5,
      gradient_accumulation_steps: 2,
      micro_batches_per_step: 2,
    },
    eval: { every_steps: 10, generate: { max_new_tokens: 24, samples: 4, do_sample: false, temperature: 1, top_p: 1, top_k: 50, num_beams: 1, min_new_tokens: 0, no_repeat_ngram_size: 0, repetition_penalty: 1, seed: 0, batch_size: 8 } },
    checkpoint: { every_steps: 10, keep_last: 2, keep_adapters: "best" },
    resources: { executor: "local", gpus: 0, gpu_memory_gb: 80, retries: 2 },
    hub: { repo: "peft-org/smoke-lora", private: true, layout: "repo-per-run", auto_push: true, license: "apache-2.0", language: ["en"], datasets: [] },
    fingerprints: { job: "f".repeat(64) },
    ...overrides,
  };
}

function event(runId: string, type: string, fields: Record<string, unknown>, second: number): string {
  return JSON.stringify({ v: 1, t: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString(), run_id: runId, type, ...fields });
}

/** A succeeded run: job.json, status.json, events.jsonl (train and eval losses), env.json, metrics.json, adapter/. */
export function makeRunDir(runsDir: string, adapter: SavedAdapter, overrides: Partial<JobSpec> = {}): { dir: string; job: JobSpec } {
  const experiment = overrides.experiment ?? "smoke";
  const runId = overrides.run_id ?? `${experiment}-a1b2c3`;
  const dir = path.join(runsDir, experiment, runId);
  mkdirSync(dir, { recursive: true });
  const job = fixtureJob(dir, { ...overrides, experiment, run_id: runId });
  writeJob(dir, job);
  cpSync(adapter.adapterDir, path.join(dir, "adapter"), { recursive: true });
  const events = [
    event(runId, "start", { attempt: 1, pid: 4242, versions: { python: "3.12", torch: "2.13", transformers: "5.17", peft: "0.21" }, device: "cpu", params: { trainable: 1024, total: 50000 }, resumed_from_step: null }, 0),
    event(runId, "data", { examples: { train: 40, valid: 5, test: 5 }, dialogues: 12, skipped: { empty_turn: 1 }, repaired: {}, truncated: 2, train_tokens: 9000, pad_fraction: 0.1, fingerprint: "d".repeat(64) }, 1),
    event(runId, "progress", { step: 5, total_steps: 20, epoch: 0.5, loss: 4.2, lr: 1e-3, tokens_per_s: 900, eta_s: 30 }, 2),
    event(runId, "progress", { step: 10, total_steps: 20, epoch: 1, loss: 3.1, lr: 8e-4, tokens_per_s: 900, eta_s: 20 }, 3),
    event(runId, "eval", { step: 10, loss: 3.4, perplexity: 29.96 }, 4),
    event(runId, "progress", { step: 15, total_steps: 20, epoch: 1.5, loss: 2.7, lr: 4e-4, tokens_per_s: 900, eta_s: 10 }, 5),
    event(runId, "progress", { step: 20, total_steps: 20, epoch: 2, loss: 2.9, lr: 0, tokens_per_s: 900, eta_s: 0 }, 6),
    event(runId, "eval", { step: 20, loss: 3.05, perplexity: 21.12 }, 7),
    event(runId, "done", { step: 20, metrics: { eval_loss: 3.05, eval_perplexity: 21.12, train_loss: 2.9 }, adapter_path: path.join(dir, "adapter") }, 8),
  ];
  writeFileSync(path.join(dir, "events.jsonl"), `${events.join("\n")}\n`);
  writeFileSync(path.join(dir, "env.json"), `${JSON.stringify({ python: "3.12", torch: "2.13", platform: "linux" }, null, 2)}\n`);
  writeFileSync(path.join(dir, "metrics.json"), `${JSON.stringify({ eval_loss: 3.05, eval_perplexity: 21.12 }, null, 2)}\n`);
  writeStatus(dir, { ...initialStatus(job), state: "succeeded", step: 20, total_steps: 20, best_eval_loss: 3.05, adapter_path: path.join(dir, "adapter") });
  return { dir, job };
}
