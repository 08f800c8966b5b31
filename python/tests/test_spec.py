"""Job spec validation against schema/job.schema.json: every violation named at once (exit 2, one error
event, no stack trace), schema_version 1 migrated, the `validate` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers_train import PROJECT_ROOT, job_spec, read_events, run_main_in_process, run_shim, shim_env, write_job

from peftshim.spec import FullMethod, LoraMethod, PromptMethod, SpecError, load_spec, parse_spec


def test_complete_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(write_job(tmp_path / "run", job_spec(tmp_path / "run", method="lora")))
    assert spec.schema_version == 2
    assert spec.train.lr == 3e-4 and spec.train.gradient_accumulation_steps == 32
    assert spec.train.micro_batches_per_step == 32
    assert spec.method == LoraMethod(r=8, alpha=16.0, dropout=0.05, target_modules=["q_proj", "v_proj"], use_dora=False,
                                     use_rslora=False, bias="none")
    assert spec.model.base == "builtin:tiny-llama" and spec.model.revision is None and spec.data.split.seed == 42
    assert spec.run_dir == (tmp_path / "run").resolve() and spec.job_fingerprint == "f" * 64
    assert spec.data.max_examples is None and spec.train.max_steps is None and spec.hub is None


@pytest.mark.parametrize("kind", ["lora", "adapter", "ia3", "prefix", "prompt", "full"])
def test_every_method_kind_is_accepted(tmp_path: Path, kind: str) -> None:
    assert parse_spec(job_spec(tmp_path, method=kind)).method.kind == kind


def test_method_dataclasses_take_their_optional_fields(tmp_path: Path) -> None:
    assert parse_spec(job_spec(tmp_path, method={"kind": "prompt", "init_text": "Be kind."})).method == \
        PromptMethod(num_virtual_tokens=20, init_text="Be kind.")
    assert parse_spec(job_spec(tmp_path, method="full")).method == FullMethod()


def test_integers_written_as_floats_are_integers(tmp_path: Path) -> None:
    raw = job_spec(tmp_path, train={"micro_batch_size": 4.0, "lr": 1})
    spec = parse_spec(raw)
    assert type(spec.train.micro_batch_size) is int and type(spec.train.lr) is float


def v1_spec(tmp_path: Path, *, gpus: int, accumulation: int) -> dict[str, Any]:
    """A job.json as peftctl wrote it before train.compile and train.micro_batches_per_step."""
    raw = job_spec(tmp_path, resources={"gpus": gpus}, train={"gradient_accumulation_steps": accumulation})
    raw["schema_version"] = 1
    del raw["train"]["compile"], raw["train"]["micro_batches_per_step"]
    return raw


@pytest.mark.parametrize("gpus,accumulation,per_step", [(0, 8, 8), (1, 8, 8), (2, 4, 8)])
def test_a_version_1_spec_is_migrated(tmp_path: Path, gpus: int, accumulation: int, per_step: int) -> None:
    spec = parse_spec(v1_spec(tmp_path, gpus=gpus, accumulation=accumulation))
    assert spec.schema_version == 2 and spec.train.compile is False
    assert spec.train.micro_batches_per_step == per_step and spec.train.gradient_accumulation_steps == accumulation


def test_a_version_1_job_gains_the_decoding_settings_defaults_of_the_schema(tmp_path: Path) -> None:
    """eval.generate's do_sample ... batch_size came with version 2; a version 1 file gets the schema's defaults."""
    from peftshim.spec import GenerateSpec

    defaults = {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 50, "num_beams": 1, "min_new_tokens": 0,
                "no_repeat_ngram_size": 0, "repetition_penalty": 1.0, "seed": 0, "batch_size": 8}
    old_v1 = v1_spec(tmp_path, gpus=0, accumulation=2)
    old_v1["eval"]["generate"] = {"max_new_tokens": 16, "samples": 3}
    assert parse_spec(old_v1).eval.generate == GenerateSpec(max_new_tokens=16, samples=3, **defaults)
    # a version 2 file is complete: nothing is filled in, and validation names what is missing
    current = job_spec(tmp_path, eval={"generate": {"max_new_tokens": 16, "samples": 3}})
    del current["eval"]["generate"]["batch_size"]
    with pytest.raises(SpecError, match="eval.generate.batch_size: missing"):
        parse_spec(current)


def test_a_version_1_spec_is_still_validated(tmp_path: Path) -> None:
    raw = v1_spec(tmp_path, gpus=0, accumulation=2)
    raw["train"]["lr"] = "fast"
    with pytest.raises(SpecError, match='train.lr: expected a number, got "fast"'):
        parse_spec(raw)


@pytest.mark.parametrize("version", [3, 0, "2", True])
def test_an_unknown_schema_version_is_refused(tmp_path: Path, version: Any) -> None:
    raw = job_spec(tmp_path)
    raw["schema_version"] = version
    with pytest.raises(SpecError, match="schema_version: ") as caught:
        parse_spec(raw)
    assert [v.path for v in caught.value.violations] == ["schema_version"]


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
    ("wrong type", _set("train.lr", "x"), 'job.json: train.lr: expected a number, got "x"'),
    ("negative", _set("train.lr", -1), "job.json: train.lr: expected more than 0, got -1"),
    ("bool is not a number", _set("train.epochs", True), "job.json: train.epochs: expected a number, got true"),
    ("float for an integer", _set("train.micro_batch_size", 2.5), "job.json: train.micro_batch_size: expected an integer"),
    ("missing field", _delete("train.seed"), "job.json: train.seed: missing"),
    ("missing section", _delete("model"), "job.json: model: missing"),
    ("unknown method kind", _set("method.kind", "qlora"),
     'job.json: method.kind: expected one of lora, adapter, ia3, prefix, prompt, full, got "qlora"'),
    ("bad method field", _set("method.r", 0), "job.json: method.r: expected more than 0, got 0"),
    ("unknown field", _set("train.learning_rate", 1e-3), "job.json: train.learning_rate: unknown field"),
    ("bad enum", _set("train.lr_scheduler", "step"), "job.json: train.lr_scheduler: expected one of cosine, linear, constant"),
    ("bad list", _set("method.target_modules", []), "job.json: method.target_modules: expected at least 1 item(s)"),
    ("relative data path", _set("data.path", "data/x.json"), 'job.json: data.path: "data/x.json" does not match ^\\/'),
    ("relative run dir", _set("run_dir", "runs/x"), 'job.json: run_dir: "runs/x" does not match ^\\/'),
    ("schema version", _set("schema_version", 3), "job.json: schema_version: unknown version 3"),
    ("compile not a bool", _set("train.compile", "yes"), 'job.json: train.compile: expected true or false, got "yes"'),
    ("no fingerprint", _delete("fingerprints.job"), "job.json: fingerprints.job: missing"),
    ("no micro-batches per step", _delete("train.micro_batches_per_step"), "job.json: train.micro_batches_per_step: missing"),
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


def three_broken_fields(run_dir: Path) -> dict[str, Any]:
    spec = job_spec(run_dir)
    spec["train"]["lr"] = "x"
    spec["method"]["r"] = 0
    spec["data"]["path"] = "data/x.json"
    return spec


THREE_VIOLATIONS = ['data.path: "data/x.json" does not match ^\\/ (The data file, absolute.)',
                    "method.r: expected more than 0, got 0", 'train.lr: expected a number, got "x"']


def test_every_violation_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(three_broken_fields(tmp_path / "run"))
    assert [str(v) for v in caught.value.violations] == THREE_VIOLATIONS  # sorted by field path
    assert str(caught.value) == "job.json: 3 problems: " + "; ".join(THREE_VIOLATIONS)


def test_unreadable_and_non_json_files(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere" / "job.json"
    assert run_main_in_process("train", "--job", str(missing)) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    not_json = run_dir / "job.json"
    not_json.write_text('{"schema_version": 2,\n  "run_id": oops}\n')
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


def test_cli_subprocess_reports_every_violation_without_stack_trace(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_shim(write_job(run_dir, three_broken_fields(run_dir)), timeout=120)
    assert result.returncode == 2
    expected = "peftshim: error: job.json: 3 problems: " + "; ".join(THREE_VIOLATIONS)
    assert result.stderr.strip().splitlines() == [expected]
    (event,) = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert event["type"] == "error" and event["kind"] == "spec" and event["message"] == expected.split("error: ", 1)[1]


def validate(*jobs: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "peftshim", "validate", *(arg for job in jobs for arg in ("--job", str(job)))]
    return subprocess.run(command, env=shim_env(), capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)


def test_validate_prints_ok_or_one_line_per_violation(tmp_path: Path) -> None:
    good = write_job(tmp_path / "good", job_spec(tmp_path / "good"))
    old = write_job(tmp_path / "old", v1_spec(tmp_path / "old", gpus=0, accumulation=2))
    bad = write_job(tmp_path / "bad", three_broken_fields(tmp_path / "bad"))
    result = validate(good, bad, old)
    assert result.returncode == 2, result.stderr
    assert result.stdout.splitlines() == [f"ok {good}", *(f"{bad}: {line}" for line in THREE_VIOLATIONS), f"ok {old}"]
    assert "Traceback" not in result.stderr

    result = validate(good, old)
    assert (result.returncode, result.stdout.splitlines()) == (0, [f"ok {good}", f"ok {old}"])
    result = validate(tmp_path / "missing.json")
    assert (result.returncode, result.stdout.strip()) == (2, f"{tmp_path / 'missing.json'}: file not found "
                                                             "(pass the run's job.json written by peftctl)")


@pytest.mark.parametrize("micro", ["3", "0", "8"])
def test_a_micro_batch_size_that_does_not_divide_the_specs_is_refused(tmp_path: Path, capsys, micro: str) -> None:
    run_dir = tmp_path / "run"
    job = write_job(run_dir, job_spec(run_dir, train={"micro_batch_size": 4, "batch_size": 8}))
    assert run_main_in_process("train", "--job", str(job), "--micro-batch-size", micro) == 2
    err = capsys.readouterr().err
    assert f"--micro-batch-size {micro}: expected a divisor of train.micro_batch_size (4)" in err
    (event,) = read_events(run_dir)
    assert event["kind"] == "spec" and event["retryable"] is False


def test_a_missing_job_schema_is_an_installation_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("PEFTSHIM_JOB_SCHEMA", str(tmp_path / "nowhere.schema.json"))
    run_dir = tmp_path / "run"
    assert run_main_in_process("train", "--job", str(write_job(run_dir, job_spec(run_dir)))) == 1
    assert "cannot read the job schema" in capsys.readouterr().err
    assert read_events(run_dir)[-1]["kind"] == "internal"


def test_bad_data_exits_2_with_a_data_error(tmp_path: Path, capsys) -> None:
    data = tmp_path / "broken.json"
    data.write_text("{not json")
    run_dir = tmp_path / "run"
    spec = job_spec(run_dir, data_path=data, resources={"gpus": 0})
    assert run_main_in_process("train", "--job", str(write_job(run_dir, spec))) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "Traceback" not in err
    assert read_events(run_dir)[-1]["kind"] == "data"
