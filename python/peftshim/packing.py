"""Micro-batches of training examples: packed rows that keep each example to itself, or padded rows.

Packing puts several examples into one row of at most `max_length` tokens (best-fit decreasing, so
rows are nearly full). Restarting `position_ids` per example isolates them only on some call paths:
transformers derives a per-example mask from them only while the model builds no key/value cache, so
under `use_cache=True` (a plain loop's default) examples mix (max |packed - alone| > 1, measured:
docs/benchmarks.md). `collate` therefore builds the mask explicitly from per-token document ids:

- sdpa: a 4D boolean block-diagonal causal mask (True = may attend);
- eager: the same mask in additive form (0 / dtype min), because transformers' eager attention adds
  the mask to the scores (a boolean mask there would add 0/1 and isolate nothing);
- flex_attention: a BlockMask built from the document ids (GPU only: flex has no backward on CPU).

A 4D mask is passed through by transformers as-is. Padding at the end of a row forms its own
document, so no query row is fully masked (a fully masked row would give NaN under sdpa), and its
labels are -100. The first label of every example is -100 too: in a packed row the token before it
belongs to the previous example, and in an unpacked row the causal shift drops it anyway.

Without packing (`packing=False`, and always for prompt and prefix tuning, whose virtual tokens peft
prepends to a 2D mask only: see methods.supports_packing), each micro-batch is right-padded to its
longest example and gets a 2D attention mask; transformers builds the causal mask itself.

Order is deterministic per (seed, epoch): examples are shuffled with a string-seeded
`random.Random`, which does not depend on PYTHONHASHSEED.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Protocol, Sequence

import torch

from peftshim.contract import IGNORE_INDEX

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention")


class _TokenLists(Protocol):
    """What packing needs of an example (examples.Example has these two fields)."""

    input_ids: Sequence[int]
    labels: Sequence[int]


@dataclass(frozen=True)
class Batch:
    """One micro-batch: rows of whole examples, padded to the longest row when read.

    The token lists (input_ids, labels, position_ids, document_ids; every row `width` long) are
    built on demand from the examples, so an epoch of batches costs no more memory than the
    examples themselves. `document_ids[r][t]` numbers the examples within row r (0, 1, ...);
    padding has its own number. `num_examples` is how many training examples the batch holds (for
    accumulating about train.batch_size examples per optimizer step); `target_tokens` how many
    labels the loss counts; `real_tokens` how many positions are not padding.
    """

    rows: tuple[tuple[_TokenLists, ...], ...]
    width: int
    pad_id: int
    packed: bool
    num_examples: int
    real_tokens: int
    target_tokens: int

    @property
    def total_tokens(self) -> int:
        return len(self.rows) * self.width

    @property
    def input_ids(self) -> list[list[int]]:
        return [self._padded([t for e in row for t in e.input_ids], self.pad_id) for row in self.rows]

    @property
    def labels(self) -> list[list[int]]:
        # the first label of each example is ignored: see the module docstring
        return [self._padded([x for e in row for x in (IGNORE_INDEX, *e.labels[1:])], IGNORE_INDEX) for row in self.rows]

    @property
    def position_ids(self) -> list[list[int]]:
        rows = [[p for e in row for p in range(len(e.input_ids))] for row in self.rows]
        return [positions + list(range(self.width - len(positions))) for positions in rows]

    @property
    def document_ids(self) -> list[list[int]]:
        return [self._padded([d for d, e in enumerate(row) for _ in e.input_ids], len(row)) for row in self.rows]

    def _padded(self, values: list[int], fill: int) -> list[int]:
        return values + [fill] * (self.width - len(values))


def make_batches(
    examples: Sequence[_TokenLists],
    *,
    max_length: int,
    micro_batch_size: int,
    packing: bool,
    pad_id: int,
    seed: int,
    epoch: int,
) -> list[Batch]:
    """Split `examples` into micro-batches of `micro_batch_size` rows for one epoch.

    packing=True: examples are packed into rows of at most `max_length` tokens (no example is split
    across rows), rows are shuffled and grouped. packing=False: examples are shuffled and grouped,
    one per row. Either way each batch is padded with `pad_id` to its longest row only (when read).
    The result depends only on the examples, the arguments, `seed` and `epoch`.
    Raises ValueError for an empty example or one longer than `max_length` (examples.build_examples
    truncates to max_length, so that means a caller bug).
    """
    if micro_batch_size < 1 or max_length < 1:
        raise ValueError("micro_batch_size and max_length must be positive")
    lengths = [len(e.input_ids) for e in examples]
    for index, (example, length) in enumerate(zip(examples, lengths)):
        if length == 0 or length > max_length:
            raise ValueError(f"example {index} has {length} tokens; expected 1..{max_length}")
        if len(example.labels) != length:
            raise ValueError(f"example {index}: {len(example.labels)} labels for {length} input ids")

    rng = random.Random(f"peftshim-batches:{seed}:{epoch}")
    order = list(range(len(examples)))
    rng.shuffle(order)
    if packing:
        rows = _best_fit_decreasing(order, lengths, max_length)
        rng.shuffle(rows)
    else:
        rows = [[i] for i in order]
    targets = [_target_count(e) for e in examples]
    return [
        _batch(examples, rows[start : start + micro_batch_size], lengths, targets, pad_id, packing)
        for start in range(0, len(rows), micro_batch_size)
    ]


def _best_fit_decreasing(order: list[int], lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of example indices, each summing to <= capacity.

    Best-fit decreasing keeps rows nearly full (within 11/9 of optimal); a sorted list of remaining
    capacities makes each placement a bisection (90k ExTES-sized examples: ~1 s).
    The stable sort keeps the shuffled order among equal lengths, so the rows vary with the epoch.
    """
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, bin index), sorted
    for index in sorted(order, key=lambda i: -lengths[i]):
        length = lengths[index]
        slot = bisect_left(free, (length, -1))
        if slot < len(free):
            remaining, bin_index = free.pop(slot)
            bins[bin_index].append(index)
        else:
            remaining, bin_index = capacity, len(bins)
            bins.append([index])
        remaining -= length
        if remaining > 0:
            insort(free, (remaining, bin_index))
    return bins


