/**
 * Model shapes for the memory estimate. A model's shape normally comes from its own config.json
 * (parsed by model-config.ts, read by src/models/read-model-config.ts). Two tables stay here:
 * - the built-in random-weight models, which have no config.json (python/peftshim/model.py builds
 *   them from the same numbers; test/plan/builtin-shapes.test.ts checks that both sides agree);
 * - WELL_KNOWN: the published configs of a few fixed Hub repositories (the shipped configs' models),
 *   used only when no config.json could be read, so that `plan` of those works offline without the
 *   network. Those repositories' config.json files do not change; anything else needs its config.json.
 */

/** llama covers every block with q/k/v/o and gate/up/down projections (llama, mistral, qwen2, gemma). */
export type Family = "llama" | "gpt2";

export type Architecture = {
  family: Family;
  hidden: number;
  /** MLP width: SwiGLU intermediate_size for llama, 4 x hidden (n_inner) for gpt2. */
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  /** Width of one attention head: hidden / heads, except where a config sets head_dim (gemma). */
  headDim: number;
  /** Biases on q, k and v (qwen2); llama-family models have none elsewhere. */
  qkvBias: boolean;
  /** Learned position embeddings (gpt2); 0 for rotary models. */
  positions: number;
  tiedEmbeddings: boolean;
};

export function llama(hidden: number, intermediate: number, layers: number, heads: number, kvHeads: number, vocab: number, tied = false, extra: Partial<Pick<Architecture, "headDim" | "qkvBias">> = {}): Architecture {
  return { family: "llama", hidden, intermediate, layers, heads, kvHeads, vocab, positions: 0, tiedEmbeddings: tied, headDim: hidden / heads, qkvBias: false, ...extra };
}

export function gpt2(hidden: number, layers: number, heads: number, { intermediate = 4 * hidden, vocab = 50257, positions = 1024, tied = true } = {}): Architecture {
  return { family: "gpt2", hidden, intermediate, layers, heads, kvHeads: heads, vocab, positions, tiedEmbeddings: tied, headDim: hidden / heads, qkvBias: false /* gpt2 counts its biases by family */ };
}

const LLAMA_7B = llama(4096, 11008, 32, 32, 32, 32000);
const LLAMA_13B = llama(5120, 13824, 40, 40, 40, 32000);
const LLAMA_30B = llama(6656, 17920, 60, 52, 52, 32000);
const LLAMA_65B = llama(8192, 22016, 80, 64, 64, 32000);
const LLAMA2_70B = llama(8192, 28672, 80, 64, 8, 32000);
const LLAMA3_8B = llama(4096, 14336, 32, 32, 8, 128256);
const LLAMA3_70B = llama(8192, 28672, 80, 64, 8, 128256);
const GPT2_SMALL = gpt2(768, 12, 12);
const GPT2_MEDIUM = gpt2(1024, 24, 16);
const GPT2_LARGE = gpt2(1280, 36, 20);
const GPT2_XL = gpt2(1600, 48, 25);

/** The built-in models of python/peftshim/model.py (_BUILTIN_SIZES), by their model.base. */
export const BUILTIN_ARCHITECTURES: Readonly<Record<string, Architecture>> = {
  // The shim's CPU smoke model; its vocabulary is the builtin tokenizer's (BUILTIN_TOKENIZER_VOCAB).
  "builtin:tiny-llama": llama(256, 688, 4, 4, 2, 2048),
  "builtin:llama-7b-shape": LLAMA_7B,
};

