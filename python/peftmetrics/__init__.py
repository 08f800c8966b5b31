"""peftctl's automatic metrics for generated responses (ExTES / ESConv style), run on the CPU.

The metrics are computed exactly as the emotional-support literature's reference code computes them
(ESConv's ``codes_zcj/metric/myMetrics.py``, nlg-eval's embedding metrics, METEOR 1.5 as pycocoevalcap
drives it), on ``nltk.word_tokenize(text.lower())`` tokens; every value is a fraction in [0, 1].

Empty responses (and references) -- the policy: a text that tokenizes to no tokens stays in the corpus
and counts as one pair everywhere. BLEU: it adds no n-grams and length 0 (nltk's corpus_bleu counts it
so, which lowers the brevity penalty); ROUGE-L: 0 for the pair (ESConv's code); METEOR: the jar's
score of an empty segment (0), its statistics summed into the corpus score; Vector Extrema, Embedding
Average and Greedy Matching: 0 for the pair (nlg-eval itself fails on an empty text: the mean of no
vectors); Distinct-n: no n-grams. A file with no pairs at all is bad input (exit 2).

Modules: ``tokenize`` (word_tokenize without punkt data), ``bleu``, ``rouge``, ``meteor`` (the jar),
``embeddings`` (GloVe text vectors, the three embedding metrics), ``distinct``, ``strategy``,
``pairs`` (reading the pairs file), ``score`` (all of them), ``__main__`` (the CLI).
"""
