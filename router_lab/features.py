"""Router inputs and labels: what a router sees for a feature mode, and what it learns to predict.

Modes are a registry (``FEATURE_MODES``, a :class:`router_lab.registry.Registry`): ``input`` (the request's own features, known before the
device runs) and ``input+confidence`` (plus the device model's confidence features, for cascades).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_lab.data.contract import Dataset
from router_lab.errors import RouterLabError
from router_lab.registry import Registry

FeatureMode = Callable[[Dataset], tuple[np.ndarray, tuple[str, ...]]]
# The numeric modes register below; the text modes in router_lab.train.text (every module of
# router_lab.train is imported on the first lookup).
FEATURE_MODES: Registry[FeatureMode] = Registry("feature mode", field="feature mode", modules=("router_lab.train",))
# What a router learns (`router.label`): the expected gain of escalating (default, measured best on
# digits and GSM8K), whether the cloud wins, or whether the device is wrong (the old default).
# Registered below with their label functions (ROUTING_LABELS); LABELS is their names.
ROUTING_LABELS: Registry[Callable[..., RoutingLabels]] = Registry("label", field="router.label")
DEFAULT_LABEL = "expected_gain"


def register_feature_mode(name: str, build: FeatureMode, summary: str = "") -> FeatureMode:
    """Add a mode: ``build(dataset) -> (X, column names)`` (the text engineer adds ``text``)."""
    return FEATURE_MODES.register(name, build, summary=summary)


def _input(dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    columns = tuple(dataset.feature_columns)
    if not columns:
        raise RouterLabError(f"{dataset.source}: no numeric input feature columns; feature mode "
                             "'input' needs at least one (use a text router for text-only data)")
    return dataset.features(columns), columns


def _input_confidence(dataset: Dataset) -> tuple[np.ndarray, tuple[str, ...]]:
    if not dataset.confidence_columns:
        raise RouterLabError(f"{dataset.source}: no device confidence columns (device_confidence or "
                             "device_*); feature mode 'input+confidence' needs at least one")
    columns = (*_input(dataset)[1], *dataset.confidence_columns)
    return dataset.features(columns), columns


register_feature_mode("input", _input, summary="the request's own numeric features (known before the device runs)")
register_feature_mode("input+confidence", _input_confidence, summary="input plus the device model's confidence features")


def default_modes(router_name: str, dataset: Dataset) -> list[str]:
    """The feature modes a router is trained in when the config names none (`train.mode(s)`):
    ``text`` for the text router; else ``input``, and ``input+confidence`` where the dataset has
    device confidence columns."""
    if router_name == "text":
        return ["text"]  # text+category where the app knows each request's category
    return ["input", "input+confidence"] if dataset.confidence_columns else ["input"]


def quality_default_mode(dataset: Dataset) -> str:
    """The per-model quality router's mode when none is configured (the N-model policies'
    ``policy.mode`` null, ``train.per_model`` without ``train.mode``): ``text`` for a text-only
    dataset, ``input+confidence`` (a cascade: the device answers first) where the dataset has
    device confidence columns, else ``input``."""
    if not dataset.feature_columns and dataset.has_text:
        return "text"
    return "input+confidence" if dataset.confidence_columns else "input"


def offered_modes() -> list[str]:
    return FEATURE_MODES.names()


def router_inputs(dataset: Dataset, mode: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """The router's input matrix (float32 for numeric modes) and its column names, in order."""
    return FEATURE_MODES.get(mode)(dataset)


def quality_gain(dataset: Dataset) -> np.ndarray:
    """Per request, how much better the cloud's answer is than the device's (may be negative)."""
    return dataset.cloud_quality() - dataset.device_quality()


def device_wrong(dataset: Dataset, margin: float = 0.0) -> np.ndarray:
    """1 where the device's answer is wrong (for score datasets: its score is below 0.5)."""
    return (dataset.device_quality() < 0.5).astype(np.int64)


def cloud_wins(dataset: Dataset, margin: float = 0.0) -> np.ndarray:
    """1 where escalating helps: the cloud is right and the device wrong (for score datasets: the
    cloud's score beats the device's by more than ``margin``).  The routing target AUROC measures."""
    if dataset.outcome == "correct":
        return ((dataset.cloud_quality() >= 0.5) & (dataset.device_quality() < 0.5)).astype(np.int64)
    return (quality_gain(dataset) > margin).astype(np.int64)


