"""Data from the `datasets` library and the other sources (datasource.py): save_to_disk directories,
parquet / csv / JSON Lines files, hf:// from the datasets cache offline; sharegpt, data.columns,
data.chat_template and data.system_prompt. Every source's records go through the same format readers,
so each test compares against the JSON file the records came from."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest

from helpers_train import PROJECT_ROOT, events_of, read_events, run_shim, shim_env, small_job, write_job
from peftshim.contract import IGNORE_INDEX
from peftshim.datasource import Source
from peftshim.dialogues import DataError, Dialogue, Turn, data_fingerprint, read_dialogues
from peftshim.examples import build_examples, prompt_ids, use_chat_template
from peftshim.files import sha256_file

ALPACA = [
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
    {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "", "input": "", "output": "skipped: no instruction"},
    {"instruction": "Say hi.", "input": "", "output": "Hi!"},
]


def _samples(samples_dir: Path, name: str) -> list[Any]:
    return json.loads((samples_dir / name).read_text(encoding="utf-8"))


def _saved(records: list[Any], directory: Path) -> Path:
    # from_list takes its columns from the first record alone: every record gets every key (null where
    # it had none, as arrow holds absent members anyway).
    keys = list(dict.fromkeys(key for record in records for key in record))
    datasets.Dataset.from_list([{key: record.get(key) for key in keys} for record in records]).save_to_disk(str(directory))
    return directory


# --- (a) save_to_disk directories and table files: the same dialogues as the JSON file ------------------


@pytest.mark.parametrize(("fmt", "sample"), [("extes", "extes-sample.json"), ("extes", "extes-irregular.json"),
                                             ("esconv", "esconv-sample.json"), ("esconv", "esconv-release-sample.json")])
def test_a_save_to_disk_directory_reads_as_its_json_file(tmp_path: Path, samples_dir: Path, fmt: str, sample: str) -> None:
    expected, expected_stats = read_dialogues(fmt, samples_dir / sample, max_length=128)
    records = _samples(samples_dir, sample)
    if sample == "extes-irregular.json":
        # Its point is records arrow cannot hold in one column (a turn's text a list here, a dict there);
        # the regular part of it goes through save_to_disk.
        records = [r for r in records if _arrow_can_hold(r)]
        expected, expected_stats = read_dialogues(fmt, _write_json(tmp_path / "regular.json", records), max_length=128)
    got, stats = read_dialogues(fmt, _saved(records, tmp_path / "saved"), max_length=128)
    assert got == expected and len(got) > 0
    assert (stats.skipped, stats.repaired, stats.mapped) == (expected_stats.skipped, expected_stats.repaired, expected_stats.mapped)


def _arrow_can_hold(record: Any) -> bool:
    try:
        datasets.Dataset.from_list([record])
        return all(isinstance(turn.get("AI", ""), str) and isinstance(turn.get("User", ""), str)
                   for turn in record.get("content", []) if isinstance(turn, dict))
    except Exception:  # noqa: BLE001 - pyarrow's own errors
        return False


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def test_a_dataset_dict_directory_reads_the_split_named(tmp_path: Path) -> None:
    saved = tmp_path / "dict"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ALPACA),
                          "test": datasets.Dataset.from_list(ALPACA[:2])}).save_to_disk(str(saved))
    train, _ = read_dialogues("alpaca", saved)
    test, _ = read_dialogues("alpaca", saved, source=Source(split="test"))
    assert len(train) == 3 and len(test) == 2  # train by default
    with pytest.raises(DataError, match=r"dict: no split 'valid' \(the directory holds train, test\)"):
        read_dialogues("alpaca", saved, source=Source(split="valid"))
    with pytest.raises(DataError, match=r"dict: data.source.config and data.source.revision choose a part of a Hub data set"):
        read_dialogues("alpaca", saved, source=Source(config="en"))
    single = _saved(ALPACA, tmp_path / "single")
    with pytest.raises(DataError, match=r"single: data.source.split 'test' given, but the directory holds one Dataset"):
        read_dialogues("alpaca", single, source=Source(split="test"))
    plain = tmp_path / "alpaca.json"
    plain.write_text(json.dumps(ALPACA))
    with pytest.raises(DataError, match=r"alpaca.json: data.source.split chooses a split of a save_to_disk directory"):
        read_dialogues("alpaca", plain, source=Source(split="train"))


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".json"])
def test_alpaca_from_parquet_csv_jsonl_and_json(tmp_path: Path, write_json, suffix: str) -> None:
    expected, expected_stats = read_dialogues("alpaca", write_json("alpaca.json", ALPACA))
    path = tmp_path / f"alpaca-data{suffix}"
    frame = datasets.Dataset.from_list(ALPACA)
    if suffix == ".parquet":
        frame.to_parquet(str(path))
    elif suffix == ".csv":
        frame.to_csv(str(path), index=False)
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in ALPACA), encoding="utf-8")
    else:
        path.write_text(json.dumps(ALPACA), encoding="utf-8")
    got, stats = read_dialogues("alpaca", path)
    assert got == expected and stats.skipped == expected_stats.skipped == {"no_instruction": 1}
    assert got[1].turns == [Turn("user", "Add the numbers.\n\n2 and 3"), Turn("assistant", "5")]


def test_the_fingerprint_of_a_json_file_is_what_it_always_was(write_json) -> None:
    path = write_json("alpaca.json", ALPACA)
    params = {"format": "alpaca", "max_length": 64}
    # The payload of releases before data sources: the file's sha256, the parameters, the template version.
    payload = {"file_sha256": sha256_file(path), "params": params, "template_version": 1}
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert data_fingerprint(path, params, template_version=1) == expected


def test_the_fingerprint_of_a_directory_follows_its_data_files(tmp_path: Path) -> None:
    saved = _saved(ALPACA, tmp_path / "saved")
    first = data_fingerprint(saved, {}, template_version=1)
    copied = tmp_path / "copy"
    shutil.copytree(saved, copied)
    assert data_fingerprint(copied, {}, template_version=1) == first  # content, not location
    (copied / "cache-0123.arrow").write_bytes(b"a cache file a later map() left beside the data")
    assert data_fingerprint(copied, {}, template_version=1) == first
    changed = _saved([*ALPACA, {"instruction": "One more.", "input": "", "output": "Yes."}], tmp_path / "changed")
    assert data_fingerprint(changed, {}, template_version=1) != first


# --- bad inputs name the file and, where there is one, the row -------------------------------------------


def test_bad_sources_are_data_errors_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=rf"^{broken}: cannot read as parquet: "):
        read_dialogues("alpaca", broken)
    plain_dir = tmp_path / "not-a-dataset"
    plain_dir.mkdir()
    (plain_dir / "data.json").write_text("[]")
    with pytest.raises(DataError, match=rf"^{plain_dir}: is a directory but not one written by datasets' save_to_disk"):
        read_dialogues("alpaca", plain_dir)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("instruction,output\nhi,there\nthis,row,has,more\n")
    with pytest.raises(DataError, match=rf"^{ragged}: cannot read as csv: "):
        read_dialogues("alpaca", ragged)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("question,answer\nhi,there\n")
    with pytest.raises(DataError, match=r"no usable dialogue in 1 record.*the first record's fields: question, answer.*data.columns"):
        read_dialogues("alpaca", wrong)


def test_a_lone_surrogate_in_alpaca_json_lines_names_the_line(tmp_path: Path) -> None:
    # (Arrow files cannot hold one: their strings are UTF-8.)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ALPACA[0]) + "\n" + '{"instruction": "x", "output": "\\ud800"}\n')
    with pytest.raises(DataError, match=rf"^{bad}:2: the text of an assistant turn contains a lone UTF-16 surrogate"):
        read_dialogues("alpaca", bad)


def test_head_reads_only_the_first_records(tmp_path: Path, write_jsonl) -> None:
    path = write_jsonl("chat.jsonl", [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}] * 3
                       + ["not a record"] * 2 + ["}{"])
    dialogues, _ = read_dialogues("chat", path, head=3)
    assert len(dialogues) == 3
    result = subprocess.run([sys.executable, "-m", "peftshim", "data-summary", "--format", "chat", "--path", str(path), "--head", "3"],
                            env=shim_env(), capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout)["dialogues"] == 3
    (tmp_path / "bad.jsonl").write_text(path.read_text().replace('"hello"', '"hello}', 1))
    result = subprocess.run([sys.executable, "-m", "peftshim", "data-summary", "--format", "chat", "--path", str(tmp_path / "bad.jsonl"),
                             "--head", "100"], env=shim_env(), capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"peftshim: error: {tmp_path / 'bad.jsonl'}:1:")


# --- (c) sharegpt; alpaca as JSON Lines is above -------------------------------------------------------


SHAREGPT = [
    {"id": "a", "conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hello?"},
                                  {"from": "gpt", "value": "Hi."}, {"from": "human", "value": "Bye."},
                                  {"from": "gpt", "value": "Bye!"}]},
    {"id": "b", "system": "You help.", "conversations": [{"from": "human", "value": "Q"}, {"from": "narrator", "value": "x"},
                                                         {"from": "chatgpt", "value": "A"}]},
    {"id": "c", "conversations": [{"from": "gpt", "value": "only the model speaks"}]},
    {"id": "d", "messages": []},
]


def test_sharegpt_conversations(write_json, tmp_path: Path) -> None:
    dialogues, stats = read_dialogues("sharegpt", write_json("sharegpt.json", SHAREGPT))
    assert dialogues == [
        Dialogue("", "Be brief.", [Turn("user", "Hello?"), Turn("assistant", "Hi."), Turn("user", "Bye."), Turn("assistant", "Bye!")]),
        Dialogue("", "You help.", [Turn("user", "Q"), Turn("assistant", "A")]),
    ]
    assert stats.skipped == {"unknown_role": 1, "no_reply_after_user": 1, "no_conversations": 1}
    # the same records saved by datasets read alike
    saved, _ = read_dialogues("sharegpt", _saved(SHAREGPT[:3], tmp_path / "saved"))
    assert saved == dialogues


# --- (d) data.columns ----------------------------------------------------------------------------------


def test_columns_name_where_the_fields_are(tmp_path: Path, write_json, write_jsonl) -> None:
    expected, _ = read_dialogues("alpaca", write_json("alpaca.json", ALPACA))
    renamed = [{"prompt": r["instruction"], "context": r["input"], "answer": r["output"], "input": "not this"} for r in ALPACA]
    path = tmp_path / "renamed.csv"
    datasets.Dataset.from_list(renamed).to_csv(str(path), index=False)
    got, _ = read_dialogues("alpaca", path, columns={"instruction": "prompt", "output": "answer", "input": "context"})
    assert got == expected
    chat = [{"conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    got, _ = read_dialogues("chat", write_jsonl("chat.jsonl", chat), columns={"messages": "conversation"})
    assert got == [Dialogue("", "", [Turn("user", "hi"), Turn("assistant", "hello")])]
    with pytest.raises(DataError, match=r"data.columns: 'prompt' is not a field of format 'alpaca', which reads instruction, input, output"):
        read_dialogues("alpaca", path, columns={"prompt": "instruction"})


# --- (e) data.chat_template and data.system_prompt -----------------------------------------------------

_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_DIALOGUE = Dialogue("Exam", "", [Turn("user", "I am scared."), Turn("assistant", "That is normal.", "Affirmation"),
                                  Turn("user", "Thanks."), Turn("assistant", "Good luck.", "Offer Hope")])


def _prompt_and_target(tokenizer: Any, example: Any) -> tuple[str, str]:
    start = next(i for i, label in enumerate(example.labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in example.labels[:start])
    assert example.labels[start:] == example.input_ids[start:]
    return tokenizer.decode(example.input_ids[:start]), tokenizer.decode(example.input_ids[start:])


def test_a_chat_template_and_system_prompt_on_a_plain_tokenizer(sample_tokenizer) -> None:
    tok = copy.deepcopy(sample_tokenizer)
    assert tok.chat_template is None
    use_chat_template(tok, _TEMPLATE)
    examples, _ = build_examples([_DIALOGUE], tok, max_length=256, strategy="none", system_prompt="You support people.")
    prompt, target = _prompt_and_target(tok, examples[1])
    assert prompt == ("<|system|>You support people.\n\nExam</s><|user|>I am scared.</s><|assistant|>That is normal.</s>"
                      "<|user|>Thanks.</s><|assistant|>")
    assert target == "Good luck.</s>"  # the labels: the assistant's turn and its end, nothing of the template
    history = Dialogue(_DIALOGUE.scene, _DIALOGUE.description, _DIALOGUE.turns[:3])
    assert tok.decode(prompt_ids(history, tok, max_length=256, strategy="none", system_prompt="You support people.")) == prompt


def test_the_system_prompt_in_the_plain_template(sample_tokenizer) -> None:
    examples, _ = build_examples([_DIALOGUE], sample_tokenizer, max_length=256, strategy="inline", system_prompt="Be kind.")
    prompt, target = _prompt_and_target(sample_tokenizer, examples[0])
    assert prompt == "<s>System: Be kind.\nSituation: Exam\nUser: I am scared.\nAssistant: "
    assert target == "[Affirmation] That is normal.</s>"
    plain, _ = build_examples([_DIALOGUE], sample_tokenizer, max_length=256, strategy="inline")
    assert _prompt_and_target(sample_tokenizer, plain[0])[0] == "<s>Situation: Exam\nUser: I am scared.\nAssistant: "


def test_templates_that_hide_the_assistant_turn_or_do_not_compile_are_data_errors(sample_tokenizer) -> None:
    tok = copy.deepcopy(sample_tokenizer)
    with pytest.raises(DataError, match=r"data.chat_template: not a Jinja template \(line 1\)"):
        use_chat_template(tok, "{% for m in messages %}{{ m['content'] }")
    # Renders the user's messages only: there is no assistant text for the labels to be.
    use_chat_template(tok, "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}\n{% endif %}{% endfor %}")
    with pytest.raises(DataError, match="the assistant's turn \\(the labels\\) cannot be found"):
        build_examples([_DIALOGUE], tok, max_length=256, strategy="none")


# --- (f) hf://datasets/<org>/<name> from the datasets cache, offline -------------------------------------


def _cache_as_the_hub_would(cache: Path, repo: str, records: list[Any], tmp_path: Path) -> None:
    """A datasets cache holding `repo` as `load_dataset(repo)` leaves it after a download:
    <cache>/<org>___<name>/default/0.0.0/<commit>/ with the arrow file and dataset_info.json, written by
    datasets' own parquet builder (this machine has no network to download it)."""
    from datasets.data_files import DataFilesDict
    from datasets.packaged_modules.parquet.parquet import Parquet

    org, name = repo.split("/")
    parquet = tmp_path / "hub-train.parquet"
    datasets.Dataset.from_list(records).to_parquet(str(parquet))
    builder = Parquet(cache_dir=str(cache), dataset_name=name, config_name="default", hash="0123456789abcdef0123",
                      data_files=DataFilesDict.from_patterns({"train": [parquet.name]}, base_path=str(tmp_path)))
    builder.download_and_prepare()
    # The builder names its directory by its data files' hash; a Hub data set's default config is "default".
    (cache / f"{org}___{name}").mkdir()
    shutil.move(str(Path(builder.cache_dir).parents[1]), cache / f"{org}___{name}" / "default")


