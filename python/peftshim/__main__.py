"""`python -m peftshim train --job <run_dir>/job.json [--resume] [--force] [--attempt N]`.

Exit codes: 0 done; 2 bad job spec, data or fingerprint (not retryable); 3 out of memory;
75 interrupted after saving a checkpoint (resumable); 1 anything else. Every failure also emits an
`error` event and prints one line on stderr; only exit 1 adds the stack trace.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from pathlib import Path

from peftshim.events import EventWriter
from peftshim.spec import SpecError, load_spec

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_OOM = 3


class StopSignals:
    """SIGTERM/SIGINT only raise a flag: training finishes its optimizer step, checkpoints and exits 75.

    A second signal while the checkpoint is being written is recorded and otherwise ignored, so it
    cannot leave a half-written checkpoint behind.
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m peftshim", description="peftctl's training shim")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one run from its job.json")
    train.add_argument("--job", required=True, type=Path, help="the run's job.json")
    train.add_argument("--resume", action="store_true", help="continue from the newest valid checkpoint")
    train.add_argument("--force", action="store_true", help="resume even if the job or data fingerprint changed")
    train.add_argument("--attempt", type=int, default=1, help="attempt number (1 for the first)")
    return parser


def _writer_for_bad_spec(job: Path) -> EventWriter:
    """An event writer for a spec that failed validation: best-effort run id, the job's directory."""
    run_id = job.parent.name
    try:
        raw = json.loads(job.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and isinstance(raw.get("run_id"), str):
            run_id = raw["run_id"]
    except (OSError, ValueError):
        pass
    return EventWriter(run_id, job.parent / "events.jsonl" if job.parent.is_dir() else None)


def _fail(events: EventWriter, kind: str, message: str, code: int, *, retryable: bool = False) -> int:
    try:
        events.error(kind=kind, message=message, retryable=retryable)
    finally:
        print(f"peftshim: error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.attempt < 1:
        print("peftshim: error: --attempt must be a positive integer", file=sys.stderr)
        return EXIT_BAD_INPUT
    job: Path = args.job

    # Signals are caught from the very start, so that a stop during model loading is not a crash.
    stop = StopSignals()
    stop.install()
    try:
        spec = load_spec(job)
    except SpecError as err:
        return _fail(_writer_for_bad_spec(job), "spec", str(err), EXIT_BAD_INPUT)

    spec.run_dir.mkdir(parents=True, exist_ok=True)
    events = EventWriter(spec.run_id, spec.run_dir / "events.jsonl")
    import torch

    from peftshim.checkpoint import FingerprintError
    from peftshim.data import DataError
    from peftshim.ranks import rank_from_env
    from peftshim.train import train

    # Under torchrun only rank 0 reports progress; every rank still reports its own failure below.
    progress = events if rank_from_env() == 0 else EventWriter(spec.run_id, None, quiet=True)
    try:
        return train(spec, events=progress, attempt=args.attempt, resume=args.resume, force=args.force, stop=stop)
    except SpecError as err:
        return _fail(events, "spec", str(err), EXIT_BAD_INPUT)
    except DataError as err:
        return _fail(events, "data", str(err), EXIT_BAD_INPUT)
    except FingerprintError as err:
        return _fail(events, "fingerprint", str(err), EXIT_BAD_INPUT)
    except torch.OutOfMemoryError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else "CUDA out of memory"
        return _fail(events, "oom", f"out of memory: {first_line}", EXIT_OOM, retryable=True)
    except Exception as err:  # noqa: BLE001 - the one place that turns any failure into exit 1
        traceback.print_exc(file=sys.stderr)
        return _fail(events, "internal", f"{type(err).__name__}: {err}", EXIT_FAILED)


if __name__ == "__main__":
    exit_code = main()
    # Python restores the default handlers while it shuts down; a late second signal would then
    # turn exit 75 into a death by signal. Nothing is left to stop now, so ignore them.
    for late in (signal.SIGINT, signal.SIGTERM):
        signal.signal(late, signal.SIG_IGN)
    sys.exit(exit_code)
