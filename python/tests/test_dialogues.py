"""dialogues.py: formats, ExTES repairs, bad files, the split, the data fingerprint."""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import pytest

from peftshim import datafile
from peftshim.dialogues import (
    ESCONV_OLDER_STRATEGIES,
    ESCONV_STRATEGIES,
    EXTES_STRATEGIES,
    DataError,
    Dialogue,
    Turn,
    data_fingerprint,
    max_text_chars,
    read_dialogues,
    split_dialogues,
)

# ---------------------------------------------------------------------------------------------- formats


def test_extes_sample_parses_cleanly(samples_dir: Path) -> None:
    dialogues, stats = read_dialogues("extes", samples_dir / "extes-sample.json")
    assert stats.dialogues == len(dialogues) >= 24
    assert not stats.skipped and not stats.repaired
    assert len({d.scene for d in dialogues}) >= 6
    strategies = {t.strategy for d in dialogues for t in d.turns if t.role == "assistant"}
    assert strategies == set(EXTES_STRATEGIES)
    for d in dialogues:
        assert 6 <= len(d.turns) <= 14
        assert all(t.strategy is None for t in d.turns if t.role == "user")


def test_esconv_sample_parses(samples_dir: Path) -> None:
    dialogues, stats = read_dialogues("esconv", samples_dir / "esconv-sample.json")
    assert len(dialogues) >= 8
    assert {t.strategy for d in dialogues for t in d.turns if t.role == "assistant"} <= set(ESCONV_STRATEGIES)
    assert dialogues[0].scene == "job crisis" and dialogues[0].description.startswith("I might be laid off")
    # The sample has supporter turns in a row (reassurance then a closing line): merged, counted.
    assert stats.repaired["merged_consecutive_turns"] >= 1
    for d in dialogues:
        assert all(a.role != b.role for a, b in zip(d.turns, d.turns[1:]))


def test_esconv_strategy_off_list_and_missing(write_json) -> None:
    path = write_json("esconv.json", [{
        "emotion_type": "fear", "problem_type": "exams", "situation": "Finals.",
        "dialog": [
            {"speaker": "seeker", "content": "I'm scared.", "annotation": {}},
            {"speaker": "supporter", "content": "Why?", "annotation": {"strategy": "question"}},
            {"speaker": "seeker", "content": "Exams.", "annotation": {}},
            {"speaker": "supporter", "content": "Hm.", "annotation": {}},
            {"speaker": "robot", "content": "beep"},
        ],
    }])
    [dialogue], stats = read_dialogues("esconv", path)
    assert [t.strategy for t in dialogue.turns] == [None, "Question", None, "Others"]
    assert stats.repaired == Counter({"strategy_spelling": 1, "missing_strategy": 1})
    assert stats.skipped == Counter({"unknown_speaker": 1})


def test_esconv_release_sample_maps_roles_and_older_strategy_names(samples_dir: Path) -> None:
    dialogues, stats = read_dialogues("esconv", samples_dir / "esconv-release-sample.json")
    assert stats.dialogues == len(dialogues) == 4
    assert not stats.skipped and set(stats.repaired) == {"merged_consecutive_turns"}
    # Every turn of the file is a speaker's or a listener's: 40 turns, each counted once.
    assert stats.mapped["role speaker -> seeker"] == 18 and stats.mapped["role listener -> supporter"] == 22
    assert stats.mapped["strategy Questions -> Question"] == 4
    assert stats.mapped["strategy Direct Guidance -> Providing Suggestions"] == 2
    strategies = [t.strategy for d in dialogues for t in d.turns if t.role == "assistant"]
    assert set(strategies) <= set(ESCONV_STRATEGIES) and len(set(strategies)) == 7
    assert dialogues[0].scene == "academic pressure" and dialogues[0].turns[0].role == "assistant"
    assert dialogues[0].turns[1].text == "Hi. I have a thesis due soon and I'm panicking."  # merged, stripped
    for d in dialogues:
        assert all(a.role != b.role for a, b in zip(d.turns, d.turns[1:]))


