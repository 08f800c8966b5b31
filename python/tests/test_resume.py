"""Resumption through the real CLI: SIGTERM mid-run then --resume ends with the same adapter as an
uninterrupted run; corrupt checkpoints are skipped; a changed job or data fingerprint is refused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_train import (
    PROJECT_ROOT,
    events_of,
    read_events,
    run_main_in_process,
    run_shim,
    shim_command,
    shim_env,
    small_job,
    write_job,
)
from safetensors.torch import load_file

from peftshim.checkpoint import verify_checkpoint

TOTAL_STEPS = 16


def resume_job(run_dir: Path) -> Path:
    # lora dropout on (dropout RNG must be restored), packing, accumulation 2 and ~2 epochs (the data
    # position must survive an epoch boundary), checkpoints every 4 steps, keep_last 2.
    spec = small_job(run_dir, method={"kind": "lora", "dropout": 0.1},
                     train={"max_steps": TOTAL_STEPS, "log_every_steps": 1, "warmup_steps": 3})
    return write_job(run_dir, spec)


def adapter_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b) and a
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def progress_losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events_of(read_events(run_dir), "progress")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("resume") / "straight"
    result = run_shim(resume_job(run_dir))
    assert result.returncode == 0, result.stderr
    return run_dir


def test_sigterm_then_resume_matches_uninterrupted_run(tmp_path: Path, uninterrupted: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "interrupted"
    job = resume_job(run_dir)
    proc = subprocess.Popen(shim_command(job), env=shim_env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        # Between checkpoints (every 4 steps): the interruption itself must save the state.
        if event["type"] == "progress" and event["step"] == 6:
            proc.send_signal(signal.SIGTERM)
            # A second signal (an impatient user) must neither abort nor corrupt the checkpoint.
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err
    (interrupted,) = events_of(read_events(run_dir), "interrupted")
    # Python runs pending handlers by signal number, so when both arrived during one torch call the
    # SIGINT handler runs first: either name is the truth of what the shim saw first.
    assert interrupted["signal"] in {"SIGTERM", "SIGINT"} and 6 <= interrupted["step"] < TOTAL_STEPS
    assert interrupted["checkpoint"] == str(run_dir / "checkpoints" / f"step-{interrupted['step']:06d}")
    assert not (run_dir / "adapter").exists()
    assert verify_checkpoint(Path(interrupted["checkpoint"]))["step"] == interrupted["step"]

    result = run_shim(job, "--resume", "--attempt", "2")
    assert result.returncode == 0, result.stderr
    starts = events_of(read_events(run_dir), "start")
    assert [s["resumed_from_step"] for s in starts] == [None, interrupted["step"]]
    assert starts[1]["attempt"] == 2

    difference = max_difference(adapter_weights(run_dir), adapter_weights(uninterrupted))
    with capsys.disabled():
        print(f" interrupted at step {interrupted['step']}, resumed: max |adapter difference| = {difference:.3g}")
    assert difference <= 1e-6
    # The training itself was the same, step by step (losses logged after the resume included).
    straight, resumed = progress_losses(uninterrupted), progress_losses(run_dir)
    assert sorted(straight) == sorted(resumed) == list(range(1, TOTAL_STEPS + 1))
    assert max(abs(straight[s] - resumed[s]) for s in straight) <= 1e-5
    assert events_of(read_events(run_dir), "done")[0]["metrics"]["train_tokens"] == \
        events_of(read_events(uninterrupted), "done")[0]["metrics"]["train_tokens"]


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    spec: dict[str, Any] = json.loads((target / "job.json").read_text())
    spec["run_dir"] = str(target)
    spec["run_id"] = target.name
    write_job(target, spec)
    shutil.rmtree(target / "adapter")
    (target / "events.jsonl").unlink()
    return target / "job.json"


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, uninterrupted: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    job = copy_run(uninterrupted, tmp_path / "corrupt")
    steps = sorted(p.name for p in (tmp_path / "corrupt" / "checkpoints").iterdir())
    assert steps == ["step-000012", "step-000016"]  # keep_last 2; best adapter is among them
    newest = tmp_path / "corrupt" / "checkpoints" / "step-000016" / "adapter" / "adapter_model.safetensors"
    newest.write_bytes(newest.read_bytes()[:-8] + b"corrupt!")

    assert run_main_in_process("train", "--job", str(job), "--resume", "--attempt", "2") == 0
    err = capsys.readouterr().err
    assert "warning: skipping checkpoint step-000016: adapter/adapter_model.safetensors does not match its sha256" in err
    (start,) = events_of(read_events(tmp_path / "corrupt"), "start")
    assert start["resumed_from_step"] == 12
    # Training steps 13-16 again gives the uninterrupted run's adapter (in-process: other thread
    # count than the subprocess, so a slightly looser bound than the subprocess comparison).
    assert max_difference(adapter_weights(tmp_path / "corrupt"), adapter_weights(uninterrupted)) <= 1e-5


def test_changed_job_fingerprint_is_refused_unless_forced(tmp_path: Path, uninterrupted: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    job = copy_run(uninterrupted, tmp_path / "changed")
    spec = json.loads(job.read_text())
    spec["train"]["lr"] = 5e-4
    spec["fingerprints"]["job"] = "e" * 64
    job.write_text(json.dumps(spec))

    assert run_main_in_process("train", "--job", str(job), "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "job fingerprint differs from the checkpoint's" in err[0] and "--force" in err[0]
    (error,) = events_of(read_events(tmp_path / "changed"), "error")
    assert error["kind"] == "fingerprint" and error["retryable"] is False
    assert not (tmp_path / "changed" / "adapter").exists()

    assert run_main_in_process("train", "--job", str(job), "--resume", "--force") == 0
    assert "resuming anyway: --force" in capsys.readouterr().err
    assert events_of(read_events(tmp_path / "changed"), "start")[0]["resumed_from_step"] == TOTAL_STEPS
    assert (tmp_path / "changed" / "adapter" / "adapter_model.safetensors").is_file()


def test_changed_data_is_refused(tmp_path: Path, uninterrupted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = copy_run(uninterrupted, tmp_path / "newdata")
    spec = json.loads(job.read_text())
    data = tmp_path / "data.json"
    records = json.loads(Path(spec["data"]["path"]).read_text())
    data.write_text(json.dumps(records[:-1]))
    spec["data"]["path"] = str(data)
    job.write_text(json.dumps(spec))
    assert run_main_in_process("train", "--job", str(job), "--resume") == 2
    assert "data fingerprint differs" in capsys.readouterr().err


def test_resume_without_checkpoint_starts_fresh(tmp_path: Path) -> None:
    run_dir = tmp_path / "fresh"
    spec = small_job(run_dir, train={"max_steps": 2, "log_every_steps": 1}, eval={"every_steps": 100},
                     checkpoint={"every_steps": 100})
    assert run_main_in_process("train", "--job", str(write_job(run_dir, spec)), "--resume") == 0
    (start,) = events_of(read_events(run_dir), "start")
    assert start["resumed_from_step"] is None
    assert [e["step"] for e in events_of(read_events(run_dir), "checkpoint")] == [2]


def test_resume_with_a_smaller_micro_batch_continues_at_the_same_data_position(tmp_path: Path) -> None:
    """The out-of-memory back-off: a run checkpointed at micro-batch 4 resumes with --micro-batch-size 2.

    The data position is converted (16 micro-batches of 4 rows are 32 of 2: packed rows do not depend on
    the micro-batch size), so every later step trains on the same rows with the same normaliser. What
    is asserted: the same per-step losses and tokens (the same data), and an adapter equal to the
    uninterrupted run's (measured 4e-9 here: the same sums in another order).
    """
    def job(run_dir: Path) -> Path:
        # no dropout: micro-batches of 2 rows would draw other dropout masks than micro-batches of 4
        return write_job(run_dir, small_job(
            run_dir, method={"kind": "lora", "dropout": 0.0}, train={"max_steps": 20, "log_every_steps": 1},
            eval={"every_steps": 8}, checkpoint={"every_steps": 8, "keep_last": 3, "keep_adapters": "last"}))

    straight = tmp_path / "micro-4"
    assert run_main_in_process("train", "--job", str(job(straight))) == 0
    resumed = tmp_path / "micro-2"
    copy_run(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000020")
    before = json.loads((resumed / "checkpoints" / "step-000016" / "trainer_state.json").read_text())
    assert before["epoch"] >= 1 and before["batch_index"] > 0 and before["micro_batch_size"] == 4  # mid-epoch

    assert run_main_in_process("train", "--job", str(resumed / "job.json"), "--resume", "--micro-batch-size", "2") == 0
    (start,) = events_of(read_events(resumed), "start")
    assert start["resumed_from_step"] == 16
    straight_losses, resumed_losses = progress_losses(straight), progress_losses(resumed)
    assert sorted(resumed_losses) == [17, 18, 19, 20]
    assert all(resumed_losses[s] == pytest.approx(straight_losses[s], rel=1e-6) for s in resumed_losses)
    done = {run: events_of(read_events(run), "done")[0]["metrics"] for run in (straight, resumed)}
    assert done[resumed]["train_tokens"] == done[straight]["train_tokens"]
    after = {run: json.loads((run / "checkpoints" / "step-000020" / "trainer_state.json").read_text())
             for run in (straight, resumed)}
    assert after[resumed]["epoch"] == after[straight]["epoch"] and after[resumed]["micro_batch_size"] == 2
    assert after[resumed]["batch_index"] == 2 * after[straight]["batch_index"]
    assert max_difference(adapter_weights(resumed), adapter_weights(straight)) <= 1e-5


def test_full_fine_tuning_checkpoints_hold_the_weights_once_and_resume_exactly(tmp_path: Path) -> None:
    def job(run_dir: Path) -> Path:
        return write_job(run_dir, small_job(
            run_dir, method="full", train={"max_steps": 8, "log_every_steps": 1},
            eval={"every_steps": 4}, checkpoint={"every_steps": 4, "keep_last": 2, "keep_adapters": "last"}))

    straight = tmp_path / "full"
    assert run_main_in_process("train", "--job", str(job(straight))) == 0
    checkpoint = straight / "checkpoints" / "step-000004"
    weights = sorted(checkpoint.rglob("*.safetensors"))
    assert [p.relative_to(checkpoint) for p in weights] == [Path("adapter/model.safetensors")]
    (start,) = events_of(read_events(straight), "start")
    one_copy = 4 * start["params"]["total"]  # fp32
    assert one_copy <= weights[0].stat().st_size < 1.01 * one_copy
    assert verify_checkpoint(checkpoint)["trainable"] == ["adapter/model.safetensors"]

    resumed = tmp_path / "resumed"
    copy_run(straight, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step-000008")
    assert run_main_in_process("train", "--job", str(resumed / "job.json"), "--resume") == 0
    assert events_of(read_events(resumed), "start")[0]["resumed_from_step"] == 4
    full_weights = {run: load_file(str(run / "adapter" / "model.safetensors")) for run in (straight, resumed)}
    assert max_difference(full_weights[resumed], full_weights[straight]) <= 1e-6
