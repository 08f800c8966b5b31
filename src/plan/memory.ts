/**
 * Estimated peak GPU memory of one training job, per device (data parallelism replicates it).
 *
 * peak = weights + trainable state + activations + logits, in bytes, where
 *   weights          = all parameters x dtype size (bf16/fp16: 2, fp32: 4; "auto": bf16 on GPU)
 *   trainable state  = PEFT: trainable parameters x (4 fp32 weight + 4 fp32 grad + 8 AdamW m, v);
 *                      peft keeps adapter weights in fp32 (autocast_adapter_dtype), so AdamW's state
 *                      is fp32 too. Full fine-tuning: grad + m + v in the weights' own dtype, as torch
 *                      keeps optimizer state in the parameter's dtype.
 *   activations      = tokens (micro_batch_size x sequence) x bytes per token of what autograd keeps
 *                      for backward, summed over the layers that sit after the first trainable one
 *                      (nothing earlier needs a gradient, so nothing is kept); see perLayerBytes.
 *   logits           = tokens x vocab x (e + 12): the logits the model returns (dtype e) plus three
 *                      fp32 vocab-wide tensors alive together at the start of backward: the
 *                      log_softmax output cross-entropy keeps (transformers upcasts logits to fp32
 *                      for the loss), the gradient arriving at it, and the gradient it produces.
 *                      This counts every position, as the reference plain loop does; the shim
 *                      computes logits only at labelled positions (python/peftshim/loss.py), a
 *                      data-dependent share, so for its jobs this term is an upper bound.
 * With gradient checkpointing (non-reentrant), only each layer's input (e x hidden per token) is
 * kept, and one layer at a time is recomputed during backward:
 *   activations      = layers x e x hidden x tokens + max(logits, one layer + returned logits)
 *
 * perLayerBytes assumes torch saves an input of a matmul only when the weight needs a gradient
 * (frozen base weights keep nothing) and SDPA/flex attention (no s x s score matrix; eager adds it).
 * Per token, e the dtype size, d hidden, I MLP width, for a frozen llama block:
 *   2 RMSNorms x 4d      (fp32 upcast of the input kept by pow and mul)
 *   4 x e x d            (attention q, k, v, output kept by SDPA; k, v expanded to all heads)
 *   3 x e x I            (SwiGLU: gate output for SiLU, SiLU output and up output for the product)
 * For gpt2 (DialoGPT): 2 LayerNorm inputs e x d, attention 4 x e x d, 2 dropout masks of d bytes,
 * and gelu_new written as elementwise ops (transformers' NewGELUActivation) keeps 4 x e x I.
 * Each LoRA-adapted linear adds its input copied to fp32 for the fp32 adapter (4 x in; with dropout
 * the dropped copy plus a 1-byte mask: 5 x in) and the r-wide fp32 lora_A output. Full fine-tuning
 * adds the inputs of every linear and norm. LLaMA-Adapter adds, per adapted layer, the recomputed
 * query and the gated adapter output (2 x e x d) and the adapter attention probabilities.
 *
 * Calibration: the terms above are derived, not fitted; the three measured peaks in
 * docs/benchmarks.md (LLaMA-7B shape, H100, bf16, 8 x 1024) were used to choose between
 * derivations (e.g. that frozen linears keep no input, and that the three fp32 logits tensors coexist),
 * so they are calibration points, not an independent test: 58.2 GiB LoRA q,v, 18.2 GiB with
 * checkpointing, 50.9 GiB LLaMA-Adapter. The LoRA r16 all-linear OOM at 80 GB was not used.
 * Not modelled: CUDA context and allocator fragmentation (the reference peaks are max_memory_allocated),
 * DoRA's per-step weight norm, DDP gradient buckets (small for PEFT).
 *
 * Quantized base models (model.quantization, QLoRA): the decoder blocks' linear weights are stored
 * at bits/8 bytes per parameter plus bitsandbytes' quantization constants: 4-bit keeps one fp32
 * absmax per block of 64 weights (4/64 byte per weight), or with double quantization an 8-bit absmax
 * per block and one fp32 constant per 256 blocks (1/64 + 4/(64 x 256)); 8-bit (LLM.int8) keeps one fp32
 * scale per output row. Everything else (embeddings, head, norms, biases) is fp32, and so are the
 * activations and logits: peft's prepare_model_for_kbit_training casts every parameter that is not
 * 4-bit to fp32, so the embedding output, the residual stream and each 4-bit layer's output (bitsandbytes
 * casts it back to its input's dtype) are fp32; the compute dtype lives only inside each 4-bit matmul,
 * which keeps nothing for backward (its weight is frozen). No GPU measurement of a QLoRA job anchors
 * this term (the reference peaks are all unquantized); the GPU test in python/tests/test_quantization.py
 * measures a quantized model's weights where a GPU is lent.
 */
