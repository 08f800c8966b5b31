"""ROUGE-L as ESConv (and pycocoevalcap) compute it.

Per pair: P = LCS / |hyp| and R = LCS / |ref| for each reference; with several references the best P
and the best R are taken separately (ESConv's ``calc_rouge_l``), then
F = (1 + b^2) P R / (R + b^2 P) with b = 1.2, or 0 when P or R is 0. The corpus value is the mean
over pairs. With one reference per pair this is the best F over references.
"""

from __future__ import annotations

BETA = 1.2


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (one row of the DP table kept)."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, start=1):
            current[j] = previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1])
        previous = current
    return previous[-1]


def rouge_l_pair(hypothesis: list[str], references: list[list[str]], beta: float = BETA) -> float:
    precisions = []
    recalls = []
    for reference in references:
        lcs = lcs_length(reference, hypothesis)
        precisions.append(lcs / max(len(hypothesis), 1e-10))
        recalls.append(lcs / max(len(reference), 1e-10))
    p, r = max(precisions), max(recalls)
    if p == 0 or r == 0:
        return 0.0
    return (1 + beta**2) * p * r / (r + beta**2 * p)


def rouge_l(references: list[list[list[str]]], hypotheses: list[list[str]]) -> float:
    scores = [rouge_l_pair(h, refs) for h, refs in zip(hypotheses, references)]
    return sum(scores) / len(scores) if scores else 0.0
