"""Atomic writes: every file the shim writes (but the events.jsonl log) appears whole or not at all.

A temporary sibling is written and fsynced, renamed over the final name, and the directory fsynced,
so a crash or a kill leaves either the old content or the new one, never a torn file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def json_text(value: Any, *, sort_keys: bool = False) -> str:
    """The shim's JSON files: indented, one trailing newline."""
    return json.dumps(value, indent=2, sort_keys=sort_keys) + "\n"


def write_json_atomic(path: Path, value: Any, *, sort_keys: bool = False) -> None:
    write_text_atomic(path, json_text(value, sort_keys=sort_keys))


def write_dir_atomic(final: Path, fill: Callable[[Path], None], *, keep_existing: bool = False) -> None:
    """Lets `fill` write a temporary sibling directory, fsyncs it and renames it to `final`.

    An existing `final` is replaced, which assumes one writer. `keep_existing` is for caches that
    concurrent processes fill with the same content: the first to finish wins, the others' copies
    are dropped (their temporary directories are unique, so they never collide).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    if keep_existing:
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    else:
        tmp = final.parent / f".tmp-{final.name}"
        if tmp.exists():
            shutil.rmtree(tmp)  # left by a killed attempt
        tmp.mkdir()
    try:
        fill(tmp)
        fsync_tree(tmp)
        if keep_existing:
            _rename_unless_present(tmp, final)
        else:
            _replace_dir(tmp, final)
        fsync_path(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _rename_unless_present(tmp: Path, final: Path) -> None:
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.is_dir():  # not a finished copy of someone else's: a real failure
            raise


def _replace_dir(tmp: Path, final: Path) -> None:
    # A directory cannot be renamed over a non-empty one: the old one steps aside first.
    old = final.parent / f".old-{final.name}"
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
