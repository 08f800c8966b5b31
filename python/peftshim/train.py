"""The training loop: accumulation, schedule, eval, checkpoints, signals, resume.

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
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from transformers import get_scheduler

from peftshim import checkpoint as ckpt
from peftshim.data import (
    DataError,
    Dialogue,
    Turn,
    build_examples,
    data_fingerprint,
    prompt_ids,
    read_dialogues,
    split_dialogues,
    training_text,
)
from peftshim.events import EventWriter
from peftshim.loss import target_loss
from peftshim.methods import apply_method, count_parameters, save_trainable, supports_packing
from peftshim.model import compile_decoder_layers, load_base_model, resolve_dtype
from peftshim.packing import Batch, collate, make_batches, pad_fraction
from peftshim.ranks import Ranks, join, leave
from peftshim.spec import JobSpec, SpecError

EXIT_DONE = 0
EXIT_INTERRUPTED = 75

# transformers' names; "constant" there ignores warm-up, so it maps to the warm-up variant.
_SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class StopRequest(Protocol):
    """Set by the signal handlers (__main__.StopSignals): the name of the signal that asked to stop."""

    received: str | None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def cache_dir() -> Path:
    """Built-in tokenizers: $PEFTSHIM_CACHE_DIR, else the project's .cache/ (removed by `make clean`)."""
    configured = os.environ.get("PEFTSHIM_CACHE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / ".cache" / "peftshim"


def wants_cuda(spec: JobSpec) -> bool:
    return spec.resources.gpus > 0 and torch.cuda.is_available()


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


def _data_params(spec: JobSpec) -> dict[str, Any]:
    """What turns the data file into these examples (the data fingerprint's parameters)."""
    d = spec.data
    return {"format": d.format, "strategy": d.strategy, "max_length": d.max_length, "max_examples": d.max_examples,
            "split": vars(d.split), "tokenizer_of": spec.model.base, "revision": spec.model.revision}


def micro_batches_per_step(spec: JobSpec) -> int:
    """The planner's accumulation is per device: a step takes that many micro-batches per planned GPU.

    However many processes share them (torchrun's ranks, or one process when a multi-GPU job falls
    back to the CPU), so the global batch is the configured one either way.
    """
    return spec.train.gradient_accumulation_steps * max(1, spec.resources.gpus)


def total_steps_for(spec: JobSpec, batches_per_epoch: int) -> int:
    if spec.train.max_steps is not None:
        return spec.train.max_steps
    return max(1, math.ceil(spec.train.epochs * batches_per_epoch / micro_batches_per_step(spec)))


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
    budget = max(1, spec.data.max_length - settings.max_new_tokens)
    samples: list[dict[str, Any]] = []
    model.eval()
    # Decoding grows the key/value cache one token at a time: compiled layers (train.compile) would
    # recompile for every layer and length, so generation always runs them eagerly.
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        for context, reference in generation_prompts(dialogues, settings.samples):
            ids = prompt_ids(context, tokenizer, max_length=budget, strategy=spec.data.strategy)
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


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(value, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def train(spec: JobSpec, *, events: EventWriter, attempt: int, resume: bool, force: bool, stop: StopRequest) -> int:
    """Runs (or resumes) the job; returns the exit code (0 done, 75 interrupted after a checkpoint).

    Under torchrun (resources.gpus > 1) this is one rank of a data-parallel run (ranks.py); `events`
    is then rank 0's writer, or a quiet one on the other ranks.
    """
    ranks = join(cuda=wants_cuda(spec))
    try:
        return _train(spec, ranks, events=events, attempt=attempt, resume=resume, force=force, stop=stop)
    finally:
        leave(ranks)


def _train(spec: JobSpec, ranks: Ranks, *, events: EventWriter, attempt: int, resume: bool, force: bool,
           stop: StopRequest) -> int:
    started = time.monotonic()
    run_dir = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = spec.train
    seed_everything(cfg.seed)
    device = pick_device(spec, ranks)
    if ranks.distributed and ranks.world != spec.resources.gpus:
        raise SpecError("job.json", "resources.gpus", f"the job plans {spec.resources.gpus} GPU(s) but torchrun started "
                        f"{ranks.world} processes; start one per planned GPU (peftctl run does)")
    dtype = resolve_dtype(spec.model.dtype, device)
    attn = spec.model.attn

    # Data and model.
    data_path = Path(spec.data.path)
    dialogues, stats = read_dialogues(spec.data.format, data_path)
    split = spec.data.split
    by_split = split_dialogues(dialogues, split.train, split.valid, split.test, split.seed)
    data_fp = data_fingerprint(data_path, _data_params(spec))
    model, tokenizer = load_base_model(spec.model, device=device, dtype=dtype,
                                       tokenizer_texts=lambda: training_text(by_split["train"]), cache_dir=cache_dir())

    def examples_of(name: str) -> tuple[list[Any], int]:
        return build_examples(by_split[name], tokenizer, max_length=spec.data.max_length, strategy=spec.data.strategy)

    train_examples, truncated = examples_of("train")
    if spec.data.max_examples is not None:
        train_examples = train_examples[: spec.data.max_examples]
    valid_examples, valid_truncated = examples_of("valid")
    test_examples, test_truncated = examples_of("test")
    if not train_examples:
        raise DataError(f"{data_path}: no training example after the split (data.split.train={split.train})")

    model = apply_method(model, spec.method, gradient_checkpointing=cfg.gradient_checkpointing, tokenizer=tokenizer)
    if cfg.compile:
        compile_decoder_layers(model)
    trainable_count, total_count = count_parameters(model)
    params = [p for p in model.parameters() if p.requires_grad]
    # The model in the training step; eval, generation and saving use `model` itself, on rank 0 only.
    train_model: torch.nn.Module = model
    if ranks.distributed:
        seed_everything(cfg.seed + ranks.rank)  # the weights were drawn alike; dropout differs per rank
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def stop_requested() -> bool:
        return ranks.any(stop.received is not None, device)

    packing = spec.data.packing and supports_packing(spec.method)
    pad_id = tokenizer.pad_token_id

    def batches_for(examples: Sequence[Any], epoch: int, seed: int) -> list[Batch]:
        return make_batches(examples, max_length=spec.data.max_length, micro_batch_size=cfg.micro_batch_size,
                            packing=packing, pad_id=pad_id, seed=seed, epoch=epoch)

    first_epoch = batches_for(train_examples, 0, cfg.seed)
    valid_batches = batches_for(valid_examples, 0, cfg.seed) if valid_examples else []
    step_micro_batches = micro_batches_per_step(spec)
    total_steps = total_steps_for(spec, len(first_epoch))

    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda" or None)
    scheduler = get_scheduler(_SCHEDULERS[cfg.lr_scheduler], optimizer,
                              num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps)

    state = ckpt.TrainerState(step=0, epoch=0, batch_index=0, job_fingerprint=spec.job_fingerprint,
                              data_fingerprint=data_fp)
    loaded: ckpt.LoadedState | None = None
    resumed_from: Path | None = None
    if resume:
        if ranks.main:
            ckpt.clean_temporary(run_dir)
        ranks.barrier()
        found = ckpt.find_resumable(run_dir, ckpt.warn if ranks.main else lambda _message: None)
        if found is not None:
            path, manifest = found
            try:
                ckpt.check_fingerprints(manifest, job=spec.job_fingerprint, data=data_fp, ckpt=path)
            except ckpt.FingerprintError as err:
                if not force:
                    raise
                ckpt.warn(f"{err} (resuming anyway: --force)")
            loaded, resumed_from = ckpt.load_state(path, model), path
            optimizer.load_state_dict(loaded.optimizer)
            scheduler.load_state_dict(loaded.scheduler)
            state = loaded.trainer
            state.job_fingerprint, state.data_fingerprint = spec.job_fingerprint, data_fp
    if loaded is None and ranks.main:
        ckpt.discard_stale(run_dir)

    device_text = describe_device(device) + (f" x {ranks.world} ranks" if ranks.distributed else "")
    events.start(attempt=attempt, versions=versions(), device=device_text, trainable=trainable_count,
                 total=total_count, resumed_from_step=state.step if loaded is not None else None)
    events.data(
        examples={"train": len(train_examples), "valid": len(valid_examples), "test": len(test_examples)},
        dialogues=stats.dialogues, skipped=dict(stats.skipped), repaired=dict(stats.repaired),
        truncated=truncated + valid_truncated + test_truncated,
        train_tokens=sum(len(e.input_ids) for e in train_examples),
        pad_fraction=pad_fraction(first_epoch), fingerprint=data_fp,
    )

    def run_eval() -> float | None:
        if not ranks.main:
            return None
        loss = evaluate(model, valid_batches, attn=attn, device=device, dtype=dtype)
        if loss is not None:
            state.eval_history.append((state.step, loss))
            events.eval(step=state.step, loss=loss, perplexity=perplexity(loss))
        return loss

    runtime_before = state.runtime_s
    # The checkpoint that holds the current state, if one does (an interruption then needs no other).
    # (Every rank keeps it, so that all of them take the same branch; the path is rank 0's.)
    current: dict[int, Path | None] = {state.step: resumed_from} if resumed_from is not None else {}

    def save(eval_loss: float | None) -> Path | None:
        """Every rank calls it (their generator states are gathered); rank 0 writes and returns the path."""
        rng_states = ranks.gather(ckpt.capture_rng())
        current.clear()
        current[state.step] = None
        if not ranks.main:
            return None
        state.runtime_s = runtime_before + time.monotonic() - started
        saved = ckpt.save_checkpoint(run_dir, model=model, optimizer=optimizer, scheduler=scheduler, state=state,
                                     eval_loss=eval_loss, save_adapter=save_trainable,
                                     rng=ckpt.rank_rng_states(rng_states) if ranks.distributed else rng_states[0])
        events.checkpoint(step=state.step, path=str(saved.path), manifest_sha256=saved.manifest_sha256)
        current[state.step] = saved.path
        ckpt.apply_retention(run_dir, keep_last=spec.checkpoint.keep_last,
                             keep_adapters=spec.checkpoint.keep_adapters)
        return saved.path

    if loaded is not None:
        # Last, so nothing between here and the next step draws from the restored generators.
        ckpt.restore_rng(ckpt.rng_of_rank(loaded.rng, ranks.rank))

    epoch_batches = first_epoch if state.epoch == 0 else batches_for(train_examples, state.epoch, cfg.seed)
    model.train()
    attempt_start_step = state.step
    eval_loss: float | None = None
    window_start, window_tokens = time.monotonic(), 0
    loop_start = time.monotonic()

    while state.step < total_steps:
        if stop_requested():
            break
        micro: list[Batch] = []
        for _ in range(step_micro_batches):
            if state.batch_index >= len(epoch_batches):
                state.epoch += 1
                state.batch_index = 0
                epoch_batches = batches_for(train_examples, state.epoch, cfg.seed)
            micro.append(epoch_batches[state.batch_index])
            state.batch_index += 1
        # One normaliser for the whole accumulated step: every supervised token weighs the same,
        # however the examples are packed into rows and micro-batches.
        targets = max(1, sum(b.target_tokens for b in micro))
        mine = micro[ranks.rank :: ranks.world]  # rank r takes every world-th micro-batch of the step
        step_loss = 0.0
        for index, batch in enumerate(mine):
            inputs = collate(batch, attn_implementation=attn, device=device, dtype=dtype)
            # DDP averages gradients over the ranks and syncs once per step, on the last micro-batch.
            last = index == len(mine) - 1
            with train_model.no_sync() if ranks.distributed and not last else nullcontext():  # type: ignore[operator]
                loss = target_loss(train_model, inputs, num_items=targets)
                (loss * ranks.world).backward()
            step_loss += float(loss.detach())
        step_loss = ranks.sum(step_loss, device)
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        state.step += 1
        step_tokens = sum(b.real_tokens for b in micro)
        state.train_tokens += step_tokens
        window_tokens += step_tokens
        state.log_loss_sum += step_loss
        state.log_loss_steps += 1
        state.total_loss_sum += step_loss
        state.total_loss_steps += 1

        if state.step % cfg.log_every_steps == 0 or state.step == total_steps:
            now = time.monotonic()
            per_step = (now - loop_start) / max(1, state.step - attempt_start_step)
            events.progress(
                step=state.step, total_steps=total_steps,
                epoch=state.epoch + state.batch_index / max(1, len(epoch_batches)),
                loss=state.log_loss_sum / state.log_loss_steps, lr=scheduler.get_last_lr()[0],
                tokens_per_s=window_tokens / max(now - window_start, 1e-9), eta_s=per_step * (total_steps - state.step),
            )
            state.log_loss_sum, state.log_loss_steps = 0.0, 0
            window_start, window_tokens = now, 0

        if state.step == total_steps:
            break
        eval_loss = run_eval() if state.step % spec.eval.every_steps == 0 else None
        if stop_requested():
            break
        if state.step % spec.checkpoint.every_steps == 0:
            save(eval_loss)

    if state.step < total_steps:  # the loop stopped early: a stop was requested
        saved: Path | None = None
        if state.step > 0:
            saved = current[state.step] if state.step in current else save(eval_loss)
        # a rank other than the one signalled still names the signal torchrun passes on
        events.interrupted(step=state.step, checkpoint=str(saved) if saved is not None else None,
                           signal=stop.received or "SIGTERM")
        return EXIT_INTERRUPTED

    final_eval = run_eval()
    save(final_eval)
    if not ranks.main:
        return EXIT_DONE
    adapter_dir = run_dir / ckpt.ADAPTER_DIR

    def fill_adapter(tmp: Path) -> None:
        save_trainable(model, tmp)
        tokenizer.save_pretrained(str(tmp))

    ckpt.write_atomic_dir(adapter_dir, fill_adapter)

    if spec.eval.generate.samples > 0 and by_split["test"]:
        samples = generate_samples(model, tokenizer, spec, by_split["test"], device=device)
        tmp = run_dir / "samples.jsonl.tmp"
        tmp.write_text("".join(json.dumps(sample, ensure_ascii=False) + "\n" for sample in samples), encoding="utf-8")
        os.replace(tmp, run_dir / "samples.jsonl")

    state.runtime_s = runtime_before + time.monotonic() - started
    metrics: dict[str, float] = {
        "train_loss": state.total_loss_sum / max(1, state.total_loss_steps),
        "train_tokens": float(state.train_tokens),
        "train_runtime_s": state.runtime_s,
    }
    if final_eval is not None:
        metrics["eval_loss"] = final_eval
        metrics["eval_perplexity"] = perplexity(final_eval)
    if state.eval_history:
        metrics["best_eval_loss"] = min(loss for _, loss in state.eval_history)
    _write_json_atomic(run_dir / "metrics.json", {"step": state.step, "metrics": metrics,
                                                  "adapter_path": str(adapter_dir)})
    events.done(step=state.step, metrics=metrics, adapter_path=str(adapter_dir))
    return EXIT_DONE
