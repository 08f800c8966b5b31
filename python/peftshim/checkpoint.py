"""Atomic checkpoints with MANIFEST.json, verification, retention and resume.

Layout of <run_dir>/checkpoints/step-XXXXXX/:
  adapter/                 save_trainable's output (loads with PeftModel.from_pretrained)
  trainable.safetensors    every trainable parameter under the model's own names (exact restore,
                           whatever format methods.save_trainable chooses); not written when the
                           adapter already holds them under those names (full fine-tuning saves the
                           whole model there), so the weights are on disk once
  optimizer.pt, scheduler.pt, rng.pt, trainer_state.json   (the "full state" needed to resume)
  MANIFEST.json            sha256 of every other file, and `trainable`: the files the trainable
                           weights are restored from; written last, so a directory without a valid
                           manifest was never finished and is never resumed from.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from peftshim.files import json_text, sha256_file, write_dir_atomic, write_text_atomic

CHECKPOINTS_DIR = "checkpoints"
MANIFEST = "MANIFEST.json"
ADAPTER_DIR = "adapter"
TRAINABLE_FILE = "trainable.safetensors"
STATE_FILES = (TRAINABLE_FILE, "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json")
_STEP_DIR = re.compile(r"^step-(\d{6,})$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used (missing or bad manifest, hash mismatch)."""


class FingerprintError(Exception):
    """The checkpoint was made by a different job or data (exit 2 unless --force)."""


@dataclass
class TrainerState:
    """Where training stands after an optimizer step: enough to continue exactly."""

    step: int
    epoch: int
    # Index of the next micro-batch within `epoch`'s batch list.
    batch_index: int
    job_fingerprint: str
    data_fingerprint: str
    eval_history: list[tuple[int, float]] = field(default_factory=list)
    train_tokens: int = 0
    # Loss sum and count since the last progress event, so a resumed run logs the same numbers.
    log_loss_sum: float = 0.0
    log_loss_steps: int = 0
    total_loss_sum: float = 0.0
    total_loss_steps: int = 0
    # Seconds spent by every attempt up to this checkpoint.
    runtime_s: float = 0.0
    # Rows per micro-batch of `batch_index` (None in checkpoints written before it was recorded: the
    # spec's train.micro_batch_size); a resume with another micro-batch size converts the position.
    micro_batch_size: int | None = None


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def checkpoints_root(run_dir: Path) -> Path:
    return run_dir / CHECKPOINTS_DIR


# --- files --------------------------------------------------------------------------------------


def _files_of(root: Path) -> list[str]:
    return sorted(
        str((Path(dirpath) / name).relative_to(root))
        for dirpath, _dirs, names in os.walk(root)
        for name in names
        if not (Path(dirpath) == root and name.startswith(MANIFEST))
    )


def _write_manifest(ckpt: Path, meta: dict[str, Any]) -> str:
    """Hashes every file and writes MANIFEST.json (atomically); returns its sha256."""
    manifest = {**meta, "files": {rel: sha256_file(ckpt / rel) for rel in _files_of(ckpt)}}
    text = json_text(manifest, sort_keys=True)
    write_text_atomic(ckpt / MANIFEST, text)
    return hashlib.sha256(text.encode()).hexdigest()


# --- RNG ----------------------------------------------------------------------------------------


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        # Plain lists so that the file loads with torch.load(weights_only=True).
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def rank_rng_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One rng.pt for a data-parallel run: rank 0's state as usual, every rank's under "ranks"."""
    return {**states[0], "ranks": states}


def rng_of_rank(saved: dict[str, Any], rank: int) -> dict[str, Any]:
    """The state rank `rank` resumes with (rank 0's where the checkpoint holds no state of its own)."""
    ranks = saved.get("ranks") or []
    return ranks[rank] if rank < len(ranks) else saved


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- trainable weights --------------------------------------------------------------------------


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def restore_trainable(model: torch.nn.Module, paths: list[Path]) -> None:
    """Copies every trainable parameter from the safetensors `paths` (other entries may only be buffers,
    as in a whole model saved by save_pretrained)."""
    saved: dict[str, torch.Tensor] = {}
    for path in paths:
        saved.update(load_file(str(path)))
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(params) - set(saved))[:3]
    extra = sorted(set(saved) - set(params) - {name for name, _ in model.named_buffers()})[:3]
    if missing or extra:
        where = ", ".join(str(path) for path in paths)
        raise CheckpointError(f"{where}: trainable parameters differ from the model's (missing {missing}, extra {extra})")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name].to(device=p.device, dtype=p.dtype))


