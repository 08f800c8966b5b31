"""Training data: file formats -> Dialogues -> split -> rendered, tokenised Examples, and the data fingerprint.

Formats (data.format): extes, esconv (JSON lists of dialogues), chat (JSONL with {"messages": [...]}) and
alpaca (JSON list of {instruction, input, output}). Irregular records are repaired or skipped, each counted
under a short reason in DataStats; only an unreadable file, or one with no usable dialogue, is a DataError
(the shim exits 2).

Rendering and tokenisation (build_examples): each turn is rendered and tokenised ONCE per dialogue and the
examples of that dialogue are assembled from those token ids, instead of re-tokenising the growing prefix
for every example (quadratic). BPE can tokenise a concatenated text differently from the concatenation of
its parts, so the turn boundaries are fixed token boundaries here: history, prompt and target always use the
same per-segment ids, in training and in `prompt_ids` (generation), which is what keeps them consistent.
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
from typing import Any, Iterable, Iterator, Literal, Sequence

# Bump whenever rendering or tokenisation changes: it is part of the data fingerprint, so an old
# checkpoint is not resumed on differently preprocessed data.
TEMPLATE_VERSION = 1

FORMATS = ("extes", "esconv", "chat", "alpaca")
STRATEGY_MODES = ("inline", "none")
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

IGNORE_INDEX = -100


class DataError(Exception):
    """The data file cannot be used at all; the message names the file and what is wrong."""


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


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX outside the target and its end of turn


# --------------------------------------------------------------------------------------------------
# Reading


def read_dialogues(fmt: str, path: Path) -> tuple[list[Dialogue], DataStats]:
    """Parse `path` as `fmt`. Raises DataError for an unreadable file or one with no usable dialogue."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DataError(f"{path}: unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}")
    text = _read_text(path)
    stats = DataStats()
    if fmt == "chat":
        records = _parse_jsonl(path, text)
    else:
        records = _parse_json_list(path, text)
    parse_record = _RECORD_PARSERS[fmt]
    dialogues: list[Dialogue] = []
    for record in records:
        dialogue = parse_record(record, stats)
        if dialogue is not None:
            dialogue = _finish_dialogue(dialogue, stats)
        if dialogue is not None:
            dialogues.append(dialogue)
    stats.dialogues = len(dialogues)
    if not dialogues:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in stats.skipped.most_common()) or "none"
        raise DataError(
            f"{path}: no usable dialogue in {len(records)} record(s) read as format {fmt!r} "
            f"(skipped: {reasons}); check that data.format matches the file"
        )
    return dialogues, stats


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found; check data.path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a data file; check data.path") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the data file: {e.strerror}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (invalid byte at offset {e.start})") from None


def _parse_json_list(path: Path, text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON list of records at the top level, found {_json_type(value)}")
    return value


def _parse_jsonl(path: Path, text: str) -> list[Any]:
    records: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}:{e.colno}: not valid JSON Lines: {e.msg}") from None
    return records


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


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


def _lookup(strategies: Sequence[str], aliases: dict[str, str]) -> dict[str, str]:
    table = {_strategy_key(s): s for s in strategies}
    table.update({_strategy_key(alias): canonical for alias, canonical in aliases.items()})
    return table


_EXTES_LOOKUP = _lookup(EXTES_STRATEGIES, {"Avoid Judgement And Criticism": "Avoid Judgment And Criticism",
                                            "Normalise Experiences": "Normalize Experiences"})
_ESCONV_LOOKUP = _lookup(ESCONV_STRATEGIES, {"Restatement": "Restatement or Paraphrasing",
                                              "Paraphrasing": "Restatement or Paraphrasing"})


def normalise_strategy(raw: Any, lookup: dict[str, str], stats: DataStats) -> str:
    """Canonical strategy name; case/spacing variants are mapped, empty or off-list become Others."""
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
    canonical = lookup.get(_strategy_key(raw))
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


_ESCONV_ROLES = {"seeker": "user", "supporter": "assistant"}


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
        role = _ESCONV_ROLES.get(str(item.get("speaker", "")).strip().lower())
        if role is None:
            stats.skipped["unknown_speaker"] += 1
            continue
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
        if role != "system" and role not in _CHAT_ROLES:
            stats.skipped["unknown_role"] += 1
            continue
        text = _turn_text(message.get("content"), str(role), stats)
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


