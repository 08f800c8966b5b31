"""Training data -> Dialogues: the formats, their repairs, the split, and the data fingerprint.

Formats (data.format): extes, esconv (lists of dialogues), chat ({"messages": [{role, content}]}), alpaca
({instruction, input, output}) and sharegpt ({"conversations": [{from, value}]}); datasource.py reads the
records (a JSON or JSON Lines file, parquet, csv, a save_to_disk directory, hf://), and data.columns names
the columns that hold a format's fields. Irregular records are repaired or skipped, each counted
under a short reason in DataStats; names of an older release mapped to the current ones are counted in
DataStats.mapped. An unreadable or malformed file (datafile.py), a record whose text is not text, or a
file with no usable dialogue is a DataError naming the file and, where it can, the record (the shim
exits 2). Text longer than any example of max_length tokens can use is cut here, before anything is
tokenised. examples.py turns the Dialogues into tokenised training examples.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from peftshim.contract import FORMATS
# DataError is imported from here by the other modules: every unusable data file is one (exit 2).
from peftshim.datafile import DataError, Record, check_text
from peftshim.datasource import Source, read_records, source_digest

OTHERS = "Others"

EXTES_STRATEGIES = (
    "Reflective Statements",
    "Clarification",
    "Emotional Validation",
    "Empathetic Statements",
    "Affirmation",
    "Offer Hope",
    "Avoid Judgment And Criticism",
    "Suggest Options",
    "Collaborative Planning",
    "Provide Different Perspectives",
    "Reframe Negative Thoughts",
    "Share Information",
    "Normalize Experiences",
    "Promote Self-Care Practices",
    "Stress Management",
    "Others",
)

ESCONV_STRATEGIES = (
    "Question",
    "Restatement or Paraphrasing",
    "Reflection of feelings",
    "Self-disclosure",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Others",
)

# ESConv's own release (github.com/thu-coai/Emotional-Support-Conversation) names the roles seeker and
# supporter in ESConv.json, but speaker and listener in FailedESConv.json: there the speaker's turns carry
# the seeker's per-turn `feedback` rating and the listener's carry the `strategy`, so speaker is the
# seeker and listener the supporter. That file also uses the strategy names of the first annotation round
# (the README's table and codes/BlenderEmotionalSupport.py: "Questions", "Other"; strategy.json has the
# current ones) and a few rarer ones. This table maps each older name onto ESCONV_STRATEGIES.
ESCONV_OLDER_STRATEGIES = {
    "Questions": "Question",
    "Other": "Others",
    "Restatement": "Restatement or Paraphrasing",
    "Paraphrasing": "Restatement or Paraphrasing",
    "Approval and Reassurance": "Affirmation and Reassurance",
    # Telling the seeker what to do: ESConv's Providing Suggestions ("provide suggestions about how to
    # change") is the nearest of the eight; it is an older label, not a ninth strategy.
    "Direct Guidance": "Providing Suggestions",
}
_ESCONV_ROLES = {"seeker": "user", "supporter": "assistant", "speaker": "user", "listener": "assistant"}
_ESCONV_OLDER_ROLES = {"speaker": "seeker", "listener": "supporter"}

# Characters one token covers at most: an assumed bound with room to spare, since tokens are words or
# pieces of words (the built-in tokenizer's longest is checked by a test). A text of more than
# (max_length + 1) x this many characters then tokenises to more than max_length tokens, so what lies
# beyond is never part of an example (examples keep the start of a target and drop a context turn that
# does not fit whole): it is cut before tokenising, and tokenising a 50 MB string costs what its first
# characters cost. A vocabulary with longer tokens (long runs of one character) could have used a little
# of what is cut.
MAX_CHARS_PER_TOKEN = 64


def max_text_chars(max_length: int) -> int:
    """The longest text (one turn, the scene, the description) that an example of max_length tokens can use."""
    return (max_length + 1) * MAX_CHARS_PER_TOKEN


@dataclass
class Turn:
    role: Literal["user", "assistant"]
    text: str
    strategy: str | None = None


@dataclass
class Dialogue:
    scene: str
    description: str
    turns: list[Turn]


@dataclass
class DataStats:
    dialogues: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    # Names of an older release mapped to the current ones: "role speaker -> seeker", "strategy Questions -> Question".
    mapped: Counter[str] = field(default_factory=Counter)


# --------------------------------------------------------------------------------------------------
# Reading


# The top-level fields of each format's records: what data.columns may map a column onto.
FORMAT_FIELDS = {
    "extes": ("scene", "description", "content"),
    "esconv": ("problem_type", "situation", "dialog"),
    "chat": ("messages",),
    "alpaca": ("instruction", "input", "output"),
    "sharegpt": ("conversations", "system"),
}


def read_data(data: Any, *, max_length: int | None = None, head: int | None = None) -> tuple[list[Dialogue], DataStats]:
    """read_dialogues for a job's data section (spec.DataSpec, or eval.data's EvalDataSpec, which has
    only a format and a path)."""
    return read_dialogues(data.format, data.path, max_length=max_length, head=head, columns=getattr(data, "columns", None),
                          source=source_of(data))


def source_of(data: Any) -> Source | None:
    """data.source of a job's data section as datasource.Source (None when not set)."""
    source = getattr(data, "source", None)
    return None if source is None else Source(source.config, source.split, source.revision)


