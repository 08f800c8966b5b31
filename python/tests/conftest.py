"""Shared pytest fixtures for the shim's tests (generic: data files, the sample data, a tiny tokenizer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO_ROOT / "data" / "samples"

# `make test-py` runs pytest without PYTHONPATH; the shim's package lives in python/.
if str(REPO_ROOT / "python") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "python"))


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, Any], Path]:
    """write_json("name.json", value) -> path of a JSON file under tmp_path."""

    def write(name: str, value: Any) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(value, indent=1), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[str, list[Any]], Path]:
    """write_jsonl("name.jsonl", [records]) -> path of a JSON Lines file under tmp_path."""

    def write(name: str, records: list[Any]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def sample_tokenizer():
    """A byte-level BPE tokenizer (vocab 1024) trained on the ExTES sample, as the builtin model's is.

    Session-scoped and shared: tests that set attributes on it (chat_template) must work on a copy.
    """
    from peftshim.dialogues import read_dialogues
    from peftshim.examples import training_text
    from peftshim.tokenizer import train_tokenizer

    dialogues, _ = read_dialogues("extes", SAMPLES_DIR / "extes-sample.json")
    return train_tokenizer(training_text(dialogues), vocab_size=1024)