def _batch(
    examples: Sequence[_TokenLists], rows: list[list[int]], lengths: list[int], targets: list[int], pad_id: int, packed: bool
) -> Batch:
    row_lengths = [sum(lengths[i] for i in row) for row in rows]
    return Batch(
        rows=tuple(tuple(examples[i] for i in row) for row in rows),
        width=max(row_lengths),
        pad_id=pad_id,
        packed=packed,
        num_examples=sum(len(row) for row in rows),
        real_tokens=sum(row_lengths),
        target_tokens=sum(targets[i] for row in rows for i in row),
    )


def _target_count(example: _TokenLists) -> int:
    """Labels the loss counts: every label but IGNORE_INDEX, never the example's first."""
    labels = example.labels
    return len(labels) - labels.count(IGNORE_INDEX) - (labels[0] != IGNORE_INDEX)


def pad_fraction(batches: Iterable[Batch]) -> float:
    """Share of the token positions in `batches` that are padding (0.0 for no batches)."""
    real = total = 0
    for batch in batches:
        real += batch.real_tokens
        total += batch.total_tokens
    return 0.0 if total == 0 else 1.0 - real / total


def collate(
    batch: Batch,
    *,
    attn_implementation: str,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor | BlockMask]:
    """Tensors for `model(**inputs)`: input_ids, labels, attention_mask and, for packed rows, position_ids.

    `attn_implementation` is the model's (sdpa, eager or flex_attention) and decides the form of a
    packed batch's mask (see the module docstring); `dtype` is the model's compute dtype, used for
    eager's additive mask. An unpacked batch gets a 2D 0/1 mask and no position_ids, so prompt and
    prefix tuning (which prepend virtual tokens to both) see what peft expects.
    """
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation {attn_implementation!r}: expected one of {ATTN_IMPLEMENTATIONS}")
    input_ids = torch.tensor(batch.input_ids, dtype=torch.long, device=device)
    labels = torch.tensor(batch.labels, dtype=torch.long, device=device)
    documents = torch.tensor(batch.document_ids, dtype=torch.long, device=device)
    if not batch.packed:
        # one example per row: document 0 is the example, document 1 its padding
        return {"input_ids": input_ids, "labels": labels, "attention_mask": (documents == 0).long()}
    inputs: dict[str, torch.Tensor | BlockMask] = {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": torch.tensor(batch.position_ids, dtype=torch.long, device=device),
    }
    if attn_implementation == "flex_attention":
        inputs["attention_mask"] = document_block_mask(documents)
        return inputs
    allowed = document_causal_mask(documents)
    if attn_implementation == "sdpa":
        inputs["attention_mask"] = allowed
    else:
        additive = torch.zeros(allowed.shape, dtype=dtype, device=device)
        inputs["attention_mask"] = additive.masked_fill(~allowed, torch.finfo(dtype).min)
    return inputs


def document_causal_mask(documents: torch.Tensor) -> torch.Tensor:
    """(B, 1, S, S) bool: query t may attend key s iff s <= t and both are in the same document."""
    length = documents.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=documents.device).tril()
    return ((documents[:, :, None] == documents[:, None, :]) & causal)[:, None]


def document_block_mask(documents: torch.Tensor) -> BlockMask:
    """The flex_attention BlockMask of document_causal_mask (computed blockwise, never materialised)."""
    from torch.nn.attention.flex_attention import create_block_mask

    batch, length = documents.shape

    def same_document_causal(b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return (q >= kv) & (documents[b, q] == documents[b, kv])

    return create_block_mask(same_document_causal, batch, None, length, length, device=documents.device)