def test_older_esconv_strategy_names_map_onto_the_eight() -> None:
    assert set(ESCONV_OLDER_STRATEGIES.values()) <= set(ESCONV_STRATEGIES)
    assert not set(ESCONV_OLDER_STRATEGIES) & set(ESCONV_STRATEGIES)


def test_older_names_in_any_case_and_roles_in_one_dialogue(write_json) -> None:
    path = write_json("esconv.json", [{"problem_type": "p", "situation": "s", "dialog": [
        {"speaker": "Speaker", "content": "I'm scared.", "annotation": {"feedback": "3"}},
        {"speaker": "listener", "content": "Why?", "annotation": {"strategy": "questions"}},
        {"speaker": "seeker", "content": "Exams.", "annotation": {}},
        {"speaker": "supporter", "content": "Plan a day off.", "annotation": {"strategy": "direct guidance"}},
        {"speaker": ["listener"], "content": "?", "annotation": {}},
    ]}])
    [dialogue], stats = read_dialogues("esconv", path)
    assert [(t.role, t.strategy) for t in dialogue.turns] == [
        ("user", None), ("assistant", "Question"), ("user", None), ("assistant", "Providing Suggestions")]
    assert stats.mapped == Counter({"role speaker -> seeker": 1, "role listener -> supporter": 1,
                                    "strategy Questions -> Question": 1,
                                    "strategy Direct Guidance -> Providing Suggestions": 1})
    assert stats.skipped == Counter({"unknown_speaker": 1}) and not stats.repaired