_RECORD_PARSERS = {"extes": _parse_extes, "esconv": _parse_esconv, "chat": _parse_chat, "alpaca": _parse_alpaca}


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

    Fractions are of all dialogues; when they sum to less than 1 the rest is left out. Sizes follow the
    fractions by largest remainder, and a split with a non-zero fraction gets at least one dialogue when
    there are enough dialogues for all of them.
    """
    fractions = {"train": train, "valid": valid, "test": test}
    total = sum(fractions.values())
    if any(f < 0 for f in fractions.values()) or total <= 0 or total > 1 + 1e-9:
        raise ValueError(f"split fractions must be non-negative with a sum in (0, 1], got {fractions}")
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
    total = sum(fractions.values())
    assigned = n if abs(total - 1) < 1e-9 else math.floor(n * total + 1e-9)
    exact = {name: n * f for name, f in fractions.items()}
    sizes = {name: math.floor(x + 1e-9) for name, x in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - sizes[name], reverse=True)
    for name in by_remainder[: max(0, assigned - sum(sizes.values()))]:
        sizes[name] += 1
    wanted = [name for name, f in fractions.items() if f > 0]
    if assigned >= len(wanted):
        for name in wanted:
            if sizes[name] == 0:
                donor = max(sizes, key=lambda k: sizes[k])
                sizes[donor] -= 1
                sizes[name] += 1
    return sizes


# --------------------------------------------------------------------------------------------------
# Rendering


def _situation(dialogue: Dialogue) -> str:
    scene, description = dialogue.scene.strip(), dialogue.description.strip()
    if scene and description:
        return f"{scene.rstrip('.')}. {description}"
    return scene or description


def _assistant_text(turn: Turn, strategy: str) -> str:
    if strategy == "inline" and turn.strategy:
        return f"[{turn.strategy}] {turn.text}"
    return turn.text


# The plain template, for tokenizers without a chat template (base LLaMA, the builtin tiny model).
_PLAIN_HEADER = "Situation: {situation}\n"
_PLAIN_USER = "User: {text}\n"
_PLAIN_ASSISTANT = "Assistant: "
_NEWLINE = "\n"


def render_plain(dialogue: Dialogue, strategy: str = "inline") -> str:
    """The whole dialogue in the plain template (what a reader sees; training uses the same pieces)."""
    situation = _situation(dialogue)
    lines = [_PLAIN_HEADER.format(situation=situation)] if situation else []
    for turn in dialogue.turns:
        if turn.role == "user":
            lines.append(_PLAIN_USER.format(text=turn.text))
        else:
            lines.append(_PLAIN_ASSISTANT + _assistant_text(turn, strategy) + _NEWLINE)
    return "".join(lines)


def training_text(dialogues: Iterable[Dialogue]) -> Iterator[str]:
    """Texts the builtin tokenizer is trained on: each dialogue in the plain template, strategies inline."""
    for dialogue in dialogues:
        yield render_plain(dialogue, "inline")


# --------------------------------------------------------------------------------------------------
# Tokenised examples


@dataclass
class _Segments:
    """One dialogue as texts to tokenise once: the header, then per turn (role, opening, body).

    A user turn is all opening. An assistant turn's opening ("Assistant: ", or the template's assistant
    header) ends the prompt and its body is the target; the tokenizer's eos is appended to the target
    unless the body already contains it (a chat template's own end of turn). As context, an assistant
    turn is opening + body + the plain template's newline (nothing for chat templates: their rendered
    body already ends the turn)."""

    header: str
    turns: list[tuple[str, str, str]]


def build_examples(
    dialogues: Sequence[Dialogue], tokenizer: Any, *, max_length: int, strategy: str
) -> tuple[list[Example], int]:
    """One example per assistant turn that follows at least one user turn.

    Returns (examples, truncated): `truncated` counts examples whose target itself had to be cut (the
    oldest context turns are dropped first, silently; that is the normal fate of long dialogues).
    """
    if strategy not in STRATEGY_MODES:
        raise ValueError(f"strategy must be one of {STRATEGY_MODES}, got {strategy!r}")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    encoded = _encode_dialogues(dialogues, tokenizer, strategy)
    examples: list[Example] = []
    truncated = 0
    for dialogue in encoded:
        for example, was_truncated in _dialogue_examples(dialogue, max_length):
            truncated += was_truncated
            if example is not None:
                examples.append(example)
    return examples, truncated


def prompt_ids(dialogue: Dialogue, tokenizer: Any, *, max_length: int, strategy: str) -> list[int]:
    """Token ids that ask for the next assistant turn after `dialogue` (for generation at eval time),
    built from the same segments as the training prompts."""
    probe = Dialogue(dialogue.scene, dialogue.description, [*dialogue.turns, Turn("assistant", "", None)])
    (enc,) = _encode_dialogues([probe], tokenizer, strategy)
    lead, header, turns = enc
    history = [t[1] for t in turns[:-1]]
    opening = turns[-1][2]
    budget = max_length - len(lead) - len(header) - len(opening)
    kept: list[list[int]] = []
    for ids in reversed(history):
        if budget - len(ids) < 0:
            break
        budget -= len(ids)
        kept.append(ids)
    return lead + header + [i for ids in reversed(kept) for i in ids] + opening


# An encoded dialogue: (lead ids kept in every example, header ids, per turn (role, history ids,
# opening ids, target ids)); opening/target are empty for user turns.
_Encoded = tuple[list[int], list[int], list[tuple[str, list[int], list[int], list[int]]]]


def _dialogue_examples(dialogue: _Encoded, max_length: int) -> Iterator[tuple[Example | None, bool]]:
    lead, header, turns = dialogue
    seen_user = False
    for k, (role, _, opening, target) in enumerate(turns):
        if role == "user":
            seen_user = True
            continue
        if not seen_user:
            continue
        fixed = len(lead) + len(opening)
        if fixed >= max_length:
            yield None, True  # not even one target token fits: nothing to learn from
            continue
        use_header = fixed + len(header) + len(target) <= max_length
        budget = max_length - fixed - (len(header) if use_header else 0) - len(target)
        start = k
        while start > 0 and len(turns[start - 1][1]) <= budget:
            budget -= len(turns[start - 1][1])
            start -= 1
        cut = len(target) > max_length - fixed
        kept_target = target[: max_length - fixed] if cut else target
        prompt = list(lead)
        if use_header:
            prompt += header
        for turn in turns[start:k]:
            prompt += turn[1]
        prompt += opening
        yield Example(prompt + kept_target, [IGNORE_INDEX] * len(prompt) + list(kept_target)), cut


def _encode_dialogues(dialogues: Sequence[Dialogue], tokenizer: Any, strategy: str) -> list[_Encoded]:
    if getattr(tokenizer, "chat_template", None):
        segments = [_chat_segments(d, tokenizer, strategy) for d in dialogues]
        lead: list[int] = []  # the chat template writes its own bos, if it wants one
        history_end: list[int] = []
    else:
        segments = [_plain_segments(d, strategy) for d in dialogues]
        lead = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        history_end = _tokenize(tokenizer, [_NEWLINE])[0]
    eos = tokenizer.eos_token_id
    texts: list[str] = []
    for seg in segments:
        texts.append(seg.header)
        for _, opening, body in seg.turns:
            texts.append(opening)
            texts.append(body)
    ids = iter(_tokenize(tokenizer, texts))
    encoded: list[_Encoded] = []
    for seg in segments:
        header = next(ids)
        turns: list[tuple[str, list[int], list[int], list[int]]] = []
        for role, _, _ in seg.turns:
            opening, body = next(ids), next(ids)
            if role == "user":
                turns.append((role, opening + body, [], []))
                continue
            target = body if (eos is None or eos in body) else body + [eos]
            turns.append((role, opening + body + history_end, opening, target))
        encoded.append((lead, header, turns))
    return encoded


def _tokenize(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, each distinct text tokenised once (role openings repeat on every turn)."""
    unique = list(dict.fromkeys(texts))
    ids: dict[str, list[int]] = {}
    for start in range(0, len(unique), 4096):  # batched: one call into the Rust tokenizer per chunk
        chunk = unique[start : start + 4096]
        ids.update(zip(chunk, tokenizer(chunk, add_special_tokens=False)["input_ids"]))
    return [ids[text] for text in texts]


