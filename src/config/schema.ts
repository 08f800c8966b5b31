/**
 * The experiment config schema: the one authority on what a peftctl YAML file may say.
 * Defaults live here, next to the field they belong to, and are documented with `.describe()`
 * so they reach the generated JSON Schema (schema/experiment.schema.json) and editors.
 *
 * Objects are strict: an unknown key is an error (src/config suggests the nearest valid one).
 */
import { z } from "zod";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const fraction = z.number().min(0).max(1);

export const ModelSchema = z
  .strictObject({
    base: z
      .string()
      .min(1)
      .describe(
        "Base model: a Hub id (huggyllama/llama-7b), a local path, or a built-in random-weight model " +
          "(builtin:tiny-llama for CPU smoke runs, builtin:llama-7b-shape for GPU benchmarks).",
      ),
    revision: z.string().optional().describe("Hub revision (branch, tag or commit) of the base model."),
    dtype: z
      .enum(["auto", "bfloat16", "float16", "float32"])
      .default("auto")
      .describe("Weight dtype. auto: bfloat16 on GPU, float32 on CPU."),
    attn: z
      .enum(["sdpa", "eager", "flex_attention"])
      .default("sdpa")
      .describe("Attention implementation passed to transformers."),
    trust_remote_code: z.boolean().default(false),
  })
  .describe("The base model to fine-tune.");

const LoraSchema = z.strictObject({
  kind: z.literal("lora"),
  r: positiveInt.default(8).describe("LoRA rank."),
  alpha: z.number().positive().default(16).describe("LoRA alpha (scaling = alpha / r)."),
  dropout: fraction.default(0.05).describe("Dropout on the LoRA input."),
  target_modules: z
    .array(z.string().min(1))
    .min(1)
    .default(["q_proj", "v_proj"])
    .describe("Module names to adapt, or [all-linear]."),
  use_dora: z.boolean().default(false).describe("Weight-decomposed LoRA (DoRA)."),
  use_rslora: z.boolean().default(false).describe("Rank-stabilised scaling alpha / sqrt(r)."),
  bias: z.enum(["none", "all", "lora_only"]).default("none"),
});

const AdapterSchema = z
  .strictObject({
    kind: z.literal("adapter"),
    adapter_len: positiveInt.default(10).describe("Number of adaption prompt tokens per layer."),
    adapter_layers: positiveInt.default(30).describe("Number of top layers that get adaption prompts."),
  })
  .describe("LLaMA-Adapter (peft AdaptionPromptConfig).");

const Ia3Schema = z.strictObject({
  kind: z.literal("ia3"),
  target_modules: z.array(z.string().min(1)).min(1).default(["k_proj", "v_proj", "down_proj"]),
  feedforward_modules: z.array(z.string().min(1)).default(["down_proj"]),
});

const PrefixSchema = z.strictObject({
  kind: z.literal("prefix"),
  num_virtual_tokens: positiveInt.default(20),
});

const PromptSchema = z.strictObject({
  kind: z.literal("prompt"),
  num_virtual_tokens: positiveInt.default(20),
  init_text: z.string().optional().describe("Initialise the soft prompt from this text instead of randomly."),
});

const FullSchema = z
  .strictObject({ kind: z.literal("full") })
  .describe("Full fine-tuning of every weight (baselines such as DialoGPT).");

export const MethodSchema = z
  .discriminatedUnion("kind", [LoraSchema, AdapterSchema, Ia3Schema, PrefixSchema, PromptSchema, FullSchema])
  .describe("The PEFT method: lora, adapter (LLaMA-Adapter), ia3, prefix, prompt, or full.");

export const SplitSchema = z.strictObject({
  train: fraction.default(0.8),
  valid: fraction.default(0.1),
  test: fraction.default(0.1),
  seed: nonNegativeInt.default(42).describe("Seed of the deterministic dialogue-level split."),
});

export const DataSchema = z.strictObject({
  format: z.enum(["extes", "esconv", "chat", "alpaca"]).describe("Input file format."),
  path: z.string().min(1).describe("Data file, relative to the config file or absolute."),
  strategy: z
    .enum(["inline", "none"])
    .default("inline")
    .describe("inline: prefix each target with its support strategy, e.g. [Emotional Validation]."),
  max_length: positiveInt.default(1024).describe("Maximum tokens per example (and per packed row)."),
  packing: z.boolean().default(true).describe("Pack examples into rows, each attending only to itself."),
  max_examples: positiveInt.optional().describe("Use at most this many training examples (smoke runs)."),
  split: SplitSchema.prefault({}),
});