def test_a_hub_data_set_from_the_datasets_cache_offline(tmp_path: Path, write_json) -> None:
    cache = tmp_path / "datasets-cache"
    _cache_as_the_hub_would(cache, "someone/tiny-alpaca", ALPACA, tmp_path)
    script = (
        "import json, sys\n"
        "from peftshim.dialogues import read_dialogues, data_fingerprint, DataError\n"
        "from peftshim.datasource import Source\n"
        "uri = sys.argv[1]\n"
        "try:\n"
        "    d, s = read_dialogues('alpaca', uri, source=Source(split='train'))\n"
        "    print(json.dumps({'turns': [[t.text for t in x.turns] for x in d], 'skipped': s.skipped,\n"
        "                      'fp': data_fingerprint(uri, {}, template_version=1)}))\n"
        "except DataError as e:\n"
        "    print(json.dumps({'error': str(e)}))\n"
    )
    env = {**shim_env(), "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}

    def load(uri: str) -> dict[str, Any]:
        result = subprocess.run([sys.executable, "-c", script, uri], env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    got = load("hf://datasets/someone/tiny-alpaca")
    expected, _ = read_dialogues("alpaca", write_json("alpaca.json", ALPACA))
    assert got["turns"] == [[t.text for t in d.turns] for d in expected] and got["skipped"] == {"no_instruction": 1}
    assert load("hf://datasets/someone/tiny-alpaca")["fp"] == got["fp"]
    missing = load("hf://datasets/someone/not-cached")
    assert missing["error"].startswith("hf://datasets/someone/not-cached: cannot load someone/not-cached")
    assert "HF_HUB_OFFLINE is set" in missing["error"] and str(cache) in missing["error"]


# --- training from a save_to_disk directory --------------------------------------------------------------


def test_training_from_a_save_to_disk_directory(tmp_path: Path, samples_dir: Path) -> None:
    saved = _saved(_samples(samples_dir, "extes-sample.json"), tmp_path / "extes-saved")
    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir, data={"path": str(saved), "system_prompt": "You are a supporter."},
                                       train={"max_steps": 4}, eval={"every_steps": 4}, checkpoint={"every_steps": 4}))
    result = run_shim(job)
    assert result.returncode == 0, result.stderr
    events = read_events(run_dir)
    (data,) = events_of(events, "data")
    expected, _ = read_dialogues("extes", samples_dir / "extes-sample.json", max_length=128)
    assert data["dialogues"] == len(expected) and data["examples"]["train"] > 0
    assert data["fingerprint"] == data_fingerprint(saved, _params_of(job), template_version=1)
    (done,) = events_of(events, "done")
    assert done["step"] == 4 and (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def _params_of(job: Path) -> dict[str, Any]:
    from peftshim.spec import load_spec
    from peftshim.train import _data_params

    return _data_params(load_spec(job))
