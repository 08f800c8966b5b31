/**
 * The experiment config schema: the one authority on what a peftctl YAML file may say.
 * Defaults live here, next to the field they belong to, and are documented with `.describe()`
 * so they reach the generated JSON Schema (schema/experiment.schema.json) and editors.
 *
 * Objects are strict: an unknown key is an error (src/config suggests the nearest valid one).
 */
import { z } from "zod";
import { MAX_SWEEP_RUNS } from "./limits.ts";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const fraction = z.number().min(0).max(1);

const QuantizationSchema = z
  .strictObject({
    bits: z.literal([4, 8]).default(4).describe("Bits per frozen base weight: 4 (QLoRA) or 8 (LLM.int8)."),
    type: z.enum(["nf4", "fp4"]).default("nf4").describe("4-bit data type: nf4 (NormalFloat, QLoRA's) or fp4. Ignored at 8 bits."),
    double_quant: z.boolean().default(true).describe("Quantize the 4-bit quantization constants too (QLoRA's double quantization, ~0.4 bit/param less)."),
    compute_dtype: z.enum(["bfloat16", "float16", "float32"]).default("bfloat16").describe("Dtype the 4-bit weights are dequantized to for each matmul."),
  })
  .describe(
    "Load the base model's linear layers quantized with bitsandbytes (QLoRA: 4-bit NF4, double quantization) and " +
      "prepare it for k-bit training (peft prepare_model_for_kbit_training). Absent: no quantization.",
  );

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
    trust_remote_code: z.boolean().default(false).describe("Allow model code from the Hub repository to run (transformers trust_remote_code)."),
    quantization: QuantizationSchema.optional(),
  })
  .describe("The base model to fine-tune.");

const LoraSchema = z
  .strictObject({
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
    bias: z.enum(["none", "all", "lora_only"]).default("none").describe("Which biases to train alongside LoRA."),
  })
  .describe("LoRA (peft LoraConfig).");

const AdapterSchema = z
  .strictObject({
    kind: z.literal("adapter"),
    adapter_len: positiveInt.default(10).describe("Number of adaption prompt tokens per layer."),
    adapter_layers: positiveInt.default(30).describe("Number of top layers that get adaption prompts."),
  })
  .describe("LLaMA-Adapter (peft AdaptionPromptConfig).");

const Ia3Schema = z
  .strictObject({
    kind: z.literal("ia3"),
    target_modules: z
      .array(z.string().min(1))
      .min(1)
      .default(["k_proj", "v_proj", "down_proj"])
      .describe("Module names whose activations are rescaled."),
    feedforward_modules: z
      .array(z.string().min(1))
      .default(["down_proj"])
      .describe("Which of target_modules are feed-forward (scaled at the input)."),
  })
  .describe("IA3 (peft IA3Config).");

const PrefixSchema = z
  .strictObject({
    kind: z.literal("prefix"),
    num_virtual_tokens: positiveInt.default(20).describe("Trained key/value prefix length per layer."),
  })
  .describe("Prefix tuning (peft PrefixTuningConfig).");

const PromptSchema = z.strictObject({
  kind: z.literal("prompt"),
  num_virtual_tokens: positiveInt.default(20).describe("Soft prompt length in tokens."),
  init_text: z.string().optional().describe("Initialise the soft prompt from this text instead of randomly."),
}).describe("Prompt tuning (peft PromptTuningConfig).");

const FullSchema = z
  .strictObject({ kind: z.literal("full") })
  .describe("Full fine-tuning of every weight (baselines such as DialoGPT).");

export const MethodSchema = z
  .discriminatedUnion("kind", [LoraSchema, AdapterSchema, Ia3Schema, PrefixSchema, PromptSchema, FullSchema])
  .describe("The PEFT method: lora, adapter (LLaMA-Adapter), ia3, prefix, prompt, or full.");

export const SplitSchema = z.strictObject({
  train: fraction.default(0.8).describe("Fraction of dialogues to train on."),
  valid: fraction.default(0.1).describe("Fraction of dialogues for the evaluation loss."),
  test: fraction.default(0.1).describe("Fraction of dialogues held out for generation metrics."),
  seed: nonNegativeInt.default(42).describe("Seed of the deterministic dialogue-level split."),
});

