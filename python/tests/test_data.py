"""data.py: formats, ExTES repairs, split, examples (labels, truncation, strategies, chat template), fingerprint."""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path

import pytest

from peftshim import data
from peftshim.data import (
    ESCONV_STRATEGIES,
    EXTES_STRATEGIES,
    IGNORE_INDEX,
    DataError,
    Dialogue,
    Turn,
    build_examples,
    data_fingerprint,
    prompt_ids,
    read_dialogues,
    split_dialogues,
)
from peftshim.tokenizer import train_tokenizer


def _dialogue(*lines: str, scene: str = "Work Stress", description: str = "Too many deadlines.") -> Dialogue:
    """ "U: text" is a user turn, "Strategy Name: text" an assistant turn."""
    turns = []
    for line in lines:
        tag, text = line.split(": ", 1)
        turns.append(Turn("user", text) if tag == "U" else Turn("assistant", text, tag))
    return Dialogue(scene, description, turns)


def _target(example: data.Example) -> list[int]:
    return [t for t in example.labels if t != IGNORE_INDEX]


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
    dialogues = [_dialogue("U: hi", f"Others: hello {i}") for i in range(5)]
    parts = split_dialogues(dialogues, 0.9, 0.05, 0.05, seed=1)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [3, 1, 1]
    parts = split_dialogues(dialogues, 1.0, 0.0, 0.0, seed=1)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [5, 0, 0]
    dialogues = dialogues * 4
    parts = split_dialogues(dialogues, 0.5, 0.1, 0.1, seed=1)  # a sum under 1 leaves the rest out
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [10, 2, 2]
    for bad in ((0, 0, 0), (0.8, 0.2, 0.1), (1.0, -0.1, 0.1)):
        with pytest.raises(ValueError):
            split_dialogues(dialogues, *bad, seed=1)


# ---------------------------------------------------------------------------------------------- examples


def test_one_example_per_reply_after_a_user_turn(sample_tokenizer, samples_dir: Path) -> None:
    dialogues, _ = read_dialogues("extes", samples_dir / "extes-sample.json")
    expected = sum(
        1 for d in dialogues for i, t in enumerate(d.turns)
        if t.role == "assistant" and any(p.role == "user" for p in d.turns[:i])
    )
    examples, truncated = build_examples(dialogues, sample_tokenizer, max_length=1024, strategy="inline")
    assert len(examples) == expected and truncated == 0
    opening = _dialogue("Others: Welcome.", "U: hi", "Affirmation: hello", "U: bye", "Others: bye")
    examples, _ = build_examples([opening], sample_tokenizer, max_length=1024, strategy="none")
    assert [sample_tokenizer.decode(_target(e)) for e in examples] == ["hello</s>", "bye</s>"]


def test_labels_mask_the_prompt_and_supervise_target_and_eos(sample_tokenizer) -> None:
    tok = sample_tokenizer
    dialogue = _dialogue("U: I can't sleep before exams.", "Emotional Validation: That sounds exhausting.",
                         "U: It is.", "Suggest Options: Try a wind-down routine.")
    examples, _ = build_examples([dialogue], tok, max_length=512, strategy="inline")
    second = examples[1]
    assert len(second.input_ids) == len(second.labels)
    assert second.input_ids[0] == tok.bos_token_id and second.input_ids[-1] == tok.eos_token_id
    n_prompt = next(i for i, t in enumerate(second.labels) if t != IGNORE_INDEX)
    assert all(t == IGNORE_INDEX for t in second.labels[:n_prompt])
    assert second.labels[n_prompt:] == second.input_ids[n_prompt:]
    assert tok.decode(second.input_ids[:n_prompt]) == (
        "<s>Situation: Work Stress. Too many deadlines.\nUser: I can't sleep before exams.\n"
        "Assistant: [Emotional Validation] That sounds exhausting.\nUser: It is.\nAssistant: "
    )
    assert tok.decode(_target(second)) == "[Suggest Options] Try a wind-down routine.</s>"
    # The first example (less its eos) is a prefix of the second: turns are tokenised once, the same way.
    first_without_eos = examples[0].input_ids[:-1]
    assert second.input_ids[: len(first_without_eos)] == first_without_eos


def test_strategy_none_leaves_the_response_bare(sample_tokenizer) -> None:
    dialogue = _dialogue("U: hi", "Offer Hope: Things can get better.", "U: thanks", "Affirmation: You did well.")
    examples, _ = build_examples([dialogue], sample_tokenizer, max_length=512, strategy="none")
    text = sample_tokenizer.decode(examples[1].input_ids)
    assert "[" not in text and text.endswith("Assistant: Things can get better.\nUser: thanks\nAssistant: You did well.</s>")
    with pytest.raises(ValueError):
        build_examples([dialogue], sample_tokenizer, max_length=512, strategy="prefix")


