"""Dialogues -> tokenised training Examples: rendering, chat-template cutting, labels, truncation.

Each turn is rendered and tokenised ONCE per dialogue and the examples of that dialogue are assembled
from those token ids, instead of re-tokenising the growing prefix for every example (quadratic). BPE can
tokenise a concatenated text differently from the concatenation of its parts, so the turn boundaries are
fixed token boundaries here: history, prompt and target always use the same per-segment ids, in training
and in `prompt_ids` (generation), which is what keeps them consistent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from peftshim.contract import IGNORE_INDEX, STRATEGY_MODES
from peftshim.dialogues import DataError, Dialogue, Turn

# Bump whenever rendering or tokenisation changes: it is part of the data fingerprint, so an old
# checkpoint is not resumed on differently preprocessed data.
TEMPLATE_VERSION = 1


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX outside the target and its end of turn


# --------------------------------------------------------------------------------------------------
# Rendering


def _situation(dialogue: Dialogue) -> str:
    scene, description = dialogue.scene.strip(), dialogue.description.strip()
    if scene and description:
        return f"{scene.rstrip('.')}. {description}"
    return scene or description


def _system_text(system_prompt: str, dialogue: Dialogue) -> str:
    """A chat template's system message: data.system_prompt, then the dialogue's situation."""
    return "\n\n".join(part for part in (system_prompt.strip(), _situation(dialogue)) if part)


def use_chat_template(tokenizer: Any, template: str | None) -> None:
    """data.chat_template: the tokenizer renders with this Jinja template from now on (it is saved with
    the adapter's tokenizer, so eval and chat render alike). A template Jinja cannot compile is a DataError."""
    if template is None:
        return
    from jinja2 import TemplateError
    from transformers.utils.chat_template_utils import _compile_jinja_template  # the environment apply_chat_template uses

    try:
        _compile_jinja_template(template)
    except TemplateError as e:
        line = f" (line {e.lineno})" if getattr(e, "lineno", None) else ""
        raise DataError(f"data.chat_template: not a Jinja template{line}: {e.message}") from None
    tokenizer.chat_template = template


def _assistant_text(turn: Turn, strategy: str) -> str:
    if strategy == "inline" and turn.strategy:
        return f"[{turn.strategy}] {turn.text}"
    return turn.text


# The plain template, for tokenizers without a chat template (base LLaMA, the builtin tiny model).
_PLAIN_SYSTEM = "System: {text}\n"  # data.system_prompt, before the situation
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


def example_chars(dialogues: Iterable[Dialogue], strategy: str) -> Iterator[int]:
    """Characters of each training example in the plain template (its context and its target), in the
    order build_examples makes them: the planner's token estimate (`data-summary`) reads these."""
    for dialogue in dialogues:
        situation = _situation(dialogue)
        length = len(_PLAIN_HEADER.format(situation=situation)) if situation else 0
        seen_user = False
        for turn in dialogue.turns:
            if turn.role == "user":
                length += len(_PLAIN_USER.format(text=turn.text))
                seen_user = True
                continue
            length += len(_PLAIN_ASSISTANT) + len(_assistant_text(turn, strategy)) + len(_NEWLINE)
            if seen_user:
                yield length


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
    dialogues: Sequence[Dialogue], tokenizer: Any, *, max_length: int, strategy: str, system_prompt: str = ""
) -> tuple[list[Example], int]:
    """One example per assistant turn that follows at least one user turn. `system_prompt`
    (data.system_prompt) opens each dialogue's header: a System line in the plain template, the system
    message (before the situation) in a chat template.

    Returns (examples, truncated): `truncated` counts examples whose target itself had to be cut (the
    oldest context turns are dropped first, silently; that is the normal fate of long dialogues).
    """
    if strategy not in STRATEGY_MODES:
        raise ValueError(f"strategy must be one of {STRATEGY_MODES}, got {strategy!r}")
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    encoded = _encode_dialogues(dialogues, tokenizer, strategy, system_prompt)
    examples: list[Example] = []
    truncated = 0
    for dialogue in encoded:
        for example, was_truncated in _dialogue_examples(dialogue, max_length):
            truncated += was_truncated
            if example is not None:
                examples.append(example)
    return examples, truncated


def generation_budget(max_length: int, max_new_tokens: int) -> int:
    """Prompt tokens left for a prompt that must fit `max_length` together with its response."""
    return max(1, max_length - max_new_tokens)


def prompt_ids(dialogue: Dialogue, tokenizer: Any, *, max_length: int, strategy: str, system_prompt: str = "") -> list[int]:
    """Token ids that ask for the next assistant turn after `dialogue` (for generation at eval time),
    built from the same segments as the training prompts."""
    probe = Dialogue(dialogue.scene, dialogue.description, [*dialogue.turns, Turn("assistant", "", None)])
    (enc,) = _encode_dialogues([probe], tokenizer, strategy, system_prompt)
    lead, header, turns = enc
    history = [t[1] for t in turns[:-1]]
    opening = turns[-1][2]
    if len(lead) + len(header) + len(opening) > max_length:
        header = []  # as in training, a situation that does not fit is left out rather than overflow the prompt
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


def _encode_dialogues(dialogues: Sequence[Dialogue], tokenizer: Any, strategy: str, system_prompt: str = "") -> list[_Encoded]:
    if getattr(tokenizer, "chat_template", None):
        segments = [_chat_segments(d, tokenizer, strategy, system_prompt) for d in dialogues]
        lead: list[int] = []  # the chat template writes its own bos, if it wants one
        history_end: list[int] = []
    else:
        segments = [_plain_segments(d, strategy, system_prompt) for d in dialogues]
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


def _plain_segments(dialogue: Dialogue, strategy: str, system_prompt: str = "") -> _Segments:
    situation = _situation(dialogue)
    turns: list[tuple[str, str, str]] = []
    for turn in dialogue.turns:
        if turn.role == "user":
            turns.append(("user", _PLAIN_USER.format(text=turn.text), ""))
        else:
            turns.append(("assistant", _PLAIN_ASSISTANT, _assistant_text(turn, strategy)))
    header = _PLAIN_HEADER.format(situation=situation) if situation else ""
    if system_prompt.strip():
        header = _PLAIN_SYSTEM.format(text=system_prompt.strip()) + header
    return _Segments(header, turns)


def _chat_segments(dialogue: Dialogue, tokenizer: Any, strategy: str, system_prompt: str = "") -> _Segments:
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
    situation = _system_text(system_prompt, dialogue)
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
            body = after[len(prompt):]
            if messages[j]["content"].strip() not in body:
                # Labels are the assistant's turn: a template that writes it elsewhere, or not at all,
                # would train on other text (or none) in silence.
                raise DataError(
                    "the chat template does not write the assistant's text after the prompt it renders with "
                    "add_generation_prompt, so the assistant's turn (the labels) cannot be found; the template must "
                    "render each message's content, and the assistant's header under `add_generation_prompt`")
            cut.append(("assistant", prompt[len(before):], body))
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
