"""Base models and their tokenizers.

`model.base` is one of:
- a Hub id or a local directory: loaded with `from_pretrained` (revision, dtype, attn_implementation,
  trust_remote_code from the spec). huggingface_hub reads HF_HOME, HF_HUB_OFFLINE and HF_TOKEN from
  the environment itself, so nothing here handles them (and no token is ever logged).
- `builtin:tiny-llama`: a ~4M-parameter LlamaForCausalLM with seeded random weights, for CPU runs.
- `builtin:llama-7b-shape`: the LLaMA-7B architecture with random weights, built directly on the
  device in the requested dtype, for GPU benchmarks (throughput does not depend on weight values).

With model.quantization, the linears are loaded 4- or 8-bit through bitsandbytes (quantization.py); a
built-in model is then saved once to the cache and loaded from there, as transformers quantizes only
inside from_pretrained.

The built-in models get a byte-level BPE tokenizer trained (tokenizer.train_tokenizer) on the run's
training text, cached under `cache_dir` by a hash of its recipe, so every attempt and every run on
the same data shares it. Without training text a fixed sentence is used: byte-level BPE covers every
byte anyway, so that tokenizer still encodes anything (just less compactly).
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from peftshim.files import write_dir_atomic
from peftshim.spec import ModelSpec, QuantizationSpec, SpecError

TINY_LLAMA = "builtin:tiny-llama"
LLAMA_7B_SHAPE = "builtin:llama-7b-shape"
BUILTIN_MODELS = (TINY_LLAMA, LLAMA_7B_SHAPE)
BUILTIN_TOKENIZER_VOCAB = 2048
BUILTIN_WEIGHT_SEED = 0
_FALLBACK_TOKENIZER_TEXT = ("The quick brown fox jumps over the lazy dog. " * 8,)
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype for model.dtype: `auto` is bfloat16 on CUDA and float32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[name]


def load_base_model(
    model_spec: ModelSpec | Mapping[str, Any],
    *,
    device: torch.device,
    dtype: torch.dtype,
    tokenizer_texts: Callable[[], Iterable[str]] | None,
    cache_dir: Path,
    seed: int = BUILTIN_WEIGHT_SEED,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model (on `device`, in `dtype`, attention per model.attn) and its tokenizer.

    `model_spec` is the job spec's model section (a ModelSpec or the same fields as a dict).
    `tokenizer_texts` yields the training text a built-in model's tokenizer is trained on (called
    at most twice: once to hash, once to train on a cache miss); it is ignored for Hub models.
    `cache_dir` holds built-in tokenizers. `seed` fixes a built-in model's random weights; keep the
    default so every run of an experiment starts from the same "pretrained" weights.
    The tokenizer always has a pad token (the EOS token when the model defines none).
    Raises SpecError for model.attn=flex_attention on a CPU: flex_attention has no backward there.
    """
    spec = _as_model_spec(model_spec)
    if spec.attn == "flex_attention" and device.type != "cuda":
        raise SpecError(
            "job.json",
            "model.attn",
            "flex_attention cannot train on the CPU (torch has no flex_attention backward there); "
            "use sdpa or eager, or train on a GPU",
        )
    if spec.quantization is not None:
        from peftshim.quantization import check_available

        check_available(spec.quantization, device)  # before anything is loaded
    if spec.base in BUILTIN_MODELS:
        tokenizer = builtin_tokenizer(tokenizer_texts, cache_dir=cache_dir)
        if spec.quantization is not None:
            return _quantized_builtin(spec, tokenizer, device=device, dtype=dtype, seed=seed, cache_dir=cache_dir), tokenizer
        model = build_builtin_model(spec.base, tokenizer, device=device, dtype=dtype, attn=spec.attn, seed=seed)
        return model, tokenizer
    if spec.base.startswith("builtin:"):
        raise SpecError("job.json", "model.base", f"unknown built-in model {spec.base!r}; expected one of {BUILTIN_MODELS}")
    return _from_pretrained(spec, device=device, dtype=dtype)


