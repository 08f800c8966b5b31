"""PEFT methods on the tiny LLaMA: wrapping, trainable counts, a training step, saving and loading."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from peftshim.contract import IGNORE_INDEX
from peftshim.examples import Example
from peftshim.methods import apply_method, count_parameters, save_trainable, supports_packing
from peftshim.model import TINY_LLAMA, build_builtin_model, builtin_tokenizer
from peftshim.packing import collate, make_batches
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

CPU = torch.device("cpu")
TEXTS = ["How are you feeling today? I have been low since I lost my job."] * 30
LAYERS, HIDDEN, KV_DIM, FFN = 4, 256, 128, 688  # tiny-llama: 2 kv heads of 64

LORA = LoraMethod(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"], use_dora=False, use_rslora=False,
                  bias="none")
METHODS: dict[str, tuple[MethodSpec, int | None]] = {
    # name: (method spec, expected trainable parameters; None = every parameter)
    "lora": (LORA, LAYERS * 8 * ((HIDDEN + HIDDEN) + (HIDDEN + KV_DIM))),
    "dora-rslora": (replace(LORA, use_dora=True, use_rslora=True),
                    LAYERS * (8 * ((HIDDEN + HIDDEN) + (HIDDEN + KV_DIM)) + HIDDEN + KV_DIM)),
    "adapter": (AdapterMethod(adapter_len=4, adapter_layers=3), 3 * (4 * HIDDEN + 1)),
    "ia3": (Ia3Method(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]),
            LAYERS * (KV_DIM + KV_DIM + FFN)),
    "prefix": (PrefixMethod(num_virtual_tokens=5), 5 * LAYERS * 2 * KV_DIM),
    "prompt": (PromptMethod(num_virtual_tokens=5), 5 * HIDDEN),
    "full": (FullMethod(), None),
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return builtin_tokenizer(lambda: TEXTS, cache_dir=tmp_path_factory.mktemp("cache"))


def tiny(tokenizer, attn: str = "sdpa"):  # type: ignore[no-untyped-def]
    return build_builtin_model(TINY_LLAMA, tokenizer, device=CPU, dtype=torch.float32, attn=attn)


def examples(tokenizer, count: int = 6) -> list[Example]:  # type: ignore[no-untyped-def]
    rng = random.Random(0)
    out = []
    for _ in range(count):
        n = rng.randint(6, 24)
        ids = [rng.randrange(3, len(tokenizer)) for _ in range(n)]
        out.append(Example(ids, [IGNORE_INDEX] * (n // 2) + ids[n // 2 :]))
    return out


def training_inputs(tokenizer, method: MethodSpec, attn: str = "sdpa") -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    batch = make_batches(examples(tokenizer), max_length=64, micro_batch_size=4, packing=supports_packing(method),
                         pad_id=tokenizer.pad_token_id, seed=0, epoch=0)[0]
    return collate(batch, attn_implementation=attn, device=CPU)  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(METHODS))
def test_method_wraps_trains_and_saves(name: str, tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    method, expected_trainable = METHODS[name]
    base = tiny(tokenizer)
    base_total = sum(p.numel() for p in base.parameters())
    model = apply_method(base, method, gradient_checkpointing=False)
    trainable, total = count_parameters(model)
    assert trainable == (base_total if expected_trainable is None else expected_trainable)
    assert total == base_total + (0 if name == "full" else trainable)

    model.train()
    loss = model(**training_inputs(tokenizer, method)).loss
    assert torch.isfinite(loss)
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{parameter_name} got no gradient"
        else:
            assert parameter.grad is None, f"frozen {parameter_name} got a gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)

    # move the trained weights off their initialisation so a wrong load would show
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.01 * torch.randn_like(parameter))
    model.eval()
    probe = {"input_ids": torch.tensor([examples(tokenizer)[0].input_ids])}
    with torch.no_grad():
        expected = model(**probe).logits

    save_trainable(model, tmp_path / "out")
    if name == "full":
        assert (tmp_path / "out" / "model.safetensors").is_file()
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    else:
        assert {"adapter_model.safetensors", "adapter_config.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
        loaded = PeftModel.from_pretrained(tiny(tokenizer), tmp_path / "out").eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**probe).logits, expected, atol=1e-5)


def test_adapters_hold_no_base_weights_and_saving_asks_no_hub(tokenizer, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import peft.utils.save_and_load
    from safetensors.torch import load_file

    def no_hub(*_args: Any, **_kwargs: Any) -> bool:
        raise AssertionError("saving an adapter asked the Hub")

    monkeypatch.setattr(peft.utils.save_and_load, "check_file_exists_on_hf_hub", no_hub)
    for targets in (["q_proj", "v_proj"], ["q_proj", "v_proj", "lm_head"]):
        model = apply_method(tiny(tokenizer), replace(LORA, target_modules=targets), gradient_checkpointing=False)
        model.peft_config["default"].base_model_name_or_path = "meta-llama/Llama-2-7b-hf"  # as for a Hub base
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.add_(0.01 * torch.randn_like(parameter))
        out = tmp_path / "-".join(targets)
        save_trainable(model, out)
        saved = load_file(str(out / "adapter_model.safetensors"))
        assert saved and all("lora_" in key for key in saved), sorted(saved)  # no lm_head or embedding copy
        probe = torch.tensor([examples(tokenizer)[0].input_ids])
        loaded = PeftModel.from_pretrained(tiny(tokenizer), out).eval()
        with torch.no_grad():
            assert torch.allclose(loaded(input_ids=probe).logits, model.eval()(input_ids=probe).logits, atol=1e-5)


@pytest.mark.parametrize("name", ["lora", "adapter", "ia3", "prompt", "full"])
def test_gradient_checkpointing_trains(name: str, tokenizer) -> None:  # type: ignore[no-untyped-def]
    method = METHODS[name][0]
    model = apply_method(tiny(tokenizer), method, gradient_checkpointing=True)
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    assert base.is_gradient_checkpointing
    model.train()
    model(**training_inputs(tokenizer, method)).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["lora", "adapter", "ia3"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packable_methods_keep_packed_examples_isolated(name: str, attn: str, tokenizer) -> None:  # type: ignore[no-untyped-def]
    method = METHODS[name][0]
    assert supports_packing(method)
    model = apply_method(tiny(tokenizer, attn), method, gradient_checkpointing=False)
    with torch.no_grad():  # non-zero adapters (LoRA B and adapter gates start at zero)
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(0.05 * torch.randn_like(parameter))
    model.eval()
    items = examples(tokenizer, 4)
    batch = make_batches(items, max_length=128, micro_batch_size=1, packing=True, pad_id=0, seed=0, epoch=0)[0]
    assert batch.num_examples == 4
    inputs = collate(batch, attn_implementation=attn, device=CPU)
    with torch.no_grad():
        packed = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits[0]
        for start in [t for t, p in enumerate(batch.position_ids[0]) if p == 0][: batch.num_examples]:
            n = next(len(e.input_ids) for e in items if e.input_ids == batch.input_ids[0][start : start + len(e.input_ids)])
            alone = model(input_ids=torch.tensor([batch.input_ids[0][start : start + n]])).logits[0]
            assert (packed[start : start + n] - alone).abs().max().item() < 1e-4


def test_virtual_token_methods_do_not_pack() -> None:
    assert not supports_packing(PrefixMethod(num_virtual_tokens=4))
    assert not supports_packing(PromptMethod(num_virtual_tokens=4))
    assert supports_packing(LORA) and supports_packing(FullMethod())


def test_prompt_tuning_starts_from_init_text(tokenizer) -> None:  # type: ignore[no-untyped-def]
    text = "Be kind and supportive."
    base = tiny(tokenizer)
    model = apply_method(base, PromptMethod(num_virtual_tokens=3, init_text=text), gradient_checkpointing=False,
                         tokenizer=tokenizer)
    ids = tokenizer(text)["input_ids"][:3]
    prompt = model.prompt_encoder["default"].embedding.weight
    assert torch.equal(prompt, base.get_input_embeddings().weight[ids])


def test_target_modules_missing_from_the_architecture_is_a_spec_error() -> None:
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=64, n_layer=2, n_head=2))
    with pytest.raises(SpecError, match=r"method.target_modules: q_proj, v_proj not found in this gpt2 model; .*c_attn"):
        apply_method(gpt2, LORA, gradient_checkpointing=False)
    model = apply_method(gpt2, replace(LORA, target_modules=["c_attn"]), gradient_checkpointing=False)
    assert count_parameters(model)[0] == 2 * 8 * (64 + 3 * 64)


def test_adapter_layers_beyond_the_model_is_a_spec_error(tokenizer) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match="method.adapter_layers: 30 exceeds the model's 4 layers"):
        apply_method(tiny(tokenizer), AdapterMethod(adapter_len=10, adapter_layers=30), gradient_checkpointing=False)

