"""`python -m peftshim export` on tiny trained runs of builtin:tiny-llama: LoRA, DoRA and IA3 merged into
the base load with plain transformers and give the logits of base + adapter (max |diff| <= 1e-4 in fp32);
shards are safetensors; the tokenizer loads with AutoTokenizer; methods that cannot merge are refused
(exit 2) before anything loads; without --merge the directory holds the adapter and tokenizer only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers_train import run_main_in_process, small_job, write_job

from peftshim.spec import load_spec

TOKENS = 48
MERGED_TOLERANCE = 1e-4

METHODS: dict[str, dict[str, Any]] = {
    "lora": {"kind": "lora", "target_modules": ["q_proj", "v_proj", "down_proj"]},
    "dora": {"kind": "lora", "use_dora": True, "target_modules": ["q_proj", "v_proj"]},
    "ia3": {"kind": "ia3", "target_modules": ["k_proj", "v_proj", "down_proj"], "feedforward_modules": ["down_proj"]},
}


def _train(root: Path, method: dict[str, Any] | str, steps: int = 4) -> Path:
    run_dir = root / "run"
    job = write_job(run_dir, small_job(run_dir, method=method, train={"max_steps": steps, "lr": 1e-2},
                                       eval={"every_steps": steps},
                                       checkpoint={"every_steps": steps, "keep_last": 1, "keep_adapters": "all"}))
    assert run_main_in_process("train", "--job", str(job)) == 0
    return job


_TRAINED: dict[str, Path] = {}


def trained_job(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """job.json of a 4-step run of METHODS[name], trained once per module."""
    if name not in _TRAINED:
        _TRAINED[name] = _train(tmp_path_factory.mktemp(f"export-{name}"), METHODS[name])
    return _TRAINED[name]


@pytest.fixture(params=sorted(METHODS))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(method name, job.json) of each method's run."""
    return request.param, trained_job(request.param, tmp_path_factory)


@pytest.fixture
def lora_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_job("lora", tmp_path_factory)


def _export(job: Path, out: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = run_main_in_process("export", "--job", str(job), "--out", str(out), *extra)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return code, lines


def _probe(job: Path) -> torch.Tensor:
    """Token ids the tokenizer makes of a sample sentence, as one batch row."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(load_spec(job).run_dir / "adapter"))
    ids = tokenizer("I lost my job last week and I cannot sleep; what should I do now?")["input_ids"][:TOKENS]
    return torch.tensor([ids])


def _logits_with_adapter(job: Path, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(base + adapter, base alone) logits in float32, loaded as `peftctl eval` loads them."""
    import dataclasses

    from peftshim.generate import setup_model

    spec = load_spec(job)
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, dtype="float32"))
    model, _ = setup_model(spec, spec.run_dir / "adapter", lambda: iter(()), device=torch.device("cpu"))
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    return adapted, base


