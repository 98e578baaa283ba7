"""The `text` router: raw prompt strings → n-gram TF-IDF and count features → logistic regression.

Every step is a scikit-learn estimator whose ONNX form (router_lab/export/text.py) computes the same
numbers from the same string, so the device passes the raw prompt.  Two choices make that exact:
case folding is ASCII-only (A–Z → a–z, what ONNX's StringNormalizer does under the "C" locale, which
every device has), and every token pattern is an explicit ASCII class that Python's `re` and
onnxruntime's RE2 read the same way.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
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
MAX_CHARS_LIMIT = 1000  # RE2's largest counted repetition, {1,1000}: the graph's cut (export/text.py)
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

# The estimator's parameters and defaults: the `router=text` schema minus its training keys.
DEFAULT_PARAMS: dict[str, Any] = {f.name: f.default_factory() if f.default is MISSING else f.default
                                  for f in fields(TextRouterConfig) if f.name not in ROUTER_KEYS}


def as_strings(texts: Any) -> np.ndarray:
    """A batch of prompts as a 1-D object array of str (accepts a list, a 1-D or an (n, 1) array)."""
    arr = np.asarray(texts, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise RouterLabError(f"text router input: got shape {arr.shape}; expected a 1-D batch of strings")
    return arr


def ascii_lower(text: str) -> str:
    """The prompt up to its first NUL (as every runtime reads it: a JavaScript string reaches the
    WebAssembly runtime as a C string), A–Z lower-cased and nothing else."""
    return text.split("\x00", 1)[0].translate(_ASCII_LOWER)


class AsciiLowercase(BaseEstimator, TransformerMixin):
    """Keep the first ``max_chars`` characters (0: all), cut at the first NUL and lower-case A–Z
    only (see :func:`ascii_lower`); output shape (n,).  The two prefix cuts commute.  The bound
    caps the graph's work for any prompt: every later step reads at most ``max_chars`` characters."""

    def __init__(self, max_chars: int = 0) -> None:
        self.max_chars = max_chars

    def fit(self, X: Any, y: Any = None) -> AsciiLowercase:  # noqa: N803 - sklearn's name
        return self

    def transform(self, X: Any) -> np.ndarray:  # noqa: N803
        bound = int(getattr(self, "max_chars", 0) or 0)  # routers pickled before the bound: 0
        texts = (str(t) for t in as_strings(X))
        return np.array([ascii_lower(t[:bound] if bound else t) for t in texts], dtype=object)


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
    if not 0 <= int(full["max_chars"]) <= MAX_CHARS_LIMIT:
        raise RouterLabError(f"router.max_chars: got {full['max_chars']}; expected 0 (no bound) to "
                             f"{MAX_CHARS_LIMIT} (the ONNX graph cuts with an RE2 repetition, at most 1000)")
    if full["word_ngram_max"] < 0 or full["char_ngram_max"] < 0:
        raise RouterLabError("router.word_ngram_max and router.char_ngram_max: expected >= 0 (0 = off)")
    if full["char_ngram_max"] and not 1 <= full["char_ngram_min"] <= full["char_ngram_max"]:
        raise RouterLabError(f"router.char_ngram_min: got {full['char_ngram_min']}; expected "
                             f"1..char_ngram_max ({full['char_ngram_max']})")
    if not (full["word_ngram_max"] or full["char_ngram_max"] or full["counts"]):
        raise RouterLabError("router: every text feature is off; enable word n-grams, "
                             "character n-grams or counts")
    return full


