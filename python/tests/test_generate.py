"""`python -m peftshim generate` on a tiny trained run: one row per test example (the training example
rule, ids from the data file), training's prompts, left padding that changes nothing, the strategy
prefix split off, resumption after a stop, and a finished directory left as it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers_train import read_events, run_main_in_process, small_job, write_job

from peftshim.dialogues import read_dialogues, split_dialogues
from peftshim.events import EventWriter
from peftshim.examples import build_examples, prompt_ids
from peftshim.generate import Generation, generate, output_row, read_generations, split_strategy
from peftshim.spec import load_spec

MAX_NEW = 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-step LoRA run of builtin:tiny-llama on the sample data; returns its job.json."""
    run_dir = tmp_path_factory.mktemp("gen") / "run"
    job = write_job(run_dir, small_job(run_dir, eval={"every_steps": 12, "generate": {"max_new_tokens": MAX_NEW,
                                                                                        "samples": 0}}))
    assert run_main_in_process("train", "--job", str(job)) == 0
    return job


@pytest.fixture(scope="module")
def reference(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One uninterrupted run over the test split (batch size 8)."""
    out = tmp_path_factory.mktemp("reference")
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(out)) == 0
    return read_generations(out)


def with_generate(trained: Path, tmp_path: Path, **settings: Any) -> Path:
    """A copy of the run's job.json (same run dir, so the same adapter) with other decoding settings."""
    raw = json.loads(trained.read_text())
    raw["eval"]["generate"].update(settings)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(raw))
    return path


def test_one_row_per_test_example_with_stable_ids(trained: Path, reference: list[dict[str, Any]]) -> None:
    spec = load_spec(trained)
    dialogues, _ = read_dialogues(spec.data.format, Path(spec.data.path))
    s = spec.data.split
    test = split_dialogues(dialogues, s.train, s.valid, s.test, s.seed)["test"]
    expected = [f"{dialogues.index(d)}:{k}" for d in test for k, t in enumerate(d.turns)
                if t.role == "assistant" and any(u.role == "user" for u in d.turns[:k])]
    assert [row["id"] for row in reference] == expected
    # as many as training's test examples (the data event's count)
    data_event = next(e for e in read_events(spec.run_dir) if e["type"] == "data")
    assert len(reference) == data_event["examples"]["test"]
    for row in reference:
        assert set(row) == {"id", "context", "reference", "reference_strategy", "response", "predicted_strategy"}
        index, turn = map(int, row["id"].split(":"))
        dialogue = dialogues[index]
        assert row["reference"] == dialogue.turns[turn].text and row["reference_strategy"] == dialogue.turns[turn].strategy
        assert row["context"] == [{"role": t.role, "text": t.text} for t in dialogue.turns[:turn]]
        assert isinstance(row["response"], str)


def test_left_padding_gives_the_responses_of_batch_size_1(trained: Path, reference: list[dict[str, Any]],
                                                          tmp_path: Path) -> None:
    job = with_generate(trained, tmp_path, batch_size=1)
    assert run_main_in_process("generate", "--job", str(job), "--out", str(tmp_path / "b1")) == 0
    single = read_generations(tmp_path / "b1")
    assert [r["response"] for r in single] == [r["response"] for r in reference]
    assert any(r["response"] for r in reference)


def test_prompts_are_trainings_prompt_ids(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import peftshim.generate as gen

    seen: list[list[int]] = []
    original = gen.left_padded
    monkeypatch.setattr(gen, "left_padded", lambda prompts, pad, device: (seen.extend(prompts), original(prompts, pad, device))[1])
    spec = load_spec(trained)
    job = Generation(spec=spec, out_dir=tmp_path / "out", split="test", limit=None, adapter=spec.run_dir / "adapter")
    assert generate(job, stop=_Stop(), events=EventWriter(spec.run_id, None, quiet=True)) == 0

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(spec.run_dir / "adapter"))
    rows, _ = gen.split_rows(spec, "test")
    budget = spec.data.max_length - MAX_NEW  # what training's samples use (train.generate_samples)
    assert seen == [prompt_ids(r.context, tokenizer, max_length=budget, strategy=spec.data.strategy) for r in rows]
    assert len({len(p) for p in seen}) > 1  # the batches really were padded
    # and the prompt is the one training scored the reference after (the untruncated examples)
    examples, _ = build_examples([rows[0].context.__class__(rows[0].context.scene, rows[0].context.description,
                                                            [*rows[0].context.turns, rows[0].reference])],
                                 tokenizer, max_length=spec.data.max_length, strategy=spec.data.strategy)
    last = examples[-1]
    assert [i for i, label in zip(last.input_ids, last.labels) if label == -100] == seen[0]


