"""QLoRA (model.quantization): real 4-bit training of the tiny built-in model through bitsandbytes'
CPU backend, its checkpoints and resume, the refusals where it cannot run, and on a GPU (skipped with
its reason on a CPU) the CUDA memory of a 4-bit model against bf16 and against the plan's estimate.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers_train import PROJECT_ROOT, events_of, read_events, shim_command, shim_env, small_job, write_job

QLORA = {"bits": 4, "type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}
STEPS = 6


def _job(run_dir: Path, **overrides) -> Path:
    # Short rows and one micro-batch per step: bitsandbytes' CPU kernels at bf16 compute run ~75 tokens/s here.
    base = {"model": {"quantization": QLORA}, "data": {"max_length": 64},
            "train": {"max_steps": STEPS, "batch_size": 4, "micro_batch_size": 4, "lr": 5e-3, "warmup_steps": 1,
                      "log_every_steps": 1},
            "eval": {"every_steps": 3}, "checkpoint": {"every_steps": 3}}
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value}
    return write_job(run_dir, small_job(run_dir, **base))


def _run(job: Path, cache: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shim_command(job, *extra), env=env or shim_env(cache), capture_output=True, text=True,
                          timeout=600, cwd=PROJECT_ROOT)


def _losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events_of(read_events(run_dir), "progress")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("peftshim-cache")


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("qlora") / "run"
    result = _run(_job(run_dir), cache)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_qlora_trains_4bit_linears_and_the_loss_falls(qlora_run: Path, cache: Path) -> None:
    events = read_events(qlora_run)
    start = events_of(events, "start")[0]
    losses = _losses(qlora_run)
    assert sorted(losses) == list(range(1, STEPS + 1))
    assert losses[STEPS] < losses[1] - 0.1, losses
    # LoRA r8 on q, v of 4 layers (k, v are 128 wide): as unquantized (peft counts 4-bit weights x2).
    assert start["params"]["trainable"] == 4 * (8 * (256 + 256) + 8 * (256 + 128)), start["params"]
    adapter_config = json.loads((qlora_run / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA"
    assert (qlora_run / "adapter" / "adapter_model.safetensors").is_file()
    assert list((cache / "builtin-models").iterdir()), "the built-in model was saved for from_pretrained"


def test_the_quantized_model_is_really_4bit(cache: Path, qlora_run: Path) -> None:
    import bitsandbytes as bnb

    from peftshim.methods import apply_method
    from peftshim.model import load_base_model
    from peftshim.spec import LoraMethod

    spec = {"base": "builtin:tiny-llama", "quantization": QLORA}
    model, _ = load_base_model(spec, device=torch.device("cpu"), dtype=torch.float32, tokenizer_texts=None,
                               cache_dir=cache)
    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linears) == 4 * 7  # every projection of every decoder layer; the head stays unquantized
    weight = linears[0].weight
    assert weight.dtype == torch.uint8 and weight.quant_state.quant_type == "nf4" and weight.quant_state.nested
    assert linears[0].compute_dtype == torch.bfloat16
    peft_model = apply_method(model, LoraMethod(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"],
                                                use_dora=False, use_rslora=False, bias="none"),
                              gradient_checkpointing=True)
    assert {p.dtype for p in peft_model.parameters() if not isinstance(p, bnb.nn.Params4bit)} == {torch.float32}
    assert all(not p.requires_grad for p in peft_model.parameters() if isinstance(p, bnb.nn.Params4bit))


def test_8bit_loads_int8_linears_and_trains_a_lora_step(cache: Path, qlora_run: Path) -> None:
    import bitsandbytes as bnb

    from peftshim.methods import apply_method
    from peftshim.model import load_base_model
    from peftshim.spec import LoraMethod

    spec = {"base": "builtin:tiny-llama", "quantization": {**QLORA, "bits": 8}}
    model, tokenizer = load_base_model(spec, device=torch.device("cpu"), dtype=torch.float32, tokenizer_texts=None,
                               cache_dir=cache)
    linears = [m for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt)]
    assert len(linears) == 4 * 7 and linears[0].weight.dtype == torch.int8
    peft_model = apply_method(model, LoraMethod(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"],
                                                use_dora=False, use_rslora=False, bias="none"),
                              gradient_checkpointing=False)
    batch = torch.randint(0, len(tokenizer), (2, 16))
    peft_model(input_ids=batch, labels=batch).loss.backward()
    grads = [p.grad for name, p in peft_model.named_parameters() if "lora_B" in name]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_qlora_stopped_and_resumed_matches_the_uninterrupted_run(tmp_path: Path, cache: Path,
                                                                 qlora_run: Path) -> None:
    run_dir = tmp_path / "interrupted"
    job = _job(run_dir)
    proc = subprocess.Popen(shim_command(job), env=shim_env(cache), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "progress" and event["step"] == 4:  # between checkpoints: the stop saves one
            proc.send_signal(signal.SIGTERM)
            break
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err[-3000:]
    (interrupted,) = events_of(read_events(run_dir), "interrupted")
    assert 4 <= interrupted["step"] < STEPS

    resumed = _run(job, cache, "--resume", "--attempt", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    starts = events_of(read_events(run_dir), "start")
    assert [s["resumed_from_step"] for s in starts] == [None, interrupted["step"]]
    straight, after = _losses(qlora_run), _losses(run_dir)
    assert sorted(after) == list(range(1, STEPS + 1))
    assert max(abs(straight[step] - after[step]) for step in straight) <= 1e-4, (straight, after)
    a = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(qlora_run / "adapter" / "adapter_model.safetensors"))
    assert set(a) == set(b) and max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5


def test_full_fine_tuning_of_a_quantized_model_is_refused(tmp_path: Path, cache: Path) -> None:
    job = write_job(tmp_path / "full", small_job(tmp_path / "full", method="full", model={"quantization": QLORA}))
    result = _run(job, cache)
    assert result.returncode == 2, result.stderr[-2000:]
    error = events_of(read_events(tmp_path / "full"), "error")[0]
    assert error["kind"] == "spec" and "full fine-tuning cannot train a quantized model" in error["message"]


def test_missing_bitsandbytes_is_a_clear_environment_error(tmp_path: Path, cache: Path) -> None:
    # A sitecustomize that makes `import bitsandbytes` fail, as on a host without it.
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'bitsandbytes' or name.startswith('bitsandbytes.'):\n"
        "            raise ImportError('No module named bitsandbytes (blocked by the test)')\n"
        "sys.meta_path.insert(0, _Block())\n")
    env = shim_env(cache)
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    run_dir = tmp_path / "nobnb"
    result = _run(_job(run_dir), cache, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    error = events_of(read_events(run_dir), "error")[0]
    assert error["kind"] == "environment" and error["retryable"] is True
    assert "model.quantization (4-bit) needs bitsandbytes, which this Python cannot import" in error["message"]
    assert "Traceback" not in result.stderr
    assert not events_of(read_events(run_dir), "train")


@pytest.mark.parametrize("quantized", [False, True])
def test_bitsandbytes_is_imported_only_by_a_job_that_quantizes(tmp_path: Path, cache: Path, quantized: bool) -> None:
    # peft imports bitsandbytes whenever it is installed (1.5 s a start); the shim hides it from unquantized jobs.
    # The data file is missing, so the run ends (exit 2) right after the imports, having read no weights.
    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir, model={"quantization": QLORA} if quantized else {},
                                       data={"path": str(tmp_path / "missing.json")}))
    env = {**shim_env(cache), "PYTHONPROFILEIMPORTTIME": "1"}
    result = _run(job, cache, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "peft" in imported
    # A hidden package still leaves a line for the failed `import bitsandbytes`: its submodules tell a real import.
    assert any(name.startswith("bitsandbytes.") for name in imported) is quantized


def test_a_device_without_a_bitsandbytes_backend_is_refused() -> None:
    from peftshim.quantization import QuantizationUnavailable, check_available
    from peftshim.spec import QuantizationSpec

    spec = QuantizationSpec(**QLORA)
    check_available(spec, torch.device("cpu"))  # this build's CPU backend: no error
    with pytest.raises(QuantizationUnavailable, match=r"has no backend for meta \(it supports .*cpu.*cuda"):
        check_available(spec, torch.device("meta"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
def test_gpu_4bit_weights_take_a_quarter_of_bf16_and_match_the_estimate(tmp_path: Path) -> None:
    """CUDA memory of a 1.1B-parameter LLaMA-shaped model, bf16 vs NF4 (double quant), against the
    plan's weight term (src/plan/memory.ts), then a few QLoRA steps on the GPU."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from peftshim.methods import apply_method
    from peftshim.model import _pretrained_model
    from peftshim.spec import LoraMethod, ModelSpec, QuantizationSpec

    config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                         num_attention_heads=32, num_key_value_heads=4, tie_word_embeddings=False)
    with torch.device("cuda"):
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(tmp_path / "model")
    torch.cuda.empty_cache()
    device = torch.device("cuda")

    def allocated(quantization: QuantizationSpec | None) -> int:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        spec = ModelSpec(base=str(tmp_path / "model"), revision=None, dtype="bfloat16", attn="sdpa",
                         trust_remote_code=False, quantization=quantization)
        model = _pretrained_model(tmp_path / "model", spec, device=device, dtype=torch.bfloat16, revision=None)
        torch.cuda.synchronize()
        used = torch.cuda.memory_allocated() - before
        del model
        torch.cuda.empty_cache()
        return used

    bf16 = allocated(None)
    nf4 = allocated(QuantizationSpec(**QLORA))
    d, inter, layers, kv = 2048, 5632, 22, 4 * 64
    linear = layers * (2 * d * d + 2 * d * kv + 3 * d * inter)
    rest = 2 * 32000 * d + layers * 2 * d + d
    expected_nf4 = linear * (0.5 + 1 / 64 + 4 / (64 * 256)) + rest * 2  # bf16 until k-bit preparation
    print(f"bf16 {bf16 / 2**30:.3f} GiB, nf4 {nf4 / 2**30:.3f} GiB, estimate {expected_nf4 / 2**30:.3f} GiB")
    assert bf16 == pytest.approx((linear + rest) * 2, rel=0.02)
    assert nf4 == pytest.approx(expected_nf4, rel=0.05)
    assert nf4 < bf16 / 2.5

    spec = ModelSpec(base=str(tmp_path / "model"), revision=None, dtype="bfloat16", attn="sdpa",
                     trust_remote_code=False, quantization=QuantizationSpec(**QLORA))
    model = _pretrained_model(tmp_path / "model", spec, device=device, dtype=torch.bfloat16, revision=None)
    model = apply_method(model, LoraMethod(r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"],
                                           use_dora=False, use_rslora=False, bias="none"),
                         gradient_checkpointing=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = torch.randint(0, 32000, (2, 256), device=device)
    losses = []
    for _ in range(4):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    print("QLoRA losses on the GPU:", losses, "peak GiB", torch.cuda.max_memory_allocated() / 2**30)
    assert losses[-1] < losses[0]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
