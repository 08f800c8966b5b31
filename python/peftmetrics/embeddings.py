"""Vector Extrema, Embedding Average and Greedy Matching as nlg-eval defines them.

nlg-eval's ``word2vec/evaluate.py`` (which ESConv copies into ``codes_zcj/metric/word2vec``) loads
GloVe vectors (float32, as gensim holds them) and gives a word without a vector the mean of all the
vectors. For a text with token vectors e_1..e_m:

- Embedding Average: sum(e) / |sum(e)|, cosine against the reference's;
- Vector Extrema: per dimension, with mx = max and mn = min over the tokens, nlg-eval's rule
  ``mx if ((mx > mn or mx < -mn) and mn > 0) or ((mx < mn or mx > -mn) and mn < 0) else mn``:
  the max when the max is larger than |min|, else the min (and, as in nlg-eval, the min when the
  min is exactly 0); cosine against the reference's;
- Greedy Matching: S[i][j] = cos(ref_i, hyp_j); (mean_j max_i S + mean_i max_j S) / 2.

Each is the best over the pair's references, averaged over pairs. A cosine with a zero vector is 0
(scikit-learn's cosine_similarity, which nlg-eval uses); a comparison where either text has no
tokens scores 0 (nlg-eval fails there: see the package docstring's empty-text policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from peftmetrics.errors import InputError


@dataclass
class WordVectors:
    """The vectors of the words asked for (float32 as in the file) and the mean of every vector."""

    vectors: dict[str, np.ndarray]
    unk: np.ndarray
    dim: int
    words: int

    def vec(self, word: str) -> np.ndarray:
        vector = self.vectors.get(word)
        return self.unk if vector is None else vector


def load_glove(path: Path, vocabulary: set[str] | None = None) -> WordVectors:
    """Read a GloVe text file (``word v1 ... vd`` a line; a word2vec ``count dim`` header is skipped).

    Only the words in ``vocabulary`` are kept (all when None), but the mean vector for unknown words
    is over every word in the file. A repeated word keeps its first vector and is counted once
    (as gensim does). Unreadable or malformed files raise InputError naming file and line.
    """
    total: np.ndarray | None = None
    count = 0
    dim = 0
    kept: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    try:
        handle = path.open("r", encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read the word vectors: {error.strerror or error}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if dim == 0:
                fields = line.rstrip(" ").split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    continue  # a word2vec header
                dim = len(fields) - 1
                if dim < 1:
                    raise InputError(f"{path}:{number}: not a GloVe vector line (a word, then its numbers)")
            fields = line.rstrip(" ").rsplit(" ", dim)
            if len(fields) != dim + 1 or not fields[0]:
                raise InputError(f"{path}:{number}: expected a word and {dim} numbers, got {len(fields) - 1} fields")
            word = fields[0]
            try:
                vector = np.array(fields[1:], dtype=np.float32)
            except ValueError:
                raise InputError(f"{path}:{number}: a vector value is not a number") from None
            if word in seen:
                continue
            seen.add(word)
            total = vector.astype(np.float64) if total is None else total + vector
            count += 1
            if vocabulary is None or word in vocabulary:
                kept[word] = vector
    if count == 0 or total is None:
        raise InputError(f"{path}: no word vectors in the file")
    return WordVectors(vectors=kept, unk=(total / count).astype(np.float32), dim=dim, words=count)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(_unit_rows(a[None, :])[0] @ _unit_rows(b[None, :])[0])


def _extrema(embs: np.ndarray) -> np.ndarray:
    mx = embs.max(axis=0)
    mn = embs.min(axis=0)
    take_max = (((mx > mn) | (mx < -mn)) & (mn > 0)) | (((mx < mn) | (mx > -mn)) & (mn < 0))
    return np.where(take_max, mx, mn)


def _average(embs: np.ndarray) -> np.ndarray:
    total = embs.sum(axis=0)
    norm = np.linalg.norm(total)
    return total / norm if norm > 0 else total


def _greedy(ref: np.ndarray, hyp: np.ndarray) -> float:
    similarity = _unit_rows(ref) @ _unit_rows(hyp).T
    return float((similarity.max(axis=0).mean() + similarity.max(axis=1).mean()) / 2)


def embedding_scores(references: list[list[list[str]]], hypotheses: list[list[str]],
                     vectors: WordVectors) -> dict[str, float]:
    """{"vector_extrema", "embedding_average", "greedy_matching"}: the best over references, mean over pairs."""
    def embed(tokens: list[str]) -> np.ndarray:
        return np.stack([vectors.vec(t) for t in tokens]).astype(np.float64)

    sums = {"vector_extrema": 0.0, "embedding_average": 0.0, "greedy_matching": 0.0}
    for hypothesis, refs in zip(hypotheses, references):
        best = {key: None for key in sums}
        hyp = embed(hypothesis) if hypothesis else None
        for reference in refs:
            if hyp is None or not reference:
                scores = {key: 0.0 for key in sums}
            else:
                ref = embed(reference)
                scores = {
                    "vector_extrema": _cosine(_extrema(ref), _extrema(hyp)),
                    "embedding_average": _cosine(_average(ref), _average(hyp)),
                    "greedy_matching": _greedy(ref, hyp),
                }
            for key, value in scores.items():
                best[key] = value if best[key] is None else max(best[key], value)
        for key in sums:
            sums[key] += best[key] if best[key] is not None else 0.0
    n = len(hypotheses)
    return {key: (value / n if n else 0.0) for key, value in sums.items()}
