"""Every metric of a list of pairs: ``score_pairs(pairs, embeddings=None, toxicity=None) -> dict``.

The result: ``{"metrics": {name: value or None}, "pairs": N, "strategy_pairs": M,
"tokenizer": "punkt" | "punkt-untrained", "embeddings": path or None}``. Metric names:
bleu-1..4, rouge-l, meteor, vector_extrema, embedding_average, greedy_matching (None without word
vectors), dist-1..3 (ESConv's count), dist-1-standard..dist-3-standard, strategy_accuracy and
strategy_macro_f1 (None when no pair has both strategy fields), toxicity and toxicity_share (None
without a toxicity command, toxicity.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from peftmetrics.bleu import bleu_k
from peftmetrics.distinct import distinct_esconv, distinct_standard
from peftmetrics.embeddings import embedding_scores, load_glove
from peftmetrics.meteor import MeteorJar
from peftmetrics.pairs import Pair
from peftmetrics.rouge import rouge_l
from peftmetrics.strategy import strategy_scores
from peftmetrics.tokenize import tokenize, tokenizer_kind
from peftmetrics.toxicity import score_toxicity

METRIC_NAMES = (
    "bleu-1", "bleu-2", "bleu-3", "bleu-4", "rouge-l", "meteor",
    "vector_extrema", "embedding_average", "greedy_matching",
    "dist-1", "dist-2", "dist-3", "dist-1-standard", "dist-2-standard", "dist-3-standard",
    "strategy_accuracy", "strategy_macro_f1", "toxicity", "toxicity_share",
)


def score_pairs(pairs: list[Pair], embeddings: Path | None = None, meteor: MeteorJar | None = None,
                toxicity: str | list[str] | None = None) -> dict[str, Any]:
    """Score ``pairs``; ``meteor``: a started jar to use (and leave running), else one is started and stopped;
    ``toxicity``: the scorer command of toxicity.py."""
    # the JVM and its paraphrase tables take seconds to load: start it first, score the rest meanwhile
    with (MeteorJar().start() if meteor is None else contextlib.nullcontext(meteor)) as meteor:
        hypotheses = [tokenize(p.hypothesis) for p in pairs]
        references = [[tokenize(r) for r in p.references] for p in pairs]
        metrics: dict[str, float | None] = {f"bleu-{k}": bleu_k(references, hypotheses, k) for k in range(1, 5)}
        metrics["rouge-l"] = rouge_l(references, hypotheses)
        if embeddings is not None:
            vocabulary = {t for h in hypotheses for t in h} | {t for refs in references for r in refs for t in r}
            metrics.update(embedding_scores(references, hypotheses, load_glove(embeddings, vocabulary)))
        else:
            metrics.update({"vector_extrema": None, "embedding_average": None, "greedy_matching": None})
        for n in range(1, 4):
            metrics[f"dist-{n}"] = distinct_esconv(hypotheses, n)
        for n in range(1, 4):
            metrics[f"dist-{n}-standard"] = distinct_standard(hypotheses, n)
        labelled = [p for p in pairs if p.reference_strategy is not None and p.predicted_strategy is not None]
        if labelled:
            accuracy, macro_f1 = strategy_scores([p.reference_strategy for p in labelled],  # type: ignore[misc]
                                                 [p.predicted_strategy for p in labelled])  # type: ignore[misc]
        else:
            accuracy = macro_f1 = None
        metrics["strategy_accuracy"] = accuracy
        metrics["strategy_macro_f1"] = macro_f1
        if toxicity is not None:
            metrics.update(score_toxicity([p.hypothesis for p in pairs], toxicity))
        else:
            metrics.update({"toxicity": None, "toxicity_share": None})
        metrics["meteor"], _segments = meteor.corpus_score(
            [[" ".join(r) for r in refs] for refs in references], [" ".join(h) for h in hypotheses])
    return {
        "metrics": {name: metrics[name] for name in METRIC_NAMES},
        "pairs": len(pairs),
        "strategy_pairs": len(labelled),
        "tokenizer": tokenizer_kind(),
        "embeddings": str(embeddings) if embeddings is not None else None,
    }
