"""The `text` router: raw prompt strings → n-gram TF-IDF and count features → logistic regression.

Every step is a scikit-learn estimator whose ONNX form (router_lab/export/text.py) computes the same
numbers from the same string, so the device passes the raw prompt.  Two choices make that exact:
case folding is ASCII-only (A–Z → a–z, what ONNX's StringNormalizer does under the "C" locale, which
every device has), and every token pattern is an explicit ASCII class that Python's `re` and
onnxruntime's RE2 read the same way.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

import numpy as np
from skl2onnx.sklapi import TraceableTfidfVectorizer
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.features import register_feature_mode
from router_lab.train.config import ROUTER_KEYS, TextRouterConfig
from router_lab.train.estimators import register_estimator

# Tokens for word n-grams: runs of ASCII letters and digits (after ASCII lower-casing).
WORD_PATTERN = "[a-z0-9]+"
# Tokens for character n-grams: every character, whitespace and newlines included.
CHAR_PATTERN = "(?s)."
# Count features, log(1 + number of matches): length and the shape of a (maths) question.
COUNT_PATTERNS: dict[str, str] = {
    "n_chars": "(?s).",
    "n_words": "[a-z]+",
    "n_numbers": "[0-9]+",
    "n_decimals": "[0-9][.,/][0-9]",  # decimals, thousands, fractions
    "n_sentences": "[.?!]",
    "n_symbols": "[%$]",
}
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

# The estimator's parameters and defaults: the `router=text` schema minus its training keys.
DEFAULT_PARAMS: dict[str, Any] = {f.name: f.default for f in fields(TextRouterConfig)
                                  if f.name not in ROUTER_KEYS}


def as_strings(texts: Any) -> np.ndarray:
    """A batch of prompts as a 1-D object array of str (accepts a list, a 1-D or an (n, 1) array)."""
    arr = np.asarray(texts, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise RouterLabError(f"text router input: got shape {arr.shape}; expected a 1-D batch of strings")
    return arr


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


class AsciiLowercase(BaseEstimator, TransformerMixin):
    """Lower-case A–Z only (as ONNX StringNormalizer does with locale "C"); output shape (n,)."""

    def fit(self, X: Any, y: Any = None) -> AsciiLowercase:  # noqa: N803 - sklearn's name
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.array([ascii_lower(str(t)) for t in as_strings(X)], dtype=object)


class TextCounts(BaseEstimator, TransformerMixin):
    """log(1 + number of matches) of each regular expression in ``patterns``; shape (n, k)."""

    def __init__(self, patterns: tuple[str, ...] = tuple(COUNT_PATTERNS.values())) -> None:
        self.patterns = patterns

    def fit(self, X: Any, y: Any = None) -> TextCounts:  # noqa: N803
        self.n_features_out_ = len(self.patterns)
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        compiled = [re.compile(p) for p in self.patterns]
        texts = as_strings(X)
        counts = np.array([[len(c.findall(str(t))) for c in compiled] for t in texts], dtype=np.float64)
        return np.log1p(counts.reshape(len(texts), len(compiled)))


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise RouterLabError(f"router: unknown key(s) {', '.join(unknown)} for the text router; "
                             f"expected some of {', '.join(DEFAULT_PARAMS)}")
    full = {**DEFAULT_PARAMS, **params}
    if full["word_ngram_max"] < 0 or full["char_ngram_max"] < 0:
        raise RouterLabError("router.word_ngram_max and router.char_ngram_max: expected >= 0 (0 = off)")
    if full["char_ngram_max"] and not 1 <= full["char_ngram_min"] <= full["char_ngram_max"]:
        raise RouterLabError(f"router.char_ngram_min: got {full['char_ngram_min']}; expected "
                             f"1..char_ngram_max ({full['char_ngram_max']})")
    if not (full["word_ngram_max"] or full["char_ngram_max"] or full["counts"]):
        raise RouterLabError("router: every text feature is off; enable word n-grams, "
                             "character n-grams or counts")
    return full


def make_text_router(params: dict[str, Any] | None = None, random_state: int = 0) -> Pipeline:
    """The text router: a Pipeline from raw strings to P(device answer wrong).

    Parameters are :data:`DEFAULT_PARAMS` (overridden by ``params``); ``random_state`` seeds the
    solver (liblinear/lbfgs are deterministic, kept for the registry's signature).
    """
    p = _check_params(dict(params or {}))
    branches: list[tuple[str, Any]] = []
    if p["word_ngram_max"]:
        branches.append(("words", TraceableTfidfVectorizer(
            analyzer="word", token_pattern=WORD_PATTERN, lowercase=False,
            ngram_range=(1, int(p["word_ngram_max"])), max_features=int(p["max_features_word"]),
            min_df=int(p["min_df"]), binary=bool(p["binary"]), dtype=np.float32)))
    if p["char_ngram_max"]:
        # Characters as word-analyzer tokens (not analyzer="char", which folds whitespace runs
        # in a way ONNX cannot reproduce); n-grams keep every character, spaces included.
        branches.append(("chars", TraceableTfidfVectorizer(
            analyzer="word", token_pattern=CHAR_PATTERN, lowercase=False,
            ngram_range=(int(p["char_ngram_min"]), int(p["char_ngram_max"])),
            max_features=int(p["max_features_char"]), min_df=int(p["min_df"]),
            binary=bool(p["binary"]), dtype=np.float32)))
    if p["counts"]:
        branches.append(("counts", Pipeline([("count", TextCounts()), ("scale", StandardScaler())])))
    classifier = LogisticRegression(C=float(p["C"]), class_weight=p["class_weight"],
                                    max_iter=int(p["max_iter"]), random_state=int(random_state))
    return Pipeline([("lower", AsciiLowercase()), ("features", FeatureUnion(branches)),
                     ("classifier", classifier)])


def text_inputs(dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature mode `text`: the raw prompts (a 1-D object array of str) and the column name."""
    if not dataset.has_text:
        raise RouterLabError(f"{dataset.source}: no 'text' column; feature mode 'text' (router=text) "
                             "needs the prompts (import them with 'router-lab dataset import')")
    return dataset.frame["text"].to_numpy(dtype=object), ("text",)


register_feature_mode("text", text_inputs)
register_estimator("text", make_text_router, calibrate_last_step=True)
