"""The shim's half of the event protocol: one JSON object per line on stdout and in events.jsonl.

src/runs/events.ts (the zod schema) is the authority; EVENT_FIELDS mirrors it and
test/events-contract.test.ts checks that both agree (`python -m peftshim.events --samples`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TextIO

from peftshim.files import no_space_named

EVENTS_VERSION = 1

# The fields of each event type besides v, t, run_id and type, as in src/runs/events.ts.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "start": ("attempt", "pid", "versions", "device", "params", "resumed_from_step"),
    "data": ("examples", "dialogues", "skipped", "repaired", "mapped", "truncated", "train_tokens", "pad_fraction",
             "fingerprint"),
    "progress": ("step", "total_steps", "epoch", "loss", "lr", "tokens_per_s", "eta_s"),
    "eval": ("step", "loss", "perplexity"),
    "checkpoint": ("step", "path", "manifest_sha256"),
    "interrupted": ("step", "checkpoint", "signal"),
    "done": ("step", "metrics", "adapter_path"),
    "error": ("kind", "message", "retryable"),
    "warning": ("source", "message"),
}

ERROR_KINDS = ("spec", "data", "fingerprint", "environment", "oom", "disk_full", "internal")


def _finite(value: float) -> float:
    """JSON has no NaN or Infinity; a diverged loss is reported as the largest float instead."""
    if math.isnan(value) or math.isinf(value):
        return sys.float_info.max if value > 0 or math.isnan(value) else -sys.float_info.max
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventWriter:
    """Writes events to stdout and appends them to events.jsonl (flushed and fsynced per line).

    `listeners` are called with each event once it is written: the experiment trackers
    (trackers.py) log exactly what the events say, from the same points of the recipe.
    """

    def __init__(self, run_id: str, events_path: Path | None, stream: TextIO | None = None, *,
                 quiet: bool = False) -> None:
        """`quiet`: build and check events but write them nowhere (the ranks of a data-parallel run but 0)."""
        self.run_id = run_id
        self.events_path = events_path
        self.stream = stream if stream is not None else sys.stdout
        self.quiet = quiet
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        expected = EVENT_FIELDS[type_]
        if set(fields) != set(expected):
            raise ValueError(f"event {type_}: fields {sorted(fields)} differ from the protocol's {sorted(expected)}")
        event = {"v": EVENTS_VERSION, "t": _now(), "run_id": self.run_id, "type": type_, **fields}
        line = json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n"
        if self.quiet:
            return event
        # stdout is the run's stdout.log under the controller: a full disk fails there first.
        with no_space_named(self.events_path.with_name("stdout.log") if self.events_path else Path("<stdout>")):
            self.stream.write(line)
            self.stream.flush()
        if self.events_path is not None:
            with no_space_named(self.events_path), open(self.events_path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        for listener in self.listeners:
            listener(event)
        return event

    # One method per event type, so that call sites name every field.

    def start(self, *, attempt: int, versions: dict[str, str], device: str, trainable: int, total: int,
              resumed_from_step: int | None) -> dict[str, Any]:
        return self.emit("start", attempt=attempt, pid=os.getpid(), versions=versions, device=device,
                         params={"trainable": trainable, "total": total}, resumed_from_step=resumed_from_step)

    def data(self, *, examples: dict[str, int], dialogues: int, skipped: dict[str, int], repaired: dict[str, int],
             mapped: dict[str, int], truncated: int, train_tokens: int, pad_fraction: float,
             fingerprint: str) -> dict[str, Any]:
        return self.emit("data", examples=examples, dialogues=dialogues, skipped=dict(skipped),
                         repaired=dict(repaired), mapped=dict(mapped), truncated=truncated, train_tokens=train_tokens,
                         pad_fraction=min(1.0, max(0.0, pad_fraction)), fingerprint=fingerprint)

    def progress(self, *, step: int, total_steps: int, epoch: float, loss: float, lr: float, tokens_per_s: float,
                 eta_s: float) -> dict[str, Any]:
        return self.emit("progress", step=step, total_steps=total_steps, epoch=max(0.0, epoch), loss=_finite(loss),
                         lr=lr, tokens_per_s=max(0.0, tokens_per_s), eta_s=max(0.0, eta_s))

    def eval(self, *, step: int, loss: float, perplexity: float) -> dict[str, Any]:
        return self.emit("eval", step=step, loss=_finite(loss), perplexity=_finite(perplexity))

    def checkpoint(self, *, step: int, path: str, manifest_sha256: str) -> dict[str, Any]:
        return self.emit("checkpoint", step=step, path=path, manifest_sha256=manifest_sha256)

    def interrupted(self, *, step: int, checkpoint: str | None, signal: str) -> dict[str, Any]:
        return self.emit("interrupted", step=step, checkpoint=checkpoint, signal=signal)

    def done(self, *, step: int, metrics: dict[str, float], adapter_path: str) -> dict[str, Any]:
        return self.emit("done", step=step, metrics={k: _finite(float(v)) for k, v in metrics.items()},
                         adapter_path=adapter_path)

    def error(self, *, kind: str, message: str, retryable: bool) -> dict[str, Any]:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind}")
        return self.emit("error", kind=kind, message=message, retryable=retryable)

    def warning(self, *, source: str, message: str) -> dict[str, Any]:
        return self.emit("warning", source=source, message=message)


def emit_samples(writer: EventWriter) -> None:
    """One event of each type through the real emitters (for the contract test)."""
    writer.start(attempt=1, versions={"python": "3", "torch": "x"}, device="cpu", trainable=10, total=100,
                 resumed_from_step=None)
    writer.data(examples={"train": 8, "valid": 1, "test": 1}, dialogues=3, skipped={"empty_turn": 1},
                repaired={"strategy_key_case": 2}, mapped={"role speaker -> seeker": 4}, truncated=0,
                train_tokens=1234, pad_fraction=0.25, fingerprint="ab" * 32)
    writer.progress(step=10, total_steps=100, epoch=0.5, loss=2.5, lr=1e-4, tokens_per_s=1000.0, eta_s=12.0)
    writer.eval(step=10, loss=2.4, perplexity=math.exp(2.4))
    writer.checkpoint(step=10, path="/runs/x/checkpoints/step-000010", manifest_sha256="cd" * 32)
    writer.interrupted(step=11, checkpoint="/runs/x/checkpoints/step-000011", signal="SIGTERM")
    writer.interrupted(step=0, checkpoint=None, signal="SIGINT")
    writer.done(step=100, metrics={"train_loss": 1.5, "eval_loss": float("nan")}, adapter_path="/runs/x/adapter")
    for kind in ERROR_KINDS:
        writer.error(kind=kind, message=f"a {kind} error", retryable=kind == "oom")
    writer.warning(source="mlflow", message="mlflow switched off (starting): ConnectionError: ...")


if __name__ == "__main__":
    if sys.argv[1:] == ["--types"]:
        print(json.dumps({"fields": EVENT_FIELDS, "error_kinds": ERROR_KINDS}))
    elif sys.argv[1:] == ["--samples"]:
        emit_samples(EventWriter("sample-run", None))
    else:
        print("usage: python -m peftshim.events --samples | --types", file=sys.stderr)
        sys.exit(2)
