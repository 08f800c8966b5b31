"""examples.py: one example per reply, labels, truncation, strategies, chat templates, speed; the tokenizer."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest

from peftshim.contract import IGNORE_INDEX
from peftshim.dialogues import MAX_CHARS_PER_TOKEN, DataError, Dialogue, Turn, read_dialogues
from peftshim.examples import Example, build_examples, example_chars, prompt_ids, render_plain
from peftshim.tokenizer import train_tokenizer


def _dialogue(*lines: str, scene: str = "Work Stress", description: str = "Too many deadlines.") -> Dialogue:
    """ "U: text" is a user turn, "Strategy Name: text" an assistant turn."""
    turns = []
    for line in lines:
        tag, text = line.split(": ", 1)
        turns.append(Turn("user", text) if tag == "U" else Turn("assistant", text, tag))
    return Dialogue(scene, description, turns)


def _target(example: Example) -> list[int]:
    return [t for t in example.labels if t != IGNORE_INDEX]


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


@pytest.mark.parametrize("max_length", [16, 64])
def test_cutting_long_texts_leaves_every_example_as_it_was(sample_tokenizer, write_json, max_length: int) -> None:
    # read_dialogues(max_length=) cuts texts to what max_length tokens can use; the examples (and the
    # prompts of generation) built from the cut texts must be those of the whole texts.
    words = " ".join(f"feeling {i} of so many" for i in range(1500))  # ~33k characters of short words
    record = {"problem_type": words, "situation": "exams", "dialog": [
        {"speaker": "seeker", "content": words},
        {"speaker": "supporter", "content": "a" * 20_000, "annotation": {"strategy": "Question"}},  # one long "word"
        {"speaker": "seeker", "content": "And then?"},
        {"speaker": "supporter", "content": words, "annotation": {"strategy": "Information"}},
        {"speaker": "seeker", "content": "Thanks."},
        {"speaker": "supporter", "content": "Anytime.", "annotation": {"strategy": "Others"}},
    ]}
    path = write_json("long.json", [record])
    whole, _ = read_dialogues("esconv", path)
    cut, stats = read_dialogues("esconv", path, max_length=max_length)
    assert stats.repaired["text_cut"] == 4 and len(cut[0].scene) < len(whole[0].scene)
    built = [build_examples(d, sample_tokenizer, max_length=max_length, strategy="inline") for d in (whole, cut)]
    assert built[0] == built[1] and built[0][1] == 2  # both long targets are cut to max_length, as before
    for k in (1, 3, 5):
        context = [Dialogue(d[0].scene, d[0].description, d[0].turns[:k]) for d in (whole, cut)]
        prompts = {tuple(prompt_ids(c, sample_tokenizer, max_length=max_length, strategy="inline")) for c in context}
        assert len(prompts) == 1 and len(next(iter(prompts))) <= max_length  # a situation that does not fit stays out


def test_builtin_tokenizer_tokens_are_within_max_chars_per_token(samples_dir: Path) -> None:
    # The cut's bound: no token of the built-in models' tokenizer covers more than MAX_CHARS_PER_TOKEN.
    from peftshim.examples import training_text
    from peftshim.model import BUILTIN_TOKENIZER_VOCAB

    dialogues, _ = read_dialogues("extes", samples_dir / "extes-sample.json")
    tokenizer = train_tokenizer(training_text(dialogues), vocab_size=BUILTIN_TOKENIZER_VOCAB)
    # a byte-level vocabulary writes each byte as one character: a token's length bounds its characters
    longest = max(len(token) for token in tokenizer.get_vocab())
    assert 4 < longest <= MAX_CHARS_PER_TOKEN


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
    dialogue_chars = sum(len(render_plain(d)) for d in dialogues)
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


@pytest.mark.parametrize("name", ["extes-sample.json", "extes-irregular.json", "esconv-sample.json",
                                  "esconv-release-sample.json"])
def test_example_chars_counts_the_examples_training_builds(sample_tokenizer, samples_dir: Path, name: str) -> None:
    # The plan's token estimate (`data-summary`) is this count: it must be the number of examples
    # build_examples makes of the same file, and each length the plain rendering up to its target.
    dialogues, _ = read_dialogues(name.split("-")[0], samples_dir / name)
    lengths = list(example_chars(dialogues, "inline"))
    examples, _ = build_examples(dialogues, sample_tokenizer, max_length=100_000, strategy="inline")
    assert len(lengths) == len(examples) > 0
    expected = [len(render_plain(Dialogue(d.scene, d.description, d.turns[: i + 1])))
                for d in dialogues for i, turn in enumerate(d.turns)
                if turn.role == "assistant" and any(t.role == "user" for t in d.turns[:i])]
    assert lengths == expected
