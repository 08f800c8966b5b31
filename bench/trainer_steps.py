"""HF Trainer's own training loop driven one optimizer step at a time (for bench/throughput.py).

Trainer.train() owns its loop, so to interleave its steps with another path's on a shared machine it
runs in a worker thread that waits in on_step_end until the benchmark asks for the next step; only
one of the two threads computes at a time. A PhaseClock (step_phases.py) gets the optimizer marks.
"""

from __future__ import annotations

import queue
import threading

from transformers import Trainer, TrainerCallback

from step_phases import PhaseClock

_FINISHED = object()


class _StepHandoff(TrainerCallback):
    """Hands control back to the benchmark after each optimizer step of Trainer.train()."""

    def __init__(self, steps: TrainerSteps, clock: PhaseClock | None) -> None:
        self.steps, self.clock = steps, clock

    def on_pre_optimizer_step(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.clock:
            self.clock.mark("optimizer start")

    def on_optimizer_step(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.clock:
            self.clock.mark("optimizer end")

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.steps.done.put(None)
        self.steps.go.acquire()
        if self.steps.stopping:
            control.should_training_stop = True
        return control


class TrainerSteps:
    """Trainer.train()'s own loop, one optimizer step per `step()` call.

    The loop runs in a worker thread that waits in on_step_end until the next call, so the benchmark
    can interleave its steps with the shim's; only one of the two threads computes at a time.
    """

    def __init__(self, trainer: Trainer, clock: PhaseClock | None) -> None:
        self.done: queue.Queue[object] = queue.Queue()
        self.go = threading.Semaphore(0)
        self.stopping = False
        trainer.add_callback(_StepHandoff(self, clock))
        self._thread = threading.Thread(target=self._train, args=(trainer,), daemon=True, name="trainer")
        self._started = False

    def _train(self, trainer: Trainer) -> None:
        try:
            trainer.train()
        except BaseException as error:  # noqa: BLE001 - re-raised in the benchmark's thread
            self.done.put(error)
            return
        self.done.put(_FINISHED)

    def step(self) -> None:
        if self._started:
            self.go.release()
        else:
            self._started = True
            self._thread.start()
        item = self.done.get()
        if isinstance(item, BaseException):
            raise RuntimeError(f"Trainer failed: {item!r}") from item
        if item is _FINISHED:
            raise RuntimeError("Trainer finished before its last step")

    def close(self) -> None:
        """Lets train() return: after its last step, or at once when the benchmark stops early."""
        if not self._started:
            return
        self.stopping = True
        self.go.release()
        item = self.done.get()
        self._thread.join()
        if isinstance(item, BaseException):
            raise RuntimeError(f"Trainer failed: {item!r}") from item
