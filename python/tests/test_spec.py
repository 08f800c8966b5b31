"""Job spec validation: a bad job.json exits 2 with the field named, an error event, no stack trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers_train import run_main_in_process, job_spec, read_events, run_shim, write_job

from peftshim.spec import SpecError, load_spec, parse_spec


def test_complete_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(write_job(tmp_path / "run", job_spec(tmp_path / "run", method="lora")))
    assert spec.train.lr == 3e-4 and spec.train.gradient_accumulation_steps == 32
    assert spec.method == {"kind": "lora", "r": 8, "alpha": 16.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
                           "use_dora": False, "use_rslora": False, "bias": "none"}
    assert spec.model.base == "builtin:tiny-llama" and spec.data.split.seed == 42
    assert spec.run_dir == (tmp_path / "run").resolve() and spec.job_fingerprint == "f" * 64


def test_a_spec_written_before_train_compile_existed_still_loads(tmp_path: Path) -> None:
    raw = job_spec(tmp_path, method="lora")
    del raw["train"]["compile"]
    assert parse_spec(raw).train.compile is False


@pytest.mark.parametrize("kind", ["lora", "adapter", "ia3", "prefix", "prompt", "full"])
def test_every_method_kind_is_accepted(tmp_path: Path, kind: str) -> None:
    assert parse_spec(job_spec(tmp_path, method=kind)).method["kind"] == kind


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            spec = spec[key]
        spec[last] = value
    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            spec = spec[key]
        del spec[last]
    return edit


BAD_SPECS = [
    ("wrong type", _set("train.lr", "x"), 'job.json: train.lr: expected a positive number, got "x"'),
    ("negative", _set("train.lr", -1), "job.json: train.lr: expected a positive number, got -1"),
    ("bool is not a number", _set("train.epochs", True), "job.json: train.epochs: expected a positive number, got true"),
    ("float for an integer", _set("train.micro_batch_size", 2.5), "job.json: train.micro_batch_size: expected a positive integer"),
    ("missing field", _delete("train.seed"), "job.json: train.seed: missing"),
    ("missing section", _delete("model"), "job.json: model: missing"),
    ("unknown method kind", _set("method.kind", "qlora"), "job.json: method.kind: expected one of lora, adapter, ia3, prefix, prompt, full"),
    ("unknown field", _set("train.learning_rate", 1e-3), "job.json: train.learning_rate: unknown field"),
    ("bad enum", _set("train.lr_scheduler", "step"), "job.json: train.lr_scheduler: expected one of cosine, linear, constant"),
    ("bad list", _set("method.target_modules", []), "job.json: method.target_modules: expected a list of non-empty strings"),
    ("relative data path", _set("data.path", "data/x.json"), "job.json: data.path: expected an absolute path"),
    ("schema version", _set("schema_version", 2), "job.json: schema_version: expected 1, got 2"),
    ("split over 1", _set("data.split.valid", 0.5), "job.json: data.split.train: train + valid + test must not exceed 1"),
    ("compile prefix", lambda spec: (_set("method", {"kind": "prefix", "num_virtual_tokens": 4})(spec), _set("train.compile", True)(spec)),
     "job.json: train.compile: prefix tuning cannot be compiled"),
    ("compile not a bool", _set("train.compile", "yes"), 'job.json: train.compile: expected true or false, got "yes"'),
    ("no fingerprint", _delete("fingerprints.job"), "job.json: fingerprints.job: missing"),
]


@pytest.mark.parametrize("name,edit,expected", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_exits_2_naming_the_field(tmp_path: Path, capsys, name: str, edit, expected: str) -> None:
    run_dir = tmp_path / "run"
    spec = job_spec(run_dir)
    edit(spec)
    job = write_job(run_dir, spec)
    assert run_main_in_process("train", "--job", str(job)) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err
    (event,) = read_events(run_dir)
    assert event["type"] == "error" and event["kind"] == "spec" and event["retryable"] is False
    assert expected in event["message"] and event["run_id"] == "run"


def test_unreadable_and_non_json_files(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere" / "job.json"
    assert run_main_in_process("train", "--job", str(missing)) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    not_json = run_dir / "job.json"
    not_json.write_text('{"schema_version": 1,\n  "run_id": oops}\n')
    assert run_main_in_process("train", "--job", str(not_json)) == 2
    assert "line 2 column 13: not valid JSON" in capsys.readouterr().err
    assert read_events(run_dir)[0]["kind"] == "spec"

    directory = tmp_path / "adir"
    directory.mkdir()
    assert run_main_in_process("train", "--job", str(directory)) == 2
    assert "cannot read the file" in capsys.readouterr().err

    not_object = run_dir / "list.json"
    not_object.write_text("[1, 2]")
    with pytest.raises(SpecError, match=r"\(top level\): expected an object"):
        load_spec(not_object)


def test_cli_subprocess_reports_bad_spec_without_stack_trace(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    spec = job_spec(run_dir)
    spec["train"]["lr"] = "x"
    result = run_shim(write_job(run_dir, spec), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ['peftshim: error: job.json: train.lr: expected a positive number, got "x"']
    event = json.loads(result.stdout.strip().splitlines()[-1])
    assert event["type"] == "error" and event["kind"] == "spec"


def test_bad_data_exits_2_with_a_data_error(tmp_path: Path, capsys) -> None:
    data = tmp_path / "broken.json"
    data.write_text("{not json")
    run_dir = tmp_path / "run"
    spec = job_spec(run_dir, data_path=data, resources={"gpus": 0})
    assert run_main_in_process("train", "--job", str(write_job(run_dir, spec))) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "Traceback" not in err
    assert read_events(run_dir)[-1]["kind"] == "data"