def test_merged_model_gives_the_logits_of_base_plus_adapter(trained: tuple[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    name, job = trained
    out = tmp_path / "merged"
    code, lines = _export(job, out, "--merge", "--dtype", "float32", capsys=capsys)
    assert code == 0, lines
    assert [line["stage"] for line in lines if line["type"] == "stage"] == ["load", "merge", "save"]
    done = lines[-1]
    assert done["type"] == "exported" and done["merged"] is True and done["dtype"] == "float32"

    merged = AutoModelForCausalLM.from_pretrained(str(out))  # plain transformers: no peft, no peftctl
    assert isinstance(merged, LlamaForCausalLM)
    assert not any("lora" in key or "ia3" in key for key in merged.state_dict())
    ids = _probe(job)
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    adapted, base = _logits_with_adapter(job, ids)
    assert (adapted - base).abs().max().item() > 100 * MERGED_TOLERANCE, f"{name}: the adapter changes nothing to compare"
    assert (got - adapted).abs().max().item() <= MERGED_TOLERANCE, name

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    saved = AutoTokenizer.from_pretrained(str(load_spec(job).run_dir / "adapter"))
    text = "Thank you for listening to me."
    assert tokenizer(text)["input_ids"] == saved(text)["input_ids"]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (saved.eos_token_id, saved.pad_token_id)
    assert (out / "generation_config.json").is_file() and (out / "config.json").is_file()
    assert not any(p.name.startswith((".tmp-", ".old-")) for p in tmp_path.iterdir())


def test_shards_are_safetensors_and_dtype_is_applied(lora_job: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForCausalLM

    job = lora_job  # the merge itself is tested for each method; the file layout once
    out = tmp_path / "bf16"
    code, _ = _export(job, out, "--merge", "--dtype", "bfloat16", "--max-shard-size", "2MB", capsys=capsys)
    assert code == 0
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 1 and all(name.startswith("model-") for name in shards)
    assert (out / "model.safetensors.index.json").is_file()
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_without_merge_a_clean_adapter_directory(lora_job: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from peft import PeftModel

    from peftshim.model import build_builtin_model
    from transformers import AutoTokenizer

    job = lora_job
    spec = load_spec(job)
    checkpoint = spec.run_dir / "checkpoints" / "step-000004" / "adapter"
    assert checkpoint.is_dir()
    out = tmp_path / "adapter"
    code, lines = _export(job, out, "--adapter", str(checkpoint), capsys=capsys)
    assert code == 0 and lines[-1]["merged"] is False
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                     "tokenizer.json", "tokenizer_config.json"]
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    base = build_builtin_model(spec.model.base, tokenizer, device=torch.device("cpu"), dtype=torch.float32,
                               attn=spec.model.attn)
    model = PeftModel.from_pretrained(base, str(out)).eval()
    ids = _probe(job)
    adapted, _ = _logits_with_adapter(job, ids)  # the final adapter is the step-4 checkpoint's
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, adapted)

    final = tmp_path / "final"
    assert (spec.run_dir / "adapter" / "README.md").is_file()  # peft's template card, left out of an export
    assert _export(job, final, capsys=capsys)[0] == 0
    assert sorted(p.name for p in final.iterdir()) == sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize("method", [{"kind": "adapter", "adapter_len": 4, "adapter_layers": 2},
                                    {"kind": "prefix", "num_virtual_tokens": 4}, {"kind": "prompt", "num_virtual_tokens": 4}])
def test_methods_that_cannot_merge_are_refused(method: dict[str, Any], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir, method=method))
    out = tmp_path / "merged"
    code, lines = _export(job, out, "--merge", capsys=capsys)
    assert code == 2
    error = lines[-1]
    assert error["type"] == "error" and error["kind"] == "spec"
    assert f"method {method['kind']} cannot be merged" in error["message"]
    assert "export without --merge" in error["message"]
    assert not out.exists()


def test_bad_dtype_and_missing_adapter_are_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir))
    code, lines = _export(job, tmp_path / "out", "--merge", "--dtype", "int8", capsys=capsys)
    assert code == 2 and "--dtype" in lines[-1]["message"]
    code, lines = _export(job, tmp_path / "out", capsys=capsys)
    assert code == 2 and "no adapter at" in lines[-1]["message"]
    assert not (tmp_path / "out").exists()


def test_full_fine_tuning_exports_its_own_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForCausalLM

    job = _train(tmp_path, "full", steps=2)
    out = tmp_path / "full"
    code, lines = _export(job, out, "--merge", capsys=capsys)
    assert code == 0 and lines[-1]["dtype"] == "float32"
    trained = AutoModelForCausalLM.from_pretrained(str(load_spec(job).run_dir / "adapter"))
    exported = AutoModelForCausalLM.from_pretrained(str(out))
    ids = _probe(job)
    with torch.no_grad():
        assert torch.equal(exported(input_ids=ids).logits, trained(input_ids=ids).logits)
