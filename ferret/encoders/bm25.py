"""BM25 as a sparse encoder.

BM25 term weights need corpus statistics, so the weights of documents are computed per collection
(`ferret.indexing`). What this encoder owns is the analysis chain, chosen to match Lucene's English
analyzer as used by Pyserini/Anserini by default (standard tokenisation, possessive removal, lower case,
Lucene's English stop words, Porter stemming), and the mapping of terms to uint32 ids.

Term ids are a stable hash (CRC-32 of the UTF-8 term) so that query-side vectors need no vocabulary and
any process computes the same ids. Query-side encoding: each distinct term with weight 1 (repeated
query terms count once per occurrence, as in Lucene's BooleanQuery of TermQuerys).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from ferret.encoders.base import (
    EncodeOptions,
    Encoder,
    EncoderKind,
    ModelInfo,
    Side,
    SparseVector,
)

# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET.
LUCENE_ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)

# A regular-expression version of the word rules of Unicode UAX #29 that Lucene's StandardTokenizer
# implements, limited to what matters for text in Latin script: letters, digits and "_" join; ".", "'",
# "’", ":" and "·" join two letters; ".", ",", ";", "'" and "’" join two digits; everything else splits.
# Superscript/subscript digits are not word characters there; Han and Hiragana characters are one token
# each; pictographic symbols (©, ®, ™, arrows, emoji) are tokens of their own.
_NOT_WORD = "¹²³⁰-⁹₀-₉¼-¾\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff"
_WORD = rf"(?:[^\W{_NOT_WORD}]|\u00ad)"  # soft hyphen (a format character) stays inside a word
_LETTER = rf"[^\W\d_{_NOT_WORD}]"
_TOKEN = re.compile(
    rf"{_WORD}+(?:(?:(?<={_LETTER})[.'’:·](?={_LETTER})|(?<=\d)[.,;'’](?=\d)){_WORD}+)*"
    r"|[\u3040-\u309f\u3400-\u4dbf\u4e00-\u9fff]"
    r"|[©®‼⁉™ℹ↔-↙↩↪⌚⌛⌨⏏⏩-⏳⏸-⏺Ⓜ▪▫▶◀◻-◾☀-☄☇-➿⤴⤵⬅-⬇⬛⬜⭐⭕〰〽㊗㊙\U0001f000-\U0001faff]"
)
_POSSESSIVE = ("'s", "’s", "＇s")


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.porter import PorterStemmer

    # Martin Porter's reference implementation, which Lucene's PorterStemFilter ports.
    return PorterStemmer(mode=PorterStemmer.MARTIN_EXTENSIONS)


class Analyzer:
    """Text → list of index terms."""

    def __init__(self, stopwords: frozenset[str] = LUCENE_ENGLISH_STOP_WORDS, stem: bool = True):
        self.stopwords = stopwords
        self.stem = stem
        self._cache: dict[str, str] = {}
        if stem:
            # Import nltk now, while the index or encoder loads: lazily, the first query paid seconds for it.
            _stemmer()

    def _stem(self, token: str) -> str:
        cached = self._cache.get(token)
        if cached is None:
            cached = _stemmer().stem(token, to_lowercase=False) if self.stem else token
            if len(self._cache) < 1_000_000:
                self._cache[token] = cached
        return cached

    def __call__(self, text: str) -> list[str]:
        terms = []
        for token in _TOKEN.findall(text.lower()):
            if token.endswith(_POSSESSIVE):
                token = token[:-2]
            if not token.strip("_") or token in self.stopwords:
                continue
            terms.append(self._stem(token))
        return terms


def term_id(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


class BM25Encoder(Encoder):
    def __init__(self, name: str, options: Mapping[str, Any]):
        self.analyzer = Analyzer(stem=bool(options.get("stem", True)))
        self.info = ModelInfo(
            name=name,
            family="bm25",
            kind=EncoderKind.SPARSE,
            max_length=int(options.get("max_length", 65536)),
            vocab_size=2**32,
            # Document-side BM25 weights need corpus statistics: they belong to a collection.
            sides=(Side.QUERY,),
            extra={"term_ids": "crc32", "k1": str(options.get("k1", 0.9)), "b": str(options.get("b", 0.4))},
        )
        self._terms: dict[int, str] = {}

    def token_ids(self, texts: list[str], options: EncodeOptions) -> list[list[int]]:
        return [[self._remember(t) for t in self.analyzer(text)] for text in texts]

    def _remember(self, term: str) -> int:
        tid = term_id(term)
        if len(self._terms) < 1_000_000:
            self._terms[tid] = term
        return tid

    def embed_sparse(self, texts: list[str], options: EncodeOptions) -> list[SparseVector]:
        out = []
        for ids in self.token_ids(texts, options):
            counts = Counter(ids)
            keys = np.array(sorted(counts), dtype=np.uint32)
            out.append(SparseVector(keys, np.array([counts[k] for k in keys.tolist()], dtype=np.float32)))
        return out

    def decode_tokens(self, ids: np.ndarray) -> list[str]:
        return [self._terms.get(int(i), f"#{int(i)}") for i in ids]


def load(name: str, path: str, options: Mapping[str, Any]) -> Encoder:
    return BM25Encoder(name, options)