def test_chat_jsonl_parses(write_jsonl) -> None:
    path = write_jsonl("chat.jsonl", [
        {"messages": [
            {"role": "system", "content": "You are kind."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi, how can I help?"},
            {"role": "tool", "content": "ignored"},
        ]},
        {"messages": [{"role": "user", "content": "Only a question"}]},
        {"no_messages": True},
    ])
    [dialogue], stats = read_dialogues("chat", path)
    assert dialogue.description == "You are kind." and dialogue.scene == ""
    assert [(t.role, t.text, t.strategy) for t in dialogue.turns] == [
        ("user", "Hello", None), ("assistant", "Hi, how can I help?", None)]
    assert stats.skipped == Counter({"unknown_role": 1, "no_reply_after_user": 1, "no_messages": 1})


def test_chat_role_that_is_not_a_string_is_skipped(write_jsonl) -> None:
    # a list as the role used to be looked up in a dict: TypeError (unhashable), a traceback
    path = write_jsonl("chat.jsonl", [{"messages": [
        {"role": ["user"], "content": "x"}, {"role": {"a": 1}, "content": "y"},
        {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]}])
    [dialogue], stats = read_dialogues("chat", path)
    assert [t.text for t in dialogue.turns] == ["Hello", "Hi"]
    assert stats.skipped == Counter({"unknown_role": 2})


def test_alpaca_parses(write_json) -> None:
    path = write_json("alpaca.json", [
        {"instruction": "Summarise", "input": "A long text.", "output": "Short."},
        {"instruction": "Say hi", "input": "", "output": "Hi!"},
        {"instruction": "No output", "input": ""},
    ])
    dialogues, stats = read_dialogues("alpaca", path)
    assert [[t.text for t in d.turns] for d in dialogues] == [["Summarise\n\nA long text.", "Short."], ["Say hi", "Hi!"]]
    assert stats.skipped == Counter({"no_output": 1})


# ---------------------------------------------------------------------------------------------- ExTES irregularities

_CLEAN = [{"User": "I feel awful."}, {"AI": "That sounds hard.", "AI Strategy": "Emotional Validation"}]


@pytest.mark.parametrize(
    ("content", "extra", "turns", "repaired", "skipped"),
    [
        pytest.param(
            [{"User": "Hi", "mood": "sad"}, {"AI": "Hello", "AI Strategy": "Others"}], {"id": 3},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {"extra_keys": 1, "turn_extra_keys": 1}, {}, id="extra-keys"),
        pytest.param(
            [{"User": "Hi", "AI": "Hello there", "AI Strategy": "Affirmation"}], {},
            [("user", "Hi", None), ("assistant", "Hello there", "Affirmation")],
            {"turn_with_user_and_ai": 1}, {}, id="user-and-ai-in-one-turn"),
        pytest.param(
            [{"User": "Hi"}, {"comment": "x"}, {"AI": "Hello", "AI Strategy": "Others"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {}, {"turn_without_user_or_ai": 1}, id="turn-with-neither"),
        pytest.param(
            [{"User": "Hi"}, {"AI": "Hello", "AI Strategy": ""}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {"empty_strategy": 1}, {}, id="empty-strategy"),
        pytest.param(
            [{"User": "Hi"}, {"AI": "Hello", "AI Strategy": "Motivational Interviewing"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {"unknown_strategy": 1}, {}, id="off-list-strategy"),
        pytest.param(
            [{"User": "Hi"}, {"AI": "Hello"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {"missing_strategy": 1}, {}, id="missing-strategy"),
        pytest.param(
            [{"User": "Hi"}, {"AI": "Hello", "AI Strategy": "  reframe negative_thoughts "}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Reframe Negative Thoughts")],
            {"strategy_spelling": 1}, {}, id="strategy-case-and-spacing"),
        pytest.param(
            [{"User": "Hi"}, {"AI": "Hello", "AI Strategy": ["Offer Hope"]}, {"User": "Ok"},
             {"AI": "Good", "AI Strategy": {"name": "x"}}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Offer Hope"), ("user", "Ok", None),
             ("assistant", "Good", "Others")],
            {"strategy_value_list": 1, "unknown_strategy": 1}, {}, id="strategy-value-list-or-dict"),
        pytest.param(
            [{"User": "Hi"}, {"AI": "Hello", "AI strategy": "Offer Hope"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Offer Hope")],
            {"strategy_key_spelling": 1}, {}, id="key-spelled-AI-strategy"),
        pytest.param(
            [{"User": "Hi"}, {"AI": ["Hello.", "I'm here."], "AI Strategy": "Others"}], {},
            [("user", "Hi", None), ("assistant", "Hello. I'm here.", "Others")],
            {"ai_value_list": 1}, {}, id="ai-value-list"),
        pytest.param(
            [{"User": "Hi"}, {"AI": {"text": "Hello."}, "AI Strategy": "Others"}], {},
            [("user", "Hi", None), ("assistant", "Hello.", "Others")],
            {"ai_value_dict": 1}, {}, id="ai-value-dict"),
        pytest.param(
            [{"User": {"content": "Hi"}}, {"AI": "Hello", "AI Strategy": "Others"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {"user_value_dict": 1}, {}, id="user-value-dict"),
        pytest.param(
            [{"User": "Hi"}, {"AI": {"a": "x", "b": "y"}, "AI Strategy": "Others"}, {"AI": "Hello", "AI Strategy": "Others"}],
            {}, [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {}, {"ai_value_unusable": 1}, id="ai-value-dict-ambiguous"),
        pytest.param(
            [{"User": "Hi"}, {"AI": None, "AI Strategy": "Others"}, {"AI": "  ", "AI Strategy": "Others"},
             {"AI": "Hello", "AI Strategy": "Others"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {}, {"ai_value_unusable": 1, "empty_turn": 1}, id="ai-value-none-and-blank"),
        pytest.param(
            [{"User": "Hi"}, {"User": "Anyone?"}, {"AI": "Yes.", "AI Strategy": "Others"},
             {"AI": "I'm here.", "AI Strategy": "Affirmation"}], {},
            [("user", "Hi Anyone?", None), ("assistant", "Yes. I'm here.", "Others")],
            {"merged_consecutive_turns": 2}, {}, id="consecutive-turns-merged"),
        pytest.param(
            ["just a string", {"User": "Hi"}, {"AI": "Hello", "AI Strategy": "Others"}], {},
            [("user", "Hi", None), ("assistant", "Hello", "Others")],
            {}, {"turn_not_object": 1}, id="turn-not-object"),
    ],
)
def test_extes_irregularity_is_repaired_or_skipped(write_json, content, extra, turns, repaired, skipped) -> None:
    record = {"scene": "S", "description": "D", "content": content, **extra}
    path = write_json("extes.json", [record, {"scene": "Clean", "description": "", "content": _CLEAN}])
    dialogues, stats = read_dialogues("extes", path)
    assert [(t.role, t.text, t.strategy) for t in dialogues[0].turns] == turns
    assert stats.repaired == Counter(repaired)
    assert stats.skipped == Counter(skipped)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ("a string", "record_not_object"),
        ({"scene": "S", "description": "D"}, "no_content"),
        ({"scene": "S", "description": "D", "content": "not a list"}, "no_content"),
        ({"scene": "S", "description": "D", "content": [{"User": "Hello?"}]}, "no_reply_after_user"),
        ({"scene": "S", "description": "D", "content": [{"AI": "Hi", "AI Strategy": "Others"}]}, "no_reply_after_user"),
    ],
)
def test_unusable_extes_records_are_skipped(write_json, record, reason) -> None:
    path = write_json("extes.json", [record, {"scene": "Clean", "description": "", "content": _CLEAN}])
    dialogues, stats = read_dialogues("extes", path)
    assert len(dialogues) == 1 and dialogues[0].scene == "Clean"
    assert stats.skipped == Counter({reason: 1})


def test_missing_scene_is_repaired(write_json) -> None:
    path = write_json("extes.json", [{"description": 5, "content": _CLEAN}])
    [dialogue], stats = read_dialogues("extes", path)
    assert (dialogue.scene, dialogue.description) == ("", "")
    assert stats.repaired == Counter({"missing_scene": 1, "missing_description": 1})


def test_irregular_sample_file_is_read_with_every_reason_counted(samples_dir: Path) -> None:
    dialogues, stats = read_dialogues("extes", samples_dir / "extes-irregular.json")
    assert stats.dialogues == len(dialogues) == 5
    for reason in ("extra_keys", "turn_extra_keys", "turn_with_user_and_ai", "empty_strategy", "unknown_strategy",
                   "strategy_key_spelling", "strategy_spelling", "ai_value_list", "ai_value_dict",
                   "merged_consecutive_turns"):
        assert stats.repaired[reason] >= 1, reason
    for reason in ("turn_without_user_or_ai", "record_not_object", "no_content", "no_reply_after_user"):
        assert stats.skipped[reason] >= 1, reason
    for d in dialogues:
        assert all(t.text and isinstance(t.text, str) for t in d.turns)
        assert all(t.strategy in EXTES_STRATEGIES for t in d.turns if t.role == "assistant")


# ---------------------------------------------------------------------------------------------- bad files


def test_not_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"scene": "x",\n   "content": [}\n]\n', encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_dialogues("extes", path)
    assert str(e.value).startswith(f"{path}:3:")
    assert "not valid JSON" in str(e.value)


def test_bad_jsonl_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": []}\n\n{"messages": [oops]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"chat\.jsonl:3:\d+: not valid JSON Lines"):
        read_dialogues("chat", path)


def test_top_level_not_a_list(write_json) -> None:
    path = write_json("obj.json", {"dialogues": []})
    with pytest.raises(DataError, match=r"obj\.json: expected a JSON list .* found an object"):
        read_dialogues("extes", path)


def test_zero_usable_dialogues_names_the_reasons(write_json) -> None:
    path = write_json("wrong-format.json", [{"instruction": "a", "output": "b"}] * 3)
    with pytest.raises(DataError) as e:
        read_dialogues("extes", path)
    message = str(e.value)
    assert "wrong-format.json" in message and "no usable dialogue in 3 record(s)" in message
    assert "no_content: 3" in message and "data.format" in message


def test_empty_list_and_missing_file_and_binary(tmp_path: Path, write_json) -> None:
    with pytest.raises(DataError, match="no usable dialogue in 0 record"):
        read_dialogues("esconv", write_json("empty.json", []))
    with pytest.raises(DataError, match=r"nope\.json: data file not found"):
        read_dialogues("extes", tmp_path / "nope.json")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        read_dialogues("extes", binary)
    with pytest.raises(DataError, match="unknown data format 'csv'"):
        read_dialogues("csv", binary)



def test_json_list_errors_name_the_record_and_its_line(tmp_path: Path) -> None:
    good = '{"problem_type": "p", "situation": "s", "dialog": []}'
    cases = {
        "[\n" + good + ",\n" + good + ",\n]": r":4:1: not valid JSON: Expecting value",  # a trailing comma
        "[\n" + good + "\n" + good + "]": r":3:1: not valid JSON: expected ',' or ']' after record 1",
        "[" + good + "] []": r":1:\d+: not valid JSON: Extra data",
        "[" + good + "": r":1:\d+: not valid JSON: expected ',' or ']' after record 1, found end of data",
        "[\n" + good + ",\n\n  " + '{"n": ' + "1" * 4400 + "}]": r":4: record 2: an integer literal of 4400 digits",
        '"just a string"': r": expected a JSON list of records at the top level, found a string",
    }
    for text, message in cases.items():
        path = tmp_path / "bad.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}{message}"):
            read_dialogues("esconv", path)


def test_lone_surrogate_is_rejected_naming_the_record_but_a_pair_is_text(tmp_path: Path) -> None:
    record = '{"problem_type": "p", "situation": "%s", "dialog": [{"speaker": "seeker", "content": "hi"}, ' \
             '{"speaker": "supporter", "content": "%s"}]}'
    path = tmp_path / "d.json"
    path.write_text("[" + record % ("s", "a smile \\ud83d\\ude00") + "]", encoding="utf-8")
    [dialogue], _ = read_dialogues("esconv", path)
    assert dialogue.turns[1].text == "a smile \U0001f600"
    path.write_text("[" + record % ("s", "ok") + ",\n" + record % ("lost \\udc00 half", "ok") + "]", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.json:2: record 2: the description contains a lone UTF-16 surrogate \\udc00 "
                                        r"\(after 'lost '\)"):
        read_dialogues("esconv", path)


def test_texts_beyond_what_max_length_can_use_are_cut(write_json) -> None:
    limit = max_text_chars(16)
    long = "x" * (limit + 5)
    path = write_json("esconv.json", [{"problem_type": long, "situation": "short", "dialog": [
        {"speaker": "seeker", "content": long}, {"speaker": "supporter", "content": "ok " * limit, "annotation": {"strategy": "Question"}}]}])
    [full], stats = read_dialogues("esconv", path)
    assert not stats.repaired and len(full.turns[0].text) == limit + 5
    [cut], stats = read_dialogues("esconv", path, max_length=16)
    assert stats.repaired == Counter({"text_cut": 3})
    assert (len(cut.scene), cut.description, len(cut.turns[0].text)) == (limit, "short", limit)
    assert cut.turns[1].text == full.turns[1].text[:limit]


def test_a_file_larger_than_memory_allows_is_refused_before_reading(samples_dir: Path, monkeypatch) -> None:
    path = samples_dir / "esconv-sample.json"
    monkeypatch.setattr(datafile, "available_memory", lambda: path.stat().st_size * 2)
    with pytest.raises(DataError, match=r"esconv-sample\.json: the data file is 0\.00 GiB; reading it takes about"):
        read_dialogues("esconv", path)
    monkeypatch.setattr(datafile, "available_memory", lambda: path.stat().st_size * 10)
    assert read_dialogues("esconv", path)[1].dialogues == 8


# ---------------------------------------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_complete(samples_dir: Path) -> None:
    dialogues, _ = read_dialogues("extes", samples_dir / "extes-sample.json")
    first = split_dialogues(dialogues, 0.8, 0.1, 0.1, seed=42)
    again = split_dialogues(copy.deepcopy(dialogues), 0.8, 0.1, 0.1, seed=42)
    assert first == again
    ids = {name: [id(d) for d in part] for name, part in first.items()}
    assert sum(len(v) for v in ids.values()) == len(dialogues)
    assert set().union(*map(set, ids.values())) == {id(d) for d in dialogues}
    assert len(first["train"]) == 20 and len(first["valid"]) == 3 and len(first["test"]) == 2
    other = split_dialogues(dialogues, 0.8, 0.1, 0.1, seed=7)
    assert [d.description for d in other["train"]] != [d.description for d in first["train"]]


def test_split_sizes_small_and_zero_fractions() -> None:
    dialogues = [Dialogue("", "", [Turn("user", "hi"), Turn("assistant", f"hello {i}", "Others")]) for i in range(5)]
    parts = split_dialogues(dialogues, 0.9, 0.05, 0.05, seed=1)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [3, 1, 1]
    parts = split_dialogues(dialogues, 1.0, 0.0, 0.0, seed=1)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [5, 0, 0]
    parts = split_dialogues(dialogues * 4, 0.7, 0.2, 0.1, seed=1)  # 0.7 + 0.2 + 0.1 is 0.9999999999999999 in floats
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [14, 4, 2]


@pytest.mark.parametrize("fractions", [(0, 0, 0), (0.8, 0.2, 0.1), (1.0, -0.1, 0.1), (0.5, 0.1, 0.1)])
def test_split_fractions_must_be_non_negative_and_sum_to_1(fractions: tuple[float, float, float]) -> None:
    # the config layer guarantees it; a sum below 1 no longer leaves dialogues out
    with pytest.raises(ValueError, match="sum to 1"):
        split_dialogues([], *fractions, seed=1)


# ---------------------------------------------------------------------------------------------- fingerprint

FINGERPRINT_BEFORE_THE_SPLIT = "70622533643075f69cb77420c632d946fcb5fab4476b78ee88d9f4cc344adf9d"
_PARAMS = {"format": "extes", "strategy": "inline", "max_length": 1024,
           "split": {"train": 0.8, "valid": 0.1, "test": 0.1, "seed": 42}}


def test_fingerprint_changes_with_file_bytes_and_each_parameter(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'[{"scene": "a"}]')
    base = data_fingerprint(path, _PARAMS, template_version=1)
    assert len(base) == 64 and base == data_fingerprint(path, copy.deepcopy(_PARAMS), template_version=1)
    assert base == data_fingerprint(path, dict(reversed(list(_PARAMS.items()))), template_version=1)  # canonical: key order is irrelevant
    variants = [
        {**_PARAMS, "format": "esconv"},
        {**_PARAMS, "strategy": "none"},
        {**_PARAMS, "max_length": 512},
        {**_PARAMS, "split": {**_PARAMS["split"], "seed": 43}},
        {**_PARAMS, "split": {**_PARAMS["split"], "train": 0.7, "valid": 0.2}},
    ]
    prints = {data_fingerprint(path, v, template_version=1) for v in variants}
    assert len(prints) == len(variants) and base not in prints
    path.write_bytes(b'[{"scene": "b"}]')
    assert data_fingerprint(path, _PARAMS, template_version=1) != base


def test_fingerprint_includes_the_template_version(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b"[]")
    assert data_fingerprint(path, _PARAMS, template_version=1) != data_fingerprint(path, _PARAMS, template_version=2)


def test_fingerprint_is_unchanged_by_the_refactor(tmp_path: Path) -> None:
    # computed by data.py before it was split: checkpoints of earlier runs must still resume
    path = tmp_path / "d.json"
    path.write_bytes(b'[{"scene": "a"}]')
    assert data_fingerprint(path, _PARAMS, template_version=1) == FINGERPRINT_BEFORE_THE_SPLIT
