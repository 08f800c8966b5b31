"""target_loss against transformers' own loss: the same value and the same gradients, for every method."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from peftshim.contract import IGNORE_INDEX
from peftshim.examples import Example
from peftshim.loss import target_loss
from peftshim.methods import apply_method, supports_packing
from peftshim.model import TINY_LLAMA, build_builtin_model, builtin_tokenizer
from peftshim.packing import collate, make_batches
from peftshim.spec import AdapterMethod, FullMethod, Ia3Method, LoraMethod, MethodSpec, PrefixMethod, PromptMethod

CPU = torch.device("cpu")
NO_DROPOUT_LORA = LoraMethod(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj", "lm_head"], use_dora=False,
                             use_rslora=False, bias="none")
METHODS: dict[str, MethodSpec] = {
    "lora+lm_head": NO_DROPOUT_LORA,
    "dora": replace(NO_DROPOUT_LORA, use_dora=True, target_modules=["q_proj", "v_proj"]),
    "adapter": AdapterMethod(adapter_len=4, adapter_layers=2),
    "ia3": Ia3Method(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"]),
    "prefix": PrefixMethod(num_virtual_tokens=3),
    "prompt": PromptMethod(num_virtual_tokens=3, init_text=None),
    "full": FullMethod(),
}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    texts = ["I have not slept well since the move, and work feels heavier every day."] * 20
    return builtin_tokenizer(lambda: texts, cache_dir=tmp_path_factory.mktemp("cache"))


def random_examples(vocab: int, count: int = 7) -> list[Example]:
    rng = random.Random(5)
    out = []
    for _ in range(count):
        n = rng.randint(5, 30)
        ids = [rng.randrange(3, vocab) for _ in range(n)]
        cut = rng.randint(1, n - 1)
        out.append(Example(ids, [IGNORE_INDEX] * cut + ids[cut:]))
    return out


def loss_and_grads(model: torch.nn.Module, compute) -> tuple[float, dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    return float(loss.detach()), grads


def assert_same_objective(model: torch.nn.Module, inputs: dict[str, Any], num_items: int) -> None:
    model.train()
    expected, expected_grads = loss_and_grads(model, lambda: model(**inputs, num_items_in_batch=num_items).loss)
    actual, actual_grads = loss_and_grads(model, lambda: target_loss(model, inputs, num_items=num_items))
    assert actual == pytest.approx(expected, rel=1e-6)
    assert set(actual_grads) == set(expected_grads) and actual_grads
    for name, grad in expected_grads.items():
        assert torch.allclose(actual_grads[name], grad, rtol=1e-4, atol=1e-7), name


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_target_loss_equals_the_models_loss(name: str, attn: str, tokenizer) -> None:  # type: ignore[no-untyped-def]
    method = METHODS[name]
    base = build_builtin_model(TINY_LLAMA, tokenizer, device=CPU, dtype=torch.float32, attn=attn)
    model = apply_method(base, method, gradient_checkpointing=False, tokenizer=tokenizer)
    batch = make_batches(random_examples(len(tokenizer)), max_length=48, micro_batch_size=3,
                         packing=supports_packing(method), pad_id=tokenizer.pad_token_id, seed=0, epoch=0)[0]
    inputs = collate(batch, attn_implementation=attn, device=CPU)
    # the normaliser of an accumulated step is larger than this micro-batch's own count
    assert_same_objective(model, inputs, num_items=batch.target_tokens + 11)


@pytest.mark.parametrize("method", [FullMethod(), replace(NO_DROPOUT_LORA, target_modules=["c_attn"])])
def test_target_loss_on_gpt2_with_tied_embeddings(method: MethodSpec) -> None:
    """DialoGPT's architecture: GPT-2, whose output layer shares its weight with the input embeddings."""
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    assert gpt2.get_output_embeddings().weight is gpt2.get_input_embeddings().weight
    model = apply_method(gpt2, method, gradient_checkpointing=False)
    batch = make_batches(random_examples(300), max_length=48, micro_batch_size=3, packing=True, pad_id=0,
                         seed=0, epoch=0)[0]
    assert_same_objective(model, collate(batch, attn_implementation="sdpa", device=CPU), num_items=batch.target_tokens)


def test_a_micro_batch_without_targets_adds_nothing(tokenizer) -> None:  # type: ignore[no-untyped-def]
    model = build_builtin_model(TINY_LLAMA, tokenizer, device=CPU, dtype=torch.float32, attn="sdpa")
    ids = torch.tensor([[5, 6, 7, 8]])
    loss = target_loss(model, {"input_ids": ids, "labels": torch.full_like(ids, IGNORE_INDEX)}, num_items=10)
    assert float(loss) == 0.0
    loss.backward()  # an empty selection still backpropagates (zero gradients), so accumulation never breaks


def test_the_output_layer_is_left_unhooked(tokenizer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = build_builtin_model(TINY_LLAMA, tokenizer, device=CPU, dtype=torch.float32, attn="sdpa")
    ids = torch.tensor([[5, 6, 7, 8]])
    target_loss(model, {"input_ids": ids, "labels": ids}, num_items=3)
    assert model(input_ids=ids).logits.shape == (1, 4, len(tokenizer))  # generation and eval see every position