/**
 * The config's file paths, each relative to the file that sets it (made absolute by the loader) and
 * hashed into run ids relative to the config's directory (src/plan/identity.ts). data.path first.
 */
export const FILE_PATH_KEYS = [["data", "path"], ["eval", "data", "path"], ["eval", "embeddings"]] as const satisfies ReadonlyArray<readonly string[]>;

/** data.path naming a data set on the Hugging Face Hub (read with `datasets`): never a file path. */
export const HUB_DATA_PREFIX = "hf://datasets/";

export const DataSchema = z.strictObject({
  format: z.enum(["extes", "esconv", "chat", "alpaca", "sharegpt"]).describe("Record format: extes, esconv, chat ({messages}), alpaca ({instruction, input, output}), sharegpt ({conversations: [{from, value}]})."),
  path: z
    .string()
    .min(1)
    .refine((value) => !value.startsWith(HUB_DATA_PREFIX) || /^hf:\/\/datasets\/[^/\s]+(\/[^/\s]+)?$/.test(value), "expected hf://datasets/<org>/<name>")
    .describe("Data file (.json, .jsonl, .parquet, .csv) or a directory written by datasets' save_to_disk, relative to the config file or absolute; or hf://datasets/<org>/<name> (the datasets cache under HF_HUB_OFFLINE=1)."),
  source: z
    .strictObject({
      config: z.string().min(1).optional().describe("hf:// only: the data set's configuration (subset)."),
      split: z.string().min(1).optional().describe("The data set's split to read, e.g. train or train[:1000] (default train; data.split then divides it)."),
      revision: z.string().min(1).optional().describe("hf:// only: a branch, tag or commit of the data set's repository."),
    })
    .optional()
    .describe("Which part of a `datasets` data set to read: for hf:// and save_to_disk directories of several splits."),
  columns: z
    .record(z.string().min(1), z.string().min(1))
    .optional()
    .describe("The columns holding the format's fields, {field: column}: e.g. {instruction: prompt, output: answer} for alpaca, {messages: conversation} for chat."),
  chat_template: z.string().min(1).optional().describe("A Jinja chat template used instead of the tokenizer's (a plain-template model then trains on it too); labels stay the assistant turns."),
  system_prompt: z.string().min(1).optional().describe("A system message put before every dialogue (with its situation, where it has one)."),
  strategy: z
    .enum(["inline", "none"])
    .default("inline")
    .describe("inline: prefix each target with its support strategy, e.g. [Emotional Validation]."),
  max_length: positiveInt.default(1024).describe("Maximum tokens per example (and per packed row)."),
  packing: z.boolean().default(true).describe("Pack examples into rows, each attending only to itself."),
  max_examples: positiveInt.optional().describe("Use at most this many training examples (smoke runs)."),
  split: SplitSchema.prefault({}).describe("Dialogue-level train/valid/test split; the fractions sum to 1."),
}).describe("Training data.");

export const TrainSchema = z.strictObject({
  epochs: z.number().positive().default(3).describe("Passes over the training examples (ignored with max_steps)."),
  max_steps: positiveInt.optional().describe("Stop after this many optimizer steps (overrides epochs)."),
  lr: z.number().positive().default(3e-4).describe("Peak learning rate."),
  lr_scheduler: z.enum(["cosine", "linear", "constant"]).default("cosine").describe("Decay after the warm-up."),
  batch_size: positiveInt
    .default(128)
    .describe("Global batch size in examples per optimizer step; a multiple of micro_batch_size (x gpus when gpus > 1)."),
  micro_batch_size: positiveInt.default(4).describe("Examples (or packed rows) per forward pass per device."),
  warmup_steps: nonNegativeInt.default(100).describe("Optimizer steps of linear learning-rate warm-up."),
  weight_decay: z.number().nonnegative().default(0).describe("AdamW weight decay."),
  max_grad_norm: z.number().positive().default(1.0).describe("Gradient clipping norm."),
  gradient_checkpointing: z.boolean().default(false).describe("Non-reentrant activation checkpointing."),
  compile: z
    .boolean()
    .default(false)
    .describe("Compile each decoder layer with torch.compile: faster steps on a GPU after a slower first few (not with prefix tuning)."),
  seed: nonNegativeInt.default(1337).describe("Seed of initialisation, dropout and data order."),
  log_every_steps: positiveInt.default(10).describe("Optimizer steps between progress events."),
}).describe("Optimisation.");

