"""checkpoint.py on a small torch model: atomic layout, manifest verification, retention, RNG."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from peftshim import checkpoint as ckpt


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = torch.nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = torch.nn.Linear(4, 2)


def save_adapter(model: torch.nn.Module, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(ckpt.trainable_tensors(model), str(out_dir / "adapter_model.safetensors"))
    (out_dir / "adapter_config.json").write_text("{}")


def make(run_dir: Path, step: int, *, eval_loss: float | None = None, job: str = "j", data: str = "d"):
    torch.manual_seed(step)
    model = Tiny()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1))
    model.head(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = ckpt.TrainerState(step=step, epoch=1, batch_index=3, job_fingerprint=job, data_fingerprint=data,
                              eval_history=[(step, eval_loss)] if eval_loss is not None else [])
    saved = ckpt.save_checkpoint(run_dir, model=model, optimizer=optimizer, scheduler=scheduler, state=state,
                                 eval_loss=eval_loss, save_adapter=save_adapter)
    return saved, model, optimizer


def test_layout_manifest_and_restore(tmp_path: Path) -> None:
    saved, model, optimizer = make(tmp_path, 7, eval_loss=1.5)
    assert saved.path == tmp_path / "checkpoints" / "step-000007"
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    manifest = ckpt.verify_checkpoint(saved.path)
    assert manifest["step"] == 7 and manifest["full_state"] is True and manifest["eval_loss"] == 1.5
    assert set(manifest["files"]) == {"adapter/adapter_model.safetensors", "adapter/adapter_config.json",
                                      *ckpt.STATE_FILES}
    assert saved.manifest_sha256 == ckpt.sha256_file(saved.path / "MANIFEST.json")

    fresh = Tiny()
    loaded = ckpt.load_state(saved.path, fresh)
    assert torch.equal(fresh.head.weight, model.head.weight)
    assert not torch.equal(fresh.frozen.weight, model.frozen.weight)  # frozen weights are not checkpointed
    assert loaded.trainer.epoch == 1 and loaded.trainer.batch_index == 3 and loaded.trainer.eval_history == [(7, 1.5)]
    assert torch.equal(loaded.optimizer["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert loaded.scheduler["last_epoch"] == 1


def test_rng_round_trip(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = ckpt.capture_rng()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    ckpt.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])


def test_corrupt_partial_and_unfinished_checkpoints_are_skipped(tmp_path: Path) -> None:
    warnings: list[str] = []
    first, _, _ = make(tmp_path, 2)
    second, _, _ = make(tmp_path, 4)
    assert ckpt.find_resumable(tmp_path, warnings.append)[0] == second.path  # type: ignore[index]

    with open(second.path / "optimizer.pt", "r+b") as f:
        f.seek(10)
        f.write(b"\x00\xff\x00")
    unfinished = tmp_path / "checkpoints" / "step-000006"
    unfinished.mkdir()
    (unfinished / "optimizer.pt").write_bytes(b"half")
    found = ckpt.find_resumable(tmp_path, warnings.append)
    assert found is not None and found[0] == first.path
    assert any("step-000006: no MANIFEST.json" in w for w in warnings)
    assert any("step-000004: optimizer.pt does not match its sha256" in w for w in warnings)

    (first.path / "rng.pt").unlink()
    assert ckpt.find_resumable(tmp_path, warnings.append) is None
    assert any("step-000002: rng.pt is missing" in w for w in warnings)


def test_clean_temporary_removes_half_written_dirs(tmp_path: Path) -> None:
    tmp = tmp_path / "checkpoints" / ".tmp-step-000010"
    tmp.mkdir(parents=True)
    ckpt.clean_temporary(tmp_path)
    assert not tmp.exists()


@pytest.mark.parametrize(
    "keep_adapters,adapters_left",
    [("all", [2, 4, 6, 8]), ("best", [4, 6, 8]), ("last", [6, 8])],
)
def test_retention(tmp_path: Path, keep_adapters: str, adapters_left: list[int]) -> None:
    for step, loss in ((2, 3.0), (4, 1.0), (6, 2.0), (8, None)):
        make(tmp_path, step, eval_loss=loss)
        ckpt.apply_retention(tmp_path, keep_last=2, keep_adapters=keep_adapters)
    left = {step: path for step, path in ckpt.list_checkpoints(tmp_path)}
    assert sorted(left) == adapters_left
    for step, path in left.items():
        manifest = ckpt.verify_checkpoint(path)  # rewritten manifests still verify
        assert (path / "adapter" / "adapter_model.safetensors").is_file()
        assert manifest["full_state"] is (step in (6, 8))
        assert (path / "optimizer.pt").exists() is (step in (6, 8))


def test_fingerprint_check(tmp_path: Path) -> None:
    saved, _, _ = make(tmp_path, 2, job="job-a", data="data-a")
    manifest = ckpt.verify_checkpoint(saved.path)
    ckpt.check_fingerprints(manifest, job="job-a", data="data-a", ckpt=saved.path)
    with pytest.raises(ckpt.FingerprintError, match="job fingerprint differs.*--force"):
        ckpt.check_fingerprints(manifest, job="job-b", data="data-a", ckpt=saved.path)
    with pytest.raises(ckpt.FingerprintError, match="data fingerprint differs"):
        ckpt.check_fingerprints(manifest, job="job-a", data="data-b", ckpt=saved.path)


def test_write_atomic_dir_replaces_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    ckpt.write_atomic_dir(target, lambda d: (d / "a.txt").write_text("1"))
    ckpt.write_atomic_dir(target, lambda d: (d / "b.txt").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]

    def failing(d: Path) -> None:
        (d / "c.txt").write_text("3")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ckpt.write_atomic_dir(target, failing)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # the old adapter survives a failed write
    assert json.dumps(ckpt.TrainerState(1, 0, 0, "j", "d").__dict__)
