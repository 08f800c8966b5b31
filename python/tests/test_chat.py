"""`python -m peftshim chat` on a tiny trained run: the streamed pieces add up to the reply and arrive
while it is decoded, a reply is `generate`'s response to the same context, the conversation goes into
the next prompt, the oldest turns are dropped first, and bad input is one error line with exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers_train import PROJECT_ROOT, TEST_GPUS, run_main_in_process, shim_env, small_job, write_job

import peftshim.chat as chat_module
from peftshim.chat import ChatSession, Conversation, chat, chat_prompt, open_session, settled_text
from peftshim.dialogues import Dialogue, Turn
from peftshim.examples import prompt_ids
from peftshim.generate import prompt_budget, read_generations, row_prompt, split_rows
from peftshim.spec import load_spec

MAX_NEW = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-step LoRA run of builtin:tiny-llama on the sample data; returns its job.json."""
    run_dir = tmp_path_factory.mktemp("chat") / "run"
    job = write_job(run_dir, small_job(run_dir, eval={"every_steps": 12, "generate": {"max_new_tokens": MAX_NEW,
                                                                                        "samples": 0}}))
    assert run_main_in_process("train", "--job", str(job)) == 0
    return job


@pytest.fixture(scope="module")
def session(trained: Path) -> ChatSession:
    spec = load_spec(trained)
    return open_session(spec, spec.run_dir / "adapter", "")


def talk(session: ChatSession, text: str) -> tuple[str, str | None, list[str]]:
    """One message: (reply, strategy, the token pieces streamed for it)."""
    pieces: list[str] = []
    reply, strategy = session.respond(text, lambda line: pieces.append(line["text"]))
    return reply, strategy, pieces


def test_streamed_pieces_add_up_to_the_reply_and_arrive_while_it_is_decoded(
        session: ChatSession, monkeypatch: pytest.MonkeyPatch) -> None:
    decoding = {"now": False}
    original = chat_module.generate_batch

    def watched(*args: Any, **kwargs: Any) -> Any:
        decoding["now"] = True
        try:
            return original(*args, **kwargs)
        finally:
            decoding["now"] = False

    monkeypatch.setattr(chat_module, "generate_batch", watched)
    session.conversation = Conversation("Work Stress")
    during: list[bool] = []
    replies = []
    for text in ("I feel lonely since I moved to a new city.", "My deadlines keep piling up at work.",
                 "I cannot sleep because I worry about everything."):
        pieces: list[str] = []

        def collect(line: dict[str, Any]) -> None:
            assert line["type"] == "token"
            pieces.append(line["text"])
            during.append(decoding["now"])

        reply, _ = session.respond(text, collect)
        assert "".join(pieces) == reply
        replies.append((reply, pieces))
    assert any(len(pieces) > 1 for _, pieces in replies)  # word by word, not the whole reply at the end
    assert any(during)  # pieces were written from inside model.generate


def test_a_reply_is_generates_response_to_the_same_context(trained: Path, session: ChatSession, tmp_path: Path) -> None:
    spec = load_spec(trained)
    rows, _ = split_rows(spec, "test")
    index, row = next((i, r) for i, r in enumerate(rows) if [t.role for t in r.context.turns] == ["user"])
    out = tmp_path / "gen"
    assert run_main_in_process("generate", "--job", str(trained), "--out", str(out), "--limit", str(index + 1)) == 0
    expected = next(g for g in read_generations(out) if g["id"] == row.id)
    # --scene carries the training template's situation line (scene and description joined as it joins them)
    situation = f"{row.context.scene.rstrip('.')}. {row.context.description}"
    session.conversation = Conversation(situation)
    session.replies = 0  # the first message of a session: generate's first batch's seed (greedy anyway)
    reply, strategy, _ = talk(session, row.context.turns[0].text)
    assert chat_prompt(Conversation(situation, [row.context.turns[0]]), session.tokenizer, spec) == \
        row_prompt(row, session.tokenizer, spec)
    assert (reply, strategy) == (expected["response"], expected["predicted_strategy"])
    assert reply  # a real response to compare, not two empty strings