def outcome_strata(dataset: Dataset, margin: float = 0.0) -> np.ndarray:
    """The strata of stratified splits and folds: (device right, cloud right) for 0/1 outcomes,
    whether the cloud wins for score datasets."""
    if dataset.outcome == "correct":
        return 2 * (dataset.device_quality() >= 0.5).astype(np.int64) + (dataset.cloud_quality() >= 0.5)
    return cloud_wins(dataset, margin)


@dataclass(frozen=True)
class RoutingLabels:
    """What a router is fitted to: rows ``rows`` of the inputs with binary ``y`` and ``weight``.

    For ``expected_gain`` each request contributes (1 + gain) / 2 of a positive and (1 - gain) / 2
    of a negative row (gain = cloud quality - device quality), so a classifier's P(y = 1 | x) is
    (1 + E[gain | x]) / 2: an ordinary binary classifier (and ONNX graph) scores the expected gain.
    """

    rows: np.ndarray  # index into the dataset's rows (a row may appear twice)
    y: np.ndarray
    weight: np.ndarray | None  # None: every row counts once


def _expected_gain_labels(gain: np.ndarray) -> RoutingLabels:
    gain = np.clip(gain, -1.0, 1.0)
    pos, neg = (1.0 + gain) / 2.0, (1.0 - gain) / 2.0
    idx = np.arange(len(gain))
    rows = np.r_[idx[pos > 0], idx[neg > 0]]
    y = np.r_[np.ones(int((pos > 0).sum()), np.int64), np.zeros(int((neg > 0).sum()), np.int64)]
    weight = np.r_[pos[pos > 0], neg[neg > 0]]
    return RoutingLabels(rows=rows, y=y, weight=weight)


@ROUTING_LABELS.register("expected_gain", summary="the expected gain of escalating (weighted rows)")
def _expected_gain(dataset: Dataset, margin: float, rows: np.ndarray) -> RoutingLabels:
    sub = _expected_gain_labels(quality_gain(dataset)[rows])
    return RoutingLabels(rows=rows[sub.rows], y=sub.y, weight=sub.weight)


@ROUTING_LABELS.register("win", summary="whether the cloud's answer beats the device's by margin")
def _win(dataset: Dataset, margin: float, rows: np.ndarray) -> RoutingLabels:
    return RoutingLabels(rows=rows, y=cloud_wins(dataset, margin)[rows], weight=None)


@ROUTING_LABELS.register("device_wrong", summary="whether the device's answer is wrong")
def _device_wrong(dataset: Dataset, margin: float, rows: np.ndarray) -> RoutingLabels:
    return RoutingLabels(rows=rows, y=device_wrong(dataset, margin)[rows], weight=None)


LABELS = tuple(ROUTING_LABELS.names())


def routing_labels(dataset: Dataset, label: str = DEFAULT_LABEL, margin: float = 0.0,
                   rows: np.ndarray | None = None) -> RoutingLabels:
    """The training target of ``label`` (see :data:`ROUTING_LABELS`) on ``rows`` (all rows when
    None); the returned ``rows`` index the dataset."""
    rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)
    return ROUTING_LABELS.get(label)(dataset, margin, rows)


def exported_router_inputs(dataset: Dataset, metadata: dict[str, Any], source: str) -> np.ndarray:
    """An exported router's input for every row of ``dataset``, from its metadata: the float32
    columns it names, in its order, or the text for a text router."""
    if metadata["input_dtype"] == "string":
        if "text" not in dataset.frame.columns:
            raise RouterLabError(f"{dataset.source}: no 'text' column; {source} is a text router")
        if metadata.get("mode") == "text+category":  # the category folded into the string
            return router_inputs(dataset, "text+category")[0]
        return dataset.frame["text"].astype(str).to_numpy(dtype=object)
    names = list(metadata["feature_names"])
    missing = [n for n in names if n not in dataset.frame.columns]
    if missing:
        raise RouterLabError(
            f"{dataset.source}: lacks column(s) {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''} "
            f"that {source} expects ({len(names)} features; it was trained on dataset "
            f"{metadata['dataset_name']!r}); pass the matching data, e.g. dataset={metadata['dataset_name']}")
    return dataset.features(tuple(names))