/** Keys are lower-case model ids; lookups ignore case. */
const WELL_KNOWN: Record<string, Architecture> = {
  "huggyllama/llama-7b": LLAMA_7B,
  "huggyllama/llama-13b": LLAMA_13B,
  "huggyllama/llama-30b": LLAMA_30B,
  "huggyllama/llama-65b": LLAMA_65B,
  "meta-llama/llama-2-7b-hf": LLAMA_7B,
  "meta-llama/llama-2-7b-chat-hf": LLAMA_7B,
  "meta-llama/llama-2-13b-hf": LLAMA_13B,
  "meta-llama/llama-2-13b-chat-hf": LLAMA_13B,
  "meta-llama/llama-2-70b-hf": LLAMA2_70B,
  "meta-llama/llama-2-70b-chat-hf": LLAMA2_70B,
  "meta-llama/meta-llama-3-8b": LLAMA3_8B,
  "meta-llama/meta-llama-3-8b-instruct": LLAMA3_8B,
  "meta-llama/llama-3-8b": LLAMA3_8B,
  "meta-llama/llama-3.1-8b": LLAMA3_8B,
  "meta-llama/llama-3.1-8b-instruct": LLAMA3_8B,
  "meta-llama/meta-llama-3-70b": LLAMA3_70B,
  "meta-llama/llama-3.1-70b": LLAMA3_70B,
  "meta-llama/llama-3.2-1b": llama(2048, 8192, 16, 32, 8, 128256, true),
  "meta-llama/llama-3.2-1b-instruct": llama(2048, 8192, 16, 32, 8, 128256, true),
  "meta-llama/llama-3.2-3b": llama(3072, 8192, 28, 24, 8, 128256, true),
  "meta-llama/llama-3.2-3b-instruct": llama(3072, 8192, 28, 24, 8, 128256, true),
  "tinyllama/tinyllama-1.1b-chat-v1.0": llama(2048, 5632, 22, 32, 4, 32000),
  "gpt2": GPT2_SMALL,
  "openai-community/gpt2": GPT2_SMALL,
  "gpt2-medium": GPT2_MEDIUM,
  "openai-community/gpt2-medium": GPT2_MEDIUM,
  "gpt2-large": GPT2_LARGE,
  "openai-community/gpt2-large": GPT2_LARGE,
  "gpt2-xl": GPT2_XL,
  "openai-community/gpt2-xl": GPT2_XL,
  "microsoft/dialogpt-small": GPT2_SMALL,
  "microsoft/dialogpt-medium": GPT2_MEDIUM,
  "microsoft/dialogpt-large": GPT2_LARGE,
};

/** A well-known Hub id's published shape; "meta-llama/Llama-2-13b" (no -hf suffix) resolves too. */
export function wellKnownArchitecture(modelBase: string): Architecture | undefined {
  const id = modelBase.trim().toLowerCase();
  return WELL_KNOWN[id] ?? WELL_KNOWN[`${id}-hf`];
}

export type LinearShape = { inFeatures: number; outFeatures: number };

/** The linear layers of one block by the module names peft targets (gpt2's Conv1D counts as linear). */
export function blockLinears(arch: Architecture): Record<string, LinearShape[]> {
  const d = arch.hidden;
  const q = arch.headDim * arch.heads;
  const kv = arch.headDim * arch.kvHeads;
  if (arch.family === "llama") {
    return {
      q_proj: [{ inFeatures: d, outFeatures: q }],
      k_proj: [{ inFeatures: d, outFeatures: kv }],
      v_proj: [{ inFeatures: d, outFeatures: kv }],
      o_proj: [{ inFeatures: q, outFeatures: d }],
      gate_proj: [{ inFeatures: d, outFeatures: arch.intermediate }],
      up_proj: [{ inFeatures: d, outFeatures: arch.intermediate }],
      down_proj: [{ inFeatures: arch.intermediate, outFeatures: d }],
    };
  }
  return {
    c_attn: [{ inFeatures: d, outFeatures: 3 * d }],
    // "c_proj" names both the attention output and the MLP output projection in gpt2.
    c_proj: [
      { inFeatures: d, outFeatures: d },
      { inFeatures: arch.intermediate, outFeatures: d },
    ],
    c_fc: [{ inFeatures: d, outFeatures: arch.intermediate }],
  };
}

/** Every parameter of the model: embeddings, blocks (linears, norms, biases), final norm, head. */
export function totalParameters(arch: Architecture): number {
  const d = arch.hidden;
  const linears = Object.values(blockLinears(arch)).flat();
  const weights = linears.reduce((sum, l) => sum + l.inFeatures * l.outFeatures, 0);
  // gpt2: biases on every linear, LayerNorm weight+bias x2; llama: RMSNorm weight x2, q/k/v biases in qwen2.
  const linearsOf = blockLinears(arch);
  const qkvBiases = arch.qkvBias ? ["q_proj", "k_proj", "v_proj"].reduce((sum, name) => sum + (linearsOf[name]?.[0]?.outFeatures ?? 0), 0) : 0;
  const extras =
    arch.family === "gpt2" ? linears.reduce((sum, l) => sum + l.outFeatures, 0) + 4 * d : 2 * d + qkvBiases;
  const finalNorm = arch.family === "gpt2" ? 2 * d : d;
  const embeddings = arch.vocab * d + arch.positions * d;
  const head = arch.tiedEmbeddings ? 0 : arch.vocab * d;
  return embeddings + arch.layers * (weights + extras) + finalNorm + head;
}
