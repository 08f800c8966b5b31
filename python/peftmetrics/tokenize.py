"""``nltk.word_tokenize(text.lower())`` with or without nltk's punkt data.

``word_tokenize`` splits sentences with the trained English punkt model (the ``punkt_tab`` resource),
then words with ``NLTKWordTokenizer``. When NLTK_DATA (or nltk's default paths) provides the model,
``tokenize`` is ``word_tokenize`` itself. Without it (it cannot be downloaded here) the sentences come
from an untrained ``PunktSentenceTokenizer()``, which gives the same tokens except where the trained
model knows an abbreviation or collocation (``"mr. smith"``: the trained model keeps ``"mr."``, the
untrained one gives ``"mr" "."``). ``tokenizer_kind()`` says which one ran; the score reports it.
"""

from __future__ import annotations

import functools

from nltk.tokenize import NLTKWordTokenizer, PunktSentenceTokenizer, punkt_model_available, word_tokenize

_WORDS = NLTKWordTokenizer()
_UNTRAINED_SENTENCES = PunktSentenceTokenizer()


@functools.lru_cache(maxsize=1)
def tokenizer_kind() -> str:
    """"punkt" when nltk's English punkt model is installed, else "punkt-untrained"."""
    return "punkt" if punkt_model_available("english") else "punkt-untrained"


def tokenize(text: str) -> list[str]:
    """The tokens of ``text.lower()``, as nltk.word_tokenize gives them."""
    lowered = text.lower()
    if tokenizer_kind() == "punkt":
        return word_tokenize(lowered)
    return [token for sentence in _UNTRAINED_SENTENCES.tokenize(lowered) for token in _WORDS.tokenize(sentence)]
