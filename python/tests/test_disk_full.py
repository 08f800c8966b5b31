"""A full disk while saving: a real tmpfs too small for what is written (mounted here; the tests run
as root, which `mount -t tmpfs` needs). Every writer of the shim says "no space left on <mount>" as
NoSpaceError (the shim's exit 4, error kind disk_full) and leaves no half-written file or directory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import torch

from peftshim import checkpoint as ckpt
from peftshim.events import EventWriter
from peftshim.files import NoSpaceError, is_no_space, write_json_atomic, write_text_atomic


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs at tmp_path/disk."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True)
    assert done.returncode == 0, f"these tests mount a small tmpfs and need root (CAP_SYS_ADMIN): {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or p.name.startswith(".old-"))


def test_a_checkpoint_that_does_not_fit_is_no_space_error_and_leaves_nothing(small_disk: Path) -> None:
    run_dir = small_disk / "run"
    run_dir.mkdir()
    model = torch.nn.Linear(256, 256)  # 256 KiB of weights: with the optimizer state, far beyond the disk
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 256)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    state = ckpt.TrainerState(step=4, epoch=0, batch_index=4, job_fingerprint="j", data_fingerprint="d")

    def save_adapter(m: torch.nn.Module, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "note.txt").write_text("adapter")

    with pytest.raises(NoSpaceError) as raised:
        ckpt.save_checkpoint(run_dir, model=model, optimizer=optimizer, scheduler=scheduler, state=state,
                             eval_loss=None, save_adapter=save_adapter)
    assert str(raised.value).startswith(f"no space left on {small_disk} (writing {run_dir}/checkpoints/step-000004;")
    assert "free of 256.0 KiB" in str(raised.value)
    assert _leftovers(run_dir) == []
    assert ckpt.list_checkpoints(run_dir) == []


def test_atomic_files_and_events_on_a_full_disk(small_disk: Path) -> None:
    target = small_disk / "metrics.json"
    with pytest.raises(NoSpaceError, match=f"no space left on {small_disk}"):
        write_text_atomic(target, "x" * 400_000)
    assert not target.exists() and _leftovers(small_disk) == []

    filler = small_disk / "filler"
    with pytest.raises(OSError):
        filler.write_bytes(b"\0" * 400_000)  # leaves the disk full
    with pytest.raises(NoSpaceError, match="no space left on"):
        write_json_atomic(small_disk / "small.json", {"k": "v" * 8192})
    events = EventWriter("run", small_disk / "events.jsonl", stream=open(small_disk / "stdout.log", "w"))
    with pytest.raises(NoSpaceError, match=f"no space left on {small_disk}"):
        for _ in range(100):  # the stream's buffer may take the first lines
            events.eval(step=1, loss=1.0, perplexity=2.7)


def test_what_counts_as_a_full_disk() -> None:
    from safetensors import SafetensorError

    assert is_no_space(OSError(28, "No space left on device"))
    assert is_no_space(OSError(122, "Disk quota exceeded"))
    assert is_no_space(SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"))
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    except RuntimeError as wrapped:  # how torch.save onto a file object reports it
        assert is_no_space(wrapped)
    assert not is_no_space(OSError(13, "Permission denied"))
    assert not is_no_space(RuntimeError("os error 2"))


def test_a_start_removes_what_interrupted_writes_left(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints" / ".tmp-step-000004").mkdir(parents=True)
    (run_dir / "checkpoints" / ".old-step-000002").mkdir()
    (run_dir / "checkpoints" / "step-000002").mkdir()
    (run_dir / ".tmp-adapter").mkdir()
    (run_dir / "metrics.json.tmp").write_text("{")
    (run_dir / ".status.json.123.abc.tmp").write_text("{")  # the controller's, written while the shim runs
    (run_dir / "events.jsonl").write_text("")
    ckpt.clean_temporary(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == [".status.json.123.abc.tmp", "checkpoints", "events.jsonl"]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step-000002"]