# --- save ---------------------------------------------------------------------------------------


@dataclass
class SavedCheckpoint:
    path: Path
    manifest_sha256: str


def save_checkpoint(
    run_dir: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: TrainerState,
    eval_loss: float | None,
    save_adapter: Callable[[torch.nn.Module, Path], None],
    weights_in_adapter: bool = False,
    rng: dict[str, Any] | None = None,
) -> SavedCheckpoint:
    """Writes step-XXXXXX atomically (write_dir_atomic), then MANIFEST.json last.

    `weights_in_adapter`: save_adapter writes every trainable parameter under the model's own names
    in its *.safetensors (a whole model, as full fine-tuning saves), so no second copy is written.
    `rng` is the generator state to save (default: this process's, capture_rng()); a data-parallel
    run passes rank_rng_states(...), which holds every rank's. A same-step leftover (renamed before
    an earlier attempt died, without a manifest) is replaced.
    """
    final = checkpoints_root(run_dir) / step_dir_name(state.step)

    def fill(tmp: Path) -> None:
        save_adapter(model, tmp / ADAPTER_DIR)
        if not weights_in_adapter:
            save_file(trainable_tensors(model), str(tmp / TRAINABLE_FILE))
        _torch_save(optimizer.state_dict(), tmp / "optimizer.pt")
        _torch_save(scheduler.state_dict(), tmp / "scheduler.pt")
        _torch_save(rng if rng is not None else capture_rng(), tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json_text(asdict(state)))

    write_dir_atomic(final, fill)
    trainable = sorted(str(p.relative_to(final)) for p in (final / ADAPTER_DIR).glob("*.safetensors")) \
        if weights_in_adapter else [TRAINABLE_FILE]
    meta = {
        "step": state.step,
        "full_state": True,
        "eval_loss": eval_loss,
        "job_fingerprint": state.job_fingerprint,
        "data_fingerprint": state.data_fingerprint,
        "trainable": trainable,
    }
    return SavedCheckpoint(final, _write_manifest(final, meta))


def _torch_save(obj: Any, path: Path) -> None:
    # Through a Python file: torch.save onto a path reports a full disk as a bare "iostream error",
    # while a file object's write raises OSError(ENOSPC), which files.no_space_named recognises.
    with open(path, "wb") as f:
        torch.save(obj, f)


def clean_temporary(run_dir: Path) -> None:
    """Removes what interrupted writes left (a killed attempt, a full disk): temporary and stepped-aside
    directories of files.write_dir_atomic in checkpoints/ and in the run dir (the adapter's), and the
    run dir's temporary files of write_text_atomic (`<name>.tmp`; the controller's own are dot-files)."""
    if checkpoints_root(run_dir).exists() and not checkpoints_root(run_dir).is_dir():
        from peftshim.spec import SpecError  # a damaged run dir is the user's to repair: exit 2, not a crash

        raise SpecError(str(checkpoints_root(run_dir)), "", "is not a directory (a damaged run dir?): move it away and run again")
    for root in (checkpoints_root(run_dir), run_dir):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if entry.name.startswith((".tmp-", ".old-")) and entry.is_dir():
                shutil.rmtree(entry)
            elif root == run_dir and entry.name.endswith(".tmp") and not entry.name.startswith(".") and entry.is_file():
                entry.unlink()


def discard_stale(run_dir: Path) -> None:
    """Before a fresh start: checkpoints of an earlier attempt would mix with this one's steps."""
    clean_temporary(run_dir)
    stale = list_checkpoints(run_dir)
    if stale:
        warn(f"starting afresh: removing {len(stale)} checkpoint(s) of an earlier attempt in {checkpoints_root(run_dir)}")
        for _step, path in stale:
            shutil.rmtree(path)


# --- verify and find ----------------------------------------------------------------------------


def read_manifest(ckpt: Path) -> dict[str, Any]:
    path = ckpt / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{ckpt.name}: no {MANIFEST} (the checkpoint was never finished)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{ckpt.name}: unreadable {MANIFEST}: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{ckpt.name}: {MANIFEST} has no file list")
    return manifest


