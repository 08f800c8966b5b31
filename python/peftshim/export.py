"""`python -m peftshim export --job JOB --out DIR [--adapter PATH] [--merge] [--dtype D] [--max-shard-size S]`.

`peftctl export`'s model side. Two products:

- with `--merge`: a plain transformers model: the base with the adapter merged into its weights
  (`merge_and_unload`, for LoRA, DoRA and IA3), or a full fine-tune's own weights, saved as
  safetensors shards with config.json, generation_config.json and the tokenizer, so
  `AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)` load it with no
  peft and no peftctl. The merge is computed in float32 on the CPU and cast to `--dtype` afterwards
  (default: the base's own dtype), so a float32 export gives the logits of base + adapter.
  Methods whose weights do not fold into the base (LLaMA-Adapter's gated attention prompt, prefix and
  prompt tuning's virtual tokens) are refused with exit 2 before anything loads.
- without it: a clean adapter directory (adapter_config.json, adapter_model.safetensors, the
  tokenizer): what `PeftModel.from_pretrained(base, DIR)` reads, without checkpoints' optimizer state,
  manifests, peft's template README or leftovers of interrupted writes.

The model and adapter are loaded as `peftctl eval` loads them (generate.setup_model). DIR is written
through files.write_dir_atomic: it appears whole or not at all, replacing what was there (peftctl
refuses an existing non-empty DIR unless --force). stdout carries JSON lines: `{"type": "stage",
"stage": "load" | "merge" | "save"}` as work proceeds, then `{"type": "exported", ...}` (what was
written), or the event protocol's error event, with the shim's exit codes (contract.py).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

import torch

from peftshim.contract import EXIT_DONE
from peftshim.spec import FullMethod, Ia3Method, JobSpec, LoraMethod, SpecError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEFAULT_MAX_SHARD_SIZE = "5GB"
# What PeftModel.from_pretrained and AutoTokenizer.from_pretrained read from an adapter directory.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                   "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json")
_WHY_NOT_MERGEABLE = {
    "adapter": "LLaMA-Adapter adds gated attention over learned prompts, which no base weight can hold",
    "prefix": "prefix tuning feeds learned key/value prefixes to every layer, which no base weight can hold",
    "prompt": "prompt tuning prepends learned virtual tokens to the input, which no base weight can hold",
}


@dataclasses.dataclass(frozen=True)
class Export:
    spec: JobSpec
    adapter: Path  # the run's adapter/ or a checkpoint's adapter/
    out_dir: Path
    merge: bool
    dtype: str | None  # None: the base's (merged) or the adapter's as saved
    max_shard_size: str = DEFAULT_MAX_SHARD_SIZE


def mergeable(spec: JobSpec) -> bool:
    """LoRA (DoRA too) and IA3 fold into the base's weights; full fine-tuning already is the model."""
    return isinstance(spec.method, (LoraMethod, Ia3Method, FullMethod))


def check_export(job: Export) -> None:
    """What can be refused before loading anything: an unmergeable method, a missing adapter, a bad dtype."""
    if job.dtype is not None and job.dtype not in DTYPES:
        raise SpecError("arguments", "--dtype", f"expected one of {', '.join(DTYPES)}, got {job.dtype!r}")
    if job.merge and not mergeable(job.spec):
        kind = job.spec.method.kind
        raise SpecError("arguments", "--merge", f"method {kind} cannot be merged into the base model: "
                        f"{_WHY_NOT_MERGEABLE.get(kind, 'peft has no merge for it')}; export without --merge "
                        "for the adapter directory (it loads with PeftModel.from_pretrained on the base)")
    wanted = "config.json" if isinstance(job.spec.method, FullMethod) else "adapter_config.json"
    if not (job.adapter / wanted).is_file():
        raise SpecError("arguments", "--adapter", f"no adapter at {job.adapter} (no {wanted}; did the run finish?)")


def export(job: Export, *, out: TextIO | None = None) -> int:
    """Writes job.out_dir; returns the exit code."""
    from peftshim.files import write_dir_atomic

    stream = out if out is not None else sys.stdout
    check_export(job)
    merged = job.merge or isinstance(job.spec.method, FullMethod)  # a full fine-tune is a whole model either way
    if merged:
        model, tokenizer = merged_model(job, stream)
        dtype = DTYPES[job.dtype] if job.dtype is not None else base_dtype(job.spec)
        model = model.to(dtype)
        _line(stream, {"type": "stage", "stage": "save"})
        write_dir_atomic(job.out_dir, lambda tmp: _save_model(model, tokenizer, tmp, job.max_shard_size))
    else:
        dtype = DTYPES[job.dtype] if job.dtype is not None else None
        _line(stream, {"type": "stage", "stage": "save"})
        write_dir_atomic(job.out_dir, lambda tmp: copy_adapter(job, tmp, dtype))
    files = sorted(p.name for p in job.out_dir.iterdir() if p.is_file())
    _line(stream, {"type": "exported", "dir": str(job.out_dir), "merged": merged, "method": job.spec.method.kind,
                   "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "as saved",
                   "adapter": str(job.adapter), "files": files,
                   "bytes": sum((job.out_dir / name).stat().st_size for name in files)})
    return EXIT_DONE