def read_dialogues(fmt: str, path: str | Path, *, max_length: int | None = None, columns: dict[str, str] | None = None,
                   source: Source | None = None, head: int | None = None) -> tuple[list[Dialogue], DataStats]:
    """Parse the records of `path` (datasource.read_records) as `fmt`, each record's fields first taken
    from the columns `columns` names ({field: column}). Raises DataError for an unreadable or malformed
    file, a record whose text holds a lone surrogate, or a file with no usable dialogue. With
    `max_length` (data.max_length), texts are cut to max_text_chars(max_length) (counted as repaired
    `text_cut`). With `head`, only the first `head` records are read (`validate`'s check)."""
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}")
    rename = _column_renaming(fmt, columns)
    records = read_records(fmt, path, source, head=head)
    stats = DataStats()
    parse_record = _RECORD_PARSERS[fmt]
    limit = None if max_length is None else max_text_chars(max_length)
    dialogues: list[Dialogue] = []
    for record in records:
        dialogue = parse_record(rename(record.value), stats)
        if dialogue is None:
            continue
        _check_dialogue_text(dialogue, record)
        dialogue = _finish_dialogue(dialogue, stats)
        if dialogue is not None:
            dialogues.append(dialogue if limit is None else _cut_long_texts(dialogue, limit, stats))
    stats.dialogues = len(dialogues)
    if not dialogues:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in stats.skipped.most_common()) or "none"
        first = records[0].value if records else None
        seen = f"; the first record's fields: {', '.join(map(str, first))}" if isinstance(first, dict) else ""
        raise DataError(
            f"{path}: no usable dialogue in {len(records)} record(s) read as format {fmt!r} "
            f"(skipped: {reasons}{seen}); check that data.format matches the file, and data.columns "
            f"(format {fmt!r} reads the fields {', '.join(FORMAT_FIELDS[fmt])})"
        )
    return dialogues, stats


