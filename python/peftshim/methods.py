"""PEFT methods: the job spec's method (spec.MethodSpec) -> a peft model (or the model itself for full).

kind     peft config                       notes
lora     LoraConfig                        r, alpha, dropout, target_modules ([all-linear] allowed),
                                           use_dora, use_rslora, bias
adapter  AdaptionPromptConfig              LLaMA-Adapter: adapter_len, adapter_layers (top layers);
                                           peft supports llama, mistral and gpt2 models only
ia3      IA3Config                         target_modules, feedforward_modules (a subset of them)
prefix   PrefixTuningConfig                num_virtual_tokens (peft feeds them as past_key_values;
                                           peft refuses it with gradient checkpointing, and
                                           compiling recompiles every layer: config rules)
prompt   PromptTuningConfig                num_virtual_tokens; init_text -> PromptTuningInit.TEXT
full     none                              every weight trains (baselines such as DialoGPT)

A quantized base model (model.quantization, QLoRA) goes through peft's prepare_model_for_kbit_training
first; full fine-tuning of one is refused.

Module names differ between architectures (LLaMA q_proj/v_proj, GPT-2 c_attn/c_proj/c_fc); a
target that matches nothing is a SpecError naming the field and listing the model's own names.
Prompt and prefix tuning prepend virtual tokens that peft only knows how to add to a 2D mask, so
they cannot train on packed rows: `supports_packing` says so and train.py pads per batch for them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import (
    AdaptionPromptConfig,
    IA3Config,
    LoraConfig,
    PeftConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptTuningConfig,
    PromptTuningInit,
    get_peft_model,
    prepare_model_for_kbit_training,
)
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.pytorch_utils import Conv1D

from peftshim.quantization import is_quantized
from peftshim.spec import (
    AdapterMethod,
    FullMethod,
    Ia3Method,
    LoraMethod,
    MethodSpec,
    PrefixMethod,
    PromptMethod,
    SpecError,
)

_ADAPTION_PROMPT_MODEL_TYPES = ("llama", "mistral", "gpt2")


def supports_packing(method: MethodSpec) -> bool:
    """Whether examples may be packed for this method (not for prompt and prefix tuning)."""
    return not isinstance(method, (PrefixMethod, PromptMethod))


def apply_method(
    model: PreTrainedModel,
    method: MethodSpec,
    *,
    gradient_checkpointing: bool,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> torch.nn.Module:
    """Wrap `model` for `method` (the job spec's method).

    Returns the PeftModel, or `model` itself for full fine-tuning (every parameter trainable).
    gradient_checkpointing turns on non-reentrant activation checkpointing; for peft methods the
    input embeddings are also made to require grad, so checkpointed segments see a grad path.
    `tokenizer` is needed for prompt tuning with init_text (peft re-loads it by its path).
    Raises SpecError for settings this model cannot take (unknown target modules, too many adapter
    layers, an architecture LLaMA-Adapter does not support).
    """
    if is_quantized(model):
        if isinstance(method, FullMethod):  # config rules refuse it; a hand-written job.json too
            raise SpecError("job.json", "method.kind", "full fine-tuning cannot train a quantized model; use lora")
        # Freezes the base, upcasts what is not quantized to fp32 (norms, embeddings, head) for stable
        # training, and turns on checkpointing the way k-bit layers need it.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if isinstance(method, FullMethod):
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    if gradient_checkpointing:
        model.enable_input_require_grads()
    return get_peft_model(model, peft_config(model, method, tokenizer=tokenizer))


def peft_config(
    model: PreTrainedModel, method: MethodSpec, *, tokenizer: PreTrainedTokenizerBase | None = None
) -> PeftConfig:
    """The peft config for a method, checked against `model` (see apply_method)."""
    if isinstance(method, LoraMethod):
        targets = _target_modules(model, method.target_modules, "method.target_modules")
        return LoraConfig(
            task_type="CAUSAL_LM",
            r=method.r,
            lora_alpha=method.alpha,
            lora_dropout=method.dropout,
            target_modules=targets,
            use_dora=method.use_dora,
            use_rslora=method.use_rslora,
            bias=method.bias,
            # GPT-2's Conv1D stores weights transposed; saying so spares peft's warning and its guess
            fan_in_fan_out=_targets_conv1d(model, targets),
        )
    if isinstance(method, AdapterMethod):
        return _adaption_prompt_config(model, method)
    if isinstance(method, Ia3Method):
        targets = _target_modules(model, method.target_modules, "method.target_modules")
        return IA3Config(task_type="CAUSAL_LM", target_modules=targets, feedforward_modules=list(method.feedforward_modules))
    if isinstance(method, PrefixMethod):
        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=method.num_virtual_tokens)
    if isinstance(method, PromptMethod):
        return _prompt_tuning_config(method, tokenizer)
    raise TypeError(f"{method.kind} fine-tuning has no peft config")


def _adaption_prompt_config(model: PreTrainedModel, method: AdapterMethod) -> AdaptionPromptConfig:
    model_type = model.config.model_type
    if model_type not in _ADAPTION_PROMPT_MODEL_TYPES:
        raise SpecError(
            "job.json", "method.kind",
            f"adapter (LLaMA-Adapter) supports {', '.join(_ADAPTION_PROMPT_MODEL_TYPES)} models; this one is {model_type}",
        )
    layers = model.config.num_hidden_layers
    if method.adapter_layers > layers:
        raise SpecError("job.json", "method.adapter_layers", f"{method.adapter_layers} exceeds the model's {layers} layers")
    return AdaptionPromptConfig(task_type="CAUSAL_LM", adapter_len=method.adapter_len, adapter_layers=method.adapter_layers)


def _prompt_tuning_config(method: PromptMethod, tokenizer: PreTrainedTokenizerBase | None) -> PromptTuningConfig:
    if not method.init_text:
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=method.num_virtual_tokens)
    if tokenizer is None or not tokenizer.name_or_path:
        raise ValueError("prompt tuning with init_text needs the tokenizer (loaded from a path or Hub id)")
    return PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=method.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=method.init_text,
        tokenizer_name_or_path=str(tokenizer.name_or_path),
    )


def _target_modules(model: PreTrainedModel, requested: list[str], field: str) -> str | list[str]:
    """`requested` for peft, after checking that each name matches one of the model's layers.

    peft would fail on the first miss only with a generic message; naming the model's own linear
    layers tells a user moving from LLaMA (q_proj, v_proj) to GPT-2 (c_attn) what to write.
    """
    if requested == ["all-linear"]:
        return "all-linear"
    available = sorted(
        {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, (torch.nn.Linear, Conv1D))}
    )
    missing = [name for name in requested if name not in available]
    if missing:
        raise SpecError(
            "job.json", field,
            f"{', '.join(missing)} not found in this {model.config.model_type} model; its linear layers are "
            f"{', '.join(available)} (or use [all-linear])",
        )
    return list(requested)


def _targets_conv1d(model: PreTrainedModel, targets: str | list[str]) -> bool:
    if isinstance(targets, str):  # all-linear: peft decides per module
        return False
    return any(isinstance(module, Conv1D) and name.rsplit(".", 1)[-1] in targets for name, module in model.named_modules())


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; for a peft model the total includes the base model."""
    if isinstance(model, PeftModel):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def save_trainable(model: torch.nn.Module, out_dir: Path) -> None:
    """Save what was trained to `out_dir`.

    A peft model writes adapter_model.safetensors + adapter_config.json (PeftModel.save_pretrained,
    loadable with PeftModel.from_pretrained on the same base); full fine-tuning writes the whole
    model (model.save_pretrained, safetensors).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        # The shim never resizes the vocabulary, so the base model's embeddings are never part of the
        # adapter. peft's default ("auto") would save them whenever lm_head is a target (262 MB for
        # LLaMA-7B, per checkpoint) and otherwise asks the Hub whether the base config changed, a
        # network call on every checkpoint.
        model.save_pretrained(out_dir, save_embedding_layers=False)
    elif isinstance(model, PreTrainedModel):
        model.save_pretrained(out_dir)
    else:
        raise TypeError(f"cannot save a {type(model).__name__}: expected a PeftModel or a PreTrainedModel")
