"""The training recipe: set up data, model and optimizer, restore a checkpoint, loop, finish.

Our own loop rather than transformers' Trainer: exact resumption (data position inside an epoch,
every RNG) and the token-normalised loss over an accumulated step are simpler to get right here.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from transformers import get_scheduler

from peftshim import checkpoint as ckpt
from peftshim.contract import EXIT_DONE, EXIT_INTERRUPTED
from peftshim.dialogues import DataError, DataStats, Dialogue, Turn, data_fingerprint, read_data, source_of, split_dialogues
from peftshim.events import EventWriter
from peftshim.examples import (TEMPLATE_VERSION, Example, build_examples, generation_budget, prompt_ids, training_text,
                               use_chat_template)
from peftshim.files import write_dir_atomic, write_json_atomic, write_text_atomic
from peftshim.loss import target_loss
from peftshim.methods import apply_method, count_parameters, save_trainable, supports_packing
from peftshim.model import compile_decoder_layers, load_base_model, resolve_dtype
from peftshim.packing import Batch, collate, make_batches, pad_fraction
from peftshim.ranks import Ranks, join, leave
from peftshim.spec import FullMethod, JobSpec, SpecError

# transformers' names; "constant" there ignores warm-up, so it maps to the warm-up variant.
_SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class StopRequest(Protocol):
    """Set by the signal handlers (__main__.StopSignals): the name of the signal that asked to stop."""

    received: str | None


@dataclass
class TrainingRun:
    """What the steps of one attempt share: `_setup` fills it in, the loop advances `state`."""

    spec: JobSpec
    ranks: Ranks
    events: EventWriter
    stop: StopRequest
    # Rows per forward pass: the spec's, or a divisor of it after an out-of-memory back-off.
    micro_batch_size: int
    started: float = field(default_factory=time.monotonic)
    # Filled in by _setup.
    device: torch.device = field(init=False)
    dtype: torch.dtype = field(init=False)
    dialogues: dict[str, list[Dialogue]] = field(init=False)  # by split
    data_fingerprint: str = field(init=False)
    data_report: dict[str, Any] = field(init=False)  # the data event's fields
    tokenizer: Any = field(init=False)
    # Eval, generation and saving use `model`; the training step runs `train_model` (DDP under torchrun).
    model: torch.nn.Module = field(init=False)
    train_model: torch.nn.Module = field(init=False)
    train_examples: list[Example] = field(init=False)
    valid_batches: list[Batch] = field(init=False)
    epoch_batches: list[Batch] = field(init=False)  # the micro-batches of state.epoch
    micro_batches_per_step: int = field(init=False)
    total_steps: int = field(init=False)
    optimizer: torch.optim.Optimizer = field(init=False)
    scheduler: Any = field(init=False)
    state: ckpt.TrainerState = field(init=False)
    # Filled in by _restore: training time of the earlier attempts, and the newest checkpoint of the
    # current state as (step, path), so an interruption right after it needs no other. Every rank
    # keeps it, so that all of them take the same branch; the path is rank 0's (None elsewhere).
    runtime_before: float = 0.0
    last_checkpoint: tuple[int, Path | None] | None = None


def train(spec: JobSpec, *, events: EventWriter, attempt: int, resume: bool, force: bool, stop: StopRequest,
          micro_batch_size: int | None = None) -> int:
    """Runs (or resumes) the job; returns the exit code (0 done, 75 interrupted after a checkpoint).

    `micro_batch_size` (default: the spec's) must divide train.micro_batch_size; a step then takes
    proportionally more micro-batches, so the global batch is the planned one.
    Under torchrun (resources.gpus > 1) this is one rank of a data-parallel run (ranks.py); `events`
    is then rank 0's writer, or a quiet one on the other ranks.
    """
    ranks = join(cuda=wants_cuda(spec))
    try:
        # The run (its DDP model) is gone when _train returns, before the process group: freeing the
        # model after the group was destroyed deadlocks in gloo's teardown (measured with 2 ranks).
        return _train(TrainingRun(spec, ranks, events, stop, micro_batch_size or spec.train.micro_batch_size),
                      attempt=attempt, resume=resume, force=force)
    finally:
        leave(ranks)


def _train(run: TrainingRun, *, attempt: int, resume: bool, force: bool) -> int:
    _setup(run)
    rng = _restore(run, resume=resume, force=force)
    _report_start(run, attempt, resumed=rng is not None)
    if rng is not None:
        # Last, so nothing between here and the next step draws from the restored generators.
        ckpt.restore_rng(ckpt.rng_of_rank(rng, run.ranks.rank))
    return _train_loop(run)


# --- setup --------------------------------------------------------------------------------------


def _setup(run: TrainingRun) -> None:
    """Data, model, batches and optimizer, in the order that keeps every seeded draw where it was."""
    spec = run.spec
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(spec.train.seed)
    run.device = pick_device(spec, run.ranks)
    _check_ranks(spec, run.ranks)
    run.dtype = resolve_dtype(spec.model.dtype, run.device)
    run.dialogues, stats, run.data_fingerprint = _setup_dialogues(spec)
    model, run.tokenizer = load_base_model(spec.model, device=run.device, dtype=run.dtype, cache_dir=cache_dir(),
                                           tokenizer_texts=lambda: training_text(run.dialogues["train"]))
    use_chat_template(run.tokenizer, spec.data.chat_template)
    examples, truncated = _setup_examples(run)
    run.model = _setup_model(run, model)
    run.train_model = _setup_data_parallel(run)
    run.train_examples = examples["train"]
    first_epoch = _batches(run, run.train_examples, epoch=0)
    run.valid_batches = _batches(run, examples["valid"], epoch=0) if examples["valid"] else []
    run.micro_batches_per_step = spec.train.micro_batches_per_step * spec.train.micro_batch_size // run.micro_batch_size
    run.total_steps = total_steps_for(spec, rows_per_epoch=sum(len(batch.rows) for batch in first_epoch))
    run.optimizer, run.scheduler = _setup_optimizer(run)
    run.state = ckpt.TrainerState(step=0, epoch=0, batch_index=0, job_fingerprint=spec.job_fingerprint,
                                  data_fingerprint=run.data_fingerprint, micro_batch_size=run.micro_batch_size)
    run.epoch_batches = first_epoch
    run.data_report = _data_report(stats, examples, truncated, first_epoch, run.data_fingerprint)


def _check_ranks(spec: JobSpec, ranks: Ranks) -> None:
    if ranks.distributed and ranks.world != spec.resources.gpus:
        raise SpecError("job.json", "resources.gpus", f"the job plans {spec.resources.gpus} GPU(s) but torchrun started "
                        f"{ranks.world} processes; start one per planned GPU (peftctl run does)")


def _setup_dialogues(spec: JobSpec) -> tuple[dict[str, list[Dialogue]], DataStats, str]:
    """The data file's dialogues by split, what reading them repaired and skipped, and the data fingerprint."""
    dialogues, stats = read_data(spec.data, max_length=spec.data.max_length)
    split = spec.data.split
    by_split = split_dialogues(dialogues, split.train, split.valid, split.test, split.seed)
    fingerprint = data_fingerprint(spec.data.path, _data_params(spec), template_version=TEMPLATE_VERSION,
                                   source=source_of(spec.data))
    return by_split, stats, fingerprint


def _data_params(spec: JobSpec) -> dict[str, Any]:
    """What turns the data file into these examples (the data fingerprint's parameters)."""
    d = spec.data
    params = {"format": d.format, "strategy": d.strategy, "max_length": d.max_length, "max_examples": d.max_examples,
              "split": vars(d.split), "tokenizer_of": spec.model.base, "revision": spec.model.revision}
    # Settings added later count only when set, so earlier runs' fingerprints (and resumption) hold.
    later = {"source": vars(d.source) if d.source is not None else None, "columns": d.columns,
             "chat_template": d.chat_template, "system_prompt": d.system_prompt}
    return {**params, **{key: value for key, value in later.items() if value is not None}}


def _setup_examples(run: TrainingRun) -> tuple[dict[str, list[Example]], int]:
    """Tokenised examples by split, and how many had their target cut to data.max_length."""
    data = run.spec.data
    examples: dict[str, list[Example]] = {}
    truncated = 0
    for name in ("train", "valid", "test"):
        examples[name], cut = build_examples(run.dialogues[name], run.tokenizer, max_length=data.max_length,
                                             strategy=data.strategy, system_prompt=data.system_prompt or "")
        truncated += cut
    if data.max_examples is not None:
        examples["train"] = examples["train"][: data.max_examples]
    if not examples["train"]:
        raise DataError(f"{data.path}: no training example after the split (data.split.train={data.split.train})")
    return examples, truncated


def _setup_model(run: TrainingRun, model: torch.nn.Module) -> torch.nn.Module:
    """The base model wrapped for the method, its decoder layers compiled when train.compile asks."""
    cfg = run.spec.train
    model = apply_method(model, run.spec.method, gradient_checkpointing=cfg.gradient_checkpointing,
                         tokenizer=run.tokenizer)
    if run.spec.model.quantization is not None:
        run.dtype = torch.float32  # k-bit preparation upcast what is not quantized: hidden states are fp32
    if cfg.compile:
        compile_decoder_layers(model)
    return model


def _setup_data_parallel(run: TrainingRun) -> torch.nn.Module:
    if not run.ranks.distributed:
        return run.model
    seed_everything(run.spec.train.seed + run.ranks.rank)  # the weights were drawn alike; dropout differs per rank
    device_ids = [run.device.index] if run.device.type == "cuda" else None
    return DistributedDataParallel(run.model, device_ids=device_ids)


def _setup_optimizer(run: TrainingRun) -> tuple[torch.optim.Optimizer, Any]:
    cfg = run.spec.train
    params = [p for p in run.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=run.device.type == "cuda" or None)
    scheduler = get_scheduler(_SCHEDULERS[cfg.lr_scheduler], optimizer, num_warmup_steps=cfg.warmup_steps,
                              num_training_steps=run.total_steps)
    return optimizer, scheduler


def _batches(run: TrainingRun, examples: Sequence[Example], *, epoch: int) -> list[Batch]:
    data = run.spec.data
    return make_batches(examples, max_length=data.max_length, micro_batch_size=run.micro_batch_size,
                        packing=data.packing and supports_packing(run.spec.method), pad_id=run.tokenizer.pad_token_id,
                        seed=run.spec.train.seed, epoch=epoch)


def total_steps_for(spec: JobSpec, *, rows_per_epoch: int) -> int:
    """train.max_steps, else the epochs' steps at the planned micro-batch size (packed rows do not
    depend on it, so a smaller micro-batch after an out-of-memory back-off trains the same steps)."""
    if spec.train.max_steps is not None:
        return spec.train.max_steps
    batches_per_epoch = math.ceil(rows_per_epoch / spec.train.micro_batch_size)
    return max(1, math.ceil(spec.train.epochs * batches_per_epoch / spec.train.micro_batches_per_step))


def _data_report(stats: DataStats, examples: dict[str, list[Example]], truncated: int, first_epoch: list[Batch],
                 fingerprint: str) -> dict[str, Any]:
    return dict(examples={name: len(split) for name, split in examples.items()}, dialogues=stats.dialogues,
                skipped=dict(stats.skipped), repaired=dict(stats.repaired), mapped=dict(stats.mapped),
                truncated=truncated,
                train_tokens=sum(len(e.input_ids) for e in examples["train"]),
                pad_fraction=pad_fraction(first_epoch), fingerprint=fingerprint)


# --- restore ------------------------------------------------------------------------------------


def _restore(run: TrainingRun, *, resume: bool, force: bool) -> dict[str, Any] | None:
    """With --resume, the newest usable checkpoint's weights, optimizer, scheduler and state; returns
    its generator states (restored last, by the caller), or None on a fresh start."""
    run_dir = run.spec.run_dir
    found = None
    if resume:
        if run.ranks.main:
            ckpt.clean_temporary(run_dir)
        run.ranks.barrier()
        found = ckpt.find_resumable(run_dir, ckpt.warn if run.ranks.main else lambda _message: None)
    if found is None:
        if run.ranks.main:
            ckpt.discard_stale(run_dir)
        return None
    path, manifest = found
    try:
        ckpt.check_fingerprints(manifest, job=run.spec.job_fingerprint, data=run.data_fingerprint, ckpt=path)
    except ckpt.FingerprintError as err:
        if not force:
            raise
        ckpt.warn(f"{err} (resuming anyway: --force)")
    loaded = ckpt.load_state(path, run.model)
    run.optimizer.load_state_dict(loaded.optimizer)
    run.scheduler.load_state_dict(loaded.scheduler)
    run.state = loaded.trainer
    run.state.job_fingerprint, run.state.data_fingerprint = run.spec.job_fingerprint, run.data_fingerprint
    if run.state.epoch != 0:
        run.epoch_batches = _batches(run, run.train_examples, epoch=run.state.epoch)
    _continue_at_micro_batch_size(run)
    run.runtime_before = run.state.runtime_s
    run.last_checkpoint = (run.state.step, path)
    return loaded.rng


def _continue_at_micro_batch_size(run: TrainingRun) -> None:
    """A checkpoint written at another micro-batch size: the same data position in this run's batches."""
    state = run.state
    saved_size = state.micro_batch_size or run.spec.train.micro_batch_size
    state.batch_index = batch_index_at(state.batch_index, saved_size, run.micro_batch_size,
                                       rows=sum(len(batch.rows) for batch in run.epoch_batches),
                                       warn=ckpt.warn if run.ranks.main else lambda _message: None)
    state.micro_batch_size = run.micro_batch_size


def batch_index_at(batch_index: int, saved_size: int, size: int, *, rows: int, warn: Callable[[str], None]) -> int:
    """The index in batches of `size` rows of the micro-batch that follows `batch_index` batches of
    `saved_size` (the rows of an epoch are the same whatever the micro-batch size: packing.make_batches)."""
    done = min(batch_index * saved_size, rows)
    if done == rows:
        return math.ceil(rows / size)
    if done % size:
        warn(f"the checkpoint stopped {done} rows into its epoch, not a multiple of the micro-batch size {size}: "
             f"continuing after row {done - done % size} ({done % size} row(s) trained again)")
    return done // size


def _report_start(run: TrainingRun, attempt: int, *, resumed: bool) -> None:
    trainable, total = count_parameters(run.model)
    device = describe_device(run.device) + (f" x {run.ranks.world} ranks" if run.ranks.distributed else "")
    run.events.start(attempt=attempt, versions=versions(), device=device, trainable=trainable, total=total,
                     resumed_from_step=run.state.step if resumed else None)
    run.events.data(**run.data_report)


# --- the loop -----------------------------------------------------------------------------------


def _train_loop(run: TrainingRun) -> int:
    """Optimizer steps to total_steps, with eval and checkpoints on their schedules; then the finish.

    Stops are agreed by every rank at the top of each step and after eval, so all of them
    checkpoint at the same step and exit 75.
    """
    spec, state = run.spec, run.state
    run.model.train()
    meter = Throughput(first_step=state.step)
    eval_loss: float | None = None  # at state.step, if it was evaluated
    while state.step < run.total_steps:
        if _stop_agreed(run):
            return _interrupt(run, eval_loss)
        meter.tokens += _optimizer_step(run)
        if state.step % spec.train.log_every_steps == 0 or state.step == run.total_steps:
            _report_progress(run, meter)
        if state.step == run.total_steps:
            break
        eval_loss = _evaluate(run) if state.step % spec.eval.every_steps == 0 else None
        if _stop_agreed(run):
            return _interrupt(run, eval_loss)
        if state.step % spec.checkpoint.every_steps == 0:
            _save_checkpoint(run, eval_loss)
    return _finish(run)


def _optimizer_step(run: TrainingRun) -> int:
    """One optimizer step over the step's micro-batches; returns the real (not padding) tokens in it."""
    ranks, micro = run.ranks, _next_micro_batches(run)
    # One normaliser for the whole accumulated step: every supervised token weighs the same,
    # however the examples are packed into rows and micro-batches.
    targets = max(1, sum(b.target_tokens for b in micro))
    mine = micro[ranks.rank :: ranks.world]  # rank r takes every world-th micro-batch of the step
    step_loss = 0.0
    for index, batch in enumerate(mine):
        inputs = collate(batch, attn_implementation=run.spec.model.attn, device=run.device, dtype=run.dtype)
        # DDP averages gradients over the ranks and syncs once per step, on the last micro-batch.
        last = index == len(mine) - 1
        with run.train_model.no_sync() if ranks.distributed and not last else nullcontext():  # type: ignore[operator]
            loss = target_loss(run.train_model, inputs, num_items=targets)
            (loss * ranks.world).backward()
        step_loss += float(loss.detach())
    params = [p for group in run.optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, run.spec.train.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    tokens = sum(b.real_tokens for b in micro)
    _count_step(run.state, loss=ranks.sum(step_loss, run.device), tokens=tokens)
    return tokens


def _next_micro_batches(run: TrainingRun) -> list[Batch]:
    """The step's micro-batches, from the data position on (into the next epoch where this one ends)."""
    state, micro = run.state, []
    for _ in range(run.micro_batches_per_step):
        if state.batch_index >= len(run.epoch_batches):
            state.epoch += 1
            state.batch_index = 0
            run.epoch_batches = _batches(run, run.train_examples, epoch=state.epoch)
        micro.append(run.epoch_batches[state.batch_index])
        state.batch_index += 1
    return micro


def _count_step(state: ckpt.TrainerState, *, loss: float, tokens: int) -> None:
    state.step += 1
    state.train_tokens += tokens
    state.log_loss_sum += loss
    state.log_loss_steps += 1
    state.total_loss_sum += loss
    state.total_loss_steps += 1


@dataclass
class Throughput:
    """Tokens since the last progress event, and this attempt's time per step (for the eta)."""

    first_step: int
    tokens: int = 0
    attempt_start: float = field(default_factory=time.monotonic)
    window_start: float = field(default_factory=time.monotonic)


def _report_progress(run: TrainingRun, meter: Throughput) -> None:
    state, now = run.state, time.monotonic()
    per_step = (now - meter.attempt_start) / max(1, state.step - meter.first_step)
    run.events.progress(
        step=state.step, total_steps=run.total_steps,
        epoch=state.epoch + state.batch_index / max(1, len(run.epoch_batches)),
        loss=state.log_loss_sum / state.log_loss_steps, lr=run.scheduler.get_last_lr()[0],
        tokens_per_s=meter.tokens / max(now - meter.window_start, 1e-9), eta_s=per_step * (run.total_steps - state.step),
    )
    state.log_loss_sum, state.log_loss_steps = 0.0, 0
    meter.window_start, meter.tokens = now, 0


def _stop_agreed(run: TrainingRun) -> bool:
    return run.ranks.any(run.stop.received is not None, run.device)


def _evaluate(run: TrainingRun) -> float | None:
    """The validation loss (rank 0 only; None elsewhere and without validation data), as an eval event."""
    if not run.ranks.main:
        return None
    loss = evaluate(run.model, run.valid_batches, attn=run.spec.model.attn, device=run.device, dtype=run.dtype)
    if loss is not None:
        run.state.eval_history.append((run.state.step, loss))
        run.events.eval(step=run.state.step, loss=loss, perplexity=perplexity(loss))
    return loss


def _save_checkpoint(run: TrainingRun, eval_loss: float | None) -> Path | None:
    """Every rank calls it (their generator states are gathered); rank 0 writes and returns the path."""
    rng_states = run.ranks.gather(ckpt.capture_rng())
    run.last_checkpoint = (run.state.step, None)
    if not run.ranks.main:
        return None
    run.state.runtime_s = run.runtime_before + time.monotonic() - run.started
    saved = ckpt.save_checkpoint(
        run.spec.run_dir, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler, state=run.state,
        eval_loss=eval_loss, save_adapter=save_trainable, weights_in_adapter=isinstance(run.spec.method, FullMethod),
        rng=ckpt.rank_rng_states(rng_states) if run.ranks.distributed else rng_states[0],
    )
    run.events.checkpoint(step=run.state.step, path=str(saved.path), manifest_sha256=saved.manifest_sha256)
    run.last_checkpoint = (run.state.step, saved.path)
    ckpt.apply_retention(run.spec.run_dir, keep_last=run.spec.checkpoint.keep_last,
                         keep_adapters=run.spec.checkpoint.keep_adapters)
    return saved.path


def _interrupt(run: TrainingRun, eval_loss: float | None) -> int:
    """A stop between steps: checkpoint the state unless a checkpoint already holds it, then exit 75."""
    step, saved = run.state.step, None
    if step > 0 and run.last_checkpoint is not None and run.last_checkpoint[0] == step:
        saved = run.last_checkpoint[1]
    elif step > 0:
        saved = _save_checkpoint(run, eval_loss)
    # a rank other than the one signalled still names the signal torchrun passes on
    run.events.interrupted(step=step, checkpoint=str(saved) if saved is not None else None,
                           signal=run.stop.received or "SIGTERM")
    return EXIT_INTERRUPTED


# --- finish -------------------------------------------------------------------------------------


def _finish(run: TrainingRun) -> int:
    """Final eval and checkpoint; then, on rank 0, the adapter, samples, metrics.json and the done event."""
    final_eval = _evaluate(run)
    _save_checkpoint(run, final_eval)
    if not run.ranks.main:
        return EXIT_DONE
    adapter_dir = _save_adapter(run)
    if run.spec.eval.generate.samples > 0 and run.dialogues["test"]:
        samples = generate_samples(run.model, run.tokenizer, run.spec, run.dialogues["test"], device=run.device)
        write_text_atomic(run.spec.run_dir / "samples.jsonl", "".join(json_line(sample) for sample in samples))
    run.state.runtime_s = run.runtime_before + time.monotonic() - run.started
    metrics = _final_metrics(run.state, final_eval)
    write_json_atomic(run.spec.run_dir / "metrics.json",
                      {"step": run.state.step, "metrics": metrics, "adapter_path": str(adapter_dir)})
    run.events.done(step=run.state.step, metrics=metrics, adapter_path=str(adapter_dir))
    return EXIT_DONE


def _save_adapter(run: TrainingRun) -> Path:
    """<run_dir>/adapter: what was trained and the tokenizer, so the run's output loads on its own."""
    adapter_dir = run.spec.run_dir / ckpt.ADAPTER_DIR

    def fill(tmp: Path) -> None:
        save_trainable(run.model, tmp)
        run.tokenizer.save_pretrained(str(tmp))

    write_dir_atomic(adapter_dir, fill)
    return adapter_dir


def _final_metrics(state: ckpt.TrainerState, final_eval: float | None) -> dict[str, float]:
    metrics = {
        "train_loss": state.total_loss_sum / max(1, state.total_loss_steps),
        "train_tokens": float(state.train_tokens),
        "train_runtime_s": state.runtime_s,
    }
    if final_eval is not None:
        metrics["eval_loss"] = final_eval
        metrics["eval_perplexity"] = perplexity(final_eval)
    if state.eval_history:
        metrics["best_eval_loss"] = min(loss for _, loss in state.eval_history)
    return metrics


def json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


# --- parts --------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def cache_dir() -> Path:
    """Built-in tokenizers: $PEFTSHIM_CACHE_DIR, else the project's .cache/ (removed by `make clean`)."""
    configured = os.environ.get("PEFTSHIM_CACHE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / ".cache" / "peftshim"


class DeviceUnavailable(Exception):
    """The job was placed on GPUs that this torch cannot use (exit 2, error kind `environment`)."""


def wants_cuda(spec: JobSpec) -> bool:
    """Whether the job runs on CUDA: it asks for GPUs and torch can use them.

    A job placed on GPU ids (CUDA_VISIBLE_DEVICES, set by the controller) whose torch has no CUDA (a
    CPU wheel, a driver too old for the build) is refused with DeviceUnavailable: training on the CPU
    while status.json records a GPU would be silently orders of magnitude slower. Jobs without GPU ids
    (no GPU on the host: the controller says so), and ids the controller only simulates
    (PEFTCTL_FAKE_GPUS, passed on as PEFTSHIM_SIMULATED_GPUS=1), run on the CPU as documented.
    """
    if spec.resources.gpus <= 0:
        return False
    if torch.cuda.is_available():
        return True
    placed = placed_gpus()
    if placed and os.environ.get("PEFTSHIM_SIMULATED_GPUS") != "1":
        raise DeviceUnavailable(_missing_cuda_message(placed))
    return False


def placed_gpus() -> list[str]:
    """The GPU ids in CUDA_VISIBLE_DEVICES (-1, or nothing, hides every GPU)."""
    ids = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    return [] if ids[:1] == ["-1"] else ids


def _missing_cuda_message(placed: list[str]) -> str:
    if torch.version.cuda is None:
        found = "a CPU-only build (torch.version.cuda is None)"
    else:
        try:
            torch.cuda.init()  # raises with the driver's own words ("found no NVIDIA driver", "too old")
            reason = f"{torch.cuda.device_count()} usable device(s)"
        except Exception as err:  # noqa: BLE001 - whatever CUDA says is the message we want
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        found = f"built for CUDA {torch.version.cuda}, but CUDA cannot start: {reason}"
    return (f"the job was placed on GPU {','.join(placed)} (CUDA_VISIBLE_DEVICES) but torch {torch.__version__} is "
            f"{found}; install a torch build that matches this host's driver, or set resources.gpus: 0 to train "
            "on the CPU")


def pick_device(spec: JobSpec, ranks: Ranks) -> torch.device:
    """The job's device: this rank's GPU (torchrun's LOCAL_RANK among CUDA_VISIBLE_DEVICES), else the CPU."""
    return torch.device(f"cuda:{ranks.local_rank}") if wants_cuda(spec) else torch.device("cpu")


def describe_device(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def versions() -> dict[str, str]:
    import peft
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__}


def evaluate(model: torch.nn.Module, batches: Sequence[Batch], *, attn: str, device: torch.device,
             dtype: torch.dtype) -> float | None:
    """Mean loss per supervised token over `batches` (None when there is nothing to score)."""
    total = 0.0
    count = 0
    model.eval()
    with torch.no_grad():
        for batch in batches:
            if batch.target_tokens == 0:
                continue
            inputs = collate(batch, attn_implementation=attn, device=device, dtype=dtype)
            total += float(target_loss(model, inputs, num_items=1))  # the sum over the batch's targets
            count += batch.target_tokens
    model.train()
    return total / count if count else None


def generation_prompts(dialogues: Sequence[Dialogue], limit: int) -> list[tuple[Dialogue, Turn]]:
    """(context, reference turn) for the first `limit` assistant turns that follow a user turn."""
    found: list[tuple[Dialogue, Turn]] = []
    for dialogue in dialogues:
        for index, turn in enumerate(dialogue.turns):
            if len(found) >= limit:
                return found
            if turn.role == "assistant" and any(t.role == "user" for t in dialogue.turns[:index]):
                found.append((Dialogue(dialogue.scene, dialogue.description, dialogue.turns[:index]), turn))
    return found


def generate_samples(model: Any, tokenizer: Any, spec: JobSpec, dialogues: Sequence[Dialogue], *,
                     device: torch.device) -> list[dict[str, Any]]:
    """Greedy responses to test-split contexts, for the paper-style metrics (eval.generate)."""
    settings = spec.eval.generate
    budget = generation_budget(spec.data.max_length, settings.max_new_tokens)
    samples: list[dict[str, Any]] = []
    model.eval()
    # Decoding grows the key/value cache one token at a time: compiled layers (train.compile) would
    # recompile for every layer and length, so generation always runs them eagerly.
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        for context, reference in generation_prompts(dialogues, settings.samples):
            ids = prompt_ids(context, tokenizer, max_length=budget, strategy=spec.data.strategy,
                             system_prompt=spec.data.system_prompt or "")
            input_ids = torch.tensor([ids], dtype=torch.long, device=device)
            out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                 max_new_tokens=settings.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            response = tokenizer.decode(out[0, input_ids.shape[1]:], skip_special_tokens=True).strip()
            samples.append({"scene": context.scene, "context_turns": len(context.turns), "reference": reference.text,
                            "reference_strategy": reference.strategy, "response": response})
    model.train()
    return samples


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))