def _column_renaming(fmt: str, columns: dict[str, str] | None) -> Callable[[Any], Any]:
    """The function giving each record the format's fields from the columns named ({field: column});
    the identity without a mapping. A field the format does not read is a DataError."""
    if not columns:
        return lambda value: value
    unknown = sorted(set(columns) - set(FORMAT_FIELDS[fmt]))
    if unknown:
        raise DataError(f"data.columns: {', '.join(map(repr, unknown))} {'is not a field' if len(unknown) == 1 else 'are not fields'} "
                        f"of format {fmt!r}, which reads {', '.join(FORMAT_FIELDS[fmt])} (map each to the column holding it)")
    moved = set(columns.values())

    def rename(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        # A mapped field comes from its column alone, never from a column that happens to bear its name.
        renamed = {key: item for key, item in value.items() if key not in moved and key not in columns}
        for field_name, column in columns.items():
            if column in value:
                renamed[field_name] = value[column]
        return renamed

    return rename


def _check_dialogue_text(dialogue: Dialogue, record: Record) -> None:
    check_text(dialogue.scene, record.where, "the scene")
    check_text(dialogue.description, record.where, "the description")
    for turn in dialogue.turns:
        check_text(turn.text, record.where, f"the text of a{'n' if turn.role == 'assistant' else ''} {turn.role} turn")


def _cut_long_texts(dialogue: Dialogue, limit: int, stats: DataStats) -> Dialogue:
    def cut(text: str) -> str:
        if len(text) <= limit:
            return text
        stats.repaired["text_cut"] += 1
        return text[:limit]

    turns = [Turn(t.role, cut(t.text), t.strategy) for t in dialogue.turns]
    return Dialogue(cut(dialogue.scene), cut(dialogue.description), turns)


def _turn_text(value: Any, role: str, stats: DataStats) -> str | None:
    """A turn's text; lists and dicts (seen in the real ExTES file) are repaired when the text is clear."""
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        stats.repaired[f"{role}_value_list"] += 1
        text = " ".join(v.strip() for v in value if v.strip())
    elif isinstance(value, dict):
        text = _text_from_dict(value)
        if text is None:
            stats.skipped[f"{role}_value_unusable"] += 1
            return None
        stats.repaired[f"{role}_value_dict"] += 1
    else:
        stats.skipped[f"{role}_value_unusable"] += 1
        return None
    if not text:
        stats.skipped["empty_turn"] += 1
        return None
    return text


_TEXT_KEYS = ("text", "content", "utterance", "response", "AI", "User")


def _text_from_dict(value: dict[str, Any]) -> str | None:
    for key in _TEXT_KEYS:
        if isinstance(value.get(key), str):
            return value[key].strip()
    strings = [v for v in value.values() if isinstance(v, str)]
    return strings[0].strip() if len(strings) == 1 else None


def _strategy_key(name: str) -> str:
    return re.sub(r"[^a-z]+", " ", name.lower()).strip()


@dataclass(frozen=True)
class _Strategies:
    """A dataset's strategy names by their key (case and spacing ignored): spelling variants of its own
    names, and the older names of an earlier release (counted in DataStats.mapped)."""

    names: dict[str, str]
    older: dict[str, tuple[str, str]]  # key -> (older name, current name)


def _strategies(current: Sequence[str], spellings: dict[str, str], older: dict[str, str]) -> _Strategies:
    names = {_strategy_key(s): s for s in current}
    names.update({_strategy_key(variant): canonical for variant, canonical in spellings.items()})
    return _Strategies(names, {_strategy_key(name): (name, canonical) for name, canonical in older.items()})


_EXTES_LOOKUP = _strategies(EXTES_STRATEGIES, {"Avoid Judgement And Criticism": "Avoid Judgment And Criticism",
                                                "Normalise Experiences": "Normalize Experiences"}, {})
_ESCONV_LOOKUP = _strategies(ESCONV_STRATEGIES, {}, ESCONV_OLDER_STRATEGIES)


def normalise_strategy(raw: Any, lookup: _Strategies, stats: DataStats) -> str:
    """Canonical strategy name; case/spacing variants and older names are mapped, empty or off-list
    become Others."""
    if raw is None:
        stats.repaired["missing_strategy"] += 1
        return OTHERS
    if isinstance(raw, list) and len(raw) == 1:
        stats.repaired["strategy_value_list"] += 1
        raw = raw[0]
    if not isinstance(raw, str):
        stats.repaired["unknown_strategy"] += 1
        return OTHERS
    if not raw.strip():
        stats.repaired["empty_strategy"] += 1
        return OTHERS
    key = _strategy_key(raw)
    canonical = lookup.names.get(key)
    if canonical is None and key in lookup.older:
        older, canonical = lookup.older[key]
        stats.mapped[f"strategy {older} -> {canonical}"] += 1
        return canonical
    if canonical is None:
        stats.repaired["unknown_strategy"] += 1
        return OTHERS
    if canonical != raw:
        stats.repaired["strategy_spelling"] += 1
    return canonical


def _text_field(record: dict[str, Any], key: str, stats: DataStats) -> str:
    value = record.get(key)
    if isinstance(value, str):
        return value.strip()
    stats.repaired[f"missing_{key}"] += 1
    return ""


_EXTES_KEYS = {"scene", "description", "content"}


def _parse_extes(record: Any, stats: DataStats) -> Dialogue | None:
    if not isinstance(record, dict):
        stats.skipped["record_not_object"] += 1
        return None
    content = record.get("content")
    if not isinstance(content, list):
        stats.skipped["no_content"] += 1
        return None
    if set(record) - _EXTES_KEYS:
        stats.repaired["extra_keys"] += 1
    turns: list[Turn] = []
    for item in content:
        turns.extend(_parse_extes_turn(item, stats))
    return Dialogue(_text_field(record, "scene", stats), _text_field(record, "description", stats), turns)


def _parse_extes_turn(item: Any, stats: DataStats) -> list[Turn]:
    if not isinstance(item, dict):
        stats.skipped["turn_not_object"] += 1
        return []
    has_user, has_ai = "User" in item, "AI" in item
    if not has_user and not has_ai:
        stats.skipped["turn_without_user_or_ai"] += 1
        return []
    strategy_keys = [k for k in item if _strategy_key(k) == "ai strategy"]
    if set(item) - {"User", "AI", *strategy_keys}:
        stats.repaired["turn_extra_keys"] += 1
    if has_user and has_ai:
        # Both speakers in one record: the seeker spoke first, keep both as separate turns.
        stats.repaired["turn_with_user_and_ai"] += 1
    turns: list[Turn] = []
    if has_user:
        text = _turn_text(item["User"], "user", stats)
        if text is not None:
            turns.append(Turn("user", text))
    if has_ai:
        text = _turn_text(item["AI"], "ai", stats)
        if text is not None:
            raw_strategy = item.get("AI Strategy")
            if "AI Strategy" not in item and strategy_keys:
                stats.repaired["strategy_key_spelling"] += 1
                raw_strategy = item[strategy_keys[0]]
            turns.append(Turn("assistant", text, normalise_strategy(raw_strategy, _EXTES_LOOKUP, stats)))
    return turns


def _parse_esconv(record: Any, stats: DataStats) -> Dialogue | None:
    if not isinstance(record, dict):
        stats.skipped["record_not_object"] += 1
        return None
    dialog = record.get("dialog")
    if not isinstance(dialog, list):
        stats.skipped["no_dialog"] += 1
        return None
    turns: list[Turn] = []
    for item in dialog:
        if not isinstance(item, dict):
            stats.skipped["turn_not_object"] += 1
            continue
        speaker = item.get("speaker")
        speaker = speaker.strip().lower() if isinstance(speaker, str) else ""
        role = _ESCONV_ROLES.get(speaker)
        if role is None:
            stats.skipped["unknown_speaker"] += 1
            continue
        if speaker in _ESCONV_OLDER_ROLES:
            stats.mapped[f"role {speaker} -> {_ESCONV_OLDER_ROLES[speaker]}"] += 1
        text = _turn_text(item.get("content"), "seeker" if role == "user" else "supporter", stats)
        if text is None:
            continue
        strategy = None
        if role == "assistant":
            annotation = item.get("annotation")
            raw = annotation.get("strategy") if isinstance(annotation, dict) else None
            strategy = normalise_strategy(raw, _ESCONV_LOOKUP, stats)
        turns.append(Turn(role, text, strategy))  # type: ignore[arg-type]
    return Dialogue(_text_field(record, "problem_type", stats), _text_field(record, "situation", stats), turns)


_CHAT_ROLES = {"user": "user", "assistant": "assistant"}


def _parse_chat(record: Any, stats: DataStats) -> Dialogue | None:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list):
        stats.skipped["no_messages"] += 1
        return None
    system: list[str] = []
    turns: list[Turn] = []
    for message in messages:
        if not isinstance(message, dict):
            stats.skipped["turn_not_object"] += 1
            continue
        role = message.get("role")
        if not isinstance(role, str) or (role != "system" and role not in _CHAT_ROLES):  # a list is unhashable
            stats.skipped["unknown_role"] += 1
            continue
        text = _turn_text(message.get("content"), role, stats)
        if text is None:
            continue
        if role == "system":
            system.append(text)
        else:
            turns.append(Turn(_CHAT_ROLES[role], text))  # type: ignore[arg-type]
    return Dialogue("", "\n".join(system), turns)


