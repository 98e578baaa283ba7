"""Routing on the device: load an exported router and score requests with onnxruntime alone.

Imports only numpy and onnxruntime (plus router_lab's stdlib-only error and hashing helpers), so an
app can ship it without scikit-learn, pandas or the simulator.  The model file is checked against
its manifest's sha256 before onnxruntime parses it, and every input is checked against the
feature names, width and dtype recorded in the model's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from router_lab.errors import RouterLabError, one_line
from router_lab.runtime.manifest import check_kind, read_verified
from router_lab.runtime.schema import decode_metadata

DEFAULT_FILE = "router.onnx"
_ORT_TYPES = {"float32": "tensor(float)", "string": "tensor(string)"}


@dataclass(frozen=True)
class RouteResult:
    """One request: ``decision`` is a bool and ``score`` a float; a batch: numpy arrays of both.

    ``decision`` True means the cloud; ``score`` is the router's score (what escalating is worth; its meaning follows ``router.label``).
    """

    decision: Any
    score: Any


def session_options(threads: int = 1) -> ort.SessionOptions:
    """onnxruntime options for a device: ``threads`` intra-op threads, sequential, all optimisations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: a bad file is reported by us, in one line
    return options


def open_session(model_bytes: bytes, source: str, threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session for ``model_bytes``; a file onnxruntime cannot load is a one-line error."""
    try:
        return ort.InferenceSession(model_bytes, session_options(threads),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, InvalidGraph)
        raise RouterLabError(f"{source}: not a loadable ONNX model ({type(exc).__name__}: "
                             f"{one_line(str(exc))[:300]})") from exc


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/router.onnx`` when ``path`` is an export folder."""
    path = Path(path)
    return path / DEFAULT_FILE if path.is_dir() else path


class DeviceRouter:
    """An exported router (or combined device graph) ready to route requests on the device.

    >>> router = DeviceRouter.load("outputs/export/…/router.onnx")
    >>> router.route(features_row)          # 1-D float32 -> RouteResult(decision: bool, score: float)
    >>> router.route(features_matrix)       # 2-D float32 -> RouteResult(bool array, float32 array)
    """

    def __init__(self, session: ort.InferenceSession, metadata: dict[str, Any], source: str,
                 manifest: dict[str, Any] | None = None) -> None:
        self.session = session
        self.metadata = metadata
        self.source = source
        self.manifest = manifest or {}
        self.feature_names: tuple[str, ...] = tuple(metadata["feature_names"])
        self.threshold: float = metadata["threshold"]
        self.mode: str = metadata["mode"]
        self.is_text = metadata["input_dtype"] == "string"
        self._input_name, self._input_rank = _check_signature(session, metadata, source)
        self._outputs = [metadata["score_output"], metadata["decision_output"]]

    @classmethod
    def load(cls, path: str | Path, threads: int = 1,
             trusted_keys: list[str | Path | bytes] | None = None) -> DeviceRouter:
        """Load ``path`` (an .onnx or .ort file -- onnxruntime reads the ORT format from the same
        bytes -- or an export folder), verified against its manifest (``router.ort`` has
        ``router.ort.manifest.json``); with ``trusted_keys`` (Ed25519 public keys, PEM files or
        bytes) only a manifest signed by one of them is accepted (``router_lab.runtime.signing``)."""
        model_path = resolve_model_path(path)
        data, manifest = read_verified(model_path, trusted_keys)
        router = cls.from_bytes(data, str(model_path), manifest, threads)
        check_kind(manifest, router.metadata["kind"], model_path)
        return router

    @classmethod
    def from_bytes(cls, data: bytes, source: str, manifest: dict[str, Any] | None = None,
                   threads: int = 1) -> DeviceRouter:
        """A router from model bytes the caller has already verified (a bundle's loader does);
        the threshold compiled into the graph is checked against its metadata."""
        session = open_session(data, source, threads)
        metadata = decode_metadata(session.get_modelmeta().custom_metadata_map, source)
        router = cls(session, metadata, source, manifest)
        router.check_compiled_threshold()
        return router

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def prepare(self, x: Any) -> tuple[np.ndarray, bool]:
        """``x`` as the graph's input array and whether it was a single request; checks it."""
        if self.is_text:
            return self._prepare_text(x)
        if not isinstance(x, np.ndarray):
            raise RouterLabError(f"route: got {type(x).__name__}; expected a numpy float32 array of "
                                 f"{self.n_features} features ({self._names_hint()})")
        if x.dtype != np.float32:
            raise RouterLabError(f"route: got dtype {x.dtype}; expected float32 (use x.astype(np.float32))")
        single = x.ndim == 1
        if (x.shape[-1] if x.ndim in (1, 2) else -1) != self.n_features:
            raise RouterLabError(f"route: got shape {x.shape}; expected ({self.n_features},) for one "
                                 f"request or (n, {self.n_features}) for a batch ({self._names_hint()})")
        if not np.isfinite(x).all():
            raise RouterLabError("route: input has NaN or infinite values; expected finite features")
        return (x.reshape(1, -1) if single else x), single

    def _prepare_text(self, x: Any) -> tuple[np.ndarray, bool]:
        single = isinstance(x, str)
        values = np.asarray([x] if single else x, dtype=object)
        if values.ndim != 1 or not all(isinstance(v, str) for v in values):
            raise RouterLabError(f"route: got {type(x).__name__}; this is a text router, expected a "
                                 "string or a 1-D sequence of strings")
        if values.size == 0:  # onnxruntime's string kernels reject an empty tensor with a raw error
            raise RouterLabError("route: got an empty batch; expected a string or at least one string")
        return (values.reshape(-1, 1) if self._input_rank == 2 else values), single

    def route(self, x: Any) -> RouteResult:
        """Decision (True = cloud) and score for one request or a batch of requests."""
        array, single = self.prepare(x)
        score, decision = self.session.run(self._outputs, {self._input_name: array})
        score, decision = score.reshape(-1), decision.reshape(-1)
        if single:
            return RouteResult(decision=bool(decision[0]), score=float(score[0]))
        return RouteResult(decision=decision.astype(bool, copy=False), score=score)

    @property
    def models(self) -> tuple[str, ...]:
        """A per-model quality router's models in tier order (() for a two-model router)."""
        return tuple(self.metadata.get("models") or ())

    def qualities(self, x: Any) -> np.ndarray:
        """A per-model quality router's predicted quality of each model: float32 [M] for one
        request, [n, M] for a batch (columns in ``models`` order)."""
        name = self.metadata.get("qualities_output")
        if not name:
            raise RouterLabError(f"{self.source}: not a per-model quality router (no qualities output); "
                                 "expected a graph exported for an N-model policy")
        array, single = self.prepare(x)
        (q,) = self.session.run([name], {self._input_name: array})
        return q[0] if single else q

    def run(self, x: Any) -> dict[str, np.ndarray]:
        """Every output of the graph (for a device graph: label, confidence, score, decision)."""
        array, _ = self.prepare(x)
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {self._input_name: array}), strict=True))

    def check_compiled_threshold(self) -> None:
        """The threshold constant the graph's decision uses (its ``threshold_output``) must equal
        the metadata's threshold (as float32), and one probe request's decision must be its score
        >= that threshold: an edited metadata threshold is refused, not silently reported."""
        name = self.metadata["threshold_output"]
        if name not in {o.name for o in self.session.get_outputs()}:
            raise RouterLabError(f"{self.source}: graph has no output {name!r} (the compiled "
                                 "threshold); expected a model written by 'router-lab export'")
        probe = ("route" if self.is_text else np.zeros(self.n_features, dtype=np.float32))
        array, _ = self.prepare(probe)
        compiled, score, decision = self.session.run([name, *self._outputs], {self._input_name: array})
        compiled = np.asarray(compiled, dtype=np.float32).reshape(-1)
        expected = np.float32(self.threshold)
        if compiled.size != 1 or compiled[0] != expected:
            raise RouterLabError(f"{self.source}: metadata threshold is {self.threshold!r} but the "
                                 f"graph's decision compares with {compiled.tolist()}; the metadata "
                                 "was edited after export, refusing to load it")
        if bool(np.asarray(decision).reshape(-1)[0]) != bool(np.asarray(score).reshape(-1)[0] >= expected):
            raise RouterLabError(f"{self.source}: the graph's decision does not follow score >= its "
                                 f"threshold {self.threshold!r}; refusing to load it")

    def _names_hint(self) -> str:
        names = self.feature_names
        return ", ".join(names) if len(names) <= 4 else f"{names[0]} … {names[-1]}"


