/** The zod schema itself: defaults, methods, strictness. */
import { describe, expect, test } from "vitest";
import { ExperimentSchema, MethodSchema } from "../../src/config/schema.ts";

const minimal = { name: "t", model: { base: "builtin:tiny-llama" }, method: { kind: "lora" }, data: { format: "extes", path: "/d.json" } };

describe("ExperimentSchema", () => {
  test("fills every default of a minimal config", () => {
    const experiment = ExperimentSchema.parse(minimal);
    expect(experiment.model).toEqual({ base: "builtin:tiny-llama", dtype: "auto", attn: "sdpa", trust_remote_code: false });
    expect(experiment.method).toEqual({ kind: "lora", r: 8, alpha: 16, dropout: 0.05, target_modules: ["q_proj", "v_proj"], use_dora: false, use_rslora: false, bias: "none" });
    expect(experiment.data.split).toEqual({ train: 0.8, valid: 0.1, test: 0.1, seed: 42 });
    expect(experiment.train).toMatchObject({ lr: 3e-4, batch_size: 128, micro_batch_size: 4, warmup_steps: 100, weight_decay: 0, seed: 1337 });
    expect(experiment.eval.generate).toEqual({ max_new_tokens: 64, samples: 200, do_sample: false, temperature: 1, top_p: 1, top_k: 50, num_beams: 1, min_new_tokens: 0, no_repeat_ngram_size: 0, repetition_penalty: 1, seed: 0, batch_size: 8 });
    expect(experiment.checkpoint).toEqual({ every_steps: 200, keep_last: 2, keep_adapters: "best" });
    expect(experiment.resources).toEqual({ executor: "local", gpus: 1, gpu_memory_gb: 80, retries: 2 });
    expect(experiment.hub).toBeUndefined();
    expect(experiment.sweep).toBeUndefined();
  });

  test.each([
    [{ kind: "adapter" }, { kind: "adapter", adapter_len: 10, adapter_layers: 30 }],
    [{ kind: "ia3" }, { kind: "ia3", target_modules: ["k_proj", "v_proj", "down_proj"], feedforward_modules: ["down_proj"] }],
    [{ kind: "prefix", num_virtual_tokens: 5 }, { kind: "prefix", num_virtual_tokens: 5 }],
    [{ kind: "prompt" }, { kind: "prompt", num_virtual_tokens: 20 }],
    [{ kind: "full" }, { kind: "full" }],
  ])("method %j gets its defaults", (input, output) => {
    expect(MethodSchema.parse(input)).toEqual(output);
  });

  test("is strict at every level, and $schema/extends are accepted", () => {
    expect(ExperimentSchema.safeParse({ ...minimal, method: { kind: "adapter", r: 8 } }).success).toBe(false);
    expect(ExperimentSchema.safeParse({ ...minimal, train: { lr: 1, warmup: 3 } }).success).toBe(false);
    expect(ExperimentSchema.safeParse({ ...minimal, $schema: "../schema/experiment.schema.json", extends: ["a.yaml"] }).success).toBe(true);
  });

  test("sweep parameters take lists or ranges", () => {
    const sweep = { method: "random", n: 3, parameters: { "method.r": [4, 8], "train.lr": { min: 1e-5, max: 1e-3, distribution: "log_uniform" } } };
    expect(ExperimentSchema.parse({ ...minimal, sweep }).sweep).toEqual({ ...sweep, seed: 0, max_runs: 10_000 });
    expect(ExperimentSchema.safeParse({ ...minimal, sweep: { parameters: { "method.r": [] } } }).success).toBe(false);
  });
});
