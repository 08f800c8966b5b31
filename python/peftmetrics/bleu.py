"""BLEU-1..4 as ESConv computes them: nltk corpus_bleu over the whole corpus, method3 smoothing.

ESConv passes ``weights = [1/k] * k + [0] * (4 - k)`` (uniform over orders 1..k, zero after), so the
precisions of all four orders are computed and smoothed; the zero weights drop orders above k. A
corpus without a single matching unigram scores 0 (corpus_bleu's rule); ESConv's guard against
ZeroDivisionError is kept.
"""

from __future__ import annotations

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu


def bleu_weights(k: int) -> list[float]:
    return [1.0 / k] * k + [0.0] * (4 - k)


def bleu_k(references: list[list[list[str]]], hypotheses: list[list[str]], k: int) -> float:
    """Corpus BLEU-k; ``references[i]`` is the list of reference token lists of hypothesis i."""
    try:
        return float(corpus_bleu(references, hypotheses, weights=bleu_weights(k),
                                 smoothing_function=SmoothingFunction().method3))
    except ZeroDivisionError:
        return 0.0