def merged_model(job: Export, stream: TextIO) -> tuple[Any, Any]:
    """The base with the adapter merged in (float32, CPU), and the tokenizer training used."""
    from peft import PeftModel

    from peftshim.examples import training_text
    from peftshim.generate import setup_model, train_split

    # float32 whatever the base's dtype: merging in half precision would round the sum W + BA twice.
    spec = dataclasses.replace(job.spec, model=dataclasses.replace(job.spec.model, dtype="float32"))
    _line(stream, {"type": "stage", "stage": "load"})
    model, tokenizer = setup_model(spec, job.adapter, lambda: training_text(train_split(spec)), device=torch.device("cpu"))
    if isinstance(model, PeftModel):
        _line(stream, {"type": "stage", "stage": "merge"})
        model = model.merge_and_unload()
    return model, tokenizer


def base_dtype(spec: JobSpec) -> torch.dtype:
    """The base model's dtype: model.dtype when the config names one, else the checkpoint's own (float32 for
    the built-in models, which the shim creates in float32 on the CPU)."""
    from peftshim.model import BUILTIN_MODELS

    if spec.model.dtype in DTYPES:
        return DTYPES[spec.model.dtype]
    if spec.model.base in BUILTIN_MODELS:
        return torch.float32
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(spec.model.base, revision=spec.model.revision,
                                        trust_remote_code=spec.model.trust_remote_code)
    found = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(found, str):
        found = DTYPES.get(found)
    return found if isinstance(found, torch.dtype) and found in DTYPES.values() else torch.float32


def _save_model(model: Any, tokenizer: Any, out_dir: Path, max_shard_size: str) -> None:
    model.config.use_cache = True  # training may have turned it off for gradient checkpointing
    model.save_pretrained(out_dir, max_shard_size=max_shard_size)  # safetensors: transformers' only format
    if model.can_generate() and not (out_dir / "generation_config.json").is_file():
        model.generation_config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def copy_adapter(job: Export, out_dir: Path, dtype: torch.dtype | None) -> None:
    """The adapter's weights and config and the run's tokenizer; nothing else."""
    adapter = job.adapter
    for name in ADAPTER_FILES:
        if not (adapter / name).is_file():
            raise SpecError("arguments", "--adapter", f"{adapter} has no {name}")
    if dtype is None:
        shutil.copyfile(adapter / "adapter_model.safetensors", out_dir / "adapter_model.safetensors")
    else:
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as f:
            metadata = f.metadata()
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        cast = {key: t.to(dtype) if t.is_floating_point() else t for key, t in tensors.items()}
        save_file(cast, str(out_dir / "adapter_model.safetensors"), metadata=metadata)
    shutil.copyfile(adapter / "adapter_config.json", out_dir / "adapter_config.json")
    saved = [name for name in TOKENIZER_FILES if (adapter / name).is_file()]
    for name in saved:
        shutil.copyfile(adapter / name, out_dir / name)
    if not saved:  # a checkpoint's adapter: the tokenizer is saved with the final one only
        run_tokenizer(job.spec).save_pretrained(out_dir)


def run_tokenizer(spec: JobSpec) -> Any:
    """The tokenizer training used: the one saved with the final adapter, else rebuilt as training built it."""
    from transformers import AutoTokenizer

    final = spec.run_dir / "adapter"
    if (final / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(final))
    from peftshim.model import BUILTIN_MODELS, builtin_tokenizer

    if spec.model.base in BUILTIN_MODELS:
        from peftshim.examples import training_text
        from peftshim.generate import train_split
        from peftshim.train import cache_dir

        return builtin_tokenizer(lambda: training_text(train_split(spec)), cache_dir=cache_dir())
    return AutoTokenizer.from_pretrained(spec.model.base, revision=spec.model.revision,
                                         trust_remote_code=spec.model.trust_remote_code)


def _line(stream: TextIO, value: dict[str, Any]) -> None:
    stream.write(json.dumps(value) + "\n")
    stream.flush()