export const EvalSchema = z.strictObject({
  every_steps: positiveInt.default(200).describe("Optimizer steps between validation-loss evaluations (and one at the end)."),
  generate: z
    .strictObject({
      max_new_tokens: positiveInt.default(64).describe("Longest generated response."),
      samples: nonNegativeInt.default(200).describe("Test examples to generate responses for (0: none)."),
      do_sample: z.boolean().default(false).describe("`peftctl eval`: sample (true) or decode greedily / by beam search (false)."),
      temperature: z.number().positive().default(1.0).describe("`peftctl eval`: softmax temperature when sampling."),
      top_p: z.number().gt(0).lte(1).default(1.0).describe("`peftctl eval`: nucleus sampling, the smallest set of tokens with this much probability (1: off)."),
      top_k: nonNegativeInt.default(50).describe("`peftctl eval`: sample among the k likeliest tokens (0: off)."),
      num_beams: positiveInt.default(1).describe("`peftctl eval`: beams of beam search (1: none)."),
      min_new_tokens: nonNegativeInt.default(0).describe("`peftctl eval`: the end of turn is not allowed before this many tokens."),
      no_repeat_ngram_size: nonNegativeInt.default(0).describe("`peftctl eval`: no n-gram of this size occurs twice in a response (0: off)."),
      repetition_penalty: z.number().positive().default(1.0).describe("`peftctl eval`: divides the logits of tokens already in the prompt or response (1: off)."),
      seed: nonNegativeInt.default(0).describe("`peftctl eval`: seed of the sampling (each batch is seeded with seed + its first row's index)."),
      batch_size: positiveInt.default(8).describe("`peftctl eval`: prompts generated together (left-padded, with a key/value cache)."),
    })
    .prefault({})
    .describe("Responses generated on the test split after training, for the text metrics."),
  data: z
    .strictObject({
      format: DataSchema.shape.format,
      path: z.string().min(1).describe("Data file, relative to the config file or absolute."),
      dialogues: z
        .enum(["split", "all"])
        .default("split")
        .describe("split: the --split share of this file by data.split's fractions and seed; all: every dialogue (a corpus never trained on)."),
    })
    .optional()
    .describe("`peftctl eval`: generate on another data set than data (e.g. trained on ExTES, tested on ESConv); data's strategy and max_length apply."),
  embeddings: z
    .string()
    .min(1)
    .optional()
    .describe("`peftctl eval`: word vectors in GloVe text format for Vector Extrema, Embedding Average and Greedy Matching (glove.6B.300d.txt as the papers); without them those read n/a."),
  toxicity: z
    .strictObject({
      command: z
        .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
        .describe("The scorer: reads {\"id\", \"text\"} JSON lines on stdin, writes one score in [0, 1] per line (split like a shell would; no shell runs it). Secrets it needs come from its environment."),
    })
    .optional()
    .describe("`peftctl eval`: a toxicity scorer (e.g. Detoxify with local weights); reported as the mean and the share above 0.5; off by default (n/a)."),
}).describe("Evaluation.");

export const CheckpointSchema = z.strictObject({
  every_steps: positiveInt.default(200).describe("Optimizer steps between checkpoints (and one at the end)."),
  keep_last: positiveInt.default(2).describe("Full training states (optimizer, RNG, data position) to keep."),
  keep_adapters: z.enum(["all", "best", "last"]).default("best").describe("Which checkpoints keep their adapter."),
}).describe("Checkpoints: atomic, verified by a manifest, resumable.");

/** sbatch's --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS. */
export const SLURM_TIME = /^(\d+-\d{1,2}(:\d{1,2}(:\d{1,2})?)?|\d+(:\d{1,2}(:\d{1,2})?)?)$/;

