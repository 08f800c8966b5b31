"""The phases of one training step, marked by hooks so that bench/throughput.py splits every path alike.

Phases, in order: input (collating, a Trainer's data loader and bookkeeping), body forward (up to
the output layer), head forward (the output layer), loss (forward and backward of the fp32
cross-entropy: between the logits and their gradient), head backward, body backward (to the last
trainable parameter's gradient), clip, optimizer, other (scheduler, zeroing, a Trainer's loop).
"""

from __future__ import annotations

import time
from typing import Any

import torch

PHASES = ("input", "body forward", "head forward", "loss", "head backward", "body backward", "clip", "optimizer",
          "other")
# the marks that end each phase but the last, in step order
_MARKS = ("forward", "head", "logits", "logits grad", "hidden grad", "grads", "optimizer start", "optimizer end")


class PhaseClock:
    """Marks the phases of a training step on a causal LM with hooks, so the shim and the Trainer are split alike.

    Forward pre-hook of the causal LM: forward starts; pre-hook of its output layer: the body is done
    (and a grad hook on its input: the head's backward is done); forward hook of the output layer:
    logits (and a grad hook on them: the loss's forward and backward are done); post-accumulate hooks
    on the trainable parameters: the last one ends the backward. Optimizer start and end are marked by
    the caller. A mark that does not fire takes the previous one's time (a phase of 0).
    """

    def __init__(self, model: torch.nn.Module, *, synchronize: bool) -> None:
        self.synchronize = synchronize
        self.marks: dict[str, float] = {}
        self.start = 0.0
        self.steps: list[dict[str, float]] = []
        causal = model.get_base_model() if hasattr(model, "get_base_model") else model
        head = causal.get_output_embeddings()
        self._handles = [
            causal.register_forward_pre_hook(lambda _m, _a: self.mark("forward")),
            # registered before loss.target_loss's own pre-hook, so this one sees the whole hidden state
            head.register_forward_pre_hook(self._head_input),
            head.register_forward_hook(self._head_output),
        ]
        for parameter in model.parameters():
            if parameter.requires_grad:
                self._handles.append(parameter.register_post_accumulate_grad_hook(lambda _p: self.mark("grads")))

    def _head_input(self, _module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        self.mark("head")
        if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            args[0].register_hook(lambda _grad: self.mark("hidden grad"))

    def _head_output(self, _module: torch.nn.Module, _args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.mark("logits")
        if output.requires_grad:
            output.register_hook(lambda _grad: self.mark("logits grad"))

    def mark(self, name: str) -> None:
        if self.synchronize:
            torch.cuda.synchronize()
        self.marks[name] = time.perf_counter()

    def begin(self, start: float) -> None:
        self.marks, self.start = {}, start

    def end(self, end: float) -> None:
        times, last = [self.start], self.start
        for name in _MARKS:
            last = max(last, self.marks.get(name, last))
            times.append(last)
        times.append(max(last, end))
        self.steps.append({phase: times[i + 1] - times[i] for i, phase in enumerate(PHASES)})

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
