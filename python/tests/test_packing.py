"""Packing: isolation of packed examples per attention implementation, determinism, row limits."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

from peftshim.contract import IGNORE_INDEX
from peftshim.examples import Example
from peftshim.model import TINY_LLAMA, builtin_config, load_base_model
from peftshim.packing import collate, make_batches, pad_fraction
from peftshim.spec import ModelSpec, SpecError

VOCAB = 2048


def random_examples(count: int, seed: int, low: int = 3, high: int = 60) -> list[Example]:
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        n = rng.randint(low, high)
        ids = [rng.randrange(1, VOCAB) for _ in range(n)]
        cut = rng.randint(1, n - 1)
        examples.append(Example(ids, [IGNORE_INDEX] * cut + ids[cut:]))
    return examples


def allowed_attention() -> list[str]:
    # flex_attention trains only on CUDA (the shim refuses it on CPU: test_flex_attention_refused_on_cpu)
    return ["sdpa", "eager"] + (["flex_attention"] if torch.cuda.is_available() else [])


def assert_packed_equals_alone(model: torch.nn.Module, attn: str, device: torch.device) -> None:
    examples = random_examples(9, seed=3, low=5, high=40)
    batches = make_batches(examples, max_length=96, micro_batch_size=2, packing=True, pad_id=0, seed=1, epoch=0)
    assert any(len(row) > 1 for b in batches for row in b.rows), "nothing was packed together"
    checked = 0
    with torch.no_grad():
        for batch in batches:
            inputs = collate(batch, attn_implementation=attn, device=device, dtype=torch.float32)
            packed_logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
            for r, row in enumerate(batch.rows):
                start = 0
                for example in row:
                    end = start + len(example.input_ids)
                    assert batch.input_ids[r][start:end] == list(example.input_ids)
                    alone = model(input_ids=torch.tensor([example.input_ids], device=device)).logits[0]
                    difference = (packed_logits[r, start:end] - alone).abs().max().item()
                    assert difference < 1e-4, f"{attn}: example at row {r} [{start}:{end}] differs by {difference}"
                    checked += 1
                    start = end
    assert checked == len(examples)


@pytest.mark.parametrize("attn", allowed_attention())
def test_packed_logits_equal_each_example_alone(attn: str) -> None:
    device = torch.device("cuda" if attn == "flex_attention" else "cpu")
    torch.manual_seed(0)
    model = LlamaForCausalLM(builtin_config(TINY_LLAMA, VOCAB, attn=attn)).to(device).eval()
    assert_packed_equals_alone(model, attn, device)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packing_isolates_on_gpt2_too(attn: str) -> None:
    # the DialoGPT baseline (full fine-tuning) is a GPT-2 and packs like the LLaMAs
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=2, attn_implementation=attn,
                        bos_token_id=1, eos_token_id=1)
    assert_packed_equals_alone(GPT2LMHeadModel(config).eval(), attn, torch.device("cpu"))


def test_restarting_positions_alone_would_not_isolate() -> None:
    # guards the premise of the explicit mask: without it, the second example sees the first
    torch.manual_seed(0)
    model = LlamaForCausalLM(builtin_config(TINY_LLAMA, VOCAB, attn="sdpa")).eval()
    a, b = random_examples(2, seed=5, low=20, high=30)
    batch = make_batches([a, b], max_length=64, micro_batch_size=1, packing=True, pad_id=0, seed=0, epoch=0)[0]
    inputs = collate(batch, attn_implementation="sdpa", device=torch.device("cpu"))
    with torch.no_grad():
        unmasked = model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"]).logits
        masked = model(input_ids=inputs["input_ids"], position_ids=inputs["position_ids"], attention_mask=inputs["attention_mask"]).logits
    assert (unmasked - masked).abs().max().item() > 1e-3


def test_flex_attention_refused_on_cpu(tmp_path: Path) -> None:
    spec = ModelSpec(base=TINY_LLAMA, revision=None, dtype="auto", attn="flex_attention", trust_remote_code=False)
    with pytest.raises(SpecError, match="model.attn.*flex_attention cannot train on the CPU"):
        load_base_model(spec, device=torch.device("cpu"), dtype=torch.float32, tokenizer_texts=None, cache_dir=tmp_path)


def test_packing_is_deterministic_per_seed_and_epoch() -> None:
    examples = random_examples(200, seed=7)

    def layout(seed: int, epoch: int) -> list[list[list[int]]]:
        batches = make_batches(examples, max_length=128, micro_batch_size=4, packing=True, pad_id=0, seed=seed, epoch=epoch)
        return [b.input_ids for b in batches]

    assert layout(1, 0) == layout(1, 0)
    assert layout(1, 0) != layout(1, 1)
    assert layout(1, 0) != layout(2, 0)


def test_rows_hold_whole_examples_within_max_length() -> None:
    examples = random_examples(300, seed=11, high=100)
    max_length = 128
    batches = make_batches(examples, max_length=max_length, micro_batch_size=3, packing=True, pad_id=0, seed=4, epoch=2)
    seen: list[tuple[int, ...]] = []
    for batch in batches:
        assert len(batch.input_ids) <= 3
        for row, documents in zip(batch.input_ids, batch.document_ids):
            assert len(row) <= max_length
            for d in sorted(set(documents)):
                positions = [t for t, x in enumerate(documents) if x == d]
                assert positions == list(range(positions[0], positions[-1] + 1)), "a document is not contiguous"
                tokens = tuple(row[positions[0] : positions[-1] + 1])
                if set(tokens) != {0}:  # examples use ids >= 1; the padding document is all pad_id 0
                    seen.append(tokens)
    assert sorted(seen) == sorted(tuple(e.input_ids) for e in examples), "every example exactly once, unsplit"
    assert sum(b.num_examples for b in batches) == len(examples)
    # best-fit decreasing leaves little room: far fewer rows than examples
    assert sum(len(b.input_ids) for b in batches) < len(examples) / 2


def test_first_label_of_each_example_is_ignored_and_targets_counted() -> None:
    examples = random_examples(20, seed=2)
    batches = make_batches(examples, max_length=200, micro_batch_size=2, packing=True, pad_id=0, seed=0, epoch=0)
    for batch in batches:
        for r, positions in enumerate(batch.position_ids):
            for t, p in enumerate(positions):
                if p == 0:
                    assert batch.labels[r][t] == IGNORE_INDEX
        assert batch.target_tokens == sum(1 for row in batch.labels for x in row if x != IGNORE_INDEX)


def test_unpacked_batches_pad_to_their_longest_example() -> None:
    examples = random_examples(10, seed=9)
    batches = make_batches(examples, max_length=128, micro_batch_size=4, packing=False, pad_id=5, seed=0, epoch=0)
    assert [b.num_examples for b in batches] == [4, 4, 2]
    for batch in batches:
        inputs = collate(batch, attn_implementation="sdpa", device=torch.device("cpu"))
        assert set(inputs) == {"input_ids", "labels", "attention_mask"}
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        assert inputs["input_ids"].shape[1] == max(lengths)
        for r, n in enumerate(lengths):
            assert (inputs["input_ids"][r, n:] == 5).all()
            assert (inputs["labels"][r, n:] == IGNORE_INDEX).all()
            assert inputs["attention_mask"][r, :n].all()


def test_pad_fraction_counts_padding_positions() -> None:
    examples = [Example([1] * n, [1] * n) for n in (10, 4, 6)]
    unpacked = make_batches(examples, max_length=16, micro_batch_size=3, packing=False, pad_id=0, seed=0, epoch=0)
    assert pad_fraction(unpacked) == pytest.approx(1 - 20 / 30)
    packed = make_batches(examples, max_length=16, micro_batch_size=3, packing=True, pad_id=0, seed=0, epoch=0)
    assert pad_fraction(packed) == pytest.approx(1 - 20 / 32)  # rows [10, 6] and [4], padded to 16
    assert pad_fraction([]) == 0.0


def test_eager_mask_is_additive_in_the_model_dtype() -> None:
    examples = random_examples(4, seed=1)
    batch = make_batches(examples, max_length=256, micro_batch_size=1, packing=True, pad_id=0, seed=0, epoch=0)[0]
    mask = collate(batch, attn_implementation="eager", device=torch.device("cpu"), dtype=torch.bfloat16)["attention_mask"]
    assert mask.dtype == torch.bfloat16 and mask.dim() == 4
    assert set(mask.unique().tolist()) == {0.0, torch.finfo(torch.bfloat16).min}


def test_too_long_example_is_rejected() -> None:
    with pytest.raises(ValueError, match="expected 1..8"):
        make_batches([Example([1] * 9, [1] * 9)], max_length=8, micro_batch_size=1, packing=True, pad_id=0, seed=0, epoch=0)