/** Seconds of a time limit that matches SLURM_TIME (sbatch's reading: one number is minutes, two are MM:SS). */
export function slurmTimeSeconds(time: string): number {
  const [days, clock] = time.includes("-") ? [Number(time.split("-")[0]), time.split("-")[1]!] : [0, time];
  const parts = clock.split(":").map(Number);
  const [h, m, s] = time.includes("-") ? [parts[0]!, parts[1] ?? 0, parts[2] ?? 0] : parts.length === 1 ? [0, parts[0]!, 0] : parts.length === 2 ? [0, parts[0]!, parts[1]!] : [parts[0]!, parts[1]!, parts[2]!];
  return ((days * 24 + h) * 60 + m) * 60 + s;
}

export const SlurmSchema = z
  .strictObject({
    partition: z.string().min(1).describe("sbatch --partition."),
    time: z.string().regex(SLURM_TIME, "expected a Slurm time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS").describe("sbatch --time: the job's time limit (it checkpoints signal_grace_s before it)."),
    account: z.string().min(1).optional().describe("sbatch --account."),
    qos: z.string().min(1).optional().describe("sbatch --qos."),
    constraint: z.string().min(1).optional().describe("sbatch --constraint (node features, e.g. a100|h100)."),
    gres: z.string().min(1).optional().describe("sbatch --gres as written; default gpu:<resources.gpus> for a GPU job."),
    cpus_per_task: positiveInt.optional().describe("sbatch --cpus-per-task."),
    mem: z.string().regex(/^\d+[KMGT]?$/i, "expected megabytes or a size like 64G").optional().describe("sbatch --mem (per node), e.g. 64G."),
    extra_args: z.array(z.string().min(1)).default([]).describe("More sbatch options, one per item (e.g. --exclusive); no secrets: they are part of job.json."),
    signal_grace_s: positiveInt.default(300).describe("SIGTERM this many seconds before the time limit (--signal=B:TERM@N), so the job checkpoints and is requeued."),
  })
  .describe("The Slurm job of each run (resources.executor: slurm); the runs dir must be on a filesystem the nodes share.");

/** An address, user@address or Host alias; a password written into it (user:secret@host) is refused. */
const SSH_HOST = /^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._-]+$/;

export const SshHostSchema = z
  .strictObject({
    host: z
      .string()
      // refine, not regex: the message must not echo the value, which may hold a password
      .refine((host) => SSH_HOST.test(host), "expected an address, user@address or a Host alias of your ssh config (no password or port here: put Port, User and IdentityFile in the ssh config)")
      .describe("An address, user@address, or a Host alias of the ssh config (keys, port and user belong there, never here)."),
    gpus: nonNegativeInt.optional().describe("GPUs of the host; found by nvidia-smi over ssh when not given."),
    cpu_slots: positiveInt.default(1).describe("Concurrent CPU jobs on the host (jobs with gpus: 0, or any job when it has no GPU)."),
    python: z.string().min(1).default("python3").describe("The host's Python with the shim's requirements (python/requirements.txt)."),
    workdir: z.string().min(1).default("peftctl-work").describe("Where run dirs, data and the shim's code live on the host (relative: to the login directory)."),
  })
  .describe("One SSH host jobs run on.");

export const SshSchema = z
  .strictObject({
    hosts: z
      .array(SshHostSchema)
      .min(1)
      .superRefine((hosts, ctx) => {
        const seen = new Set<string>();
        for (const [index, { host }] of hosts.entries()) {
          if (seen.has(host)) ctx.addIssue({ code: "custom", path: [index, "host"], message: `host ${host} is listed twice` });
          seen.add(host);
        }
      })
      .describe("The hosts; the scheduler places jobs on the free GPUs (or CPU slots) of all of them."),
    config_file: z.string().min(1).optional().describe("An ssh config passed as -F (absolute, ~/..., or relative to the working directory; default: the user's ~/.ssh/config); host keys are checked as it says."),
    lost_after_s: positiveInt.default(60).describe("A host that answers no ssh call for this long is lost: its jobs restart on another host from their newest synced checkpoint."),
  })
  .describe("The SSH hosts of resources.executor: ssh (README: Running on SSH hosts).");