import type { Experiment } from "../config/schema.ts";
import { blockLinears, totalParameters, type Architecture } from "./architectures.ts";

export const GIB = 2 ** 30;

export type MemoryBreakdown = {
  weights: number;
  trainableState: number;
  activations: number;
  logits: number;
};

export type MemoryEstimate = {
  /** Bytes at the estimated peak; null when the base model's shape is unknown. */
  peakBytes: number | null;
  breakdown: MemoryBreakdown | null;
  params: { total: number; trainable: number } | null;
  /** Things the estimate could not account for (e.g. a target module it does not know). */
  notes: string[];
};

export type EstimateInput = Pick<Experiment, "model" | "method" | "data" | "train" | "resources">;

const FP32 = 4;
const ADAPTER_STATE_BYTES_PER_PARAM = FP32 /* weight */ + FP32 /* grad */ + 2 * FP32; /* AdamW m, v */

export function dtypeBytes(input: Pick<EstimateInput, "model" | "resources">): number {
  switch (input.model.dtype) {
    case "float32":
      return 4;
    case "bfloat16":
    case "float16":
      return 2;
    case "auto":
      return input.resources.gpus > 0 ? 2 : 4;
  }
}

type MethodShape = {
  trainable: number;
  /** Extra bytes per token per adapted layer, on top of the frozen block. */
  extraPerLayer: number;
  /** Layers that keep activations (those at or after the first trainable one). */
  activeLayers: number;
  extraSequence: number;
  notes: string[];
};

function methodShape(arch: Architecture, method: Experiment["method"], e: number): MethodShape {
  const d = arch.hidden;
  const linears = blockLinears(arch);
  const base = { extraSequence: 0, notes: [] as string[], activeLayers: arch.layers };
  switch (method.kind) {
    case "lora": {
      const targets = method.target_modules.includes("all-linear") ? Object.keys(linears) : method.target_modules;
      let trainable = 0;
      let extraPerLayer = 0;
      const unknown: string[] = [];
      const inputBytes = method.dropout > 0 ? FP32 + 1 : FP32;
      for (const target of targets) {
        const shapes = linears[target];
        if (shapes === undefined) {
          unknown.push(target);
          continue;
        }
        for (const { inFeatures, outFeatures } of shapes) {
          trainable += method.r * (inFeatures + outFeatures) + (method.use_dora ? outFeatures : 0);
          extraPerLayer += inFeatures * inputBytes + method.r * FP32;
        }
      }
      const notes = unknown.length > 0 ? [`target module(s) ${unknown.join(", ")} not in the ${arch.family} layout; not counted`] : [];
      return { ...base, trainable: trainable * arch.layers, extraPerLayer, notes };
    }
    case "adapter": {
      const layers = Math.min(method.adapter_layers, arch.layers);
      const probabilities = (FP32 + e) * arch.heads * method.adapter_len;
      return {
        ...base,
        trainable: layers * (method.adapter_len * d + 1),
        extraPerLayer: 2 * e * d + probabilities,
        activeLayers: layers,
      };
    }
    case "ia3": {
      let trainable = 0;
      let extraPerLayer = 0;
      for (const target of method.target_modules) {
        for (const { inFeatures, outFeatures } of linears[target] ?? []) {
          const width = method.feedforward_modules.includes(target) ? inFeatures : outFeatures;
          trainable += width;
          extraPerLayer += FP32 * width;
        }
      }
      return { ...base, trainable: trainable * arch.layers, extraPerLayer };
    }
    case "prefix":
      return { ...base, trainable: method.num_virtual_tokens * arch.layers * 2 * d, extraPerLayer: 0 };
    case "prompt":
      return { ...base, trainable: method.num_virtual_tokens * d, extraPerLayer: 0, extraSequence: method.num_virtual_tokens };
    case "full":
      return { ...base, trainable: totalParameters(arch), extraPerLayer: fullFineTuneExtra(arch, e) };
  }
}

