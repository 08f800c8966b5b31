"""The training objective: cross-entropy over the supervised tokens, with logits only where they count.

A causal LM's forward computes logits at every position (rows x length x vocabulary: 262M numbers
for LLaMA-7B at 8 x 1024, which transformers' loss then upcasts to fp32), yet only the positions
followed by a label are scored: the responses, a fraction of each dialogue. `target_loss` runs the
model without labels while a pre-hook on its output layer keeps just those positions' hidden
states, so the output projection, its fp32 copy and the softmax cost what the targets need.

The value equals transformers' ForCausalLMLoss with the same `num_items_in_batch` (the sum of the
token losses divided by it); test_loss.py checks loss and gradients for every method. Every causal
LM in transformers feeds its output layer `hidden_states[:, slice, :]` and only applies elementwise
operations (softcapping, scaling) after it, which is what makes the hook valid for all of them.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from peftshim.contract import IGNORE_INDEX


def target_loss(model: torch.nn.Module, inputs: Mapping[str, Any], *, num_items: int) -> torch.Tensor:
    """Summed cross-entropy of the labelled tokens in `inputs` (which holds `labels`) / `num_items`.

    `model` may be wrapped in DistributedDataParallel (its forward then syncs the gradients).
    """
    labels: torch.Tensor = inputs["labels"]
    targets = labels[:, 1:]
    scored = targets != IGNORE_INDEX
    # position t is scored when it is followed by a label; the last position never is
    keep = F.pad(scored, (0, 1), value=False)

    def keep_scored_positions(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        hidden = args[0]
        positions = keep
        if hidden.shape[1] > positions.shape[1]:
            # prompt tuning: peft prepends the virtual tokens to the sequence, and they are never scored
            positions = F.pad(positions, (hidden.shape[1] - positions.shape[1], 0), value=False)
        return (hidden[positions], *args[1:])

    inner = model.module if isinstance(model, DistributedDataParallel) else model  # DDP runs the forward
    handle = inner.get_output_embeddings().register_forward_pre_hook(keep_scored_positions)
    try:
        logits = model(**{name: value for name, value in inputs.items() if name != "labels"}, use_cache=False).logits
    finally:
        handle.remove()
    return F.cross_entropy(logits.float(), targets[scored], reduction="sum") / max(1, num_items)
