"""Reading a pairs file: JSON Lines, one object per pair (``samples.jsonl`` as the shim writes it).

The hypothesis field (default ``response``) is a string; the reference field (default
``reference``) a string or a non-empty list of strings (several references). When a line has both
``predicted_strategy`` and ``reference_strategy`` as strings, the pair counts for the strategy
scores. Blank lines are skipped. Anything else is an InputError naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from peftmetrics.errors import InputError


@dataclass
class Pair:
    hypothesis: str
    references: list[str]
    reference_strategy: str | None = None
    predicted_strategy: str | None = None


def read_pairs(path: Path, hyp_field: str = "response", ref_field: str = "reference") -> list[Pair]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror or error}") from None
    pairs: list[Pair] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not JSON: {error.msg} (column {error.colno})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if hyp_field not in record:
            raise InputError(f"{where}: no {hyp_field!r} field (the response to score; --hyp-field names another)")
        if ref_field not in record:
            raise InputError(f"{where}: no {ref_field!r} field (the reference; --ref-field names another)")
        hypothesis = record[hyp_field]
        if not isinstance(hypothesis, str):
            raise InputError(f"{where}: {hyp_field!r} must be a string, got {type(hypothesis).__name__}")
        reference = record[ref_field]
        if isinstance(reference, str):
            references = [reference]
        elif isinstance(reference, list) and reference and all(isinstance(r, str) for r in reference):
            references = list(reference)
        else:
            raise InputError(f"{where}: {ref_field!r} must be a string or a non-empty list of strings")
        ref_strategy = record.get("reference_strategy")
        pred_strategy = record.get("predicted_strategy")
        both = isinstance(ref_strategy, str) and isinstance(pred_strategy, str)
        pairs.append(Pair(hypothesis, references,
                          ref_strategy if both else None, pred_strategy if both else None))
    if not pairs:
        raise InputError(f"{path}: no pairs in the file")
    return pairs