def test_the_inline_strategy_prefix_is_split_off() -> None:
    assert split_strategy("[Reflective Statements] It sounds hard.", "inline") == ("It sounds hard.", "Reflective Statements")
    assert split_strategy("No prefix here.", "inline") == ("No prefix here.", None)
    assert split_strategy("[Question] Why?", "none") == ("[Question] Why?", None)
    from peftshim.dialogues import Dialogue, Turn
    from peftshim.generate import Row

    row = Row("0:1", Dialogue("s", "d", [Turn("user", "hi", None)]), Turn("assistant", "Hello.", "Question"))
    assert output_row(row, "[Question] How are you?", "inline") == {
        "id": "0:1", "context": [{"role": "user", "text": "hi"}], "reference": "Hello.", "reference_strategy": "Question",
        "response": "How are you?", "predicted_strategy": "Question"}


class _Stop:
    received: str | None = None


class _StopAfterFirstBatch(EventWriter):
    def __init__(self, run_id: str, path: Path, stop: _Stop) -> None:
        super().__init__(run_id, path, quiet=False)
        self.stop = stop

    def progress(self, **fields: Any) -> dict[str, Any]:
        self.stop.received = "SIGTERM"  # as the signal handler does, during the first batch
        return super().progress(**fields)


def test_a_stopped_run_resumes_to_the_same_generations_and_a_finished_one_changes_nothing(
        trained: Path, reference: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, out, stop = load_spec(trained), tmp_path / "out", _Stop()
    job = Generation(spec=spec, out_dir=out, split="test", limit=None, adapter=spec.run_dir / "adapter")
    assert generate(job, stop=stop, events=_StopAfterFirstBatch(spec.run_id, out / "events.jsonl", stop)) == 75
    assert [r["id"] for r in read_generations(out)] == [r["id"] for r in reference[:8]]  # one whole batch, flushed
    assert [e["type"] for e in read_events(out)][-2:] == ["progress", "interrupted"]
    with open(out / "generations.jsonl", "a") as f:
        f.write('{"id": "torn')  # a write cut short by a crash
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(out)) == 0
    assert read_generations(out) == reference
    events = read_events(out)
    start = [e for e in events if e["type"] == "start"][-1]
    assert start["resumed_from_step"] == 8 and events[-1]["type"] == "done" and events[-1]["step"] == len(reference)
    before = {name: (out / name).read_bytes() for name in ("generations.jsonl", "events.jsonl", "settings.json")}
    capsys.readouterr()
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(out)) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in before} == before


def test_base_model_limit_and_bad_targets(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(tmp_path / "base"), "--base",
                               "--limit", "3", "--split", "valid") == 0
    assert len(read_generations(tmp_path / "base")) == 3
    settings = json.loads((tmp_path / "base" / "settings.json").read_text())
    assert settings["adapter"] == "base" and settings["limit"] == 3 and settings["split"] == "valid"
    # another adapter into the same directory: refused, nothing written
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(tmp_path / "base"), "--limit", "3",
                               "--split", "valid") == 2
    assert "other settings" in capsys.readouterr().err
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(tmp_path / "x"),
                               "--adapter", str(tmp_path / "missing")) == 2
    assert "no adapter at" in capsys.readouterr().err


def test_sampling_is_seeded(trained: Path, tmp_path: Path) -> None:
    job = with_generate(trained, tmp_path, do_sample=True, temperature=1.5, top_k=0, top_p=0.95, seed=7)
    for name in ("a", "b"):
        assert run_main_in_process("generate", "--job", str(job), "--out", str(tmp_path / name), "--limit", "4") == 0
    assert read_generations(tmp_path / "a") == read_generations(tmp_path / "b")
