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


class WholeModel(torch.nn.Module):
    """Full fine-tuning's shape: every parameter trains, and the saved model holds a buffer too."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)
        self.register_buffer("scale", torch.ones(2))


def save_whole_model(model: torch.nn.Module, out_dir: Path) -> None:
    """What save_pretrained writes for full fine-tuning: the state dict under the model's own names."""
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"))


def test_weights_the_adapter_holds_are_written_once_and_restored_from_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = WholeModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    model.head(model.body(torch.ones(1, 4))).sum().backward()
    optimizer.step()
    state = ckpt.TrainerState(step=3, epoch=0, batch_index=6, job_fingerprint="j", data_fingerprint="d")
    saved = ckpt.save_checkpoint(tmp_path, model=model, optimizer=optimizer, scheduler=scheduler, state=state,
                                 eval_loss=1.0, save_adapter=save_whole_model, weights_in_adapter=True)

    assert [p.relative_to(saved.path) for p in saved.path.rglob("*.safetensors")] == [Path("adapter/model.safetensors")]
    manifest = ckpt.verify_checkpoint(saved.path)
    assert manifest["trainable"] == ["adapter/model.safetensors"]
    assert set(manifest["files"]) == {"adapter/model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt",
                                      "trainer_state.json"}
    torch.manual_seed(1)
    fresh = WholeModel()
    ckpt.load_state(saved.path, fresh)
    for name, parameter in model.named_parameters():
        assert torch.equal(dict(fresh.named_parameters())[name], parameter), name

    # a checkpoint past keep_last keeps the adapter (the weights) and drops the rest of the state
    make(tmp_path, 5)
    make(tmp_path, 7)
    ckpt.apply_retention(tmp_path, keep_last=2, keep_adapters="all")
    manifest = ckpt.verify_checkpoint(saved.path)
    assert manifest["full_state"] is False and "trainable" not in manifest
    assert sorted(manifest["files"]) == ["adapter/model.safetensors"]


def test_restore_refuses_weights_that_are_not_the_models(tmp_path: Path) -> None:
    path = tmp_path / "weights.safetensors"
    save_file({"head.weight": torch.zeros(2, 4)}, str(path))
    with pytest.raises(ckpt.CheckpointError, match=r"missing \['head.bias'\]"):
        ckpt.restore_trainable(Tiny(), [path])
    save_file({"head.weight": torch.zeros(2, 4), "head.bias": torch.zeros(2), "frozen.weight": torch.zeros(4, 4)},
              str(path))
    with pytest.raises(ckpt.CheckpointError, match=r"extra \['frozen.weight'\]"):
        ckpt.restore_trainable(Tiny(), [path])


def test_trainer_state_records_the_micro_batch_size_and_old_states_load(tmp_path: Path) -> None:
    saved, _, _ = make(tmp_path, 2)
    assert ckpt.load_state(saved.path, Tiny()).trainer.micro_batch_size is None  # written without one
    raw = json.loads((saved.path / "trainer_state.json").read_text())
    assert "micro_batch_size" in raw
