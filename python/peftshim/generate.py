"""`python -m peftshim generate`: a response for every example of a split, with a run's adapter.

The recipe: set up the data (the run's split of its data file, the training example rule), set up the
model (the base model, then the adapter), then the batch loop. Prompts are training's (`prompt_ids`:
the same template and truncation, oldest turns first); batches are left-padded with an attention mask
and decoded with a key/value cache, stopping at the token that ends every training target (the
tokenizer's EOS, examples.py). Output, in `out_dir`:

- `settings.json`: what the directory stands for (decoding settings, split, limit, adapter choice, and
  eval.data when the rows come from another data set);
  peftctl names the directory after its hash. A directory holding other settings is refused (exit 2).
- `generations.jsonl`: one row per example, appended and fsynced after every batch; a torn last line
  (a crash mid-write) is cut off on restart, and ids already written are skipped, so a stopped run
  continues where it stopped and a finished one changes nothing.
- `events.jsonl`: the event protocol of training (start, progress with step = rows done, done,
  interrupted, error).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from peftshim.contract import EXIT_DONE, EXIT_INTERRUPTED
from peftshim.dialogues import Dialogue, Turn, read_data, split_dialogues
from peftshim.events import EventWriter
from peftshim.examples import generation_budget, prompt_ids, training_text, use_chat_template
from peftshim.files import fsync_path, write_json_atomic
from peftshim.spec import FullMethod, GenerateSpec, JobSpec, SpecError

GENERATIONS_FILE = "generations.jsonl"
SETTINGS_FILE = "settings.json"
EVENTS_FILE = "events.jsonl"
SPLITS = ("test", "valid")
BASE = "base"  # the adapter choice of --base: the base model alone
_STRATEGY_PREFIX = re.compile(r"^\[([^\]\n]+)\]\s?(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Row:
    """One example: the context before an assistant turn that follows a user turn, and that turn."""

    id: str  # "<dialogue index in the data file>:<turn index>"
    context: Dialogue
    reference: Turn


@dataclass
class Generation:
    """One generate call's inputs and outputs."""

    spec: JobSpec
    out_dir: Path
    split: str
    limit: int | None
    adapter: Path | None  # None: the base model alone


# --- data ---------------------------------------------------------------------------------------


def split_rows(spec: JobSpec, split: str, limit: int | None = None) -> tuple[list[Row], list[Dialogue]]:
    """The rows of `split` (the run's split, the training example rule, ids from the file) and the
    training split's dialogues (a built-in tokenizer's text). With eval.data, the rows come from that
    file instead: its `split` share by the same fractions and seed, or every dialogue of it."""
    if split not in SPLITS:
        raise SpecError("arguments", "--split", f"expected one of {', '.join(SPLITS)}, got {split!r}")
    fractions = spec.data.split
    dialogues, _ = read_data(spec.data, max_length=spec.data.max_length)
    by_split = split_dialogues(dialogues, fractions.train, fractions.valid, fractions.test, fractions.seed)
    other = spec.eval.data
    if other is not None:
        dialogues, _ = read_data(other, max_length=spec.data.max_length)
        chosen = dialogues if other.dialogues == "all" else split_dialogues(
            dialogues, fractions.train, fractions.valid, fractions.test, fractions.seed)[split]
    else:
        chosen = by_split[split]
    index_of = {id(dialogue): index for index, dialogue in enumerate(dialogues)}
    rows = [row for dialogue in chosen for row in dialogue_rows(dialogue, index_of[id(dialogue)])]
    return (rows if limit is None else rows[:limit]), by_split["train"]


def train_split(spec: JobSpec) -> list[Dialogue]:
    """The run's training split (the text a built-in model's tokenizer is rebuilt from)."""
    dialogues, _ = read_data(spec.data, max_length=spec.data.max_length)
    fractions = spec.data.split
    return split_dialogues(dialogues, fractions.train, fractions.valid, fractions.test, fractions.seed)["train"]


def dialogue_rows(dialogue: Dialogue, index: int) -> list[Row]:
    """Every assistant turn that follows a user turn (build_examples' rule), with its context."""
    rows: list[Row] = []
    seen_user = False
    for k, turn in enumerate(dialogue.turns):
        if turn.role == "user":
            seen_user = True
        elif seen_user:
            rows.append(Row(f"{index}:{k}", Dialogue(dialogue.scene, dialogue.description, dialogue.turns[:k]), turn))
    return rows


def prompt_budget(spec: JobSpec) -> int:
    """Prompt tokens: the training length less the response's, as training's samples (train.py) have it."""
    return generation_budget(spec.data.max_length, spec.eval.generate.max_new_tokens)


def row_prompt(row: Row, tokenizer: Any, spec: JobSpec) -> list[int]:
    return prompt_ids(row.context, tokenizer, max_length=prompt_budget(spec), strategy=spec.data.strategy,
                      system_prompt=spec.data.system_prompt or "")


# --- model --------------------------------------------------------------------------------------


