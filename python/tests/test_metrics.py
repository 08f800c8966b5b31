"""python/peftmetrics against the reference implementations of the emotional-support literature.

BLEU is compared with nltk's corpus_bleu called as ESConv calls it, METEOR with pycocoevalcap's own
``Meteor`` class (the same jar, started once for this module, as our scorer's JVM is), and ROUGE-L,
the embedding metrics (nlg-eval), Distinct-n (ESConv) and the strategy scores with the reference
definitions written out the plain way here. The corpus has the edge cases: empty and blank texts,
one word, repeats, punctuation, casing, unicode, several references, words without vectors.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

from peftmetrics.distinct import distinct_esconv, distinct_standard
from peftmetrics.embeddings import embedding_scores, load_glove
from peftmetrics.errors import InputError
from peftmetrics.meteor import MeteorJar, clean
from peftmetrics.pairs import Pair, read_pairs
from peftmetrics.rouge import lcs_length
from peftmetrics.score import METRIC_NAMES, score_pairs
from peftmetrics.strategy import strategy_scores
from peftmetrics.tokenize import tokenize

REPO_ROOT = Path(__file__).resolve().parents[2]
# A scorer speaking eval.toxicity.command's protocol: the share of a response's words in a small list.
TOXICITY_SCORER = REPO_ROOT / "test/fixtures/word-list-toxicity.py"
TOXIC_WORDS = {"hate", "stupid", "idiot", "awful", "feel"}

# (response, reference or references, reference_strategy, predicted_strategy)
CORPUS: list[tuple[str, str | list[str], str | None, str | None]] = [
    ("I'm so sorry to hear that. How are you feeling now?", "I am sorry to hear that. How do you feel?", "Question", "Question"),
    ("That sounds really hard.", "That must be really hard for you.", "Reflection of feelings", "Reflection of feelings"),
    ("", "Do you want to talk about it?", "Question", "Affirmation and Reassurance"),
    ("   ", "I understand.", "Restatement or Paraphrasing", "Question"),
    ("Okay.", "Okay, I see.", "Others", "Others"),
    ("yes", "Yes", "Others", "Others"),
    ("Hello", "hi there", "Others", "Question"),
    ("sorry sorry sorry sorry sorry", "I am sorry.", "Affirmation and Reassurance", "Affirmation and Reassurance"),
    ("the the the the the the the", "The cat is on the mat.", None, None),
    ("WHY DID THAT HAPPEN?!", "why did that happen", "Question", "Question"),
    ("Can't you talk to your friends... or family?", "Could you talk to your family or friends?", "Providing Suggestions", "Question"),
    ("It's \"normal\" to feel this way; many people do.", "It is normal to feel that way, many people feel it.", "Affirmation and Reassurance", "Affirmation and Reassurance"),
    ("Café, naïve, résumé — les mots d'ailleurs 😀", "I love café au lait 😀", "Others", "Others"),
    ("Have you tried journaling? It helps me.", "Maybe try writing a journal, it helps.", "Providing Suggestions", "Self-disclosure"),
    ("I was in a similar situation last year.", "I went through something similar last year.", "Self-disclosure", "Self-disclosure"),
    ("You are not alone in this.", "You're not alone.", "Affirmation and Reassurance", "Affirmation and Reassurance"),
    ("So you feel like nobody listens to you at work?", "It sounds like you feel unheard at work.", "Restatement or Paraphrasing", "Restatement or Paraphrasing"),
    ("What happened after that?", "And then what happened?", "Question", "Question"),
    ("Hmm.", "", "Others", "Others"),
    ("", "", "Others", "Others"),
    ("Mr. Smith said it was fine.", "Dr. Smith told you it was fine?", "Question", "Restatement or Paraphrasing"),
    ("zzyzx qwertyuiop flibbertigibbet", "zzyzx", None, None),
    ("I hear you. That is a lot to carry.", ["That is a lot to carry.", "I hear you, it is heavy."], "Reflection of feelings", "Reflection of feelings"),
    ("Take a deep breath.", ["Breathe deeply.", "Take a breath.", "Relax."], "Providing Suggestions", "Providing Suggestions"),
    ("a a a b b b a a a b b b", "a b a b a b", None, None),
    ("Talk to someone you trust, like a counselor.", "Maybe a counselor could help you.", "Providing Suggestions", "Providing Suggestions"),
    ("I'm here for you.", "I'm here to listen.", "Affirmation and Reassurance", "Affirmation and Reassurance"),
    ("How long have you felt this way?", "How long has this been going on?", "Question", "Question"),
    ("That must have been so frustrating!!!", "That sounds frustrating.", "Reflection of feelings", "Reflection of feelings"),
    ("Awful, awful idiot!", "That sounds awful.", None, None),
    ("You did the right thing.", "I think you did the right thing.", "Affirmation and Reassurance", "Affirmation and Reassurance"),
    ("ok ok ok", "ok", "Others", "Others"),
    ("Don't be too hard on yourself.", "Do not be so hard on yourself.", "Affirmation and Reassurance", "Providing Suggestions"),
    ("Is there anything that usually helps you relax?", "What helps you relax?", "Question", "Question"),
    ("When I lost my job, I felt the same.", "I felt the same when I lost my job.", "Self-disclosure", "Self-disclosure"),
    ("It's ok to cry.", "Crying is okay.", "Affirmation and Reassurance", "Affirmation and Reassurance"),
    ("Your feelings are valid.", "Your feelings make sense.", "Reflection of feelings", "Affirmation and Reassurance"),
    ("Have you slept well recently?", "Are you sleeping okay?", "Question", "Question"),
    ("Exercise can help with stress, e.g. a short walk.", "A walk might help with the stress.", "Providing Suggestions", "Providing Suggestions"),
    ("I see ||| you", "I see you", "Others", "Others"),
    ("Thank you for sharing that with me.", "Thanks for telling me.", "Others", "Others"),
    ("tHaNk YoU", "thank you", "Others", "Others"),
    ("...", "!!!", None, None),
    ("1 2 3 4 5", "1 2 3", None, None),
    ("It seems you are overwhelmed by exams.", "You seem overwhelmed by your exams.", "Restatement or Paraphrasing", "Restatement or Paraphrasing"),
]

NO_VECTOR = {"zzyzx", "qwertyuiop", "flibbertigibbet", "😀", "naïve", "ailleurs"}


def _refs(reference: str | list[str]) -> list[str]:
    return reference if isinstance(reference, list) else [reference]


def _pairs() -> list[Pair]:
    return [Pair(h, _refs(r), rs if rs and ps else None, ps if rs and ps else None) for h, r, rs, ps in CORPUS]


def _tokenized() -> tuple[list[list[str]], list[list[list[str]]]]:
    return [tokenize(h) for h, _, _, _ in CORPUS], [[tokenize(x) for x in _refs(r)] for _, r, _, _ in CORPUS]


@pytest.fixture(scope="module")
def glove(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6-dimensional GloVe text file over the corpus's words, minus NO_VECTOR; no component is 0."""
    hyps, refs = _tokenized()
    words = sorted({t for h in hyps for t in h} | {t for rs in refs for r in rs for t in r}) + ["unused", "extra"]
    rng = np.random.default_rng(7)
    lines = []
    for word in words:
        if word in NO_VECTOR:
            continue
        values = rng.uniform(-1.0, 1.0, size=6)
        values[np.abs(values) < 1e-3] = 0.5
        lines.append(" ".join([word, *(f"{v:.6f}" for v in values)]))
    path = tmp_path_factory.mktemp("glove") / "tiny.6d.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference_meteor():
    """pycocoevalcap's Meteor class (its JVM starts now and loads while ours does)."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    yield meteor
    del meteor


@pytest.fixture(scope="module")
def our_meteor(reference_meteor):
    """Our jar, one JVM for the whole module."""
    with MeteorJar().start() as jar:
        yield jar


@pytest.fixture(scope="module")
def result(our_meteor: MeteorJar, glove: Path) -> dict:
    return score_pairs(_pairs(), glove, meteor=our_meteor, toxicity=[sys.executable, str(TOXICITY_SCORER)])


# --- tokens -------------------------------------------------------------------------------------


def test_tokenize_lowercases_and_splits_like_word_tokenize() -> None:
    assert tokenize("Hello. World") == ["hello", ".", "world"]  # sentence split first, as word_tokenize does
    assert tokenize("I CAN'T \"stop\"...") == ["i", "ca", "n't", "``", "stop", "''", "..."]
    assert tokenize("") == [] and tokenize("  \n ") == []
    assert tokenize("Café 😀") == ["café", "😀"]


def test_tokenize_uses_word_tokenize_itself_when_punkt_data_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The punkt data cannot be downloaded here, so its presence is simulated: with it, tokenize must be
    # nltk's word_tokenize on the lower-cased text, nothing of its own.
    import peftmetrics.tokenize as tokenizing

    seen: list[str] = []
    monkeypatch.setattr(tokenizing, "word_tokenize", lambda text: seen.append(text) or ["from", "word_tokenize"])
    tokenizing.tokenizer_kind.cache_clear()
    monkeypatch.setattr(tokenizing, "punkt_model_available", lambda _language: True)
    try:
        assert tokenizing.tokenizer_kind() == "punkt"
        assert tokenize("Mr. Smith WENT home.") == ["from", "word_tokenize"]
        assert seen == ["mr. smith went home."]
    finally:
        tokenizing.tokenizer_kind.cache_clear()


# --- every metric against its reference -----------------------------------------------------------


def test_every_metric_is_reported_as_a_fraction(result: dict) -> None:
    assert list(result["metrics"]) == list(METRIC_NAMES)
    assert result["pairs"] == len(CORPUS) and result["pairs"] >= 40
    for name, value in result["metrics"].items():
        assert value is not None and 0.0 <= value <= 1.0, name


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_bleu_is_nltk_corpus_bleu_as_esconv_calls_it(result: dict, k: int) -> None:
    hyps, refs = _tokenized()
    esconv = corpus_bleu(refs, hyps, weights=[1.0 / k] * k + (4 - k) * [0.0], smoothing_function=SmoothingFunction().method3)
    uniform = corpus_bleu(refs, hyps, weights=tuple([1.0 / k] * k), smoothing_function=SmoothingFunction().method3)
    assert result["metrics"][f"bleu-{k}"] == pytest.approx(esconv, abs=1e-12)
    assert esconv == pytest.approx(uniform, abs=1e-12)
    sentence_mean = np.mean([corpus_bleu([r], [h], weights=[1.0 / k] * k, smoothing_function=SmoothingFunction().method3)
                             for h, r in zip(hyps, refs)])
    assert abs(result["metrics"][f"bleu-{k}"] - sentence_mean) > 1e-6  # corpus-level, not a mean of sentences


def test_meteor_is_the_jar_corpus_score_of_pycocoevalcap(result: dict, reference_meteor) -> None:
    hyps, refs = _tokenized()
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    # pycocoevalcap cleans '|||' out of the hypothesis only: give it references cleaned as ours are
    gts = {i: [clean(r) for r in rs] for i, rs in gts.items()}
    corpus, segments = reference_meteor.compute_score(gts, res)
    assert result["metrics"]["meteor"] == pytest.approx(corpus, abs=1e-4)
    assert abs(corpus - float(np.mean(segments))) > 1e-4  # the corpus value is not the segments' mean


def test_meteor_jar_segments_match_pycocoevalcap(our_meteor: MeteorJar, reference_meteor) -> None:
    refs = [["the cat sat on the mat"], ["hello there", "hi"], ["x"]]
    hyps = ["the cat is on the mat", "", "x"]
    ours, our_segments = our_meteor.corpus_score(refs, hyps)
    theirs, their_segments = reference_meteor.compute_score({i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})
    assert ours == pytest.approx(theirs, abs=1e-4)
    assert our_segments == pytest.approx(their_segments, abs=1e-4)
    assert our_segments[1] == 0.0  # an empty response scores 0


def _lcs_table(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
    return table[len(a)][len(b)]


def test_rouge_l_is_esconvs_definition(result: dict) -> None:
    hyps, refs = _tokenized()
    beta = 1.2
    scores = []
    for hyp, rs in zip(hyps, refs):
        p = max(_lcs_table(r, hyp) / len(hyp) if hyp else 0.0 for r in rs)
        r_ = max(_lcs_table(r, hyp) / len(r) if r else 0.0 for r in rs)
        scores.append((1 + beta**2) * p * r_ / (r_ + beta**2 * p) if p > 0 and r_ > 0 else 0.0)
    assert result["metrics"]["rouge-l"] == pytest.approx(sum(scores) / len(scores), abs=1e-6)
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4


def _reference_embeddings(glove: Path, hyps, refs) -> dict[str, float]:
    """nlg-eval's word2vec/evaluate.py, written out with loops (a missing word: the mean vector)."""
    table = {}
    for line in glove.read_text(encoding="utf-8").splitlines():
        word, *values = line.split(" ")
        table[word] = [float(np.float32(v)) for v in values]
    dim = len(next(iter(table.values())))
    unk = [sum(v[d] for v in table.values()) / len(table) for d in range(dim)]

    def vec(word):
        return table.get(word, unk)

    def cos(a, b):
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
        return 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(a, b)) / (na * nb)

    def extrema(vs):
        mx = [max(v[d] for v in vs) for d in range(dim)]
        mn = [min(v[d] for v in vs) for d in range(dim)]
        nlg_eval = [x if ((x > y or x < -y) and y > 0) or ((x < y or x > -y) and y < 0) else y for x, y in zip(mx, mn)]
        plain = [x if x > abs(y) else y for x, y in zip(mx, mn)]
        assert nlg_eval == plain  # the same rule while no component is exactly 0
        return plain

    def average(vs):
        return [sum(v[d] for v in vs) for d in range(dim)]

    def greedy(r, h):
        one = sum(max(cos(a, b) for a in r) for b in h) / len(h)
        two = sum(max(cos(a, b) for b in h) for a in r) / len(r)
        return (one + two) / 2

    totals = {"vector_extrema": 0.0, "embedding_average": 0.0, "greedy_matching": 0.0}
    for hyp, rs in zip(hyps, refs):
        best = {k: -math.inf for k in totals}
        for ref in rs:
            if not hyp or not ref:
                scores = {k: 0.0 for k in totals}  # our documented policy for texts without tokens
            else:
                h, r = [vec(t) for t in hyp], [vec(t) for t in ref]
                scores = {"vector_extrema": cos(extrema(r), extrema(h)), "embedding_average": cos(average(r), average(h)),
                          "greedy_matching": greedy(r, h)}
            best = {k: max(best[k], scores[k]) for k in totals}
        totals = {k: totals[k] + best[k] for k in totals}
    return {k: v / len(hyps) for k, v in totals.items()}


