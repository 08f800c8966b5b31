"""Quantized base models (model.quantization, QLoRA) through bitsandbytes.

The frozen linear layers of the decoder are loaded as bitsandbytes Linear4bit (NF4 or FP4, optionally
with double quantization, dequantized to the compute dtype per matmul) or Linear8bitLt, by transformers'
own bitsandbytes quantizer (`from_pretrained(quantization_config=BitsAndBytesConfig)`); methods.py then
runs peft's prepare_model_for_kbit_training before adding the adapter. transformers' quantizer only
works inside from_pretrained, so a built-in random-weight model is saved once to the cache (by a hash of
its config and seed, atomically) and loaded from there like any checkpoint.

Where the job cannot run, QuantizationUnavailable says why before any weight is loaded (exit 2, error
kind `environment`, retryable: the job is fine, the host needs fixing): bitsandbytes not importable, or
its build has no backend for the job's device (bitsandbytes.supported_torch_devices, and for CUDA a
native library that loaded: bitsandbytes defers a failed load to an ErrorHandlerMockBNBNativeLibrary).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from peftshim.spec import QuantizationSpec

_COMPUTE_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# The recipe of the built-in models' saved copies: a change here re-saves them.
_BUILTIN_SAVE_VERSION = 1


class QuantizationUnavailable(Exception):
    """model.quantization cannot run on this host (exit 2, error kind `environment`)."""


def check_available(quantization: QuantizationSpec, device: torch.device) -> None:
    """Raises QuantizationUnavailable when bitsandbytes cannot quantize on `device`."""
    what = f"model.quantization ({quantization.bits}-bit)"
    try:
        import bitsandbytes
        from bitsandbytes import cextension
    except ImportError as err:  # also a broken build whose native import fails
        raise QuantizationUnavailable(
            f"{what} needs bitsandbytes, which this Python cannot import ({err}); install it "
            "(pip install -r python/requirements.txt) or remove model.quantization") from None
    supported = getattr(bitsandbytes, "supported_torch_devices", {"cuda"})
    if device.type not in supported:
        raise QuantizationUnavailable(
            f"{what}: this bitsandbytes {bitsandbytes.__version__} has no backend for {device.type} "
            f"(it supports {', '.join(sorted(supported))}); train on one of those or remove model.quantization")
    if device.type == "cuda" and isinstance(cextension.lib, cextension.ErrorHandlerMockBNBNativeLibrary):
        raise QuantizationUnavailable(
            f"{what}: bitsandbytes {bitsandbytes.__version__} found no CUDA library matching this torch "
            f"(CUDA {torch.version.cuda}); install a bitsandbytes build for it (python -m bitsandbytes diagnoses)")


def bnb_config(quantization: QuantizationSpec) -> Any:
    """transformers' BitsAndBytesConfig for model.quantization."""
    from transformers import BitsAndBytesConfig

    if quantization.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization.type,
        bnb_4bit_use_double_quant=quantization.double_quant,
        bnb_4bit_compute_dtype=_COMPUTE_DTYPES[quantization.compute_dtype],
    )


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether transformers loaded `model` through the bitsandbytes quantizer."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def saved_builtin(model_factory: Any, config: Any, *, seed: int, cache_dir: Path, variant: str) -> Path:
    """The directory of a built-in model saved for from_pretrained, made by `model_factory()` on a miss.

    Keyed by the config (vocabulary included: the tokenizer is trained on the run's data), the seed,
    `variant` (the device type and dtype the weights are drawn on and in) and the transformers version,
    so every run of an experiment quantizes the same weights.
    """
    import transformers

    from peftshim.files import write_dir_atomic

    recipe = hashlib.sha256(
        f"v{_BUILTIN_SAVE_VERSION};seed={seed};{variant};transformers={transformers.__version__};{config.to_json_string()}".encode())
    target = Path(cache_dir) / "builtin-models" / recipe.hexdigest()[:32]
    if not (target / "config.json").is_file():
        # Concurrent runs save the same weights: the first one written is kept.
        write_dir_atomic(target, lambda tmp: model_factory().save_pretrained(tmp), keep_existing=True)
    return target
