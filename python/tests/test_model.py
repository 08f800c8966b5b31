"""Base models: the built-in LLaMAs, the cached built-in tokenizer, from_pretrained on a local directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peftshim import tokenizer as tokenizer_module
from peftshim.model import (
    LLAMA_7B_SHAPE,
    TINY_LLAMA,
    build_builtin_model,
    builtin_tokenizer,
    load_base_model,
    resolve_dtype,
)
from peftshim.spec import ModelSpec, SpecError

TEXTS = [
    "I feel anxious about my exams next week and cannot sleep.",
    "That sounds really stressful. What part of the exams worries you most?",
    "Mostly the maths, I keep failing the practice tests.",
] * 20
PYTHON_DIR = Path(__file__).resolve().parents[1]


def spec(base: str = TINY_LLAMA, attn: str = "sdpa") -> ModelSpec:
    return ModelSpec(base=base, revision=None, dtype="auto", attn=attn, trust_remote_code=False)


def test_resolve_dtype() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16


def test_tiny_llama_has_the_requested_shape(tmp_path: Path) -> None:
    model, tokenizer = load_base_model(
        spec(attn="eager"), device=torch.device("cpu"), dtype=torch.float32, tokenizer_texts=lambda: TEXTS, cache_dir=tmp_path
    )
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (256, 4, 4, 2)
    assert c.intermediate_size == 688 and c.max_position_embeddings >= 2048
    assert c.vocab_size == len(tokenizer) <= 2048
    assert c._attn_implementation == "eager"
    assert c.pad_token_id == tokenizer.pad_token_id is not None
    parameters = sum(p.numel() for p in model.parameters())
    assert 2_000_000 < parameters < 10_000_000
    assert next(model.parameters()).dtype == torch.float32
    ids = tokenizer("I feel anxious", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], c.vocab_size)


def test_builtin_weights_are_deterministic_per_seed(tmp_path: Path) -> None:
    tokenizer = builtin_tokenizer(lambda: TEXTS, cache_dir=tmp_path)
    cpu = torch.device("cpu")

    def weights(seed: int) -> torch.Tensor:
        model = build_builtin_model(TINY_LLAMA, tokenizer, device=cpu, dtype=torch.float32, attn="sdpa", seed=seed)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    state = torch.random.get_rng_state()
    first = weights(0)
    assert torch.equal(torch.random.get_rng_state(), state), "building must not move the global RNG"
    assert torch.equal(first, weights(0))
    assert not torch.equal(first, weights(1))


def test_builtin_tokenizer_is_cached_by_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list[int] = []
    real_train = tokenizer_module.train_tokenizer

    def counting_train(texts, vocab_size=2048):  # type: ignore[no-untyped-def]
        trained.append(vocab_size)
        return real_train(texts, vocab_size=vocab_size)

    monkeypatch.setattr(tokenizer_module, "train_tokenizer", counting_train)
    first = builtin_tokenizer(lambda: TEXTS, cache_dir=tmp_path)
    second = builtin_tokenizer(lambda: TEXTS, cache_dir=tmp_path)
    assert trained == [2048], "the second call must hit the cache"
    assert first.encode(TEXTS[0]) == second.encode(TEXTS[0])
    assert first.decode(first.encode(TEXTS[1], add_special_tokens=False)) == TEXTS[1]
    builtin_tokenizer(lambda: TEXTS + ["new text changes the recipe"], cache_dir=tmp_path)
    assert len(trained) == 2
    assert len(list((tmp_path / "tokenizers").iterdir())) == 2
    assert not [p for p in (tmp_path / "tokenizers").iterdir() if p.name.startswith(".tmp-")]


def test_llama_7b_shape_has_the_llama_7b_architecture(tmp_path: Path) -> None:
    tokenizer = builtin_tokenizer(None, cache_dir=tmp_path)  # the fixed fallback text
    model = build_builtin_model(LLAMA_7B_SHAPE, tokenizer, device=torch.device("meta"), dtype=torch.bfloat16, attn="sdpa")
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size, c.vocab_size) == (
        4096, 32, 32, 11008, 32000,
    )
    assert sum(p.numel() for p in model.parameters()) == 6_738_415_616
    assert next(model.parameters()).dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32


def test_unknown_builtin_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="model.base.*builtin:nope"):
        load_base_model(spec("builtin:nope"), device=torch.device("cpu"), dtype=torch.float32, tokenizer_texts=None, cache_dir=tmp_path)


def test_hub_path_loads_a_saved_directory_offline(tmp_path: Path) -> None:
    model, tokenizer = load_base_model(
        spec(), device=torch.device("cpu"), dtype=torch.float32, tokenizer_texts=lambda: TEXTS, cache_dir=tmp_path / "cache"
    )
    saved = tmp_path / "saved-model"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    ids = tokenizer(TEXTS[0]).input_ids
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids])).logits[0, -1, :5].tolist()
    # a fresh interpreter, so huggingface_hub reads HF_HUB_OFFLINE/HF_HOME at import as in a real run
    script = f"""
import json, torch
from peftshim.model import load_base_model
model, tokenizer = load_base_model({{"base": {str(saved)!r}, "dtype": "bfloat16", "attn": "eager"}},
    device=torch.device("cpu"), dtype=torch.bfloat16, tokenizer_texts=None, cache_dir={str(tmp_path / "unused")!r})
ids = tokenizer({TEXTS[0]!r}).input_ids
model = model.float()
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0, -1, :5].tolist()
print(json.dumps({{"attn": model.config._attn_implementation, "ids": ids, "logits": logits,
    "pad": tokenizer.pad_token_id}}))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(PYTHON_DIR)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["attn"] == "eager"
    assert loaded["ids"] == ids
    assert loaded["pad"] == tokenizer.pad_token_id
    # loaded in bfloat16: equal to the saved fp32 model within bf16 rounding
    assert loaded["logits"] == pytest.approx(expected, abs=0.1)
    assert not (tmp_path / "unused").exists(), "a Hub model must not train a tokenizer"
