"""ONNX conversion of the text router with the raw prompt string as the graph's input.

The graph must give scikit-learn's numbers in every runtime, and runtimes differ in their string
handling: onnxruntime-web (WebAssembly, musl) lower-cases all of Unicode where desktop onnxruntime
under the "C" locale folds only A–Z (so "İ" and the Kelvin sign "K" become ASCII "i" / "k" in one and
not the other), and a JavaScript string reaches the WebAssembly runtime as a C string, cut at its
first NUL.  So the graph (1) reads the prompt up to its first NUL (StringSplit),
exactly as ``AsciiLowercase`` does, and (2) never lower-cases non-ASCII text: every tokenizer runs
on the raw prompt with case-insensitive ASCII classes, word tokens (ASCII only) are lower-cased by
StringNormalizer under locale "C" (which exists on every device; skl2onnx's default "en_US.UTF-8"
does not, and onnxruntime then refuses the model), and character tokens by a LabelEncoder that
maps A–Z to a–z and leaves every other character alone.  Tokenising is onnxruntime's Tokenizer
(RE2), n-gram counting TfIdfVectorizer.  Input: ``text``, a string tensor [N, 1]; output
``probabilities`` [N, 2], column 1 = the routing score (what router.label learns; see router_lab/train/artifacts.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto
from sklearn.pipeline import Pipeline

from router_lab.errors import RouterLabError
from router_lab.train.text import (
    CHAR_PATTERN,
    COUNT_PATTERNS,
    WORD_PATTERN,
    AsciiLowercase,
    TextCounts,
)

TEXT_INPUT = "text"
STRING_LOCALE = "C"  # present everywhere; makes case folding ASCII-only, as AsciiLowercase does
TEXT_OPSET = 20  # StringSplit (the NUL cut) needs 20; Equal on strings 19
CUT_NODE = "router_lab_cut_at_nul"
# Each tokenizer's pattern as it runs on the raw prompt: the same tokens, of either ASCII case.
RAW_PATTERNS: dict[str, str] = {p: p.replace("a-z", "A-Za-z")
                                for p in (WORD_PATTERN, CHAR_PATTERN, *COUNT_PATTERNS.values())}
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
    """AsciiLowercase in the graph: the prompt up to its first NUL; case is folded per token (below)."""
    names = scope.get_unique_variable_name
    shape, flat, parts, lengths, axis, false, empty, column, pad, padded, first = (names(v) for v in (
        "flat_shape", "flat_text", "nul_parts", "nul_lengths", "axis", "false", "empty", "text_column",
        "pad", "padded_parts", "first_part"))
    container.add_initializer(shape, TensorProto.INT64, [1], [-1])
    container.add_initializer(axis, TensorProto.INT64, [1], [1])
    container.add_initializer(false, TensorProto.BOOL, [], [False])
    container.add_initializer(empty, TensorProto.STRING, [], [b""])
    container.add_initializer(first, TensorProto.INT64, [], [0])
    op = scope.get_unique_operator_name
    container.add_node("Reshape", [operator.inputs[0].full_name, shape], flat, name=op("Reshape"))
    bound = int(getattr(operator.raw_operator, "max_chars", 0) or 0)
    if bound:  # the first max_chars characters, then the NUL cut (prefix cuts commute)
        flat = _truncate(scope, container, flat, bound)
    # split once at NUL: [N, k] parts, k = 0 when every prompt is empty, so add a column of ""
    # and take column 0 -- the text before the first NUL ("" for an empty prompt)
    container.add_node("StringSplit", flat, [parts, lengths], name=CUT_NODE, op_version=20,
                       delimiter="\x00", maxsplit=1)
    container.add_node("Unsqueeze", [flat, axis], column, name=op("Unsqueeze"), op_version=13)
    container.add_node("Where", [false, column, empty], pad, name=op("Where"), op_version=16)
    container.add_node("Concat", [parts, pad], padded, name=op("Concat"), axis=1, op_version=13)
    container.add_node("Gather", [padded, first], operator.outputs[0].full_name, axis=1, name=op("Gather"),
                       op_version=13)


def _fold_case_nodes(tokens: str, text: str, pattern: str, out: str, graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes lower-casing A–Z (only) in a Tokenizer's [N, T] output ``tokens`` into ``out``."""
    from onnx import helper

    def name(suffix: str) -> str:
        return f"{tokens}_{suffix}"

    empty = name("empty")
    graph.initializer.append(helper.make_tensor(empty, TensorProto.STRING, [], [b""]))
    if pattern == CHAR_PATTERN:  # one character per token: A–Z -> a–z, every other character kept
        upper = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
        return [
            helper.make_node("LabelEncoder", [tokens], [name("az_to_lower")], domain="ai.onnx.ml",
                             name=name("LabelEncoder"), keys_strings=upper,
                             values_strings=[c.lower() for c in upper], default_string=""),
            helper.make_node("Equal", [name("az_to_lower"), empty], [name("not_upper")], name=name("Equal")),
            helper.make_node("Where", [name("not_upper"), tokens, name("az_to_lower")], [out], name=name("Where")),
        ]
    # ASCII-only tokens: StringNormalizer folds them identically in every runtime.  It takes
    # [1, C]: flatten, with an extra pad column (from the prompt itself) so that C > 0 even for a
    # batch of token-less prompts.
    flat_shape, axis, false = name("flat_shape"), name("axis"), name("false")
    graph.initializer.extend([helper.make_tensor(flat_shape, TensorProto.INT64, [2], [1, -1]),
                              helper.make_tensor(axis, TensorProto.INT64, [1], [1]),
                              helper.make_tensor(false, TensorProto.BOOL, [], [False])])
    return [
        helper.make_node("Unsqueeze", [text, axis], [name("text_column")], name=name("Unsqueeze")),
        helper.make_node("Where", [false, name("text_column"), empty], [name("pad")], name=name("Where")),
        helper.make_node("Concat", [tokens, name("pad")], [name("padded")], axis=1, name=name("Concat")),
        helper.make_node("Shape", [name("padded")], [name("shape")], name=name("Shape")),
        helper.make_node("Reshape", [name("padded"), flat_shape], [name("row")], name=name("Reshape")),
        helper.make_node("StringNormalizer", [name("row")], [name("lowered_row")], name=name("StringNormalizer"),
                         case_change_action="LOWER", is_case_sensitive=True, locale=STRING_LOCALE),
        helper.make_node("Reshape", [name("lowered_row"), name("shape")], [out], name=name("Reshape_back")),
    ]


