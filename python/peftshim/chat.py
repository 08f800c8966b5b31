"""`python -m peftshim chat --job JOB (--adapter DIR | --base) [--scene TEXT]`: `peftctl chat`'s model side.

The model and adapter are loaded once, the way `generate` loads them (generate.setup_model); then
every line of stdin is one JSON message and every line of stdout one JSON reply:

    in:  {"text": "I feel lonely", "scene"?: "..."}   a seeker's message (scene: the conversation's from now on)
         {"reset": true, "scene"?: "..."}             forget the conversation so far
    out: {"type": "ready", "device": "cpu"}           once, after loading
         {"type": "token", "text": "..."}             pieces of the reply as they are decoded
         {"type": "reply", "text": "...", "strategy": "Question" | null}
         {"type": "reset"}
         the event protocol's error event (type "error", kind, message), then exit 2 (bad input) or 1

The prompt is training's (`prompt_ids` on the conversation so far: the template, the oldest turns
dropped first to fit data.max_length less max_new_tokens); decoding is eval.generate's
(`generate_batch`, the same call `peftctl eval` makes), so a reply is the response `eval` gives the
same context. The supporter's earlier replies go back into the prompt with their predicted strategy,
as training rendered its targets. The tokens pieces concatenate to the reply's text. stdin's end is exit 0.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from transformers.generation.streamers import BaseStreamer

from peftshim.contract import EXIT_DONE
from peftshim.dialogues import Dialogue, Turn
from peftshim.examples import prompt_ids, training_text
from peftshim.generate import (
    check_adapter,
    generate_batch,
    generation_device,
    prompt_budget,
    setup_model,
    split_strategy,
    train_split,
    until_end_of_turn,
)
from peftshim.spec import JobSpec, SpecError

Emit = Callable[[dict[str, Any]], None]
_MESSAGE_KEYS = {"text", "scene", "reset"}
_OPEN_STRATEGY = re.compile(r"^\[[^\]\n]*$")  # "[Emotional Valid": the inline prefix may still be coming
_LAST_WHITESPACE = re.compile(r"\s(?=\S*$)")


@dataclass
class Conversation:
    scene: str
    turns: list[Turn] = field(default_factory=list)

    def as_dialogue(self) -> Dialogue:
        return Dialogue(self.scene, "", list(self.turns))


@dataclass(frozen=True)
class Message:
    text: str | None  # None: a reset
    scene: str | None


def parse_message(line: str, number: int) -> Message:
    """One stdin line; a SpecError (exit 2) names the line and what is wrong with it."""
    where = f"line {number}"
    try:
        value = json.loads(line)
    except ValueError as err:
        raise SpecError("stdin", where, f"not JSON ({err.msg})") from None
    if not isinstance(value, dict):
        raise SpecError("stdin", where, 'expected an object like {"text": "..."}')
    unknown = sorted(set(value) - _MESSAGE_KEYS)
    if unknown:
        raise SpecError("stdin", where, f"unknown key(s) {', '.join(unknown)}; expected text, scene or reset")
    scene = value.get("scene")
    if scene is not None and not isinstance(scene, str):
        raise SpecError("stdin", where, "scene: expected a string")
    if value.get("reset") is True and "text" not in value:
        return Message(None, scene)
    text = value.get("text")
    if not isinstance(text, str) or not text.strip():
        raise SpecError("stdin", where, 'expected {"text": "<non-empty string>"} or {"reset": true}')
    return Message(text.strip(), scene)


def chat_prompt(conversation: Conversation, tokenizer: Any, spec: JobSpec) -> list[int]:
    """Training's prompt for the supporter's next turn after the conversation (oldest turns dropped first)."""
    return prompt_ids(conversation.as_dialogue(), tokenizer, max_length=prompt_budget(spec), strategy=spec.data.strategy,
                      system_prompt=spec.data.system_prompt or "")


def settled_text(decoded: str, strategy_mode: str) -> str:
    """The part of a partial reply that later tokens cannot change: never an unfinished `[Strategy]`
    prefix, and not the last word until whitespace follows it (its bytes may be an unfinished
    character, and decoding can rejoin it with what comes next, e.g. "do n" + "'t" -> "don't")."""
    if strategy_mode == "inline" and _OPEN_STRATEGY.match(decoded.lstrip()):
        return ""
    shown, _ = split_strategy(decoded.strip(), strategy_mode)
    if decoded[-1:].isspace():
        return shown
    last = _LAST_WHITESPACE.search(shown)
    return shown[: last.start()].rstrip() if last else ""


class ReplyStreamer(BaseStreamer):
    """Sends each settled piece of the reply as a token line while model.generate decodes it.

    A BaseStreamer of our own rather than TextIteratorStreamer: generate calls `put` on this thread,
    so the lines can be written right here with no generation thread or queue, and the pieces follow
    the reply's own rules (end of turn, strategy prefix, stripping) so that they add up to its text.
    """

    def __init__(self, tokenizer: Any, strategy_mode: str, emit: Emit) -> None:
        self._tokenizer, self._strategy_mode, self._emit = tokenizer, strategy_mode, emit
        self._ids: list[int] = []
        self._prompt_seen = False
        self.sent = ""

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate's first put is the prompt
            self._prompt_seen = True
            return
        self._ids.extend(int(i) for i in value.reshape(-1).tolist())
        ids = until_end_of_turn(self._ids, self._tokenizer)
        self._send(settled_text(self._tokenizer.decode(ids, skip_special_tokens=True), self._strategy_mode))

    def end(self) -> None:
        pass  # the rest is sent by finish(), with the reply's final text

    def finish(self, reply: str) -> None:
        self._send(reply)

    def _send(self, text: str) -> None:
        # A piece is sent only if it extends what was sent; a reply that decodes differently (never seen
        # with byte-level or sentencepiece tokenizers) still arrives whole in the reply line.
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self._emit({"type": "token", "text": text[len(self.sent):]})
            self.sent = text


@dataclass
class ChatSession:
    spec: JobSpec
    model: Any
    tokenizer: Any
    device: Any
    conversation: Conversation
    replies: int = 0

    def respond(self, text: str, emit: Emit) -> tuple[str, str | None]:
        """The supporter's reply to `text` (streamed through `emit`), added to the conversation with it."""
        settings, mode = self.spec.eval.generate, self.spec.data.strategy
        self.conversation.turns.append(Turn("user", text, None))
        prompt = chat_prompt(self.conversation, self.tokenizer, self.spec)
        # transformers refuses a streamer under beam search: the reply then comes as one piece.
        streamer = ReplyStreamer(self.tokenizer, mode, emit) if settings.num_beams == 1 else None
        (response,), _ = generate_batch(self.model, self.tokenizer, [prompt], settings, device=self.device,
                                        seed=settings.seed + self.replies, streamer=streamer)
        reply, strategy = split_strategy(response, mode)
        if streamer is not None:
            streamer.finish(reply)
        elif reply:
            emit({"type": "token", "text": reply})
        self.conversation.turns.append(Turn("assistant", reply, strategy))
        self.replies += 1
        return reply, strategy


