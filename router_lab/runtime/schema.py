"""The metadata an exported router carries in its ONNX ``metadata_props`` (schema version 2).

Export writes these keys and the device runtime reads them; both sides import the names from here,
so the file format is defined in one place.  Values are strings; lists and dicts are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from router_lab.errors import RouterLabError

SCHEMA_VERSION = 2  # 2: threshold_output (the compiled threshold as an output) and calibration
PREFIX = "router_lab."

# Every export carries these keys (JSON-encoded where the value is not a plain string).
REQUIRED_KEYS = (
    "schema_version",  # this format's version ("2")
    "kind",  # "router" (router graph) or "device_graph" (device model + router in one graph)
    "input_name",  # the graph's single input
    "input_dtype",  # "float32" (a row of features) or "string" (raw text)
    "feature_names",  # JSON list: the input's columns, in order (["text"] for text routers)
    "mode",  # the router's feature mode: input | input+confidence | text
    "threshold",  # the routing threshold compiled into the graph (cloud when score >= it)
    "target",  # JSON: the target the threshold was chosen for
    "estimator",  # the router estimator's registry name
    "dataset_name",
    "dataset_hash",  # content sha256 of the dataset the router was trained on
    "sklearn_version",
    "skl2onnx_version",
    "onnx_version",
    "opset",  # JSON: {"": N, "ai.onnx.ml": M}, the opsets the graph imports
    "score_output",  # name of the output holding the routing score (meaning per router.label), float32 [N]
    "decision_output",  # name of the output holding the decision, bool [N] (True = cloud)
    "threshold_output",  # name of the output holding the threshold constant the decision uses,
    # float32 []; the runtime checks it equals "threshold" when it loads the model
    "calibration",  # the router's probability calibration: none | sigmoid (isotonic never exports)
)
KINDS = ("router", "device_graph")
INPUT_DTYPES = ("float32", "string")
JSON_KEYS = frozenset({"feature_names", "target", "opset", "router_feature_names", "device_classes",
                       "outputs", "models"})
# Optional, a per-model quality router (N-model policies): "qualities_output", the output holding the
# predicted quality of each model, float32 [N, M]; "models", JSON list of the M models in tier order.


def encode_metadata(values: dict[str, Any]) -> dict[str, str]:
    """Prefixed string values for ``metadata_props`` (JSON for lists/dicts, repr for floats)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if key in JSON_KEYS:
            text = json.dumps(value, sort_keys=True)
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value)
        out[PREFIX + key] = text
    return out


def decode_metadata(props: dict[str, str], source: str) -> dict[str, Any]:
    """The router_lab metadata of a model (prefix removed, JSON decoded); one-line errors."""
    values = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
    if "schema_version" not in values:
        raise RouterLabError(f"{source}: not a router_lab export (no '{PREFIX}schema_version' in its "
                             "ONNX metadata); expected a file written by 'router-lab export'")
    if values["schema_version"] != str(SCHEMA_VERSION):
        raise RouterLabError(f"{source}: metadata schema_version is {values['schema_version']!r}; "
                             f"this runtime reads version {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in values]
    if missing:
        raise RouterLabError(f"{source}: metadata lacks {', '.join(PREFIX + k for k in missing)}")
    decoded: dict[str, Any] = {}
    for key, text in values.items():
        try:
            decoded[key] = json.loads(text) if key in JSON_KEYS else text
        except ValueError as exc:
            raise RouterLabError(f"{source}: metadata '{PREFIX}{key}' is not valid JSON ({exc})") from exc
    try:
        decoded["threshold"] = float(decoded["threshold"])
        decoded["schema_version"] = int(decoded["schema_version"])
    except ValueError as exc:
        raise RouterLabError(f"{source}: metadata '{PREFIX}threshold' is {values['threshold']!r}; "
                             "expected a number") from exc
    if decoded["kind"] not in KINDS or decoded["input_dtype"] not in INPUT_DTYPES:
        raise RouterLabError(f"{source}: metadata kind/input_dtype is {decoded['kind']!r}/"
                             f"{decoded['input_dtype']!r}; expected one of {KINDS} / {INPUT_DTYPES}")
    names = decoded["feature_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RouterLabError(f"{source}: metadata '{PREFIX}feature_names' is {names!r}; "
                             "expected a non-empty JSON list of column names")
    return decoded
