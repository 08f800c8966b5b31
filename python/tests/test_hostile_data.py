"""Hostile data and ESConv's own release format, through the real entry points: `python -m peftshim
data-summary` and `train` in a subprocess, as the controller runs them (malformed files go through
train's `main` in this process, so that torch is imported once for all of them).

Malformed input must end as a `data` error naming the file and the record (exit 2, no traceback);
a 50 MB string must cost what its first characters cost; the release-format sample must train.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
import pytest
from helpers_train import (PROJECT_ROOT, events_of, read_events, run_main_in_process, shim_command, shim_env,
                           small_job, write_job)

from peftshim.contract import EXIT_BAD_INPUT, EXIT_DONE

SAMPLES = PROJECT_ROOT / "data" / "samples"
RELEASE_SAMPLE = SAMPLES / "esconv-release-sample.json"


def _esconv(text: str = "That sounds hard.") -> dict:
    return {"emotion_type": "sadness", "problem_type": "p", "situation": "s", "dialog": [
        {"speaker": "seeker", "content": "I feel low.", "annotation": {}},
        {"speaker": "supporter", "content": text, "annotation": {"strategy": "Question"}}]}


def _chat(text: str = "That sounds hard.") -> dict:
    return {"messages": [{"role": "user", "content": "I feel low."}, {"role": "assistant", "content": text}]}


DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = "9" * 5000


def _json_list(*records: str) -> str:
    return "[\n" + ",\n".join(records) + "\n]\n"


# (format, file name, the file's text, what the message must say besides the file name)
MALFORMED: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "json-nested-100000-deep": ("esconv", "deep.json", DEEP, ("record 1", "nested too deeply")),
    "json-record-nested-deep": (
        "esconv", "deep-record.json", _json_list(json.dumps(_esconv()), '{"dialog": ' + DEEP + "}"),
        (":3: record 2", "nested too deeply")),
    "json-5000-digit-integer": (
        "esconv", "long-int.json", _json_list(json.dumps(_esconv()), '{"id": ' + LONG_INT + ', "dialog": []}'),
        (":3: record 2", "integer literal of 5000 digits")),
    "json-lone-surrogate": (
        "esconv", "surrogate.json", _json_list(json.dumps(_esconv()), json.dumps(_esconv("I hear you \ud800"))),
        (":3: record 2", "lone UTF-16 surrogate \\ud800", "I hear you")),
    "jsonl-nested-100000-deep": ("chat", "deep.jsonl", json.dumps(_chat()) + "\n" + DEEP + "\n",
                                 (".jsonl:2:", "nested too deeply")),
    "jsonl-5000-digit-integer": ("chat", "long-int.jsonl", json.dumps(_chat()) + '\n{"id": ' + LONG_INT + "}\n",
                                 (".jsonl:2:", "integer literal of 5000 digits")),
    "jsonl-lone-surrogate": ("chat", "surrogate.jsonl", json.dumps(_chat()) + "\n" + json.dumps(_chat("\ud800!")) + "\n",
                             (".jsonl:2:", "lone UTF-16 surrogate")),
}


def _data_summary(fmt: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peftshim", "data-summary", "--format", fmt, "--path", str(path)],
                          env=shim_env(), capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)


def _train(job: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shim_command(job), env=shim_env(), capture_output=True, text=True, timeout=600,
                          cwd=PROJECT_ROOT)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_a_data_error_naming_file_and_record(tmp_path: Path, capfd, case: str) -> None:
    fmt, name, text, says = MALFORMED[case]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    summary = _data_summary(fmt, path)
    assert summary.returncode == EXIT_BAD_INPUT, summary.stderr[-2000:]
    assert "Traceback" not in summary.stderr, summary.stderr[-2000:]
    assert summary.stderr.startswith(f"peftshim: error: {path}")
    for words in says:
        assert words in summary.stderr, summary.stderr

    # train's entry in this process (torch is imported once for all cases); the tests below start it as
    # its own process, as the controller does
    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir, data={"path": str(path), "format": fmt}))
    capfd.readouterr()
    assert run_main_in_process("train", "--job", str(job)) == EXIT_BAD_INPUT
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr and stderr.startswith(f"peftshim: error: {path}"), stderr[-2000:]
    [error] = events_of(read_events(run_dir), "error")
    assert error["kind"] == "data" and error["retryable"] is False
    assert error["message"].startswith(str(path)), error["message"]
    for words in says:
        assert words in error["message"], error["message"]


def _peak_rss_mb(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Runs `command` under a small Python parent whose only child it is; that parent's
    RUSAGE_CHILDREN ru_maxrss is the command's peak resident memory (KiB on Linux)."""
    measure = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    done = subprocess.run([sys.executable, "-c", measure, *command], env=shim_env(), capture_output=True, text=True,
                          timeout=600, cwd=PROJECT_ROOT)
    return done, int(done.stderr.strip().splitlines()[-1]) / 1024