def fold_case_per_token(model: onnx.ModelProto) -> None:
    """Make every tokenizer read the raw (NUL-cut) prompt with its case-insensitive pattern, and
    lower-case A–Z in the tokens that feed the n-gram counts (see the module docstring)."""
    from onnx import helper

    graph = model.graph
    cut = next(n for n in graph.node if n.name == CUT_NODE)
    concat = next(n for n in graph.node if cut.output[0] in n.input and n.op_type == "Concat")
    text = next(n for n in graph.node if concat.output[0] in n.input).output[0]  # the Gather: column 0
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "Tokenizer" or node.input[0] != text:
            continue
        attr = next(a for a in node.attribute if a.name == "tokenexp")
        pattern = attr.s.decode()
        if pattern not in RAW_PATTERNS:
            raise RouterLabError(f"text export: token pattern {pattern!r} has no runtime-neutral form; "
                                 f"expected one of {sorted(RAW_PATTERNS)}")
        attr.s = RAW_PATTERNS[pattern].encode()
        users = consumers.get(node.output[0], [])
        if not any(u.op_type == "Flatten" for u in users):
            continue  # a count: the number of tokens does not depend on their case
        if pattern != CHAR_PATTERN and not _ascii_only(pattern):
            raise RouterLabError(f"text export: n-gram token pattern {pattern!r} may match non-ASCII text; "
                                 "expected an ASCII class or one character per token")
        folded = f"{node.output[0]}_ascii_lower"
        # onnx's shape inference knows no com.microsoft Tokenizer: state its output type, or the
        # LabelEncoder's inference reads a missing type (onnx 1.23 crashes)
        graph.value_info.append(helper.make_tensor_value_info(node.output[0], TensorProto.STRING, [None, None]))
        nodes.extend(_fold_case_nodes(node.output[0], text, pattern, folded, graph))
        for user in users:
            user.input[:] = [folded if i == node.output[0] else i for i in user.input]
    del graph.node[:]
    graph.node.extend(nodes)
    for entry in model.opset_import:  # LabelEncoder on strings (keys_strings) needs ai.onnx.ml 2
        if entry.domain == "ai.onnx.ml":
            entry.version = max(entry.version, 2)


