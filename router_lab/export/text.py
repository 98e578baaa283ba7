"""ONNX conversion of the text router with the raw prompt string as the graph's input.

The graph lower-cases with StringNormalizer under locale "C" (which exists on every device; the
default "en_US.UTF-8" does not, and onnxruntime then refuses to load the model), tokenises with
onnxruntime's Tokenizer (RE2) and counts n-grams with TfIdfVectorizer.  Input: ``text``, a string
tensor of shape [N, 1]; output ``probabilities`` [N, 2], column 1 = P(device answer wrong).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto
from sklearn.pipeline import Pipeline

from router_lab.errors import RouterLabError
from router_lab.train.text import AsciiLowercase, TextCounts

TEXT_INPUT = "text"
STRING_LOCALE = "C"  # present everywhere; makes case folding ASCII-only, as AsciiLowercase does
TEXT_OPSET = 19  # Equal on strings (used by the count features) needs opset >= 19
ML_OPSET = 3
_registered = False


def _lower_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import StringTensorType

    operator.outputs[0].type = StringTensorType([operator.inputs[0].get_first_dimension()])


def _truncate(scope: Any, container: Any, flat: str, max_chars: int) -> str:
    """The first ``max_chars`` characters of each string of ``flat`` [N]: the Tokenizer cuts every
    string into chunks of up to max_chars characters (RE2 reads UTF-8 characters, as Python's
    slicing does) and the first chunk is kept; a column of "" first makes empty strings work."""
    name = scope.get_unique_operator_name
    chunks, padded, first, out = (scope.get_unique_variable_name(v) for v in
                                  ("chunks", "padded", "first_chunk", "bounded_text"))
    pad = scope.get_unique_variable_name("pad_column")
    container.add_node("Tokenizer", flat, chunks, op_domain="com.microsoft", op_version=1,
                       name=name("Tokenizer"), tokenexp=f"(?s).{{1,{int(max_chars)}}}", pad_value="",
                       mark=0, mincharnum=1)
    shape, pad_shape = scope.get_unique_variable_name("shape"), scope.get_unique_variable_name("pad_shape")
    ones = scope.get_unique_variable_name("ones")
    container.add_node("Shape", flat, shape, name=name("Shape"))
    container.add_initializer(ones, TensorProto.INT64, [1], [1])
    container.add_node("Concat", [shape, ones], pad_shape, name=name("Concat"), axis=0)
    empty = scope.get_unique_variable_name("empty_string")
    container.add_initializer(empty, TensorProto.STRING, [1, 1], [b""])
    container.add_node("Expand", [empty, pad_shape], pad, name=name("Expand"))
    container.add_node("Concat", [chunks, pad], padded, name=name("Concat"), axis=1)
    index = scope.get_unique_variable_name("zero")
    container.add_initializer(index, TensorProto.INT64, [], [0])
    container.add_node("Gather", [padded, index], first, name=name("Gather"), axis=1)
    container.add_node("Identity", first, out, name=name("Identity"))
    return out


def _lower_convert(scope: Any, operator: Any, container: Any) -> None:
    shape = scope.get_unique_variable_name("flat_shape")
    flat = scope.get_unique_variable_name("flat_text")
    container.add_initializer(shape, TensorProto.INT64, [1], [-1])
    container.add_node("Reshape", [operator.inputs[0].full_name, shape], flat,
                       name=scope.get_unique_operator_name("Reshape"))
    bound = int(getattr(operator.raw_operator, "max_chars", 0) or 0)
    if bound:
        flat = _truncate(scope, container, flat, bound)
    container.add_node("StringNormalizer", flat, operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("StringNormalizer"), op_version=10,
                       case_change_action="LOWER", is_case_sensitive=True, locale=STRING_LOCALE)


def _counts_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    n_out = len(operator.raw_operator.patterns)
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), n_out])


def _counts_convert(scope: Any, operator: Any, container: Any) -> None:
    # Per pattern: Tokenizer pads rows with "" (it never emits an empty token, mincharnum=1), so
    # a row's match count is its number of non-empty tokens.
    text = operator.inputs[0].full_name
    empty = scope.get_unique_variable_name("empty")
    container.add_initializer(empty, TensorProto.STRING, [], [b""])
    axes = scope.get_unique_variable_name("axes")
    container.add_initializer(axes, TensorProto.INT64, [1], [1])
    one = scope.get_unique_variable_name("one")
    container.add_initializer(one, TensorProto.FLOAT, [], [1.0])
    counts = []
    for pattern in operator.raw_operator.patterns:
        name = scope.get_unique_operator_name
        tokens, is_pad, is_token, as_float, count = (scope.get_unique_variable_name(v) for v in
                                                     ("tokens", "is_pad", "is_token", "as_float", "count"))
        container.add_node("Tokenizer", text, tokens, op_domain="com.microsoft", op_version=1,
                           name=name("Tokenizer"), tokenexp=pattern, pad_value="", mark=0,
                           mincharnum=1)
        container.add_node("Equal", [tokens, empty], is_pad, name=name("Equal"), op_version=19)
        container.add_node("Not", is_pad, is_token, name=name("Not"))
        container.add_node("Cast", is_token, as_float, name=name("Cast"), to=TensorProto.FLOAT)
        container.add_node("ReduceSum", [as_float, axes], count, name=name("ReduceSum"),
                           keepdims=1, op_version=13)
        counts.append(count)
    stacked, plus_one = scope.get_unique_variable_name("counts"), scope.get_unique_variable_name("plus_one")
    container.add_node("Concat", counts, stacked, name=scope.get_unique_operator_name("Concat"), axis=1)
    container.add_node("Add", [stacked, one], plus_one, name=scope.get_unique_operator_name("Add"))
    container.add_node("Log", plus_one, operator.outputs[0].full_name,
                       name=scope.get_unique_operator_name("Log"))


def register_text_converters() -> None:
    """Teach skl2onnx the text router's own steps (idempotent)."""
    global _registered
    if _registered:
        return
    import skl2onnx.sklapi.register  # noqa: F401 - converters of the Traceable vectorizers
    from skl2onnx import update_registered_converter

    update_registered_converter(AsciiLowercase, "RouterLabAsciiLowercase", _lower_shape, _lower_convert)
    update_registered_converter(TextCounts, "RouterLabTextCounts", _counts_shape, _counts_convert)
    _registered = True


