"""Data parallelism under torchrun (resources.gpus > 1), run here as 2 CPU processes over gloo.

A step of batch 8 at micro-batch 4 is 2 micro-batches (train.micro_batches_per_step): two ranks take
one each, one process accumulates both (as does the same 2-GPU job falling back to one CPU process),
so they must end with the same adapter.
Only rank 0 writes events and checkpoints; a SIGTERM stops both ranks at one step, and --resume
continues to the adapter of a run that was never stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_train import PROJECT_ROOT, read_events, run_main_in_process, shim_env, small_job, write_job
from safetensors.torch import load_file

STEPS = 8
RANKS = 2


def job(run_dir: Path, *, gpus: int) -> Path:
    spec = small_job(
        run_dir,
        method={"kind": "lora", "dropout": 0.0},
        train={"max_steps": STEPS, "lr": 1e-2, "warmup_steps": 0, "log_every_steps": 1, "batch_size": 8,
               "micro_batch_size": 4},
        eval={"every_steps": 4, "generate": {"samples": 1, "max_new_tokens": 4}},
        checkpoint={"every_steps": 4, "keep_last": 2, "keep_adapters": "last"},
        resources={"gpus": gpus},  # no CUDA here: each rank trains on the CPU, gloo between them
    )
    return write_job(run_dir, spec)


def torchrun(job_path: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(RANKS),
               "-m", "peftshim", "train", "--job", str(job_path), *extra]
    return subprocess.Popen(command, env=shim_env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert set(a) == set(b) and a
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


@pytest.fixture(scope="module")
def data_parallel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("ranks") / "two-ranks"
    process = torchrun(job(run_dir, gpus=RANKS))
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return run_dir


def test_two_ranks_train_like_one_process_with_the_same_global_batch(data_parallel_run: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    single = tmp_path / "one-process"
    assert run_main_in_process("train", "--job", str(job(single, gpus=0))) == 0
    # a 2-GPU job that falls back to the CPU runs in one process and takes both ranks' micro-batches
    fallback = tmp_path / "two-gpu-job-on-one-cpu-process"
    assert run_main_in_process("train", "--job", str(job(fallback, gpus=RANKS))) == 0
    capsys.readouterr()

    assert max_difference(adapter(data_parallel_run), adapter(single)) <= 1e-6
    assert max_difference(adapter(fallback), adapter(single)) <= 1e-6
    events, single_events = read_events(data_parallel_run), read_events(single)
    # rank 0 alone writes: the same event sequence as one process, no duplicates
    assert types(events) == types(single_events)
    assert types(events).count("start") == 1 and types(events)[-1] == "done"
    assert events[0]["device"] == f"cpu x {RANKS} ranks"
    losses = [e["loss"] for e in events if e["type"] == "progress"]
    assert losses == pytest.approx([e["loss"] for e in single_events if e["type"] == "progress"], rel=1e-5)
    assert sorted(p.name for p in (data_parallel_run / "checkpoints").iterdir()) == ["step-000004", "step-000008"]
    assert (data_parallel_run / "samples.jsonl").read_text().strip()


def test_a_rank_count_other_than_the_planned_gpus_is_a_spec_error(tmp_path: Path) -> None:
    run_dir = tmp_path / "three-gpus"
    process = torchrun(job(run_dir, gpus=3))
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    errors = [e for e in read_events(run_dir) if e["type"] == "error"]
    assert errors and {e["kind"] for e in errors} == {"spec"}
    assert "plans 3 GPU(s) but torchrun started 2 processes" in errors[0]["message"]
    assert "peftshim: error: job.json: resources.gpus: the job plans 3 GPU(s)" in err


def test_sigterm_stops_every_rank_at_one_step_and_resume_matches(data_parallel_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "stopped"
    job_path = job(run_dir, gpus=RANKS)
    process = torchrun(job_path)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{") and json.loads(line).get("type") == "progress" and json.loads(line)["step"] >= 5:
            os.killpg(process.pid, signal.SIGTERM)  # what `peftctl stop` does: the whole process group
            break
    _, err = process.communicate(timeout=120)
    # torchrun turns its workers' exit 75 into exit 1; the last event says what happened (scheduler.ts reads it)
    assert process.returncode != 0
    events = read_events(run_dir)
    interrupted = events[-1]
    assert interrupted["type"] == "interrupted", err[-3000:]
    assert 5 <= interrupted["step"] < STEPS and interrupted["checkpoint"].endswith(f"step-{interrupted['step']:06d}")
    assert types(events).count("interrupted") == 1

    resumed = torchrun(job_path, "--resume", "--attempt", "2")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    events = read_events(run_dir)
    assert events[-1]["type"] == "done"
    assert [e["resumed_from_step"] for e in events if e["type"] == "start"] == [None, interrupted["step"]]
    assert max_difference(adapter(run_dir), adapter(data_parallel_run)) <= 1e-6