def test_left_truncation_drops_whole_oldest_turns_never_the_target(sample_tokenizer) -> None:
    tok = sample_tokenizer
    dialogue = _dialogue(*[f"U: message number {i} from the user" if i % 2 == 0
                           else f"Affirmation: reply number {i} from the supporter" for i in range(10)])
    full = build_examples([dialogue], tok, max_length=4096, strategy="inline")[0][-1]
    # The shortest example that still has its header: <s>, the situation line, the opening and the target.
    header = tok.encode("Situation: Work Stress. Too many deadlines.\n", add_special_tokens=True)
    shortest = len(header) + len(tok.encode("Assistant: ", add_special_tokens=False)) + len(_target(full))
    lengths = range(len(full.input_ids) - 1, shortest - 1, -5)
    assert len(lengths) > 10
    for max_length in lengths:
        examples, truncated = build_examples([dialogue], tok, max_length=max_length, strategy="inline")
        last = examples[-1]
        assert len(last.input_ids) <= max_length and truncated == 0
        assert tok.decode(_target(last)) == "[Affirmation] reply number 9 from the supporter</s>"
        text = tok.decode(last.input_ids)
        assert text.startswith("<s>Situation: Work Stress. Too many deadlines.\n")
        kept = text.split("\n")[1:-1]  # whole lines between the header and the final assistant line
        expected_tail = [("User: " if i % 2 == 0 else "Assistant: [Affirmation] ")
                         + (f"message number {i} from the user" if i % 2 == 0 else f"reply number {i} from the supporter")
                         for i in range(9)]
        assert kept == expected_tail[len(expected_tail) - len(kept):]  # a suffix: the oldest turns went first
        assert len(kept) < 9


def test_target_longer_than_max_length_is_cut_and_counted(sample_tokenizer) -> None:
    long_reply = " ".join(["You are not alone in feeling this way."] * 30)
    dialogue = _dialogue("U: hi", "Others: short", "U: tell me more", f"Empathetic Statements: {long_reply}")
    examples, truncated = build_examples([dialogue], sample_tokenizer, max_length=64, strategy="inline")
    assert truncated == 1 and len(examples) == 2
    last = examples[-1]
    assert len(last.input_ids) == 64
    assert sample_tokenizer.eos_token_id not in _target(last)
    assert sample_tokenizer.decode(last.input_ids).startswith("<s>Assistant: [Empathetic Statements] You are not alone")


def test_prompt_ids_match_the_training_prompt(sample_tokenizer) -> None:
    dialogue = _dialogue("U: hi", "Affirmation: hello", "U: I'm tired", "Stress Management: Let's breathe.")
    examples, _ = build_examples([dialogue], sample_tokenizer, max_length=512, strategy="inline")
    history = Dialogue(dialogue.scene, dialogue.description, dialogue.turns[:3])
    ids = prompt_ids(history, sample_tokenizer, max_length=512, strategy="inline")
    last = examples[-1]
    assert ids == last.input_ids[: len(ids)] and last.labels[len(ids) - 1] == IGNORE_INDEX
    assert last.labels[len(ids)] != IGNORE_INDEX


_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def test_chat_template_path(sample_tokenizer) -> None:
    tok = copy.deepcopy(sample_tokenizer)
    tok.chat_template = _CHAT_TEMPLATE
    dialogue = _dialogue("U: My exam is tomorrow.", "Clarification: How do you feel about it?",
                         "U: Scared.", "Offer Hope: You prepared well.", scene="Exam Anxiety", description="Finals.")
    examples, truncated = build_examples([dialogue], tok, max_length=512, strategy="inline")
    assert len(examples) == 2 and truncated == 0
    second = examples[1]
    n_prompt = next(i for i, t in enumerate(second.labels) if t != IGNORE_INDEX)
    assert tok.decode(second.input_ids[:n_prompt]) == (
        "<s><|system|>\nExam Anxiety. Finals.</s>\n<|user|>\nMy exam is tomorrow.</s>\n"
        "<|assistant|>\n[Clarification] How do you feel about it?</s>\n<|user|>\nScared.</s>\n<|assistant|>\n"
    )
    target = _target(second)
    assert tok.decode(target) == "[Offer Hope] You prepared well.</s>\n"
    assert target.count(tok.eos_token_id) == 1  # the template's end of turn is the eos: not added twice
    # The whole rendering, tokenised at once, decodes to the same text.
    rendered = tok.apply_chat_template(
        [{"role": "system", "content": "Exam Anxiety. Finals."}, {"role": "user", "content": "My exam is tomorrow."},
         {"role": "assistant", "content": "[Clarification] How do you feel about it?"},
         {"role": "user", "content": "Scared."}, {"role": "assistant", "content": "[Offer Hope] You prepared well."}],
        tokenize=False)
    assert tok.decode(second.input_ids) == rendered