def _check_signature(session: ort.InferenceSession, metadata: dict[str, Any], source: str) -> tuple[str, int]:
    """The input's name and rank, after checking them against the metadata (one-line errors)."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != metadata["input_name"]:
        raise RouterLabError(f"{source}: graph inputs are {[i.name for i in inputs]}; its metadata "
                             f"expects one input named {metadata['input_name']!r}")
    given = inputs[0]
    expected_type = _ORT_TYPES[metadata["input_dtype"]]
    if given.type != expected_type:
        raise RouterLabError(f"{source}: input {given.name!r} has type {given.type}; its metadata "
                             f"says {metadata['input_dtype']} ({expected_type})")
    shape = list(given.shape)
    if metadata["input_dtype"] == "float32":
        width = shape[1] if len(shape) == 2 else None
        if width != len(metadata["feature_names"]):
            raise RouterLabError(f"{source}: input {given.name!r} has shape {shape} but its metadata "
                                 f"lists {len(metadata['feature_names'])} features; expected "
                                 f"[n, {len(metadata['feature_names'])}] (wrong input width)")
    elif len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise RouterLabError(f"{source}: text input {given.name!r} has shape {shape}; expected [n] or [n, 1]")
    outputs = {o.name for o in session.get_outputs()}
    missing = [n for n in (metadata["score_output"], metadata["decision_output"]) if n not in outputs]
    if missing:
        raise RouterLabError(f"{source}: graph has no output {', '.join(map(repr, missing))}; "
                             f"outputs are {sorted(outputs)}")
    return given.name, len(shape)