def _plain_segments(dialogue: Dialogue, strategy: str) -> _Segments:
    situation = _situation(dialogue)
    turns: list[tuple[str, str, str]] = []
    for turn in dialogue.turns:
        if turn.role == "user":
            turns.append(("user", _PLAIN_USER.format(text=turn.text), ""))
        else:
            turns.append(("assistant", _PLAIN_ASSISTANT, _assistant_text(turn, strategy)))
    header = _PLAIN_HEADER.format(situation=situation) if situation else ""
    return _Segments(header, turns)


def _chat_segments(dialogue: Dialogue, tokenizer: Any, strategy: str) -> _Segments:
    """Segments cut out of the chat template's renderings of growing prefixes of the conversation.

    This needs a prefix-stable template (the rendering of the first k messages is a prefix of the
    rendering of k+1), which holds for common templates (LLaMA-2/3, ChatML, Mistral...); a template
    that rewrites earlier turns is reported as a DataError rather than silently mis-tokenised.
    """
    turns = list(dialogue.turns)
    while turns and turns[0].role == "assistant":
        turns.pop(0)  # many templates insist on user first; a greeting before the seeker is no target
    messages = [
        {"role": t.role, "content": t.text if t.role == "user" else _assistant_text(t, strategy)} for t in turns
    ]
    situation = _situation(dialogue)
    system = [{"role": "system", "content": situation}] if situation else []
    try:
        return _cut_segments(system, messages, turns, tokenizer)
    except _TemplateRejected:
        if not system or not messages:
            raise DataError("the tokenizer's chat template rejects this conversation") from None
        # Templates without a system role (e.g. Gemma): the situation opens the first user message.
        messages[0] = {"role": "user", "content": f"{situation}\n\n{messages[0]['content']}"}
        try:
            return _cut_segments([], messages, turns, tokenizer)
        except _TemplateRejected as e:
            raise DataError(f"the tokenizer's chat template rejects the conversation: {e}") from None


