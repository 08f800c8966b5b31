/**
 * A model's config.json (as transformers writes it) -> the Architecture the memory estimate needs.
 * Pure: the file is read elsewhere (src/models/read-model-config.ts).
 *
 * Supported model_type values and the fields each uses:
 * - llama, mistral, qwen2, gemma: hidden_size, intermediate_size, num_hidden_layers,
 *   num_attention_heads, num_key_value_heads (absent: = heads), vocab_size, tie_word_embeddings
 *   (absent: transformers' default for the type), head_dim (gemma, and where a config sets it).
 *   qwen2 has biases on q, k and v. Mistral's sliding window changes no shape.
 * - gpt2 (DialoGPT, GPT-2): n_embd, n_layer, n_head, n_inner (null: 4 x n_embd), vocab_size, n_positions.
 * Anything else is refused with a reason rather than guessed: a different block (fused qkv_proj in
 * phi3, experts in mixtral, extra norms in gemma2) would make a wrong figure look right.
 */
import { gpt2, llama, type Architecture } from "./architectures.ts";

export type ParsedModelConfig = { architecture: Architecture } | { architecture: null; reason: string };

/** transformers' tie_word_embeddings default per model type, where the config leaves it out. */
const TIED_BY_DEFAULT: Readonly<Record<string, boolean>> = { llama: false, mistral: false, qwen2: false, gemma: true, gpt2: true };
const LLAMA_LIKE = ["llama", "mistral", "qwen2", "gemma"] as const;
export const SUPPORTED_MODEL_TYPES = [...LLAMA_LIKE, "gpt2"] as const;

export function parseModelConfig(config: unknown): ParsedModelConfig {
  if (typeof config !== "object" || config === null || Array.isArray(config)) return refuse("config.json is not a JSON object");
  const fields = config as Record<string, unknown>;
  const modelType = fields.model_type;
  if (typeof modelType !== "string") return refuse("config.json has no model_type");
  const missing: string[] = [];
  const int = (name: string, fallback?: number): number => {
    const value = fields[name];
    if (typeof value === "number" && Number.isInteger(value) && value > 0) return value;
    if ((value === undefined || value === null) && fallback !== undefined) return fallback;
    missing.push(name);
    return 1;
  };
  const tied = typeof fields.tie_word_embeddings === "boolean" ? fields.tie_word_embeddings : TIED_BY_DEFAULT[modelType] ?? false;

  let architecture: Architecture;
  if ((LLAMA_LIKE as readonly string[]).includes(modelType)) {
    const hidden = int("hidden_size");
    const heads = int("num_attention_heads");
    const kvHeads = int("num_key_value_heads", heads);
    const headDim = int("head_dim", hidden / heads);
    architecture = llama(hidden, int("intermediate_size"), int("num_hidden_layers"), heads, kvHeads, int("vocab_size"), tied, {
      headDim,
      qkvBias: modelType === "qwen2" || fields.attention_bias === true,
    });
    if (fields.mlp_bias === true) return refuse(`${modelType} config with mlp_bias is not modelled`);
  } else if (modelType === "gpt2") {
    const hidden = int("n_embd");
    architecture = gpt2(hidden, int("n_layer"), int("n_head"), {
      intermediate: int("n_inner", 4 * hidden),
      vocab: int("vocab_size"),
      positions: int("n_positions"),
      tied,
    });
  } else {
    return refuse(`model_type ${modelType} is not one the memory estimate models (it knows ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  }
  if (missing.length > 0) return refuse(`config.json (${modelType}) lacks ${missing.map((name) => `a positive integer ${name}`).join(", ")}`);
  if (!Number.isInteger(architecture.headDim) || architecture.heads % architecture.kvHeads !== 0) {
    return refuse(`config.json (${modelType}) has inconsistent attention sizes (hidden ${architecture.hidden}, ${architecture.heads} heads, ${architecture.kvHeads} key/value heads)`);
  }
  return { architecture };
}

function refuse(reason: string): ParsedModelConfig {
  return { architecture: null, reason };
}