BIG_STRING_CHARS = 50 * 1024 * 1024
# What reading a file of one 50 MB string may cost at most above reading the sample alone: the file's
# bytes, their decoded text and the parsed string (50 MB each) and slack. Before texts were cut to what
# max_length can use, tokenising it (and training the built-in tokenizer on it) took ~180 bytes per
# character: 1358 MB against 443 MB for the sample with only a 5 MB string, so ~9 GB for this one.
# Since, 447 MB against 441 MB: the file is read and let go before the model's memory peaks.
BIG_STRING_EXTRA_MB = 400


def test_a_50_mb_string_is_cut_before_tokenising(tmp_path: Path) -> None:
    records = json.loads((SAMPLES / "esconv-sample.json").read_text(encoding="utf-8"))
    baseline_dir, big_dir = tmp_path / "baseline", tmp_path / "big"
    base_path = tmp_path / "sample.json"
    base_path.write_text(json.dumps(records), encoding="utf-8")
    big_path = tmp_path / "big.json"
    big_path.write_text(json.dumps([*records, _esconv("word " * (BIG_STRING_CHARS // 5))]), encoding="utf-8")
    assert big_path.stat().st_size > BIG_STRING_CHARS

    runs: dict[str, float] = {}
    for run_dir, path in ((baseline_dir, base_path), (big_dir, big_path)):
        job = write_job(run_dir, small_job(run_dir, data={"path": str(path), "format": "esconv"},
                                           train={"max_steps": 1}))
        done, runs[run_dir.name] = _peak_rss_mb(shim_command(job))
        assert done.returncode == EXIT_DONE, done.stderr[-3000:]
    print(f"peak RSS: sample {runs['baseline']:.0f} MB, with a 50 MB string {runs['big']:.0f} MB")
    assert runs["big"] < runs["baseline"] + BIG_STRING_EXTRA_MB

    [data] = events_of(read_events(big_dir), "data")
    assert data["repaired"]["text_cut"] == 1
    # The cut text still holds more tokens than max_length: the example is cut there, as before.
    assert data["truncated"] >= 1


RELEASE_MAPPED = {
    "role speaker -> seeker": 18, "role listener -> supporter": 22,
    "strategy Questions -> Question": 4, "strategy Other -> Others": 2,
    "strategy Restatement -> Restatement or Paraphrasing": 1,
    "strategy Approval and Reassurance -> Affirmation and Reassurance": 2,
    "strategy Direct Guidance -> Providing Suggestions": 2,
}
RELEASE_EXAMPLES = 14  # supporter turns after a seeker turn, consecutive turns of one speaker merged


def test_release_format_sample_is_summarised_and_trains(tmp_path: Path) -> None:
    summary = _data_summary("esconv", RELEASE_SAMPLE)
    assert summary.returncode == EXIT_DONE, summary.stderr
    assert json.loads(summary.stdout)["examples"] == RELEASE_EXAMPLES and json.loads(summary.stdout)["dialogues"] == 4

    run_dir = tmp_path / "run"
    job = write_job(run_dir, small_job(run_dir, data={"path": str(RELEASE_SAMPLE), "format": "esconv"},
                                       train={"max_steps": 3}))
    done = _train(job)
    assert done.returncode == EXIT_DONE, done.stderr[-3000:]
    events = read_events(run_dir)
    [data] = events_of(events, "data")
    assert sum(data["examples"].values()) == RELEASE_EXAMPLES
    assert data["mapped"] == RELEASE_MAPPED
    assert "unknown_speaker" not in data["skipped"] and "unknown_strategy" not in data["repaired"]
    assert events_of(events, "done")[0]["step"] == 3
    assert all(p["loss"] > 0 for p in events_of(events, "progress"))