def _parse_alpaca(record: Any, stats: DataStats) -> Dialogue | None:
    if not isinstance(record, dict):
        stats.skipped["record_not_object"] += 1
        return None
    instruction = record.get("instruction")
    extra_input = record.get("input")
    output = record.get("output")
    if not isinstance(instruction, str) or not instruction.strip():
        stats.skipped["no_instruction"] += 1
        return None
    if not isinstance(output, str) or not output.strip():
        stats.skipped["no_output"] += 1
        return None
    prompt = instruction.strip()
    if isinstance(extra_input, str) and extra_input.strip():
        prompt = f"{prompt}\n\n{extra_input.strip()}"
    return Dialogue("", "", [Turn("user", prompt), Turn("assistant", output.strip())])


# ShareGPT's speakers (FastChat's data: "human"/"gpt"; other dumps name the model "chatgpt", "bard", "bing",
# or use chat's roles); "system" turns become the description, as chat's system messages do.
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
                   "bing": "assistant", "model": "assistant", "assistant": "assistant", "system": "system"}


def _parse_sharegpt(record: Any, stats: DataStats) -> Dialogue | None:
    conversations = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(conversations, list):
        stats.skipped["no_conversations"] += 1
        return None
    system = [record["system"].strip()] if isinstance(record.get("system"), str) and record["system"].strip() else []
    turns: list[Turn] = []
    for message in conversations:
        if not isinstance(message, dict):
            stats.skipped["turn_not_object"] += 1
            continue
        speaker = message.get("from", message.get("role"))
        role = _SHAREGPT_ROLES.get(speaker.strip().lower()) if isinstance(speaker, str) else None
        if role is None:
            stats.skipped["unknown_role"] += 1
            continue
        text = _turn_text(message.get("value", message.get("content")), role, stats)
        if text is None:
            continue
        if role == "system":
            system.append(text)
        else:
            turns.append(Turn(role, text))  # type: ignore[arg-type]
    return Dialogue("", "\n".join(system), turns)


