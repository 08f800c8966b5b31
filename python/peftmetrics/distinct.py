"""Distinct-n over all responses: distinct n-grams / n-grams.

``dist-n`` reproduces ESConv's ``calc_distinct_k`` exactly: for each response it counts the n-grams
starting at positions ``0 .. len - n - 1`` (``range(0, len(sen) - k)``), so the last n-gram of every
response is skipped (a response of exactly n tokens adds none); no n-gram at all gives 0.
``dist-n-standard`` counts every n-gram (positions ``0 .. len - n``).
"""

from __future__ import annotations


def _distinct(hypotheses: list[list[str]], n: int, skip_last: bool) -> float:
    seen: set[tuple[str, ...]] = set()
    total = 0
    for tokens in hypotheses:
        stop = len(tokens) - n if skip_last else len(tokens) - n + 1
        for i in range(0, stop):
            seen.add(tuple(tokens[i:i + n]))
            total += 1
    return len(seen) / total if total > 0 else 0.0


def distinct_esconv(hypotheses: list[list[str]], n: int) -> float:
    """ESConv's dist-n (the last n-gram of each response skipped)."""
    return _distinct(hypotheses, n, skip_last=True)


def distinct_standard(hypotheses: list[list[str]], n: int) -> float:
    """Every n-gram of every response counted."""
    return _distinct(hypotheses, n, skip_last=False)