/** Inputs of every linear and norm, kept for their weight gradients. */
function fullFineTuneExtra(arch: Architecture, e: number): number {
  const d = arch.hidden;
  const I = arch.intermediate;
  if (arch.family === "llama") return e * (d /* q,k,v in */ + d /* o in */ + d /* gate,up in */ + I /* down in */ + 2 * d /* norms */);
  return e * (d /* c_attn in */ + d /* attn c_proj in */ + d /* c_fc in */ + I /* mlp c_proj in */);
}

/** Bytes kept for backward per token by one frozen block (see the file comment). */
function frozenBlockBytes(arch: Architecture, e: number, attn: Experiment["model"]["attn"], sequence: number): number {
  const d = arch.hidden;
  const I = arch.intermediate;
  const attention = 4 * e * d;
  if (arch.family === "llama") {
    // eager keeps the fp32 softmax output and its copy in the model dtype, heads x sequence each.
    const scores = attn === "eager" ? (FP32 + e) * arch.heads * sequence : 0;
    return 2 * FP32 * d + attention + scores + 3 * e * I;
  }
  // gpt2 eager keeps the softmax output, the dropped-out probabilities and the dropout mask.
  const scores = attn === "eager" ? (2 * e + 1) * arch.heads * sequence : 0;
  return 2 * e * d + attention + scores + 2 * d + 4 * e * I;
}

/** Bytes per weight of a quantized linear (see the file comment), for one of in_features inputs. */
export function quantizedBytesPerWeight(quantization: NonNullable<Experiment["model"]["quantization"]>, inFeatures: number): number {
  if (quantization.bits === 8) return 1 + FP32 / inFeatures;
  const block = 64;
  const constants = quantization.double_quant ? 1 / block + FP32 / (block * 256) : FP32 / block;
  return 0.5 + constants;
}

/** The base weights' bytes: the blocks' linears quantized when model.quantization says so, the rest fp32. */
function weightBytes(arch: Architecture, input: EstimateInput, e: number): number {
  const total = totalParameters(arch);
  const quantization = input.model.quantization;
  if (quantization === undefined) return total * e;
  let quantized = 0;
  let quantizedBytes = 0;
  for (const { inFeatures, outFeatures } of Object.values(blockLinears(arch)).flat()) {
    quantized += inFeatures * outFeatures * arch.layers;
    quantizedBytes += inFeatures * outFeatures * arch.layers * quantizedBytesPerWeight(quantization, inFeatures);
  }
  return quantizedBytes + (total - quantized) * FP32;
}

/** `arch`: the base model's shape (from its config.json, or a built-in's); null when unknown. */
export function estimateMemory(input: EstimateInput, arch: Architecture | null): MemoryEstimate {
  if (arch === null) return { peakBytes: null, breakdown: null, params: null, notes: [] };
  // Quantized: activations in fp32 (see the file comment).
  const e = input.model.quantization === undefined ? dtypeBytes(input) : FP32;
  const total = totalParameters(arch);
  const shape = methodShape(arch, input.method, e);
  const sequence = input.data.max_length + shape.extraSequence;
  const tokens = input.train.micro_batch_size * sequence;
  const isFull = input.method.kind === "full";

  const weights = weightBytes(arch, input, e);
  const trainableState = isFull ? total * 3 * dtypeBytes(input) : shape.trainable * ADAPTER_STATE_BYTES_PER_PARAM;

  const layerBytes = frozenBlockBytes(arch, e, input.model.attn, sequence) + shape.extraPerLayer;
  // The final norm's input (fp32 upcast for RMSNorm) and, when the head trains, its input.
  const finalBytes = (arch.family === "llama" ? FP32 : e) * arch.hidden + (isFull ? e * arch.hidden : 0);
  const returnedLogits = e * arch.vocab * tokens;
  const logits = returnedLogits + 3 * FP32 * arch.vocab * tokens;

  let activations: number;
  if (input.train.gradient_checkpointing) {
    const checkpoints = shape.activeLayers * e * arch.hidden * tokens;
    // The loss's fp32 tensors are gone by the time the first layer is recomputed; only the larger
    // of the two moments counts, so the recomputed layer adds only what exceeds the logits term.
    const recomputedLayer = Math.max(0, layerBytes * tokens + returnedLogits - logits);
    activations = checkpoints + finalBytes * tokens + recomputedLayer;
  } else {
    activations = (shape.activeLayers * layerBytes + finalBytes) * tokens;
  }
  const breakdown = { weights, trainableState, activations, logits };
  return {
    peakBytes: weights + trainableState + activations + logits,
    breakdown,
    params: { total, trainable: isFull ? total : shape.trainable },
    notes: shape.notes,
  };
}
