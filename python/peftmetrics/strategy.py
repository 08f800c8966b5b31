"""Strategy accuracy and macro-F1 of predicted against reference strategy labels.

Macro-F1 averages the per-label F1 = 2 TP / (2 TP + FP + FN) over every label that occurs as a
reference or a prediction (scikit-learn's ``f1_score(average="macro")``, a label without true
positives scoring 0).
"""

from __future__ import annotations


def strategy_scores(references: list[str], predictions: list[str]) -> tuple[float, float]:
    """(accuracy, macro-F1); both lists non-empty and of the same length."""
    if not references or len(references) != len(predictions):
        raise ValueError("strategy_scores needs two non-empty lists of the same length")
    accuracy = sum(r == p for r, p in zip(references, predictions)) / len(references)
    f1s = []
    for label in sorted(set(references) | set(predictions)):
        tp = sum(r == label and p == label for r, p in zip(references, predictions))
        fp = sum(r != label and p == label for r, p in zip(references, predictions))
        fn = sum(r == label and p != label for r, p in zip(references, predictions))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0)
    return accuracy, sum(f1s) / len(f1s)