def test_the_conversation_so_far_is_the_next_prompt_and_reset_forgets_it(
        session: ChatSession, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[list[int]] = []
    original = chat_module.generate_batch
    monkeypatch.setattr(chat_module, "generate_batch",
                        lambda model, tokenizer, batch, *a, **k: (prompts.extend(batch), original(model, tokenizer, batch, *a, **k))[1])
    emitted: list[dict[str, Any]] = []
    lines = ['{"text": "I feel lonely.", "scene": "Breakup"}\n', '{"text": "Nobody calls me anymore."}\n',
             '{"reset": true}\n', '{"text": "Nobody calls me anymore."}\n']
    spec = session.spec
    monkeypatch.setattr(chat_module, "open_session", lambda *_a, **_k: session)  # the loaded model, an empty conversation
    session.conversation = Conversation("")
    assert chat(spec, None, "", lines=lines, emit=emitted.append) == 0
    assert [e["type"] for e in emitted if e["type"] != "token"] == ["ready", "reply", "reply", "reset", "reply"]
    first = next(e for e in emitted if e["type"] == "reply")
    history = [Turn("user", "I feel lonely.", None), Turn("assistant", first["text"], first["strategy"]),
               Turn("user", "Nobody calls me anymore.", None)]
    budget, mode = prompt_budget(spec), spec.data.strategy
    assert prompts[1] == prompt_ids(Dialogue("Breakup", "", history), session.tokenizer, max_length=budget, strategy=mode)
    assert "I feel lonely." in session.tokenizer.decode(prompts[1])
    # after the reset: the second message alone, and the session's own --scene (none) again
    assert prompts[2] == prompt_ids(Dialogue("", "", history[2:]), session.tokenizer, max_length=budget, strategy=mode)


def test_long_conversations_drop_their_oldest_turns_first(session: ChatSession, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[list[int]] = []
    original = chat_module.generate_batch
    monkeypatch.setattr(chat_module, "generate_batch",
                        lambda model, tokenizer, batch, *a, **k: (prompts.extend(batch), original(model, tokenizer, batch, *a, **k))[1])
    turns = []
    for n in range(12):
        turns += [Turn("user", f"Message number {n}: work has been hard again this week.", None),
                  Turn("assistant", f"Reply number {n}: that sounds exhausting.", "Emotional Validation")]
    session.conversation = Conversation("Work Stress", turns)
    talk(session, "And now my manager wants more.")
    (prompt,) = prompts
    budget = prompt_budget(session.spec)
    text = session.tokenizer.decode(prompt)
    assert len(prompt) <= budget and budget < len(prompt_ids(session.conversation.as_dialogue(), session.tokenizer,
                                                               max_length=10_000, strategy="inline"))
    assert "And now my manager wants more." in text and "Situation: Work Stress" in text
    assert "Message number 0:" not in text and "Reply number 11:" in text
    kept = [n for n in range(12) if f"Message number {n}:" in text]
    assert kept == list(range(kept[0], 12))  # a contiguous run of the newest turns


def test_settled_text_holds_back_what_later_tokens_may_change() -> None:
    assert settled_text("[Emotional Valid", "inline") == ""
    assert settled_text("[Question] I hear", "inline") == "I"
    assert settled_text("[Question] I hear ", "inline") == "I hear"
    assert settled_text(" It sounds hard", "none") == "It sounds"
    assert settled_text("[Q] so", "none") == "[Q]"
    assert settled_text("[no close\nbracket here", "inline") == "[no close\nbracket"


def test_the_cli_speaks_json_lines_and_bad_input_is_exit_2(trained: Path, tmp_path: Path) -> None:
    messages = '{"text": "I feel lonely."}\n{"text": "What should I do?"}\n'
    done = subprocess.run([sys.executable, "-m", "peftshim", "chat", "--job", str(trained), "--scene", "Breakup"],
                          input=messages, env=shim_env(), capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]  # nothing but JSON on stdout
    assert lines[0] == {"type": "ready", "device": "cuda:0" if TEST_GPUS else "cpu"}
    replies = [i for i, line in enumerate(lines) if line["type"] == "reply"]
    assert len(replies) == 2 and replies[-1] == len(lines) - 1
    start = 1
    for end in replies:
        assert "".join(line["text"] for line in lines[start:end]) == lines[end]["text"]
        assert all(line["type"] == "token" for line in lines[start:end])
        start = end + 1

    bad = _main_with_stdin(["chat", "--job", str(trained)], '{"text": "hi"}\nnot json\n{"text": "never read"}\n')
    assert bad[0] == 2
    last = json.loads(bad[1].splitlines()[-1])
    assert last["type"] == "error" and last["kind"] == "spec" and "stdin: line 2: not JSON" in last["message"]
    assert sum(json.loads(line)["type"] == "reply" for line in bad[1].splitlines()) == 1
    code, out = _main_with_stdin(["chat", "--job", str(trained)], '{"scene": "no text"}\n')
    assert code == 2 and "line 1" in json.loads(out.splitlines()[-1])["message"]
    code, out = _main_with_stdin(["chat", "--job", str(trained), "--adapter", str(tmp_path / "missing")], "")
    assert code == 2 and "no adapter at" in json.loads(out.splitlines()[-1])["message"]


def _main_with_stdin(args: list[str], stdin: str) -> tuple[int, str]:
    """The shim's CLI in this process with `stdin` as its input; (exit code, stdout)."""
    saved_in, saved_out = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(stdin), io.StringIO()
    try:
        code = run_main_in_process(*args)
        return code, sys.stdout.getvalue()
    finally:
        sys.stdin, sys.stdout = saved_in, saved_out
