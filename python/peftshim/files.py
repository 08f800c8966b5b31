"""Atomic writes: every file the shim writes (but the events.jsonl log) appears whole or not at all.

A temporary sibling is written and fsynced, renamed over the final name, and the directory fsynced,
so a crash or a kill leaves either the old content or the new one, never a torn file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

# ENOSPC: the filesystem is full; EDQUOT: the user's quota is.
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How Rust's std::io::Error ends its message (safetensors, tokenizers): they keep no errno for Python.
_RUST_NO_SPACE = re.compile(r"\(os error (%s)\)" % "|".join(str(code) for code in _NO_SPACE_ERRNOS))


class NoSpaceError(OSError):
    """A write that found no space left (full filesystem or quota), naming where: the shim exits
    EXIT_NO_SPACE with an error event of kind `disk_full`, which the controller retries once space is free."""

    def __init__(self, target: Path) -> None:
        super().__init__(errno.ENOSPC, no_space_message(target), str(target))

    def __str__(self) -> str:
        return str(self.strerror)


def is_no_space(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from or while handling, is a full disk or quota.

    torch.save onto a file object raises RuntimeError from inside the OSError; safetensors raises its
    own error whose message carries the OS error number.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE_ERRNOS:
            return True
        if _RUST_NO_SPACE.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def no_space_message(target: Path) -> str:
    """The message of a full disk: the mount point to make room on, the file written, the space there."""
    existing = Path(os.path.abspath(target))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    mount = existing
    try:
        device = os.stat(existing).st_dev
        while mount != mount.parent and os.stat(mount.parent).st_dev == device:
            mount = mount.parent
        fs = os.statvfs(existing)
        room = f"{_size(fs.f_bavail * fs.f_frsize)} free of {_size(fs.f_blocks * fs.f_frsize)}"
    except OSError:
        room = "free space unknown"
    return f"no space left on {mount} (writing {target}; {room})"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


@contextmanager
def no_space_named(target: Path) -> Iterator[None]:
    """Turns a full disk or quota while writing `target` into NoSpaceError naming it (other errors pass)."""
    try:
        yield
    except NoSpaceError:
        raise
    except Exception as err:
        if is_no_space(err):
            raise NoSpaceError(target) from err
        raise


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp")
    try:
        with no_space_named(path), open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written file, too
        raise
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
        with no_space_named(final):
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
    # A directory cannot be renamed over a non-empty one: the old one steps aside first. What stands
    # there may also be a file (a damaged run dir): it steps aside the same way.
    old = final.parent / f".old-{final.name}"
    if final.exists() or final.is_symlink():
        _remove(old)
        os.replace(final, old)
    os.replace(tmp, final)
    _remove(old)


def _remove(path: Path) -> None:
    """Removes a directory tree, or a file or link, if there is one."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
