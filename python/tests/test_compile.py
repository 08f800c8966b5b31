"""train.compile: compiled decoder layers train to the same losses and adapter as eager ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_train import events_of, read_events, run_main_in_process, small_job, write_job
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

from peftshim.model import compile_decoder_layers
from peftshim.spec import SpecError

STEPS = 6


def train(run_dir: Path, *, compile_layers: bool) -> tuple[list[float], dict[str, torch.Tensor]]:
    # fp32 on a GPU too (bench/gpu_check.sh), so the tolerances below mean the same everywhere
    spec = small_job(run_dir, method={"kind": "lora", "dropout": 0.0}, model={"dtype": "float32"},
                     train={"max_steps": STEPS, "lr": 1e-2, "warmup_steps": 0, "log_every_steps": 1,
                            "compile": compile_layers},
                     eval={"every_steps": STEPS, "generate": {"samples": 1, "max_new_tokens": 4}},
                     checkpoint={"every_steps": STEPS, "keep_last": 1, "keep_adapters": "last"})
    assert run_main_in_process("train", "--job", str(write_job(run_dir, spec))) == 0
    losses = [p["loss"] for p in events_of(read_events(run_dir), "progress")]
    return losses, load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def test_compiled_layers_train_like_eager_ones(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    eager_losses, eager_adapter = train(tmp_path / "eager", compile_layers=False)
    try:
        compiled_losses, compiled_adapter = train(tmp_path / "compiled", compile_layers=True)
    finally:
        torch._dynamo.reset()
    assert len(compiled_losses) == STEPS
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-4)
    # The same keys (Module.compile keeps them), and the same weights up to fp32 reordering, which
    # Adam's first steps magnify (each moves a weight by about lr whatever the gradient's size).
    assert set(compiled_adapter) == set(eager_adapter)
    scale = max(float(w.abs().max()) for w in eager_adapter.values())
    assert max(float((compiled_adapter[k] - eager_adapter[k]).abs().max()) for k in eager_adapter) < 1e-2 * scale
    assert (tmp_path / "compiled" / "samples.jsonl").read_text().strip()  # generation ran (eagerly)
    assert "recompile_limit" not in capfd.readouterr().err  # no layer fell back to eager for too many recompiles


def test_a_model_without_decoder_layer_names_cannot_be_compiled() -> None:
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=8, n_layer=1, n_head=2))
    model._no_split_modules = None
    with pytest.raises(SpecError, match="train.compile"):
        compile_decoder_layers(model)