_RECORD_PARSERS = {"extes": _parse_extes, "esconv": _parse_esconv, "chat": _parse_chat, "alpaca": _parse_alpaca,
                   "sharegpt": _parse_sharegpt}


def _finish_dialogue(dialogue: Dialogue, stats: DataStats) -> Dialogue | None:
    """Merge consecutive turns of one speaker; drop dialogues without a reply to the seeker."""
    merged: list[Turn] = []
    for turn in dialogue.turns:
        if merged and merged[-1].role == turn.role:
            # The first turn's strategy stands for the merged turn: it opened that reply.
            previous = merged[-1]
            merged[-1] = Turn(previous.role, f"{previous.text} {turn.text}", previous.strategy or turn.strategy)
            stats.repaired["merged_consecutive_turns"] += 1
        else:
            merged.append(turn)
    if not any(turn.role == "assistant" and i > 0 for i, turn in enumerate(merged)):
        stats.skipped["no_reply_after_user"] += 1
        return None
    return Dialogue(dialogue.scene, dialogue.description, merged)


# --------------------------------------------------------------------------------------------------
# Split


def split_dialogues(
    dialogues: Sequence[Dialogue], train: float, valid: float, test: float, seed: int
) -> dict[str, list[Dialogue]]:
    """Deterministic split at the dialogue level (no dialogue's turns leak across splits).

    Every dialogue goes to one split. Sizes follow the fractions (which sum to 1, as the config layer
    guarantees) by largest remainder, and a split with a non-zero fraction gets at least one dialogue
    when there are enough dialogues for all of them.
    """
    fractions = {"train": train, "valid": valid, "test": test}
    if any(f < 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    order = list(range(len(dialogues)))
    random.Random(seed).shuffle(order)
    sizes = _split_sizes(len(order), fractions)
    result: dict[str, list[Dialogue]] = {}
    start = 0
    for name in ("train", "valid", "test"):
        result[name] = [dialogues[i] for i in order[start : start + sizes[name]]]
        start += sizes[name]
    return result


def _split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    exact = {name: n * f for name, f in fractions.items()}
    sizes = {name: math.floor(x + 1e-9) for name, x in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - sizes[name], reverse=True)
    for name in by_remainder[: max(0, n - sum(sizes.values()))]:
        sizes[name] += 1
    wanted = [name for name, f in fractions.items() if f > 0]
    if n >= len(wanted):
        for name in wanted:
            if sizes[name] == 0:
                donor = max(sizes, key=lambda k: sizes[k])
                sizes[donor] -= 1
                sizes[name] += 1
    return sizes


# --------------------------------------------------------------------------------------------------
# Fingerprint


def data_fingerprint(path: str | Path, params: dict[str, Any], *, template_version: int, source: Source | None = None) -> str:
    """sha256 over what identifies the data (datasource.source_digest: a file's sha256, a save_to_disk
    directory's files, a Hub data set's), the preprocessing parameters and the template version
    (examples.TEMPLATE_VERSION), as canonical JSON."""
    payload = {**source_digest(path, source), "params": params, "template_version": template_version}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