def setup_model(spec: JobSpec, adapter: Path | None, tokenizer_texts: Callable[[], Iterable[str]], *,
                device: torch.device) -> tuple[torch.nn.Module, Any]:
    """The base model with the adapter (or alone), in eval mode, and the tokenizer training used.

    `tokenizer_texts` (training_text of the training split) is called only when a built-in model's
    tokenizer has to be rebuilt without the one saved beside the adapter (--base)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peftshim.model import BUILTIN_MODELS, build_builtin_model, load_base_model, resolve_dtype
    from peftshim.train import cache_dir

    dtype = resolve_dtype(spec.model.dtype, device)
    saved_tokenizer = adapter is not None and (adapter / "tokenizer_config.json").is_file()
    if adapter is not None and isinstance(spec.method, FullMethod):  # full fine-tuning saved the whole model
        model = AutoModelForCausalLM.from_pretrained(str(adapter), dtype=dtype, attn_implementation=spec.model.attn,
                                                     device_map={"": device})
        tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    elif saved_tokenizer and spec.model.base in BUILTIN_MODELS:
        # The built-in model's vocabulary is its tokenizer's: rebuild it from the one saved with the adapter.
        tokenizer = AutoTokenizer.from_pretrained(str(adapter))
        model = build_builtin_model(spec.model.base, tokenizer, device=device, dtype=dtype, attn=spec.model.attn)
    else:
        model, tokenizer = load_base_model(spec.model, device=device, dtype=dtype, cache_dir=cache_dir(),
                                           tokenizer_texts=tokenizer_texts)
        if saved_tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(str(adapter))
    if adapter is not None and not isinstance(spec.method, FullMethod):
        model = PeftModel.from_pretrained(model, str(adapter))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    use_chat_template(tokenizer, spec.data.chat_template)  # a rebuilt or base tokenizer lacks it (an adapter's has it)
    model.eval()
    return model, tokenizer


def generation_device(spec: JobSpec) -> torch.device:
    """The one GPU peftctl made visible when the job asks for GPUs, else the CPU."""
    from peftshim.train import wants_cuda

    return torch.device("cuda:0") if wants_cuda(spec) else torch.device("cpu")


def check_adapter(spec: JobSpec, adapter: Path | None) -> None:
    if adapter is None:
        return
    wanted = "config.json" if isinstance(spec.method, FullMethod) else "adapter_config.json"
    if not (adapter / wanted).is_file():
        raise SpecError("arguments", "--adapter", f"no adapter at {adapter} (no {wanted}; did the run finish?)")


# --- decoding -----------------------------------------------------------------------------------


def decoding_kwargs(settings: GenerateSpec, tokenizer: Any) -> dict[str, Any]:
    """model.generate's arguments from eval.generate; the sampling ones only when sampling."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": settings.max_new_tokens, "min_new_tokens": settings.min_new_tokens,
        "num_beams": settings.num_beams, "no_repeat_ngram_size": settings.no_repeat_ngram_size,
        "repetition_penalty": settings.repetition_penalty, "do_sample": settings.do_sample,
        "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id, "use_cache": True,
    }
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
    else:  # override a checkpoint's generation_config, which may ask for sampling
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def left_padded(prompts: Sequence[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every prompt ending at the last column."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=device)
    return ids, mask


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[list[int]], settings: GenerateSpec, *,
                   device: torch.device, seed: int, streamer: Any | None = None) -> tuple[list[str], int]:
    """Decoded responses (cut at the end of turn) and how many tokens they took; `streamer` (a
    transformers BaseStreamer, one prompt, no beam search) sees the prompt and then each new token."""
    ids, mask = left_padded(prompts, tokenizer.pad_token_id, device)
    torch.manual_seed(seed)
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        out = model.generate(input_ids=ids, attention_mask=mask, streamer=streamer, **decoding_kwargs(settings, tokenizer))
    texts, tokens = [], 0
    for row in out[:, ids.shape[1]:].tolist():
        row = until_end_of_turn(row, tokenizer)
        tokens += len(row)
        texts.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return texts, tokens


def until_end_of_turn(ids: list[int], tokenizer: Any) -> list[int]:
    """A response's ids before the tokenizer's EOS, the token that ends every training target."""
    eos = tokenizer.eos_token_id
    return ids[: ids.index(eos)] if eos in ids else ids


def split_strategy(response: str, strategy_mode: str) -> tuple[str, str | None]:
    """Under data.strategy inline, the leading `[Strategy] ` is the predicted strategy."""
    if strategy_mode != "inline":
        return response, None
    found = _STRATEGY_PREFIX.match(response)
    return (found.group(2).strip(), found.group(1).strip()) if found else (response, None)


def output_row(row: Row, response: str, strategy_mode: str) -> dict[str, Any]:
    text, predicted = split_strategy(response, strategy_mode)
    return {"id": row.id, "context": [{"role": t.role, "text": t.text} for t in row.context.turns],
            "reference": row.reference.text, "reference_strategy": row.reference.strategy, "response": text,
            "predicted_strategy": predicted}


# --- the output directory -----------------------------------------------------------------------


def settings_of(job: Generation) -> dict[str, Any]:
    """What the output directory stands for (peftctl hashes the same object for the directory's name)."""
    decoding = {k: v for k, v in asdict(job.spec.eval.generate).items() if k != "samples"}
    settings = {"generate": decoding, "split": job.split, "limit": job.limit, "adapter": adapter_label(job)}
    if job.spec.eval.data is not None:  # absent otherwise, so directories made before eval.data keep their names
        settings["data"] = asdict(job.spec.eval.data)
    return settings


def adapter_label(job: Generation) -> str:
    """`base`, or the adapter's path relative to the run dir (`adapter`, `checkpoints/step-000040/adapter`)."""
    if job.adapter is None:
        return BASE
    adapter, run_dir = job.adapter.resolve(), job.spec.run_dir.resolve()
    return str(adapter.relative_to(run_dir)) if adapter.is_relative_to(run_dir) else str(adapter)


def open_output(job: Generation) -> set[str]:
    """Creates or checks out_dir; returns the ids already written (a torn last line is cut off)."""
    job.out_dir.mkdir(parents=True, exist_ok=True)
    settings, settings_file = settings_of(job), job.out_dir / SETTINGS_FILE
    if settings_file.is_file():
        found = json.loads(settings_file.read_text(encoding="utf-8"))
        if found != settings:
            raise SpecError(str(settings_file), "--out", f"{job.out_dir} holds generations made with other settings "
                            f"({json.dumps(found, sort_keys=True)}); use another directory")
    else:
        write_json_atomic(settings_file, settings, sort_keys=True)
    return written_ids(job.out_dir / GENERATIONS_FILE)


def written_ids(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    data = path.read_bytes()
    good = data.rfind(b"\n") + 1  # everything after the last newline is a torn write
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return {json.loads(line)["id"] for line in data[:good].decode("utf-8").splitlines() if line.strip()}


def append_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    created = not path.exists()
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        f.flush()
        os.fsync(f.fileno())
    if created:
        fsync_path(path.parent)


# --- the recipe ---------------------------------------------------------------------------------


def generate(job: Generation, *, stop: Any, events: EventWriter | None = None) -> int:
    """Generates every row of the split not yet written; 0 when all are, 75 when stopped (after a batch)."""
    from peftshim.train import versions

    rows, train_dialogues = split_rows(job.spec, job.split, job.limit)
    check_adapter(job.spec, job.adapter)
    done = open_output(job)
    todo = [(i, row) for i, row in enumerate(rows) if row.id not in done]
    if not todo:
        print(f"peftshim: all {len(rows)} rows already in {job.out_dir / GENERATIONS_FILE}; nothing to do",
              file=sys.stderr, flush=True)
        return EXIT_DONE
    events = events or EventWriter(job.spec.run_id, job.out_dir / EVENTS_FILE)
    device = generation_device(job.spec)
    model, tokenizer = setup_model(job.spec, job.adapter, lambda: training_text(train_dialogues), device=device)
    total = sum(p.numel() for p in model.parameters())
    events.start(attempt=1, versions=versions(), device=str(device), trainable=0, total=total,
                 resumed_from_step=len(rows) - len(todo) if done else None)
    return _batch_loop(job, rows, todo, model, tokenizer, device=device, events=events, stop=stop)


def _batch_loop(job: Generation, rows: list[Row], todo: list[tuple[int, Row]], model: Any, tokenizer: Any, *,
                device: torch.device, events: EventWriter, stop: Any) -> int:
    settings, strategy = job.spec.eval.generate, job.spec.data.strategy
    output = job.out_dir / GENERATIONS_FILE
    finished, started, tokens = len(rows) - len(todo), time.monotonic(), 0
    # Batches are fixed slices of the split (by row index), so a resumed run draws what one run would.
    batches: dict[int, list[tuple[int, Row]]] = {}
    for index, row in todo:
        batches.setdefault(index // settings.batch_size, []).append((index, row))
    for batch in batches.values():
        if stop.received is not None:
            events.interrupted(step=finished, checkpoint=None, signal=stop.received)
            return EXIT_INTERRUPTED
        prompts = [row_prompt(row, tokenizer, job.spec) for _, row in batch]
        texts, new = generate_batch(model, tokenizer, prompts, settings, device=device, seed=settings.seed + batch[0][0])
        append_rows(output, [output_row(row, text, strategy) for (_, row), text in zip(batch, texts)])
        finished, tokens = finished + len(batch), tokens + new
        elapsed = max(1e-9, time.monotonic() - started)
        rate = (finished - (len(rows) - len(todo))) / elapsed
        events.progress(step=finished, total_steps=len(rows), epoch=0.0, loss=0.0, lr=0.0, tokens_per_s=tokens / elapsed,
                        eta_s=(len(rows) - finished) / rate if rate > 0 else 0.0)
    events.done(step=finished, metrics={"rows": float(len(rows)), "generated_tokens": float(tokens)},
                adapter_path=str(job.adapter) if job.adapter is not None else BASE)
    return EXIT_DONE


def read_generations(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / GENERATIONS_FILE
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path.is_file() else []