export const TrainSchema = z.strictObject({
  epochs: z.number().positive().default(3),
  max_steps: positiveInt.optional().describe("Stop after this many optimizer steps (overrides epochs)."),
  lr: z.number().positive().default(3e-4).describe("Peak learning rate."),
  lr_scheduler: z.enum(["cosine", "linear", "constant"]).default("cosine"),
  batch_size: positiveInt.default(128).describe("Global batch size in examples per optimizer step."),
  micro_batch_size: positiveInt.default(4).describe("Examples (or packed rows) per forward pass per device."),
  warmup_steps: nonNegativeInt.default(100),
  weight_decay: z.number().nonnegative().default(0),
  max_grad_norm: z.number().positive().default(1.0),
  gradient_checkpointing: z.boolean().default(false).describe("Non-reentrant activation checkpointing."),
  seed: nonNegativeInt.default(1337),
  log_every_steps: positiveInt.default(10),
});

export const EvalSchema = z.strictObject({
  every_steps: positiveInt.default(200),
  generate: z
    .strictObject({
      max_new_tokens: positiveInt.default(64),
      samples: nonNegativeInt.default(200).describe("Test examples to generate responses for (0: none)."),
    })
    .prefault({}),
});

export const CheckpointSchema = z.strictObject({
  every_steps: positiveInt.default(200),
  keep_last: positiveInt.default(2).describe("Full training states (optimizer, RNG, data position) to keep."),
  keep_adapters: z.enum(["all", "best", "last"]).default("best").describe("Which checkpoints keep their adapter."),
});

export const ResourcesSchema = z.strictObject({
  executor: z.enum(["local"]).default("local").describe("Where jobs run (ssh and slurm come next)."),
  gpus: nonNegativeInt.default(1).describe("GPUs per job; 0 trains on the CPU."),
  gpu_memory_gb: z.number().positive().default(80).describe("Memory of one GPU; the plan warns above it."),
  retries: nonNegativeInt.default(2).describe("Retries of interrupted, lost or out-of-memory attempts."),
});

export const HubSchema = z.strictObject({
  repo: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/, "expected org/name")
    .describe("Target repository, org/name."),
  private: z.boolean().default(true),
  layout: z
    .enum(["repo-per-run", "branch-per-run"])
    .default("repo-per-run")
    .describe("repo-per-run: <repo>-<run suffix> per run; branch-per-run: one repo, a branch per run."),
  auto_push: z.boolean().default(true).describe("Push when a run succeeds."),
  license: z.string().default("apache-2.0"),
  datasets: z.array(z.string()).default([]),
});

const RangeSchema = z.strictObject({
  min: z.number(),
  max: z.number(),
  distribution: z.enum(["uniform", "log_uniform", "int_uniform"]).default("uniform"),
});

export const SweepSchema = z.strictObject({
  method: z.enum(["grid", "random", "zip"]).default("grid"),
  parameters: z
    .record(z.string(), z.union([z.array(z.unknown()).min(1), RangeSchema]))
    .describe("Dotted key path -> list of values (grid, zip, random) or a range (random only)."),
  n: positiveInt.optional().describe("Number of samples (random)."),
  seed: nonNegativeInt.default(0).describe("Seed of the random sweep."),
});

export const ExperimentSchema = z
  .strictObject({
    $schema: z.string().optional().describe("Path or URL of this JSON Schema, for editors."),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/, "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
      .max(80),
    description: z.string().optional(),
    extends: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .describe("Config file(s) this one builds on: deep-merged, this file winning."),
    model: ModelSchema,
    method: MethodSchema,
    data: DataSchema,
    train: TrainSchema.prefault({}),
    eval: EvalSchema.prefault({}),
    checkpoint: CheckpointSchema.prefault({}),
    resources: ResourcesSchema.prefault({}),
    hub: HubSchema.optional(),
    sweep: SweepSchema.optional(),
  })
  .describe("A peftctl experiment: one base model, one PEFT method, data, training, and an optional sweep.");

/** The config as written (before defaults). */
export type ExperimentInput = z.input<typeof ExperimentSchema>;
/** The config after validation, every default filled in. */
export type Experiment = z.output<typeof ExperimentSchema>;
export type Method = Experiment["method"];
export type MethodKind = Method["kind"];
export type Sweep = NonNullable<Experiment["sweep"]>;