def _as_model_spec(model_spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
    if isinstance(model_spec, ModelSpec):
        return model_spec
    defaults = {"revision": None, "dtype": "auto", "attn": "sdpa", "trust_remote_code": False}
    known = {f.name for f in fields(ModelSpec)}
    values = {**defaults, **{k: v for k, v in model_spec.items() if k in known}}
    if isinstance(values.get("quantization"), Mapping):
        values["quantization"] = QuantizationSpec(**values["quantization"])
    return ModelSpec(**values)


def _from_pretrained(spec: ModelSpec, *, device: torch.device, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = AutoTokenizer.from_pretrained(spec.base, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    model = _pretrained_model(spec.base, spec, device=device, dtype=dtype, revision=spec.revision)
    _ensure_pad_token(tokenizer, model)
    return model, tokenizer


def _pretrained_model(source: str | Path, spec: ModelSpec, *, device: torch.device, dtype: torch.dtype,
                      revision: str | None) -> PreTrainedModel:
    quantized: dict[str, Any] = {}
    if spec.quantization is not None:
        from peftshim.quantization import bnb_config

        quantized["quantization_config"] = bnb_config(spec.quantization)
    return AutoModelForCausalLM.from_pretrained(
        source,
        revision=revision,
        dtype=dtype,  # of what stays unquantized (embeddings, norms, head)
        attn_implementation=spec.attn,
        trust_remote_code=spec.trust_remote_code,
        device_map={"": device},  # load straight onto the device, never a full copy in host memory first
        **quantized,
    )


def _quantized_builtin(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, *, device: torch.device,
                       dtype: torch.dtype, seed: int, cache_dir: Path) -> PreTrainedModel:
    """A built-in model quantized by transformers' quantizer, which only runs inside from_pretrained:
    its seeded weights are saved once (quantization.saved_builtin) and loaded from there."""
    from peftshim.quantization import saved_builtin

    def build() -> LlamaForCausalLM:
        return build_builtin_model(spec.base, tokenizer, device=device, dtype=dtype, attn=spec.attn, seed=seed)

    config = builtin_config(spec.base, len(tokenizer), attn=spec.attn)
    config.pad_token_id, config.bos_token_id, config.eos_token_id = (
        tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    saved = saved_builtin(build, config, seed=seed, cache_dir=cache_dir, variant=f"{device.type};{dtype}")
    model = _pretrained_model(saved, spec, device=device, dtype=dtype, revision=None)
    _ensure_pad_token(tokenizer, model)
    return model


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    # Reusing EOS (as GPT-2/DialoGPT and LLaMA setups do) avoids resizing the embeddings; padded
    # positions are masked out and carry label -100, so the choice does not affect training.
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id


# --- built-in models ---------------------------------------------------------------------------


# The architectures of the built-in models (src/plan/architectures.ts estimates memory from the same
# numbers, test/plan/builtin-shapes.test.ts checks that they agree); tiny-llama's vocabulary is its
# tokenizer's, the 7B shape's is LLaMA's 32000.
_BUILTIN_SIZES: dict[str, dict[str, int]] = {
    TINY_LLAMA: dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2),
    LLAMA_7B_SHAPE: dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32),
}


def builtin_config(name: str, vocab_size: int, *, attn: str) -> LlamaConfig:
    """The architecture of a built-in model; `vocab_size` only matters for tiny-llama."""
    if name not in _BUILTIN_SIZES:
        raise ValueError(f"unknown built-in model {name!r}")
    sizes = {"vocab_size": vocab_size, "max_position_embeddings": 2048, **_BUILTIN_SIZES[name]}
    if vocab_size > sizes["vocab_size"]:
        raise ValueError(f"tokenizer has {vocab_size} tokens; {name} has {sizes['vocab_size']}")
    # tiny-llama draws its weights at std 0.05, not transformers' 0.02: with 256-wide rows at 0.02 the
    # random lm_head caps any logit near 0.02 * 16 * 16 = 5, so methods that only change hidden states
    # (LLaMA-Adapter, prefix, LoRA on q,v) could barely move the output distribution of a smoke run.
    # Measured over 60 steps: adapter 7% -> 22% loss drop, prefix 10% -> 29%, LoRA q,v 10% -> 25%.
    initializer_range = 0.05 if name == TINY_LLAMA else 0.02
    return LlamaConfig(**sizes, attn_implementation=attn, tie_word_embeddings=False, initializer_range=initializer_range)


def build_builtin_model(
    name: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    device: torch.device,
    dtype: torch.dtype,
    attn: str,
    seed: int = BUILTIN_WEIGHT_SEED,
) -> LlamaForCausalLM:
    """A built-in LLaMA with random weights drawn from `seed`, created on `device` in `dtype`.

    The weights are created directly on the device and in the target dtype (as the reference GPU measurements did),
    so the 7B shape never needs 27 GB of fp32 host memory. The global RNG state is left untouched.
    """
    config = builtin_config(name, len(tokenizer), attn=attn)
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    devices = [device] if device.type == "cuda" else []
    previous_dtype = torch.get_default_dtype()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            torch.set_default_dtype(dtype)
            with torch.device(device):
                model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(previous_dtype)
    return model


def builtin_tokenizer(texts: Callable[[], Iterable[str]] | None, *, cache_dir: Path) -> PreTrainedTokenizerFast:
    """The byte-level BPE tokenizer of the built-in models, trained once per recipe and cached.

    The cache key hashes the training text, the vocabulary size and the tokenizer's version: the
    source of tokenizer.py plus the `tokenizers` release, so any change to the recipe retrains.
    Entries are written atomically, so concurrent runs never read a half-written tokenizer.
    """
    import tokenizers

    from peftshim import tokenizer as tokenizer_module

    source = texts if texts is not None else (lambda: _FALLBACK_TOKENIZER_TEXT)
    recipe = hashlib.sha256()
    recipe.update(f"vocab={BUILTIN_TOKENIZER_VOCAB};tokenizers={tokenizers.__version__};".encode())
    recipe.update(inspect.getsource(tokenizer_module).encode())
    for text in source():
        encoded = text.encode("utf-8")
        recipe.update(len(encoded).to_bytes(8, "little"))
        recipe.update(encoded)
    target = Path(cache_dir) / "tokenizers" / recipe.hexdigest()[:32]
    if not (target / "tokenizer.json").is_file():
        trained = tokenizer_module.train_tokenizer(source(), vocab_size=BUILTIN_TOKENIZER_VOCAB)
        # Concurrent runs on the same data train the same tokenizer: the first one written is kept.
        write_dir_atomic(target, lambda tmp: trained.save_pretrained(tmp), keep_existing=True)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(target)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def compile_decoder_layers(model: torch.nn.Module) -> int:
    """Compiles every decoder layer in place with torch.compile; returns how many were compiled.

    Layers rather than the whole model: the layers are identical, so one compiled graph serves them
    all, and the output layer stays eager for the loss's position hook (loss.py). `Module.compile()`
    keeps the module and its state-dict keys, so checkpoints and adapters are the same as without.
    The layer class comes from the model's `_no_split_modules` (LlamaDecoderLayer, GPT2Block, ...).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layer_classes = set(getattr(base, "_no_split_modules", None) or ())
    layers = [module for module in base.modules() if type(module).__name__ in layer_classes]
    if not layers:
        raise SpecError("job.json", "train.compile", f"{type(base).__name__} names no decoder layer class to compile; "
                        "turn compile off")
    for layer in layers:
        layer.compile()
    return len(layers)