def convert_text_router(estimator: Pipeline, metadata: dict[str, str] | None = None,
                        opset: int = TEXT_OPSET) -> onnx.ModelProto:
    """Convert a fitted text router (see router_lab.train.text) to ONNX with a string input.

    ``metadata`` goes into the model's ``metadata_props`` (keys sorted, so output is byte-stable).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.sklapi import TraceableTfidfVectorizer

    if not isinstance(estimator, Pipeline) or not isinstance(estimator.steps[0][1], AsciiLowercase):
        raise RouterLabError(f"text export: got {type(estimator).__name__}; expected the text router "
                             "pipeline made by router=text (router_lab.train.text.make_text_router)")
    register_text_converters()
    classifier = estimator.steps[-1][1]
    options: dict[Any, dict[str, Any]] = {id(classifier): {"zipmap": False},
                                          TraceableTfidfVectorizer: {"tokenexp": ""}}
    try:
        model = convert_sklearn(estimator, "text_router",
                                initial_types=[(TEXT_INPUT, StringTensorType([None, 1]))],
                                options=options, target_opset={"": max(opset, TEXT_OPSET), "ai.onnx.ml": ML_OPSET})
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        raise RouterLabError(f"text export: skl2onnx could not convert the text router ({exc})") from exc
    for key, value in sorted((metadata or {}).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    return model


def text_input(texts: Any) -> np.ndarray:
    """Prompts as the graph's input: an [N, 1] object array of str."""
    arr = np.asarray(texts, dtype=object)
    return arr.reshape(-1, 1)