/** HOST:CONTAINER[:ro|:rw], both absolute; ':' and ',' cannot be part of a path here (docker's and apptainer's syntax). */
const CONTAINER_MOUNT = /^\/[^:,]*:\/[^:,]*(?::(?:ro|rw))?$/;

export const ContainerSchema = z
  .strictObject({
    image: z.string().min(1).describe("The image: a docker name:tag (built from Dockerfile.gpu), or for apptainer a .sif file or docker://name:tag."),
    runtime: z.enum(["docker", "apptainer"]).default("docker").describe("docker (runs as the invoking user: --user $(id -u):$(id -g)) or apptainer (runs as the user by design)."),
    python: z.string().min(1).default("python").describe("The Python inside the image that runs the shim (and torchrun, as its module torch.distributed.run)."),
    mounts: z
      .array(z.string().regex(CONTAINER_MOUNT, "expected HOST:CONTAINER or HOST:CONTAINER:ro with absolute paths, e.g. /data/hf-cache:/cache"))
      .default([])
      .describe("More host paths to mount, HOST:CONTAINER[:ro]: a Hub cache (/data/hf-cache:/cache), a shared model store. The run dir, the data files' directories and a local model.base are mounted without asking, at the same paths."),
    extra_args: z.array(z.string().min(1)).default([]).describe("More `docker run` / `apptainer exec` options, one per item (e.g. --shm-size=16g); no secrets: they are part of job.json."),
  })
  .describe("Run the shim inside a container image (README: Running in a container); the host then needs docker or apptainer, not the shim's Python.");

export const ResourcesSchema = z.strictObject({
  executor: z.enum(["local", "slurm", "ssh"]).default("local").describe("Where jobs run: local (this host), slurm (one sbatch job per run) or ssh (the hosts of resources.ssh)."),
  gpus: nonNegativeInt.default(1).describe("GPUs per job; 0 trains on the CPU."),
  gpu_memory_gb: z.number().positive().default(80).describe("Memory of one GPU; the plan warns above it."),
  retries: nonNegativeInt.default(2).describe("Retries of interrupted, lost or out-of-memory attempts."),
  slurm: SlurmSchema.optional(),
  ssh: SshSchema.optional(),
  container: ContainerSchema.optional(),
}).describe("Where and on what each job runs.");

export const ReportSchema = z.strictObject({
  label: z.string().min(1).max(200).optional().describe("This experiment's row label in `peftctl table` and `report` (e.g. \"LLaMA-7B + LoRA\"); a sweep's rows add their swept values. Else built from the model, method and sweep values."),
}).describe("How the experiment's runs are shown in tables and reports; changes no run id.");

// Experiment trackers (python/peftshim/trackers.py). Only what the config sets is passed to each
// library, so W&B's WANDB_* and MLflow's MLFLOW_* variables keep working; secrets (WANDB_API_KEY,
// MLFLOW_TRACKING_TOKEN, ...) come from the environment only and have no key here.
const WandbSchema = z.strictObject({
  project: z.string().min(1).max(128).optional().describe("W&B project. Unset: $WANDB_PROJECT, else \"peftctl\"."),
  entity: z.string().min(1).max(128).optional().describe("W&B entity (user or team). Unset: $WANDB_ENTITY, else your default entity."),
  group: z.string().min(1).max(128).optional().describe("W&B run group. Unset: $WANDB_RUN_GROUP, else the experiment name, so a sweep's runs are grouped."),
  mode: z.enum(["online", "offline", "disabled"]).optional().describe("online, offline (a local run directory under <run_dir>/wandb, `wandb sync` later) or disabled. Unset: $WANDB_MODE, else online."),
}).describe("Log to Weights & Biases: run name and id = the run id, the resolved job as its config, resumed attempts continue the same run.");

// A URI with a scheme (http://host:5000, file:///abs/mlruns, databricks, sqlite:///abs.db) or an
// absolute path: a relative path would depend on the shim's working directory, which no one chooses.
const trackingUri = z
  .string()
  .min(1)
  .refine((value) => /^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith("/"), "expected a URI (http://host:5000, file:///abs/mlruns) or an absolute path")
  // job.json is pushed with the adapter and kept in the run store: no secret may be in it.
  .refine((value) => !/^[a-z][a-z0-9+.-]*:\/\/[^/@]*@/i.test(value), "no credentials in the URI: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN, in the environment");