def sublinear_tf_as_sklearn(model: onnx.ModelProto) -> None:
    """Make sublinear term frequencies scikit-learn's 1 + log(tf), 0 where tf = 0.

    skl2onnx 1.20 converts ``sublinear_tf=True`` as log(1 + tf), which is not what scikit-learn
    computes (a term seen once weighs 1, not log 2).  Every ``TfIdfVectorizer -> Add(ones) -> Log``
    becomes log(max(e * tf, 1)): the counts are whole numbers, so that is log(e * tf) = 1 + log(tf)
    for a present term and log(1) = 0 for an absent one (no runtime sees log(0)), in as many
    elementwise passes over the vocabulary as skl2onnx's form plus one.  A graph without
    sublinear terms is left as it is."""
    from onnx import helper, numpy_helper

    graph = model.graph
    ones = {i.name for i in graph.initializer if np.all(numpy_helper.to_array(i) == 1.0)}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    rewrite: dict[str, list[onnx.NodeProto]] = {}  # the Add's output -> the nodes replacing Add + Log
    dropped: set[str] = set()  # the Logs' outputs
    for add in graph.node:
        source = producer.get(add.input[0]) if add.op_type == "Add" and len(add.input) == 2 else None
        users = consumers.get(add.output[0], []) if source is not None else []
        if source is None or source.op_type != "TfIdfVectorizer" or add.input[1] not in ones \
                or len(users) != 1 or users[0].op_type != "Log":
            continue
        tf, out, base = add.input[0], users[0].output[0], add.output[0]
        e, one, scaled, floored = (f"{base}_{k}" for k in ("e", "one", "e_tf", "at_least_one"))
        graph.initializer.extend([helper.make_tensor(e, TensorProto.FLOAT, [], [float(np.e)]),
                                  helper.make_tensor(one, TensorProto.FLOAT, [], [1.0])])
        rewrite[base] = [
            helper.make_node("Mul", [tf, e], [scaled], name=f"{scaled}_Mul"),
            helper.make_node("Max", [scaled, one], [floored], name=f"{floored}_Max"),
            helper.make_node("Log", [floored], [out], name=f"{out}_Log"),
        ]
        dropped.add(out)
    if not rewrite:
        return
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type == "Log" and node.output[0] in dropped:
            continue
        nodes.extend(rewrite.get(node.output[0], [node]) if node.op_type == "Add" else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [i for i in graph.initializer if i.name in used or i.name not in ones]
    del graph.initializer[:]
    graph.initializer.extend(kept)  # skl2onnx's vector of ones, now unused


def _ascii_only(pattern: str) -> bool:
    return pattern.startswith("[") and pattern.endswith("]+") and pattern.isascii() and "^" not in pattern


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
    fold_case_per_token(model)
    sublinear_tf_as_sklearn(model)
    for key, value in sorted((metadata or {}).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    return model


def text_input(texts: Any) -> np.ndarray:
    """Prompts as the graph's input: an [N, 1] object array of str."""
    arr = np.asarray(texts, dtype=object)
    return arr.reshape(-1, 1)