class _TemplateRejected(Exception):
    pass


def _render(tokenizer: Any, conversations: list[list[dict[str, str]]], generation: bool) -> list[str]:
    if not conversations:
        return []
    try:
        rendered = tokenizer.apply_chat_template(
            conversations, tokenize=False, add_generation_prompt=generation
        )
    except Exception as e:  # jinja raises TemplateError (raise_exception) or anything the template does
        raise _TemplateRejected(str(e)) from e
    return [rendered] if isinstance(rendered, str) else list(rendered)


def _cut_segments(
    system: list[dict[str, str]], messages: list[dict[str, str]], turns: list[Turn], tokenizer: Any
) -> _Segments:
    prefixes = [system + messages[:j] for j in range(len(messages) + 1)]
    rendered = _render(tokenizer, [p for p in prefixes if p], generation=False)
    if not prefixes[0]:
        rendered.insert(0, _render_empty(tokenizer))
    assistant_at = [j for j, t in enumerate(turns) if t.role == "assistant"]
    prompts = dict(zip(assistant_at, _render(tokenizer, [prefixes[j] for j in assistant_at], generation=True)))
    cut: list[tuple[str, str, str]] = []
    for j, turn in enumerate(turns):
        before, after = rendered[j], rendered[j + 1]
        if turn.role == "user":
            _require_prefix(before, after)
            cut.append(("user", after[len(before):], ""))
        else:
            prompt = prompts[j]
            _require_prefix(before, prompt)
            _require_prefix(prompt, after)
            cut.append(("assistant", prompt[len(before):], after[len(prompt):]))
    return _Segments(rendered[0], cut)


def _render_empty(tokenizer: Any) -> str:
    try:
        text = tokenizer.apply_chat_template([], tokenize=False)
    except Exception:
        return ""
    return text if isinstance(text, str) else ""


def _require_prefix(shorter: str, longer: str) -> None:
    if not longer.startswith(shorter):
        raise DataError(
            "the tokenizer's chat template is not prefix-stable (rendering more messages changes the "
            "earlier ones), so turns cannot be tokenised once; use a model whose template is, or a base model"
        )


# --------------------------------------------------------------------------------------------------
# Fingerprint


def data_fingerprint(path: Path, params: dict[str, Any]) -> str:
    """sha256 over the file's sha256, the preprocessing parameters and TEMPLATE_VERSION (canonical JSON)."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise DataError(f"{path}: cannot read the data file: {e.strerror}") from None
    payload = {"file_sha256": digest.hexdigest(), "params": params, "template_version": TEMPLATE_VERSION}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
