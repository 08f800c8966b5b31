"""`python -m peftshim train --job <run_dir>/job.json [--resume] [--force] [--attempt N] [--micro-batch-size M]`
and `python -m peftshim validate --job A.json [--job B.json ...]`
and `python -m peftshim data-summary --format F --path P [--strategy S] [--columns J] [--source J] [--head N]`
(the plan's token estimate; with --head, `peftctl validate`'s check of the first records)
and `python -m peftshim generate --job <run_dir>/job.json --out DIR [--split test|valid] [--limit N]
[--adapter PATH | --base]` (`peftctl eval`: responses to a split, generate.py; exit 75 when stopped)
and `python -m peftshim chat --job <run_dir>/job.json [--adapter PATH | --base] [--scene TEXT]` (`peftctl chat`:
JSON lines in on stdin, out on stdout, chat.py)
and `python -m peftshim export --job <run_dir>/job.json --out DIR [--adapter PATH] [--merge] [--dtype D]`
(`peftctl export`: a clean adapter directory, or the adapter merged into the base; export.py).

Exit codes (contract.py): 0 done; 2 bad job spec, arguments, data or fingerprint (not retryable), or
GPUs this torch cannot use (error kind environment); 3 out of memory; 4 no space left while saving
(disk_full); 75 interrupted after saving a checkpoint (resumable); 1 anything else. Every
failure of `train` also emits an `error` event and prints one line on stderr; only exit 1 adds the
stack trace. `validate` prints `ok <file>`, or one `<file>: <field.path>: <message>` line per
violation (exit 2).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable

from peftshim.contract import EXIT_BAD_INPUT, EXIT_DONE, EXIT_FAILED, EXIT_NO_SPACE, EXIT_OOM, FORMATS, STRATEGY_MODES
from peftshim.events import EventWriter
from peftshim.spec import JobSpec, SpecError, load_spec
from peftshim.version import controller_version_problem


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
    train.add_argument("--micro-batch-size", type=int, default=None,
                       help="rows per forward pass, a divisor of train.micro_batch_size (default: that); "
                            "the global batch stays the same (out-of-memory back-off)")
    validate = commands.add_parser("validate", help="check job files against the job schema")
    validate.add_argument("--job", required=True, type=Path, action="append", help="a job.json (repeatable)")
    summary = commands.add_parser("data-summary", help="examples and their mean length in a data file, as JSON (for the plan)")
    summary.add_argument("--format", required=True, choices=FORMATS)
    summary.add_argument("--path", required=True, help="a data file, a save_to_disk directory or hf://datasets/<org>/<name>")
    summary.add_argument("--strategy", choices=STRATEGY_MODES, default=STRATEGY_MODES[0])
    summary.add_argument("--columns", type=json.loads, default=None, help="data.columns as JSON")
    summary.add_argument("--source", type=json.loads, default=None, help="data.source as JSON")
    summary.add_argument("--head", type=int, default=None, help="only the first N records (`peftctl validate`'s check)")
    generate = commands.add_parser("generate", help="responses to every example of a split, with the run's adapter")
    generate.add_argument("--job", required=True, type=Path, help="the run's job.json")
    generate.add_argument("--out", required=True, type=Path, help="output directory (settings, generations, events)")
    generate.add_argument("--split", choices=("test", "valid"), default="test")
    generate.add_argument("--limit", type=int, default=None, help="only the split's first N examples")
    which = generate.add_mutually_exclusive_group()
    which.add_argument("--adapter", type=Path, default=None, help="adapter directory (default: <run_dir>/adapter)")
    which.add_argument("--base", action="store_true", help="the base model alone (zero-shot)")
    chat = commands.add_parser("chat", help="talk to the run's adapter: JSON lines on stdin and stdout (chat.py)")
    chat.add_argument("--job", required=True, type=Path, help="the run's job.json")
    chat.add_argument("--scene", default="", help="the seeker's situation, the training template's scene")
    chatting = chat.add_mutually_exclusive_group()
    chatting.add_argument("--adapter", type=Path, default=None, help="adapter directory (default: <run_dir>/adapter)")
    chatting.add_argument("--base", action="store_true", help="the base model alone")
    exporting = commands.add_parser("export", help="the run's adapter as a clean directory, or merged into the base (export.py)")
    exporting.add_argument("--job", required=True, type=Path, help="the run's job.json")
    exporting.add_argument("--out", required=True, type=Path, help="the directory to write (replaced whole)")
    exporting.add_argument("--adapter", type=Path, default=None, help="adapter directory (default: <run_dir>/adapter)")
    exporting.add_argument("--merge", action="store_true", help="merge the adapter into the base: a plain transformers model")
    exporting.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the base's)")
    exporting.add_argument("--max-shard-size", default="5GB", help="largest safetensors shard of a merged model")
    return parser


def validate(jobs: list[Path]) -> int:
    bad = False
    for job in jobs:
        try:
            load_spec(job)
        except SpecError as err:
            bad = True
            for violation in err.violations:
                print(f"{job}: {violation}")
        else:
            print(f"ok {job}")
    return EXIT_BAD_INPUT if bad else EXIT_DONE


def data_summary(args: argparse.Namespace) -> int:
    """What the planner's token estimate needs, read by the same readers and counted as training counts
    it; with --head, the check of the first records that `peftctl validate` makes."""
    from peftshim.datasource import Source
    from peftshim.dialogues import DataError, read_dialogues
    from peftshim.examples import example_chars

    try:
        if args.head is not None and args.head < 1:
            raise DataError("--head must be a positive integer")
        source = Source(**args.source) if isinstance(args.source, dict) else None
        dialogues, stats = read_dialogues(args.format, args.path, columns=args.columns, source=source, head=args.head)
    except (DataError, TypeError) as err:  # TypeError: a --source with other keys than data.source's
        print(f"peftshim: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    lengths = list(example_chars(dialogues, args.strategy))
    print(json.dumps({"dialogues": stats.dialogues, "examples": len(lengths),
                      "mean_chars": sum(lengths) / len(lengths) if lengths else 0.0}))
    return EXIT_DONE


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
    # Each best effort: on a full disk neither events.jsonl nor stderr.log may take the line; the
    # exit code still tells the controller what happened.
    try:
        events.error(kind=kind, message=message, retryable=retryable)
    except OSError:
        pass
    try:
        print(f"peftshim: error: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass
    return code


def _micro_batch_problem(spec: JobSpec, micro_batch_size: int | None) -> str | None:
    planned = spec.train.micro_batch_size
    if micro_batch_size is None or (micro_batch_size >= 1 and planned % micro_batch_size == 0):
        return None
    return (f"--micro-batch-size {micro_batch_size}: expected a divisor of train.micro_batch_size ({planned}), "
            "so that a step still holds the planned global batch")


# True in a `python -m peftshim` process (also under torchrun); in-process callers (tests) keep their imports.
_OWN_PROCESS = False


def _hide_bitsandbytes_unless_quantized(job: object) -> None:
    """peft and transformers import bitsandbytes at their own import whenever it is installed: 1.5 s (and
    torch's inductor) at every start of the shim. A job that quantizes nothing hides it from them: for a
    None entry in sys.modules, importlib.util.find_spec (their availability check) answers None."""
    if not _OWN_PROCESS or not isinstance(job, Path) or "bitsandbytes" in sys.modules:
        return
    try:
        quantization = json.loads(job.read_text(encoding="utf-8")).get("model", {}).get("quantization")
    except (OSError, ValueError, AttributeError):
        return  # load_spec says what is wrong with the file
    if quantization is None:
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _hide_bitsandbytes_unless_quantized(getattr(args, "job", None))
    mismatch = controller_version_problem()
    if mismatch is not None:
        if args.command == "train":
            return _fail(_writer_for_bad_spec(args.job), "environment", mismatch, EXIT_BAD_INPUT)
        print(f"peftshim: error: {mismatch}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command == "validate":
        return validate(args.job)
    if args.command == "data-summary":
        return data_summary(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "chat":
        return _chat(args)
    if args.command == "export":
        return _export(args)
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
    except Exception as err:  # noqa: BLE001 - e.g. no job schema: a broken installation
        traceback.print_exc(file=sys.stderr)
        return _fail(_writer_for_bad_spec(job), "internal", f"{type(err).__name__}: {err}", EXIT_FAILED)

    spec.run_dir.mkdir(parents=True, exist_ok=True)
    events = EventWriter(spec.run_id, spec.run_dir / "events.jsonl")
    problem = _micro_batch_problem(spec, args.micro_batch_size)
    if problem is not None:
        return _fail(events, "spec", problem, EXIT_BAD_INPUT)
    return _train(spec, args, events, stop)


def _generate(args: argparse.Namespace) -> int:
    """`generate`: the spec, then generate.generate under the same failure handling as training."""
    stop = StopSignals()  # before the imports of torch and transformers: a stop while loading is no crash
    stop.install()
    from peftshim.generate import EVENTS_FILE, Generation, generate

    if args.limit is not None and args.limit < 1:
        print("peftshim: error: --limit must be a positive integer", file=sys.stderr)
        return EXIT_BAD_INPUT
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        spec = load_spec(args.job)
    except SpecError as err:
        return _fail(EventWriter(_writer_for_bad_spec(args.job).run_id, out / EVENTS_FILE), "spec", str(err), EXIT_BAD_INPUT)
    events = EventWriter(spec.run_id, out / EVENTS_FILE)
    adapter = None if args.base else (args.adapter or spec.run_dir / "adapter")
    job = Generation(spec=spec, out_dir=out, split=args.split, limit=args.limit, adapter=adapter)
    return _guarded(events, lambda: generate(job, stop=stop, events=events))


def _export(args: argparse.Namespace) -> int:
    """`export`: failures as the event protocol's error line on stdout (no events file)."""
    from peftshim.export import Export, export

    try:
        spec = load_spec(args.job)
    except SpecError as err:
        return _fail(EventWriter(_writer_for_bad_spec(args.job).run_id, None), "spec", str(err), EXIT_BAD_INPUT)
    job = Export(spec=spec, adapter=args.adapter or spec.run_dir / "adapter", out_dir=args.out, merge=args.merge,
                 dtype=args.dtype, max_shard_size=args.max_shard_size)
    return _guarded(EventWriter(spec.run_id, None), lambda: export(job))


def _chat(args: argparse.Namespace) -> int:
    """`chat`: failures as the event protocol's error line on stdout (no events file); Ctrl-C is a quiet exit 130."""
    try:
        from peftshim.chat import chat, json_emitter, stdin_lines

        try:
            spec = load_spec(args.job)
        except SpecError as err:
            return _fail(EventWriter(_writer_for_bad_spec(args.job).run_id, None), "spec", str(err), EXIT_BAD_INPUT)
        adapter = None if args.base else (args.adapter or spec.run_dir / "adapter")
        emit = json_emitter(sys.stdout)
        return _guarded(EventWriter(spec.run_id, None),
                        lambda: chat(spec, adapter, args.scene, lines=stdin_lines(), emit=emit))
    except KeyboardInterrupt:
        return 130


def _train(spec: JobSpec, args: argparse.Namespace, events: EventWriter, stop: StopSignals) -> int:
    """Runs train.train, turning each kind of failure into its error event and exit code."""
    from peftshim.ranks import rank_from_env
    from peftshim.train import train

    # Under torchrun only rank 0 reports progress; every rank still reports its own failure below.
    main_rank = rank_from_env() == 0
    progress = events if main_rank else EventWriter(spec.run_id, None, quiet=True)
    # The experiment trackers listen on rank 0's events, its error events included (trackers.py).
    trackers = _trackers(spec, events) if main_rank else None
    try:
        return _guarded(events, lambda: train(spec, events=progress, attempt=args.attempt, resume=args.resume,
                                              force=args.force, stop=stop, micro_batch_size=args.micro_batch_size))
    finally:
        if trackers is not None:
            trackers.close()


def _trackers(spec: JobSpec, events: EventWriter):  # -> trackers.Trackers | None
    if spec.logging is None:
        return None  # no tracker's import on the way of a job without them
    from peftshim.trackers import Trackers

    return Trackers(spec, events)


def _guarded(events: EventWriter, work: Callable[[], int]) -> int:
    """Runs `work`, turning each kind of failure into its error event and exit code."""
    import torch

    from peftshim.checkpoint import FingerprintError
    from peftshim.dialogues import DataError
    from peftshim.files import NoSpaceError, is_no_space
    from peftshim.quantization import QuantizationUnavailable
    from peftshim.train import DeviceUnavailable

    try:
        return work()
    except SpecError as err:
        return _fail(events, "spec", str(err), EXIT_BAD_INPUT)
    except DataError as err:
        return _fail(events, "data", str(err), EXIT_BAD_INPUT)
    except FingerprintError as err:
        return _fail(events, "fingerprint", str(err), EXIT_BAD_INPUT)
    except torch.OutOfMemoryError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else "CUDA out of memory"
        return _fail(events, "oom", f"out of memory: {first_line}", EXIT_OOM, retryable=True)
    except (DeviceUnavailable, QuantizationUnavailable) as err:  # retryable: the job is fine, the host needs fixing
        return _fail(events, "environment", str(err), EXIT_BAD_INPUT, retryable=True)
    except Exception as err:  # noqa: BLE001 - the one place that turns any failure into exit 1
        if is_no_space(err):  # a write outside files.py (a library's cache) ran out of space, too
            message = str(err) if isinstance(err, NoSpaceError) else f"no space left: {type(err).__name__}: {err}"
            return _fail(events, "disk_full", message, EXIT_NO_SPACE, retryable=True)
        traceback.print_exc(file=sys.stderr)
        return _fail(events, "internal", f"{type(err).__name__}: {err}", EXIT_FAILED)


if __name__ == "__main__":
    _OWN_PROCESS = True
    exit_code = main()
    # Python restores the default handlers while it shuts down; a late second signal would then
    # turn exit 75 into a death by signal. Nothing is left to stop now, so ignore them.
    for late in (signal.SIGINT, signal.SIGTERM):
        signal.signal(late, signal.SIG_IGN)
    sys.exit(exit_code)