def open_session(spec: JobSpec, adapter: Path | None, scene: str) -> ChatSession:
    """The model (adapter or base) on the job's device, and an empty conversation."""
    check_adapter(spec, adapter)
    device = generation_device(spec)
    model, tokenizer = setup_model(spec, adapter, lambda: training_text(train_split(spec)), device=device)
    return ChatSession(spec, model, tokenizer, device, Conversation(scene))


def json_emitter(stream: TextIO) -> Emit:
    def emit(value: dict[str, Any]) -> None:
        stream.write(json.dumps(value, ensure_ascii=False) + "\n")
        stream.flush()

    return emit


def chat(spec: JobSpec, adapter: Path | None, scene: str, *, lines: Iterable[str], emit: Emit) -> int:
    """Answers every message of `lines` until they end (exit 0); a bad line raises SpecError (exit 2)."""
    session = open_session(spec, adapter, scene)
    emit({"type": "ready", "device": str(session.device)})
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        message = parse_message(line, number)
        if message.text is None:
            session.conversation = Conversation(message.scene if message.scene is not None else scene)
            emit({"type": "reset"})
            continue
        if message.scene is not None:
            session.conversation.scene = message.scene
        reply, strategy = session.respond(message.text, emit)
        emit({"type": "reply", "text": reply, "strategy": strategy})
    return EXIT_DONE


def stdin_lines() -> Iterable[str]:
    """stdin line by line, each as soon as it arrives (the controller waits for the reply before the next)."""
    return iter(sys.stdin.readline, "")
