"""No silent CPU fallback: a job placed on GPU ids (CUDA_VISIBLE_DEVICES) whose torch cannot use
CUDA is refused at start, exit 2 with an `environment` error naming what was found. This machine's
torch is a CPU wheel, which is the case itself (the shim run as a process); the in-process cases
hide CUDA with a monkeypatch, so they hold on a GPU host too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from helpers_train import events_of, read_events, shim_command, shim_env, small_job, write_job

from peftshim.spec import load_spec
from peftshim.train import DeviceUnavailable, wants_cuda

@pytest.fixture(autouse=True)
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process torch has no usable CUDA, on a GPU host too (the subprocess test needs a CPU wheel)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.skipif(torch.version.cuda is not None, reason="the shim's own torch must be a CPU wheel for this case")
def test_the_shim_refuses_gpus_it_cannot_use(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir, resources={"gpus": 1}))
    env = {**shim_env(), "CUDA_VISIBLE_DEVICES": "0"}
    env.pop("PEFTSHIM_SIMULATED_GPUS", None)
    done = subprocess.run(shim_command(job), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    events = read_events(run_dir)
    assert [e["type"] for e in events] == ["error"]  # refused before anything started
    (error,) = events_of(events, "error")
    assert error["kind"] == "environment" and error["retryable"] is True
    assert f"torch {torch.__version__}" in error["message"]
    assert "CPU-only build (torch.version.cuda is None)" in error["message"]
    assert "resources.gpus: 0" in error["message"]
    assert "Traceback" not in done.stderr and error["message"] in done.stderr


@pytest.mark.parametrize(
    "gpus,visible,simulated",
    [(0, "0", None),  # the job asked for no GPU
     (1, "", None),  # no GPU on the host: the controller placed it on a CPU slot and said so
     (1, "-1", None),
     (2, "0,1", "1")],  # PEFTCTL_FAKE_GPUS: simulated ids run on the CPU by design
)
def test_where_the_cpu_is_expected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus: int, visible: str,
                                   simulated: str | None) -> None:
    run_dir = tmp_path / "run"
    spec = load_spec(write_job(run_dir, small_job(run_dir, resources={"gpus": gpus})))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    if simulated is None:
        monkeypatch.delenv("PEFTSHIM_SIMULATED_GPUS", raising=False)
    else:
        monkeypatch.setenv("PEFTSHIM_SIMULATED_GPUS", simulated)
    assert wants_cuda(spec) is False


def test_wants_cuda_refuses_real_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    spec = load_spec(write_job(run_dir, small_job(run_dir, resources={"gpus": 2})))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.delenv("PEFTSHIM_SIMULATED_GPUS", raising=False)
    with pytest.raises(DeviceUnavailable, match=r"placed on GPU 2,3 \(CUDA_VISIBLE_DEVICES\)"):
        wants_cuda(spec)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
