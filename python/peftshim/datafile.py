"""A data file's text -> its records, each with where it came from; every malformed input is a DataError.

The json module alone turns hostile input into tracebacks: nesting deeper than the interpreter's
recursion limit raises RecursionError, an integer literal longer than sys.get_int_max_str_digits()
(4300 digits) raises a bare ValueError, and neither says which record. So a JSON list is decoded one
record at a time (`JSONDecoder.raw_decode` at each element's offset: the json module's own C scanner
does the decoding, only the top-level `[ , ]` is walked here): each record keeps its line, and one
that cannot be decoded is reported by its number and line. JSON Lines are decoded line by line, alike.
A file whose reading would need more memory than the host has available is refused before it is read.

Lone UTF-16 surrogates (`"\\ud800"`) are valid JSON escapes but not text: they cannot be encoded as
UTF-8, so the tokenizer would fail on them. `check_text` finds them in the text a dialogue keeps, and
the reader rejects that record (rather than silently replacing the character) so that the file gets
fixed where it was made.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


class DataError(Exception):
    """The data file cannot be used at all; the message names the file and what is wrong."""


@dataclass
class Record:
    value: Any
    where: str  # "<file>:<line>: record <n>" (JSON list, n counted from 1) or "<file>:<line>" (JSON Lines)


# Reading a JSON data file peaks at about this many bytes of memory per byte of file (its bytes, their
# text, the parsed records: measured 4.5 on ESConv's FailedESConv.json), and the dialogues kept are
# about its size again. A file beyond what the host has would be killed by the kernel's OOM killer half
# way, which the controller can only see as a lost process; it is refused up front instead.
READ_BYTES_PER_FILE_BYTE = 5


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes; None where there is no such file (not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_text(path: Path) -> str:
    _check_fits_in_memory(path)
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
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (invalid byte at offset {e.start})") from None


def _check_fits_in_memory(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        return  # read_bytes reports it
    available = available_memory()
    if available is not None and size * READ_BYTES_PER_FILE_BYTE > available:
        gib = 1024**3
        raise DataError(f"{path}: the data file is {size / gib:.2f} GiB; reading it takes about "
                        f"{size * READ_BYTES_PER_FILE_BYTE / gib:.1f} GiB of memory and this host has "
                        f"{available / gib:.1f} GiB available; split it, or read it on a larger host")


def parse_json_list(path: Path, text: str, *, limit: int | None = None) -> list[Record]:
    """The elements of the top-level JSON list, decoded one by one (only the first `limit` with one)."""
    pos = _skip_whitespace(text, 0)
    if not text.startswith("[", pos):
        value, _ = _decode_at(path, text, pos, f"{path}:{_line_at(text, pos)}", "JSON")
        raise DataError(f"{path}: expected a JSON list of records at the top level, found {_json_type(value)}")
    records: list[Record] = []
    line, counted_to = 1, 0
    pos = _skip_whitespace(text, pos + 1)
    if text.startswith("]", pos):
        return _expect_end(path, text, pos + 1, records)
    while True:
        line += text.count("\n", counted_to, pos)
        counted_to = pos
        where = f"{path}:{line}: record {len(records) + 1}"
        value, pos = _decode_at(path, text, pos, where, "JSON")
        records.append(Record(value, where))
        if limit is not None and len(records) >= limit:
            return records
        pos = _skip_whitespace(text, pos)
        if text.startswith(",", pos):
            pos = _skip_whitespace(text, pos + 1)
        elif text.startswith("]", pos):
            return _expect_end(path, text, pos + 1, records)
        else:
            expected = "end of data" if pos >= len(text) else repr(text[pos])
            raise DataError(f"{path}:{_line_at(text, pos)}:{_column_at(text, pos)}: not valid JSON: "
                            f"expected ',' or ']' after record {len(records)}, found {expected}")


def parse_jsonl(path: Path, text: str, *, limit: int | None = None) -> list[Record]:
    records: list[Record] = []
    for lineno, line in enumerate(_lines(text), start=1):
        if limit is not None and len(records) >= limit:
            break
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        value, end = _decode_at(path, line, _skip_whitespace(line, 0), where, "JSON Lines", line_offset=lineno - 1)
        if line[end:].strip():
            raise DataError(f"{path}:{lineno}:{end + 1}: not valid JSON Lines: Extra data")
        records.append(Record(value, where))
    return records


def _lines(text: str) -> Iterator[str]:
    """The lines of `text`, one at a time (a list of them would copy a large file's text once more).
    Lines end at "\n" only: str.splitlines also splits at U+2028 and others, which JSON strings may hold."""
    start = 0
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end].removesuffix("\r")
        start = end + 1


# A lone surrogate left in a decoded str: a paired one would have been decoded as one code point.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(text: str, where: str, what: str) -> None:
    """Raises DataError when `text` (`what`, e.g. "a turn's text") holds a lone UTF-16 surrogate."""
    found = _SURROGATE.search(text)
    if found is not None:
        before = text[max(0, found.start() - 30):found.start()]
        raise DataError(f"{where}: {what} contains a lone UTF-16 surrogate {ascii(found.group())[1:-1]} "
                        f"(after {before!r}), which is not text: it has no UTF-8 encoding; fix or remove it in the file")


class _IntegerTooLong(Exception):
    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > sys.get_int_max_str_digits():
        raise _IntegerTooLong(digits)
    return int(literal)


# parse_int sees every integer literal first, so a long one is named here instead of by int()'s ValueError.
_DECODER = json.JSONDecoder(parse_int=_parse_int)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _decode_at(path: Path, text: str, pos: int, where: str, what: str, *, line_offset: int = 0) -> tuple[Any, int]:
    """The JSON value at `pos` and the offset after it; a DataError naming `where` (or the line and
    column of a syntax error) otherwise."""
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno + line_offset}:{e.colno}: not valid {what}: {e.msg}") from None
    except RecursionError:
        raise DataError(f"{where}: nested too deeply to read (JSON deeper than about {sys.getrecursionlimit()} "
                        "levels; dialogue data needs a handful)") from None
    except _IntegerTooLong as e:
        raise DataError(f"{where}: an integer literal of {e.digits} digits (at most {sys.get_int_max_str_digits()} "
                        "are read); no field of dialogue data is such a number") from None


def _expect_end(path: Path, text: str, pos: int, records: list[Record]) -> list[Record]:
    pos = _skip_whitespace(text, pos)
    if pos < len(text):
        raise DataError(f"{path}:{_line_at(text, pos)}:{_column_at(text, pos)}: not valid JSON: Extra data "
                        "after the top-level list")
    return records


def _skip_whitespace(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()  # type: ignore[union-attr] - the pattern matches the empty string


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _column_at(text: str, pos: int) -> int:
    return pos - text.rfind("\n", 0, pos)


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