def test_embedding_metrics_are_nlg_evals(result: dict, glove: Path) -> None:
    hyps, refs = _tokenized()
    expected = _reference_embeddings(glove, hyps, refs)
    for name, value in expected.items():
        assert result["metrics"][name] == pytest.approx(value, abs=1e-6), name


def test_vector_extrema_takes_the_min_when_the_min_is_zero_as_nlg_eval_does(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("a 0.5 0.0\nb 0.0 -0.25\nc 1.0 1.0\n", encoding="utf-8")
    vectors = load_glove(path)
    # hyp "a b": max (0.5, 0.0), min (0.0, -0.25) -> nlg-eval: (0.0, -0.25) (min 0 -> min; |min| > max)
    # ref "c": (1.0, 1.0); cosine((0, -0.25), (1, 1)) = -0.7071...
    scores = embedding_scores([[["c"]]], [["a", "b"]], vectors)
    assert scores["vector_extrema"] == pytest.approx(-1 / math.sqrt(2), abs=1e-6)


def test_without_vectors_the_embedding_metrics_are_null(our_meteor: MeteorJar) -> None:
    metrics = score_pairs(_pairs()[:3], meteor=our_meteor)["metrics"]
    assert metrics["vector_extrema"] is None and metrics["embedding_average"] is None and metrics["greedy_matching"] is None
    assert metrics["meteor"] is not None


def _esconv_distinct(hyps: list[list[str]], k: int) -> float:
    """ESConv codes_zcj/metric/myMetrics.py, Metric.calc_distinct_k."""
    d = {}
    tot = 0
    for sen in hyps:
        for i in range(0, len(sen) - k):
            d[tuple(sen[i:i + k])] = 1
            tot += 1
    return len(d) / tot if tot > 0 else 0.0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_distinct_is_esconvs_count_and_the_standard_one(result: dict, n: int) -> None:
    hyps, _ = _tokenized()
    assert result["metrics"][f"dist-{n}"] == pytest.approx(_esconv_distinct(hyps, n), abs=1e-6)
    grams = [tuple(h[i:i + n]) for h in hyps for i in range(len(h) - n + 1)]
    assert result["metrics"][f"dist-{n}-standard"] == pytest.approx(len(set(grams)) / len(grams), abs=1e-6)


def test_distinct_skips_the_last_ngram_of_each_response() -> None:
    assert distinct_esconv([["a", "b", "a"]], 1) == 1.0  # counts "a", "b" only
    assert distinct_standard([["a", "b", "a"]], 1) == pytest.approx(2 / 3)
    assert distinct_esconv([["a", "b"]], 2) == 0.0  # no n-gram left: 0, as ESConv
    assert distinct_esconv([], 1) == 0.0


def test_strategy_accuracy_and_macro_f1(result: dict) -> None:
    labelled = [(rs, ps) for _, _, rs, ps in CORPUS if rs and ps]
    assert result["strategy_pairs"] == len(labelled)
    accuracy = sum(r == p for r, p in labelled) / len(labelled)
    f1s = []
    for label in {x for pair in labelled for x in pair}:
        tp = sum(r == label == p for r, p in labelled)
        predicted = sum(p == label for _, p in labelled)
        actual = sum(r == label for r, _ in labelled)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    assert result["metrics"]["strategy_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert result["metrics"]["strategy_macro_f1"] == pytest.approx(sum(f1s) / len(f1s), abs=1e-6)
    assert strategy_scores(["a", "b"], ["a", "c"]) == pytest.approx((0.5, 1 / 3))


# --- input ------------------------------------------------------------------------------------------


def test_glove_reader(tmp_path: Path) -> None:
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\nhello 1 2 3\nworld 3 2 1\nhello 9 9 9\n", encoding="utf-8")
    vectors = load_glove(path, {"hello"})
    assert vectors.words == 2 and vectors.dim == 3 and list(vectors.vectors) == ["hello"]
    assert vectors.vec("hello").tolist() == [1, 2, 3]  # the first of a repeated word
    assert vectors.vec("nope").tolist() == [2, 2, 2]  # the mean of every vector
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1 x\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.txt:2: a vector value is not a number"):
        load_glove(bad)
    short = tmp_path / "short.txt"
    short.write_text("a 1 2\nb 1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"short.txt:2: expected a word and 2 numbers"):
        load_glove(short)


def test_read_pairs(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"response": "hi", "reference": ["a", "b"], "reference_strategy": "Question"}\n\n'
                    '{"response": "yo", "reference": "c", "reference_strategy": "Others", "predicted_strategy": "Others"}\n',
                    encoding="utf-8")
    pairs = read_pairs(path)
    assert [p.references for p in pairs] == [["a", "b"], ["c"]]
    assert pairs[0].reference_strategy is None and pairs[1].predicted_strategy == "Others"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peftmetrics", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT / "python"), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"missing.jsonl: no such file"),
        ('{"response": "a", "reference": "b"}\nnot json\n', r"p.jsonl:2: not JSON"),
        ('{"response": "a", "reference": "b"}\n{"response": "a"}\n', r"p.jsonl:2: no 'reference' field"),
        ('{"reference": "b"}\n', r"p.jsonl:1: no 'response' field"),
        ('{"response": 3, "reference": "b"}\n', r"p.jsonl:1: 'response' must be a string"),
        ('[1, 2]\n', r"p.jsonl:1: expected a JSON object"),
        ("\n", r"p.jsonl: no pairs in the file"),
    ],
)
def test_cli_bad_input_is_exit_2_naming_file_and_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / ("missing.jsonl" if content is None else "p.jsonl")
    if content is not None:
        path.write_text(content, encoding="utf-8")
    done = _cli("score", "--pairs", str(path))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert re.search(message, done.stderr), done.stderr