def make_text_router(params: dict[str, Any] | None = None, random_state: int = 0) -> Pipeline | GridSearchCV:
    """The text router: a Pipeline from raw strings to the routing score (a GridSearchCV over C
    around it when ``inner_cv`` >= 2; training keeps its best, refitted pipeline).

    Parameters are :data:`DEFAULT_PARAMS` (overridden by ``params``); ``random_state`` seeds the
    solver (liblinear/lbfgs are deterministic, kept for the registry's signature).
    """
    # Imported here: skl2onnx (all its converters) adds ~1 s to every `train` that is not text.
    from skl2onnx.sklapi import TraceableTfidfVectorizer

    p = _check_params(dict(params or {}))
    branches: list[tuple[str, Any]] = []
    if p["word_ngram_max"]:
        branches.append(("words", TraceableTfidfVectorizer(
            analyzer="word", token_pattern=WORD_PATTERN, lowercase=False,
            ngram_range=(1, int(p["word_ngram_max"])), max_features=int(p["max_features_word"]),
            min_df=int(p["min_df"]), binary=bool(p["binary"]), sublinear_tf=bool(p["sublinear_tf"]),
            dtype=np.float32)))
    if p["char_ngram_max"]:
        # Characters as word-analyzer tokens (not analyzer="char", which folds whitespace runs
        # in a way ONNX cannot reproduce); n-grams keep every character, spaces included.
        branches.append(("chars", TraceableTfidfVectorizer(
            analyzer="word", token_pattern=CHAR_PATTERN, lowercase=False,
            ngram_range=(int(p["char_ngram_min"]), int(p["char_ngram_max"])),
            max_features=int(p["max_features_char"]), min_df=int(p["min_df"]),
            binary=bool(p["binary"]), sublinear_tf=bool(p["sublinear_tf"]), dtype=np.float32)))
    if p["counts"]:
        branches.append(("counts", Pipeline([("count", TextCounts()), ("scale", StandardScaler())])))
    classifier = LogisticRegression(C=float(p["C"]), class_weight=p["class_weight"],
                                    max_iter=int(p["max_iter"]), random_state=int(random_state))
    pipeline = Pipeline([("lower", AsciiLowercase(int(p["max_chars"]))), ("features", FeatureUnion(branches)),
                         ("classifier", classifier)])
    if int(p["inner_cv"]) < 2:
        return pipeline
    # C by inner cross-validation on the training rows only (the whole pipeline refitted per fold;
    # a request's two expected-gain rows stay in one fold); the refit best pipeline is what ships
    folds = StratifiedGroupKFold(n_splits=int(p["inner_cv"]), shuffle=True, random_state=int(random_state))
    return GridSearchCV(pipeline, {"classifier__C": [float(c) for c in p["C_grid"]]}, cv=folds,
                        scoring=str(p["inner_cv_scoring"]), refit=True, n_jobs=1, error_score="raise")


def text_inputs(dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature mode `text`: the raw prompts (a 1-D object array of str) and the column name."""
    if not dataset.has_text:
        raise RouterLabError(f"{dataset.source}: no 'text' column; feature mode 'text' (router=text) "
                             "needs the prompts (import them with 'router-lab dataset import')")
    return dataset.frame["text"].to_numpy(dtype=object), ("text",)


CATEGORY_TOKEN = "zzcat"  # + the category's ASCII letters and digits: one word token of its own


def category_token(category: str) -> str:
    """The word that stands for a request's category in the router's input (e.g. "zzcatmath")."""
    return CATEGORY_TOKEN + re.sub("[^a-z0-9]", "", ascii_lower(str(category)))


def with_category(categories: Any, texts: Any) -> np.ndarray:
    """The input of a `text+category` router: each prompt behind its category's token, so one
    string carries both (the ONNX graph keeps its single string input; the word n-grams give the
    category a weight of its own, a one-hot, and the token comes first so max_chars keeps it).
    An app that knows the category calls this before the router."""
    return np.array([f"{category_token(c)} {t}" for c, t in zip(as_strings(categories), as_strings(texts),
                                                              strict=True)], dtype=object)


def text_category_inputs(dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    """Feature mode `text+category`: the prompts with the request's category folded in."""
    texts, _ = text_inputs(dataset)
    if "category" not in dataset.frame.columns:
        raise RouterLabError(f"{dataset.source}: no 'category' column; feature mode 'text+category' "
                             "needs the request's category (known when the request is made)")
    return with_category(dataset.frame["category"].astype(str).to_numpy(dtype=object), texts), ("category", "text")


register_feature_mode("text", text_inputs, summary="the raw prompt text (the text router)")
register_feature_mode("text+category", text_category_inputs, summary="the prompt with the request's category folded in")
register_estimator("text", make_text_router, calibrate_last_step=True, schema=TextRouterConfig,
                   summary="TF-IDF of the prompt text + logistic regression (text-only datasets)")
