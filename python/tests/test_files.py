"""files.py: atomic writes of files and directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from peftshim.files import write_dir_atomic, write_json_atomic, write_text_atomic


def test_write_dir_atomic_replaces_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    write_dir_atomic(target, lambda d: (d / "a.txt").write_text("1"))
    write_dir_atomic(target, lambda d: (d / "b.txt").write_text("2"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]

    def failing(d: Path) -> None:
        (d / "c.txt").write_text("3")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_dir_atomic(target, failing)
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # the old adapter survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # and no half-written copy is left


def test_write_dir_atomic_keep_existing_keeps_the_first_copy(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "entry"
    write_dir_atomic(target, lambda d: (d / "first").write_text("1"), keep_existing=True)
    write_dir_atomic(target, lambda d: (d / "second").write_text("2"), keep_existing=True)
    assert sorted(p.name for p in target.iterdir()) == ["first"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry"]


def test_write_text_and_json_atomic_replace_the_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"b": 1, "a": 2})
    write_json_atomic(path, {"b": 3, "a": 4}, sort_keys=True)
    assert path.read_text() == '{\n  "a": 4,\n  "b": 3\n}\n' and json.loads(path.read_text()) == {"a": 4, "b": 3}
    write_text_atomic(tmp_path / "samples.jsonl", "x\n")
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "samples.jsonl"]


def test_write_dir_atomic_replaces_a_file_standing_where_the_directory_goes(tmp_path: Path) -> None:
    # a damaged run dir (found by `make soak`): checkpoints/step-000010 is a plain file
    target = tmp_path / "step-000010"
    target.write_text("not a checkpoint")
    (tmp_path / ".old-step-000010").write_text("a leftover file too")
    write_dir_atomic(target, lambda d: (d / "MANIFEST.json").write_text("{}"))
    assert target.is_dir() and (target / "MANIFEST.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000010"]


def test_a_checkpoints_file_is_a_spec_error_naming_it(tmp_path: Path) -> None:
    from peftshim.checkpoint import clean_temporary
    from peftshim.spec import SpecError

    (tmp_path / "checkpoints").write_text("")
    with pytest.raises(SpecError, match=r"checkpoints: .*is not a directory.*move it away"):
        clean_temporary(tmp_path)