def verify_checkpoint(ckpt: Path) -> dict[str, Any]:
    """The manifest, once every file it lists matches its sha256; CheckpointError otherwise."""
    manifest = read_manifest(ckpt)
    for rel, expected in manifest["files"].items():
        path = ckpt / rel
        if not path.is_file():
            raise CheckpointError(f"{ckpt.name}: {rel} is missing")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{ckpt.name}: {rel} does not match its sha256 in {MANIFEST}")
    return manifest


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Finished or not, oldest first."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), entry) for entry in root.iterdir() if (m := _STEP_DIR.match(entry.name)) and entry.is_dir()]
    return sorted(found)


def find_resumable(run_dir: Path, warn: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint with a full state whose manifest verifies; the ones skipped are warned of."""
    for _step, ckpt in reversed(list_checkpoints(run_dir)):
        try:
            manifest = verify_checkpoint(ckpt)
        except CheckpointError as err:
            warn(f"skipping checkpoint {err}")
            continue
        if manifest.get("full_state"):
            return ckpt, manifest
    return None


def check_fingerprints(manifest: dict[str, Any], *, job: str, data: str, ckpt: Path) -> None:
    for what, ours in (("job", job), ("data", data)):
        theirs = manifest.get(f"{what}_fingerprint")
        if theirs != ours:
            raise FingerprintError(
                f"{ckpt}: the {what} fingerprint differs from the checkpoint's ({str(theirs)[:12]} vs {ours[:12]}): "
                f"the {'config' if what == 'job' else 'data or its preprocessing'} changed since it was made; "
                "start a new run, or pass --force to resume anyway"
            )


@dataclass
class LoadedState:
    trainer: TrainerState
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]


def load_state(ckpt: Path, model: torch.nn.Module) -> LoadedState:
    """Restores the trainable weights into `model` and returns the rest of the state."""
    # Checkpoints written before the manifest named them kept the weights in trainable.safetensors.
    restore_trainable(model, [ckpt / rel for rel in read_manifest(ckpt).get("trainable", [TRAINABLE_FILE])])
    raw = json.loads((ckpt / "trainer_state.json").read_text())
    raw["eval_history"] = [tuple(item) for item in raw.get("eval_history", [])]
    return LoadedState(
        trainer=TrainerState(**raw),
        optimizer=torch.load(ckpt / "optimizer.pt", weights_only=True),
        scheduler=torch.load(ckpt / "scheduler.pt", weights_only=True),
        rng=torch.load(ckpt / "rng.pt", weights_only=True),
    )


# --- retention ----------------------------------------------------------------------------------


def apply_retention(run_dir: Path, *, keep_last: int, keep_adapters: str) -> None:
    """Keeps `keep_last` full states; older checkpoints keep only their adapter, by `keep_adapters`.

    all: every adapter; best: the one with the lowest eval loss; last: only those of the full states.
    A checkpoint left with nothing is removed. Unfinished ones are left for find_resumable to skip.
    """
    finished: list[tuple[int, Path, dict[str, Any]]] = []
    for step, ckpt in list_checkpoints(run_dir):
        try:
            finished.append((step, ckpt, read_manifest(ckpt)))
        except CheckpointError:
            continue
    full = [item for item in finished if item[2].get("full_state")]
    keep_full = {step for step, _, _ in full[-keep_last:]}
    scored = [(m["eval_loss"], step) for step, _, m in finished if isinstance(m.get("eval_loss"), (int, float))]
    best_step = min(scored)[1] if scored else None

    for step, ckpt, manifest in finished:
        if step in keep_full:
            continue
        keep_adapter = keep_adapters == "all" or (keep_adapters == "best" and step == best_step)
        if not keep_adapter:
            shutil.rmtree(ckpt)
            continue
        if manifest.get("full_state"):
            for name in STATE_FILES:
                (ckpt / name).unlink(missing_ok=True)
            meta = {k: v for k, v in manifest.items() if k not in ("files", "trainable")}
            meta["full_state"] = False
            _write_manifest(ckpt, meta)


def warn(message: str) -> None:
    print(f"peftshim: warning: {message}", file=sys.stderr, flush=True)