def test_chat_template_without_system_role_folds_the_situation(sample_tokenizer) -> None:
    tok = copy.deepcopy(sample_tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}"
    )
    examples, _ = build_examples([_dialogue("U: hi", "Others: hello")], tok, max_length=512, strategy="none")
    assert tok.decode(examples[0].input_ids) == "[user] Work Stress. Too many deadlines.\n\nhi\n[assistant] hello\n</s>"


def test_chat_template_that_rewrites_history_is_a_data_error(sample_tokenizer) -> None:
    tok = copy.deepcopy(sample_tokenizer)
    tok.chat_template = "{{ messages | length }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(DataError, match="not prefix-stable"):
        build_examples([_dialogue("U: hi", "Others: hello")], tok, max_length=512, strategy="none")


def _distinct_copies(dialogues: list[Dialogue], copies: int) -> list[Dialogue]:
    return [
        Dialogue(d.scene, d.description, [Turn(t.role, f"{t.text} ({i})", t.strategy) for t in d.turns])
        for i in range(copies) for d in dialogues
    ]


class _CountingTokenizer:
    """Delegates to a real tokenizer and counts the characters it is asked to tokenise."""

    def __init__(self, inner) -> None:
        self.inner, self.chars = inner, 0
        self.bos_token_id, self.eos_token_id, self.chat_template = inner.bos_token_id, inner.eos_token_id, None

    def __call__(self, texts, **kwargs):
        self.chars += sum(len(t) for t in texts)
        return self.inner(texts, **kwargs)


def test_each_turn_is_tokenised_once_not_once_per_example(sample_tokenizer, samples_dir: Path) -> None:
    dialogues, _ = read_dialogues("extes", samples_dir / "extes-sample.json")
    counting = _CountingTokenizer(sample_tokenizer)
    examples, _ = build_examples(dialogues, counting, max_length=4096, strategy="inline")
    dialogue_chars = sum(len(data.render_plain(d)) for d in dialogues)
    assert counting.chars <= dialogue_chars  # re-tokenising each growing prefix would be ~5x this
    assert counting.chars > 0.8 * dialogue_chars and len(examples) > 100


def test_build_examples_is_fast(sample_tokenizer, samples_dir: Path) -> None:
    dialogues, _ = read_dialogues("extes", samples_dir / "extes-sample.json")
    many = _distinct_copies(dialogues, 80)  # 2000 distinct dialogues, ~10,000 examples
    start = time.perf_counter()
    examples, _ = build_examples(many, sample_tokenizer, max_length=256, strategy="inline")
    elapsed = time.perf_counter() - start
    assert len(examples) > 10_000
    assert elapsed < 20, f"{len(examples)} examples took {elapsed:.1f}s"  # loose: the test machines are shared


# ---------------------------------------------------------------------------------------------- fingerprint

_PARAMS = {"format": "extes", "strategy": "inline", "max_length": 1024,
           "split": {"train": 0.8, "valid": 0.1, "test": 0.1, "seed": 42}}


def test_fingerprint_changes_with_file_bytes_and_each_parameter(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'[{"scene": "a"}]')
    base = data_fingerprint(path, _PARAMS)
    assert len(base) == 64 and base == data_fingerprint(path, copy.deepcopy(_PARAMS))
    assert base == data_fingerprint(path, dict(reversed(list(_PARAMS.items()))))  # canonical: key order is irrelevant
    variants = [
        {**_PARAMS, "format": "esconv"},
        {**_PARAMS, "strategy": "none"},
        {**_PARAMS, "max_length": 512},
        {**_PARAMS, "split": {**_PARAMS["split"], "seed": 43}},
        {**_PARAMS, "split": {**_PARAMS["split"], "train": 0.7, "valid": 0.2}},
    ]
    prints = {data_fingerprint(path, v) for v in variants}
    assert len(prints) == len(variants) and base not in prints
    path.write_bytes(b'[{"scene": "b"}]')
    assert data_fingerprint(path, _PARAMS) != base


def test_fingerprint_includes_the_template_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b"[]")
    before = data_fingerprint(path, _PARAMS)
    monkeypatch.setattr(data, "TEMPLATE_VERSION", data.TEMPLATE_VERSION + 1)
    assert data_fingerprint(path, _PARAMS) != before


# ---------------------------------------------------------------------------------------------- tokenizer


def test_train_tokenizer_is_deterministic_and_byte_level() -> None:
    texts = ["User: I feel lonely.\nAssistant: [Empathetic Statements] That sounds hard.\n"] * 20
    a, b = train_tokenizer(texts, vocab_size=400), train_tokenizer(texts, vocab_size=400)
    assert a.get_vocab() == b.get_vocab()
    assert (a.bos_token_id, a.eos_token_id, a.pad_token_id) == (0, 1, 2)
    unseen = "Grüße, 你好 — ünseen text! 🙂"
    ids = a.encode(unseen, add_special_tokens=False)
    assert a.decode(ids) == unseen
    assert a.encode(unseen)[0] == a.bos_token_id and a.chat_template is None