const MlflowSchema = z.strictObject({
  tracking_uri: trackingUri.optional().describe("MLflow tracking server or store (http://host:5000, file:///abs/mlruns). Unset: $MLFLOW_TRACKING_URI, else a file store at <runs dir>/mlruns."),
  experiment: z.string().min(1).max(256).optional().describe("MLflow experiment. Unset: $MLFLOW_EXPERIMENT_NAME, else the experiment name."),
}).describe("Log to MLflow: run name = the run id (tag peftctl.run_id), the resolved job as params, the sweep as tag peftctl.experiment.");

export const LoggingSchema = z.strictObject({
  tensorboard: z.boolean().default(false).describe("Write TensorBoard event files to <run_dir>/tensorboard (`tensorboard --logdir runs/<experiment>`)."),
  wandb: WandbSchema.optional(),
  mlflow: MlflowSchema.optional(),
}).describe("Experiment trackers fed the training and eval metrics of the run's events; changes no run id. A tracker that fails is switched off with a warning event, never failing the run.");

export const HubSchema = z.strictObject({
  repo: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/, "expected org/name")
    .describe("Target repository, org/name."),
  private: z.boolean().default(true).describe("Create the repository private."),
  layout: z
    .enum(["repo-per-run", "branch-per-run"])
    .default("repo-per-run")
    .describe("repo-per-run: <repo>-<run suffix> per run; branch-per-run: one repo, a branch per run."),
  auto_push: z.boolean().default(true).describe("Push when a run succeeds."),
  license: z
    .string()
    .optional()
    .describe("License in the model card when the base model's cannot be found (its card in a local model dir or the HF cache, else a known family: LLaMA's is `other` with license_name and license_link); apache-2.0 for the built-in models when unset."),
  base_model: z
    .string()
    .regex(/^[\w.-]+(\/[\w.-]+)?$/, "expected a Hub id, org/name")
    .optional()
    .describe("The Hub id of the base model, named in the model card when model.base is a local path (a local path never appears in a card)."),
  language: z.array(z.string()).default(["en"]).describe("Languages of the model card (ISO 639-1 codes)."),
  datasets: z.array(z.string()).default([]).describe("Dataset ids listed in the model card."),
}).describe("Publishing adapters to the Hugging Face Hub.");

const RangeSchema = z
  .strictObject({
    min: z.number().describe("Lower bound."),
    max: z.number().describe("Upper bound."),
    distribution: z.enum(["uniform", "log_uniform", "int_uniform"]).default("uniform").describe("How values are drawn."),
  })
  .describe("A range to sample from (random sweeps only).");

export const SweepSchema = z.strictObject({
  method: z
    .enum(["grid", "random", "zip"])
    .default("grid")
    .describe("grid: every combination; zip: the i-th values together; random: n samples."),
  parameters: z
    .record(z.string(), z.union([z.array(z.unknown()).min(1), RangeSchema]))
    .describe("Dotted key path -> list of values (grid, zip, random) or a range (random only)."),
  n: positiveInt.optional().describe("Number of samples (random)."),
  seed: nonNegativeInt.default(0).describe("Seed of the random sweep."),
  max_runs: positiveInt
    .max(MAX_SWEEP_RUNS)
    .default(10_000)
    .describe(`Most runs the sweep may plan (grid: the product of the list lengths; zip: their length; random: n); raise it deliberately, up to ${MAX_SWEEP_RUNS.toLocaleString("en-US")}.`),
}).describe("Runs of this experiment that vary some keys.");

export const ExperimentSchema = z
  .strictObject({
    $schema: z.string().optional().describe("Path or URL of this JSON Schema, for editors."),
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]*$/, "must be lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
      .max(80)
      .describe("Experiment name: the directory under the run store and the prefix of run ids."),
    description: z.string().optional().describe("Free text, shown in status and model cards."),
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
    report: ReportSchema.optional(),
    logging: LoggingSchema.optional(),
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
