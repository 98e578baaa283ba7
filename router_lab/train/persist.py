"""Persisting a fitted router without pickle: ``skops.io`` with an explicit allow-list of types.

``router.skops`` is a zip of a JSON schema and ``.npy`` arrays (numpy loads them with
``allow_pickle=False``).  Before anything is constructed, every node of the schema is checked
against :data:`TRUSTED_TYPES` — exactly the estimator, transformer and helper types that the
routers router_lab trains are made of — so a file naming any other type (``os.system``, a
``builtins.eval`` function node, a foreign class) is refused with one line naming it.  skops' own
audit then runs on the same list.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

from router_lab.errors import RouterLabError

# Every type a router_lab router's skops schema refers to, by loader: measured by dumping each
# offered estimator (logistic, gbdt, random_forest, mlp, text; each with calibration none,
# sigmoid and isotonic) with skops 0.16 and scikit-learn 1.9.1 (tests/test_no_code_execution.py
# re-checks every offered estimator round-trips through this list).
_NUMPY_DTYPES = ("bool", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64", "str_")
TRUSTED_TYPES: dict[str, frozenset[str]] = {
    "ObjectNode": frozenset({
        "router_lab.train.text.AsciiLowercase",
        "router_lab.train.text.TextCounts",
        "skl2onnx.sklapi.sklearn_text.TraceableTfidfVectorizer",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.feature_extraction.text.TfidfVectorizer",
        "sklearn.isotonic.IsotonicRegression",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.tree._classes.DecisionTreeClassifier",
    }),
    "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),
    "LossNode": frozenset({"sklearn._loss._loss.CyHalfBinomialLoss"}),
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
    "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
    "NdArrayNode": frozenset({"numpy.ndarray", *(f"numpy.{t}" for t in _NUMPY_DTYPES)}),
    "TypeNode": frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool",
                           *(f"numpy.{t}" for t in _NUMPY_DTYPES)}),
    "DictNode": frozenset({"builtins.dict"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "JsonNode": frozenset({"builtins.str"}),
}

# TraceableTfidfVectorizer keys its vocabulary by n-gram tuples, which skops' JSON schema cannot
# hold; on disk each key is the JSON list of its tokens (reversible for any token, any character).
_TUPLE_KEYS = "_router_lab_vocabulary_keys"


def trusted_type_names() -> list[str]:
    return sorted(set().union(*TRUSTED_TYPES.values()))


def _vectorizers(obj: Any) -> list[Any]:
    """Every fitted TraceableTfidfVectorizer inside ``obj`` (Pipelines, unions, calibration folds)."""
    from skl2onnx.sklapi import TraceableTfidfVectorizer

    found: list[Any] = []
    seen: set[int] = set()

    def visit(o: Any) -> None:
        if id(o) in seen or isinstance(o, str | bytes | int | float | type(None)):
            return
        seen.add(id(o))
        if isinstance(o, TraceableTfidfVectorizer) and hasattr(o, "vocabulary_"):
            found.append(o)
        if isinstance(o, list | tuple):
            for item in o:
                visit(item)
        elif isinstance(o, dict):
            for item in o.values():
                visit(item)
        elif type(o).__module__.split(".")[0] in ("sklearn", "skl2onnx", "router_lab"):
            for item in vars(o).values() if hasattr(o, "__dict__") else ():
                visit(item)

    visit(obj)
    return found


def dumps_estimator(estimator: Any) -> bytes:
    """The skops bytes of a fitted router (the estimator itself is left unchanged)."""
    import skops.io as sio

    if _vectorizers(estimator):
        estimator = copy.deepcopy(estimator)
        for vec in _vectorizers(estimator):
            vec.vocabulary_ = {json.dumps(list(k)): int(v) for k, v in vec.vocabulary_.items()}
            setattr(vec, _TUPLE_KEYS, "json-list")
    return _canonical(sio.dumps(estimator))


def _canonical(data: bytes) -> bytes:
    """The same archive with byte-stable names and times (skops names nodes and arrays by
    ``id()`` and stamps the current time), so one fitted router always gives the same bytes."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        arrays = {name: archive.read(name) for name in archive.namelist() if name != "schema.json"}
    ids: dict[int, int] = {}

    def renumber(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__id__"), int):
                node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
            if isinstance(node.get("file"), str) and node["file"].endswith(".npy"):
                node["file"] = f"{ids.setdefault(int(node['file'][:-4]), len(ids) + 1)}.npy"
            for value in node.values():
                renumber(value)
        elif isinstance(node, list):
            for value in node:
                renumber(value)

    renumber(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        def put(name: str, payload: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, payload)

        put("schema.json", json.dumps(schema, indent=2).encode("utf-8"))
        for old, payload in sorted(((f"{ids[int(n[:-4])]}.npy", b) for n, b in arrays.items()),
                                   key=lambda item: int(item[0][:-4])):
            put(old, payload)
    return out.getvalue()


def _schema_nodes(node: Any, path: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                loader = item["__loader__"]
                name = f"{item.get('__module__')}.{item.get('__class__')}"
                if not isinstance(loader, str):
                    raise RouterLabError(f"{path}: malformed skops schema (a non-string __loader__)")
                found.append((loader, name))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_trusted(data: bytes, path: Path) -> None:
    """Refuse ``data`` unless every type its schema names is in :data:`TRUSTED_TYPES`."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise RouterLabError(f"{path}: not a skops model file ({type(exc).__name__}); expected the "
                             "router.skops that 'router-lab train' writes") from exc
    for loader, name in _schema_nodes(schema, path):
        if name not in TRUSTED_TYPES.get(loader, ()):
            raise RouterLabError(f"{path}: refers to type {name!r} ({loader}), which is not one of "
                                 "the estimator types router_lab trains; refusing to load it")


def loads_estimator(data: bytes, path: Path) -> Any:
    """A router from skops bytes, after :func:`check_trusted`; one-line errors, never a pickle."""
    import skops.io as sio

    check_trusted(data, path)
    try:
        estimator = sio.loads(data, trusted=trusted_type_names())
    except Exception as exc:  # a schema of trusted types that still does not build
        raise RouterLabError(f"{path}: cannot load the model ({type(exc).__name__}: "
                             f"{str(exc)[:200]})") from exc
    for vec in _vectorizers(estimator):
        if getattr(vec, _TUPLE_KEYS, None) == "json-list":
            try:
                vec.vocabulary_ = {tuple(json.loads(k)): v for k, v in vec.vocabulary_.items()}
            except (TypeError, ValueError) as exc:
                raise RouterLabError(f"{path}: a text vocabulary key is not a JSON list of "
                                     "tokens; the file was not written by router_lab") from exc
            delattr(vec, _TUPLE_KEYS)
    return estimator
