/**
 * The memory estimate against the measured peaks in docs/benchmarks.md (one H100,
 * LLaMA-7B shape, bf16, SDPA, fused AdamW, micro-batch 8 x sequence 1024, torch max_memory_allocated).
 * CALIBRATION POINTS (used to choose between derivations in src/plan/memory.ts, so agreement with
 * them is by construction, not independent evidence): LoRA r8 q,v 58.2 GiB; the same with gradient
 * checkpointing 18.2 GiB; LLaMA-Adapter len 10 x 30 layers 50.9 GiB.
 * HELD OUT (not used to build the formula): LoRA r16 on all linear layers, which ran out of memory at
 * 80 GB; and the padded-dialogue LoRA row (58.9 GiB, same shapes as the first).
 */
import { describe, expect, it } from "vitest";
import { ExperimentSchema, type ExperimentInput } from "../../src/config/schema.ts";
import { planExperiment } from "../../src/plan/index.ts";
import { GIB, estimateMemory } from "../../src/plan/memory.ts";

function anchorJob(method: ExperimentInput["method"], train: Partial<NonNullable<ExperimentInput["train"]>> = {}) {
  return ExperimentSchema.parse({
    name: "anchor",
    model: { base: "builtin:llama-7b-shape", dtype: "bfloat16", attn: "sdpa" },
    method,
    data: { format: "extes", path: "/d.json", max_length: 1024 },
    train: { micro_batch_size: 8, batch_size: 8, ...train },
    resources: { gpus: 1, gpu_memory_gb: 80 },
  });
}

const gib = (job: ReturnType<typeof anchorJob>) => estimateMemory(job).peakBytes! / GIB;
const within20 = (estimate: number, measured: number) => {
  expect(estimate).toBeGreaterThan(measured * 0.8);
  expect(estimate).toBeLessThan(measured * 1.2);
};

describe("memory estimate vs the H100 reference peaks (+-20%)", () => {
  const loraQv: ExperimentInput["method"] = { kind: "lora", r: 8, alpha: 16, dropout: 0.05, target_modules: ["q_proj", "v_proj"] };

  it("calibration: LoRA r8 q,v, 8 x 1024, no checkpointing: measured 58.2 GiB", () => {
    within20(gib(anchorJob(loraQv)), 58.2);
  });

  it("calibration: same with gradient checkpointing: measured 18.2 GiB", () => {
    within20(gib(anchorJob(loraQv, { gradient_checkpointing: true })), 18.2);
  });

  it("calibration: LLaMA-Adapter adapter_len 10, 30 layers: measured 50.9 GiB", () => {
    within20(gib(anchorJob({ kind: "adapter", adapter_len: 10, adapter_layers: 30 })), 50.9);
  });

  it("held out: LoRA r16 on all linear layers ran out of memory at 80 GB, so the estimate exceeds 80", () => {
    const estimate = gib(anchorJob({ kind: "lora", r: 16, alpha: 32, dropout: 0, target_modules: ["all-linear"] }));
    expect(estimate).toBeGreaterThan(80);
  });

  it("held out: the parameter counts are the model's (6.74B) and peft's trainable counts", () => {
    const lora = estimateMemory(anchorJob(loraQv)).params!;
    expect(lora.total / 1e9).toBeCloseTo(6.74, 2);
    expect(lora.trainable).toBe(4_194_304); // peft print_trainable_parameters for r8 on q,v
    expect(estimateMemory(anchorJob({ kind: "adapter", adapter_len: 10, adapter_layers: 30 })).params!.trainable).toBe(1_228_830);
  });

  it("the terms move the way the architecture says", () => {
    const base = estimateMemory(anchorJob(loraQv)).breakdown!;
    const half = estimateMemory(anchorJob(loraQv, { micro_batch_size: 4 })).breakdown!;
    expect(half.weights).toBe(base.weights);
    expect(half.activations).toBeCloseTo(base.activations / 2, -3);
    expect(half.logits).toBeCloseTo(base.logits / 2, -3);
    const fp32 = estimateMemory({ ...anchorJob(loraQv), model: { ...anchorJob(loraQv).model, dtype: "float32" } }).breakdown!;
    expect(fp32.weights).toBe(base.weights * 2);
    const full = estimateMemory(anchorJob({ kind: "full" })).breakdown!;
    // Full fine-tuning in bf16: grads + AdamW m, v in the weights' dtype, 3 x the weights.
    expect(full.trainableState).toBe(3 * full.weights);
    const eager = gib({ ...anchorJob(loraQv), model: { ...anchorJob(loraQv).model, attn: "eager" } });
    expect(eager).toBeGreaterThan(gib(anchorJob(loraQv)));
  });

  it("knows the other table entries and says unknown for the rest, without crashing", () => {
    const job = anchorJob(loraQv);
    for (const base of ["meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-13b", "meta-llama/Meta-Llama-3-8B", "microsoft/DialoGPT-medium", "gpt2", "builtin:tiny-llama"]) {
      const estimate = estimateMemory({ ...job, model: { ...job.model, base } });
      expect(estimate.peakBytes, base).toBeGreaterThan(0);
    }
    const dialogpt = estimateMemory({ ...job, model: { ...job.model, base: "microsoft/DialoGPT-small" }, method: { kind: "full" } });
    expect(dialogpt.params!.total / 1e6).toBeCloseTo(124.4, 0); // GPT-2 small, tied head
    const unknown = estimateMemory({ ...job, model: { ...job.model, base: "someone/mystery-model" } });
    expect(unknown).toMatchObject({ peakBytes: null, params: null });
  });

  it("the plan warns when a job exceeds resources.gpu_memory_gb, and notes unknown models once", () => {
    const plan = planExperiment(
      ExperimentSchema.parse({
        ...anchorJob(loraQv),
        sweep: { parameters: { "train.gradient_checkpointing": [false, true], "method.target_modules": [["all-linear"], ["q_proj", "v_proj"]] } },
        resources: { gpus: 1, gpu_memory_gb: 40 },
      }),
      { runsDir: "/r" },
    );
    expect(plan.warnings.map((w) => w.message).join("\n")).toMatch(/2 of 4 job\(s\) are estimated to need more than resources.gpu_memory_gb 40 GiB/);
    const unknown = planExperiment(
      ExperimentSchema.parse({ ...anchorJob(loraQv), model: { base: "someone/mystery" }, sweep: { parameters: { "method.r": [4, 8] } } }),
      { runsDir: "/r" },
    );
    expect(unknown.warnings.filter((w) => w.message.includes("someone/mystery"))).toEqual([
      { path: ["model", "base"], message: expect.stringContaining("someone/mystery is not in the table of known architectures") },
    ]);
    expect(unknown.jobs.every((job) => job.estimate.peakBytes === null)).toBe(true);
  });
});