def test_cli_missing_embeddings_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"response": "a", "reference": "b"}) + "\n", encoding="utf-8")
    done = _cli("score", "--pairs", str(path), "--embeddings", str(tmp_path / "nope.txt"))
    assert done.returncode == 2 and "nope.txt: no such file" in done.stderr and "Traceback" not in done.stderr


# --- toxicity (a scorer the user plugs in) ----------------------------------------------------------


def test_toxicity_is_the_scorers_mean_and_share_above_half(result: dict) -> None:
    scores = []
    for response, *_ in CORPUS:
        words = response.lower().split()
        scores.append(sum(w.strip(".,!?") in TOXIC_WORDS for w in words) / len(words) if words else 0.0)
    assert any(s > 0.5 for s in scores) and any(0 < s <= 0.5 for s in scores)  # the corpus tests both sides
    assert result["metrics"]["toxicity"] == pytest.approx(sum(scores) / len(scores), abs=1e-12)
    assert result["metrics"]["toxicity_share"] == pytest.approx(sum(s > 0.5 for s in scores) / len(scores), abs=1e-12)


def test_toxicity_scorer_answering_objects_or_a_command_line() -> None:
    from peftmetrics.toxicity import score_toxicity

    line = f"{sys.executable} {TOXICITY_SCORER} --constant 0.75 --objects"
    assert score_toxicity(["a", "b"], line) == {"toxicity": 0.75, "toxicity_share": 1.0}
    assert score_toxicity(["a", "b"], [sys.executable, str(TOXICITY_SCORER), "--constant", "0.5"]) == {"toxicity": 0.5, "toxicity_share": 0.0}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--short"], r"gave 1 scores for 2 responses"),
        (["--constant", "1.5"], r"expected a score in \[0, 1\]"),
    ],
)
def test_cli_toxicity_scorer_that_answers_badly_is_exit_1_with_one_line(tmp_path: Path, extra: list[str], message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"response": r, "reference": "b"}) + "\n" for r in ("a", "b")), encoding="utf-8")
    done = _cli("score", "--pairs", str(path), "--toxicity-command", " ".join([sys.executable, str(TOXICITY_SCORER), *extra]))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and re.search(message, done.stderr), done.stderr
    missing = _cli("score", "--pairs", str(path), "--toxicity-command", "no-such-scorer --x")
    assert missing.returncode == 1 and "'no-such-scorer': no such program" in missing.stderr


def test_counter_sanity() -> None:
    # the corpus really has the edge cases the module docstring promises
    hyps, refs = _tokenized()
    assert [] in hyps and [] in [r for rs in refs for r in rs]
    assert any(len(h) == 1 for h in hyps)
    assert any(max(Counter(h).values(), default=0) >= 5 for h in hyps)
    assert any(len(rs) > 1 for rs in refs)
