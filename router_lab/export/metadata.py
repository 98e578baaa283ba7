"""Finishing an ONNX model for shipping: metadata_props, opsets, names and the doc string.

Everything here is deterministic (no timestamps, no random graph names, sorted metadata), so the
same trained router exported twice gives byte-identical files.
"""

from __future__ import annotations

from typing import Any

import onnx

import router_lab
from router_lab.runtime.schema import SCHEMA_VERSION, encode_metadata


def library_versions() -> dict[str, str]:
    """The converter stack recorded in every export (a pin change shows up in the metadata)."""
    import skl2onnx
    import sklearn

    return {"sklearn_version": sklearn.__version__, "skl2onnx_version": skl2onnx.__version__,
            "onnx_version": onnx.__version__}


def normalise_opsets(model: onnx.ModelProto) -> dict[str, int]:
    """Keep one opset import per domain (the highest; skl2onnx may repeat one) and return them."""
    best: dict[str, int] = {}
    for entry in model.opset_import:
        best[entry.domain] = max(best.get(entry.domain, 0), entry.version)
    del model.opset_import[:]
    for domain in sorted(best):
        model.opset_import.add(domain=domain, version=best[domain])
    return best


def finish_model(model: onnx.ModelProto, values: dict[str, Any], graph_name: str, doc: str) -> onnx.ModelProto:
    """Stamp ``values`` (schema keys, without prefix) and the fixed names into ``model`` in place."""
    opsets = normalise_opsets(model)
    model.graph.name = graph_name
    model.doc_string = doc
    model.producer_name = "router_lab"
    model.producer_version = router_lab.__version__
    full = {"schema_version": SCHEMA_VERSION, **library_versions(), **values, "opset": opsets}
    del model.metadata_props[:]
    for key, text in sorted(encode_metadata(full).items()):
        model.metadata_props.add(key=key, value=text)
    return model
