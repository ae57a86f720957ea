"""ONNX graphs for MXNet models, built from the project's own MXNet readers with ``onnx.helper`` (no MXNet import).
Private to :mod:`exporters.onnx`.

What is read (``artifact_tools/formats/mxnet.py`` reads the NDArray lists and symbol JSON,
``artifact_tools/formats/sagemaker_builtins.py`` says which member plays which role):

- Linear Learner and Factorization Machines: ``model_algo-<host>`` is a zip holding the symbol JSON and the params
  NDArray list; the symbol graph is translated op by op (:class:`Translator`), the ``row_sparse`` weights of
  Factorization Machines made dense (``formats.mxnet.load_arrays``) and its ``csr`` data input taken dense.
  The outputs then follow the built-in's response, as ``loaders/mxnet.py`` documents it: ``score`` (the output's
  first column, or the softmax row of a multiclass model) and, for classifiers, ``predicted_label``
  (``score > threshold`` of ``additional-params.json`` — 0.5 for Factorization Machines —, argmax for multiclass).
- Neural Topic Model: the same zip; the encoder up to its ``mean`` layer, output ``mean``.
- k-means: the one (k x dim) centroid array of ``model_algo-<host>``; outputs ``closest_cluster`` (int64) and
  ``distance_to_cluster`` (Euclidean), computed in float64 as the loader does (``|x|² - 2 x·c + |c|²``, clamped at
  0; float32 would lose the small distances to cancellation).
- PCA: ``v`` and, when present, ``mean``; output ``projection`` = ``(x - mean) @ v`` (float32).
- Gluon ``export`` / Module checkpoints (``X-symbol.json`` + ``X-NNNN.params``): the symbol graph translated, one
  output per head, named after the head node.

The MXNet operator semantics followed (attribute names and defaults) are those of apache/mxnet 1.9
``src/operator``: ``nn/fully_connected.cc`` (``flatten`` default true: the input is reshaped to 2-D; weight
``(num_hidden, k)``), ``tensor/dot.cc`` (``transpose_a``/``transpose_b``), ``nn/convolution.cc`` (``kernel``,
``stride``, ``dilate``, ``pad``, ``num_group``, ``no_bias``), ``nn/pooling.cc`` (``pool_type``, ``global_pool``,
``pooling_convention`` ``valid``/``full``, ``count_include_pad`` default true), ``nn/batch_norm.cc`` (``eps``
default 1e-3, ``fix_gamma`` default true: gamma taken as 1), ``nn/activation.cc``, the ``*RegressionOutput`` /
``SoftmaxOutput`` loss layers (forward: identity, sigmoid, softmax; their labels unused), ``tensor/square_sum.cc``.
An op outside this table is refused with one sentence naming it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotLoadable
from artifact_tools.formats import mxnet as mxformat

OPSET = 17


@dataclass
class Built:
    """An ONNX model and the names of its outputs, in the order the source model's prediction lists them."""

    model: Any  # onnx.ModelProto
    outputs: list[str]
    notes: list[str] = field(default_factory=list)


def _onnx():
    from loaders.base import require

    return require("onnx", "onnx")


def _attrs(node: dict) -> dict:
    attrs = node.get("attrs", node.get("attr", node.get("param")))
    return attrs if isinstance(attrs, dict) else {}


def _flag(attrs: dict, key: str, default: bool = False) -> bool:
    return str(attrs.get(key, default)).strip().lower() in ("true", "1")


def _ints(text: Any) -> list[int]:
    """``"(3, 3)"`` / ``"[1,1]"`` / ``"2"`` -> list of ints (MXNet writes tuples as text)."""
    cleaned = str(text).strip("()[] ")
    return [int(p) for p in cleaned.split(",") if p.strip() and p.strip() != "None"]


def _float(attrs: dict, key: str, default: float) -> float:
    try:
        return float(attrs.get(key, default))
    except (TypeError, ValueError):
        raise CorruptArtifact(f"the MXNet attribute {key}={attrs.get(key)!r} is not a number") from None


class Translator:
    """Translate an MXNet symbol graph into ONNX nodes and initializers.

    ``weights`` are the params (names without ``arg:``/``aux:``), dense numpy; ``inputs`` maps each data input to
    its ONNX shape (``None`` for a free dimension). Labels of loss layers are left out: their forward pass ignores
    them. Only the nodes the heads depend on are translated.
    """

    def __init__(self, graph: dict, weights: dict[str, np.ndarray], inputs: dict[str, list]):
        self.onnx = _onnx()
        self.h = self.onnx.helper
        self.nodes_json = graph["nodes"]
        self.heads = graph["heads"]
        self.weights = weights
        self.inputs = inputs
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict[tuple[int, int], str] = {}
        self.ranks: dict[str, int | None] = {}
        self._count = 0

    # ----------------------------------------------------------------------------------------- helpers

    def fresh(self, base: str) -> str:
        self._count += 1
        return f"{base}__{self._count}"

    def const(self, value: Any, base: str, dtype: Any = np.float32) -> str:
        name = self.fresh(base)
        arr = np.asarray(value, dtype=dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        self.ranks[name] = arr.ndim
        return name

    def add(self, op: str, inputs: list[str], base: str, rank: int | None = None, **attrs: Any) -> str:
        out = self.fresh(base)
        self.nodes.append(self.h.make_node(op, inputs, [out], name=out, **attrs))
        self.ranks[out] = rank
        return out

    # ----------------------------------------------------------------------------------------- graph

    def _needed(self) -> set[int]:
        seen: set[int] = set()
        stack = [h[0] for h in self.heads]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            node = self.nodes_json[i]
            entries = node.get("inputs", [])
            if node["op"] in _LOSS:
                entries = entries[:1]  # the label is not used outside training
            stack.extend(e[0] for e in entries)
        return seen

    def translate(self) -> list[str]:
        """Translate every node the heads need; returns the ONNX names of the heads' values."""
        needed = self._needed()
        for i, node in enumerate(self.nodes_json):
            if i not in needed:
                continue
            if any(e[0] >= i for e in node.get("inputs", [])):
                raise CorruptArtifact("the MXNet graph is not in topological order: a node reads a later node")
            op, name = node["op"], node["name"]
            if op == "null":
                self.names[(i, 0)] = self._variable(name)
                continue
            handler = _OPS.get(op)
            if handler is None:
                raise NotLoadable(f"the MXNet op {op} (node {name}) has no ONNX translation in artifact-tools")
            args = [self.names[(e[0], e[1] if len(e) > 1 else 0)] for e in node.get("inputs", [])
                    if (e[0], e[1] if len(e) > 1 else 0) in self.names]
            self.names[(i, 0)] = handler(self, _attrs(node), args, name)
        return [self.names[(h[0], h[1] if len(h) > 1 else 0)] for h in self.heads]

    def _variable(self, name: str) -> str:
        if name in self.inputs:
            self.ranks[name] = len(self.inputs[name])
            return name
        if name not in self.weights:
            raise CorruptArtifact(f"the MXNet graph needs parameter {name}, which the params file lacks")
        arr = self.weights[name]
        arr = arr.astype(np.float32) if arr.dtype in (np.float16, np.float64) else arr
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name))
        self.ranks[name] = arr.ndim
        return name

    def model(self, outputs: list[tuple[str, str, Any, list]], producer: str):
        """The ONNX model with graph inputs ``self.inputs`` (float32) and ``outputs`` (name, value, element type,
        shape): each value is renamed to its output name with an Identity."""
        TP = self.onnx.TensorProto
        graph_inputs = [self.h.make_tensor_value_info(n, TP.FLOAT, [d if d is not None else ("batch" if k == 0
                                                                                               else f"{n}_{k}")
                                                                     for k, d in enumerate(shape)])
                        for n, shape in self.inputs.items()]
        graph_outputs = []
        for out_name, value, elem, shape in outputs:
            self.nodes.append(self.h.make_node("Identity", [value], [out_name], name=f"{out_name}__output"))
            graph_outputs.append(self.h.make_tensor_value_info(out_name, elem, shape))
        graph = self.h.make_graph(self.nodes, "mxnet", graph_inputs, graph_outputs, self.initializers)
        model = self.h.make_model(graph, producer_name="artifact-tools", producer_version=producer,
                                  opset_imports=[self.h.make_opsetid("", OPSET)])
        model.ir_version = min(model.ir_version, 8)  # IR 8 goes with opset 17 (onnx/helper.py VERSION_TABLE)
        return model


# ----------------------------------------------------------------------------------------------- ops

_LOSS = {"LinearRegressionOutput": "Identity", "MAERegressionOutput": "Identity", "SVMOutput": "Identity",
         "LogisticRegressionOutput": "Sigmoid", "SoftmaxOutput": "Softmax"}


def _rank(t: Translator, *names: str) -> int | None:
    ranks = [r for r in (t.ranks.get(n) for n in names) if r is not None]
    return max(ranks) if len(ranks) == len(names) else None


def _binary(onnx_op: str):
    def run(t: Translator, attrs: dict, args: list[str], name: str) -> str:
        return t.add(onnx_op, args[:2], name, _rank(t, *args[:2]))

    return run


def _unary(onnx_op: str, **fixed: Any):
    def run(t: Translator, attrs: dict, args: list[str], name: str) -> str:
        return t.add(onnx_op, args[:1], name, t.ranks.get(args[0]), **fixed)

    return run


def _scalar(onnx_op: str, reverse: bool = False):
    def run(t: Translator, attrs: dict, args: list[str], name: str) -> str:
        c = t.const(_float(attrs, "scalar", 0.0), f"{name}_scalar")
        return t.add(onnx_op, [c, args[0]] if reverse else [args[0], c], name, t.ranks.get(args[0]))

    return run


def _dot(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    a, b = args[:2]
    if t.ranks.get(a) not in (1, 2, None) or t.ranks.get(b) not in (1, 2, None):
        raise NotLoadable(f"the MXNet dot {name} multiplies arrays of more than 2 dimensions, which artifact-tools "
                          "does not translate")
    if _flag(attrs, "transpose_a"):
        a = t.add("Transpose", [a], f"{name}_ta", 2, perm=[1, 0])
    if _flag(attrs, "transpose_b"):
        b = t.add("Transpose", [b], f"{name}_tb", 2, perm=[1, 0])
    return t.add("MatMul", [a, b], name, 2)


def _fully_connected(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    x, w = args[:2]
    bias = args[2] if len(args) > 2 and not _flag(attrs, "no_bias") else None
    if _flag(attrs, "flatten", True):
        x = t.add("Flatten", [x], f"{name}_flat", 2, axis=1)
        return t.add("Gemm", [x, w] + ([bias] if bias else []), name, 2, transB=1)
    wt = t.add("Transpose", [w], f"{name}_wt", 2, perm=[1, 0])
    y = t.add("MatMul", [x, wt], f"{name}_mm", t.ranks.get(x))
    return t.add("Add", [y, bias], name, t.ranks.get(x)) if bias else y


def _reduce(onnx_op: str):
    def run(t: Translator, attrs: dict, args: list[str], name: str) -> str:
        x = args[0]
        text = str(attrs.get("axis", "None")).strip("()[] ")
        axes = [int(a) for a in text.split(",") if a.strip()] if text not in ("", "None") else []
        keep = 1 if _flag(attrs, "keepdims") else 0
        rank = t.ranks.get(x)
        if _flag(attrs, "exclude") and axes:
            if rank is None:
                raise NotLoadable(f"the MXNet {name} reduces over excluded axes of an input of unknown rank")
            axes = [a for a in range(rank) if a not in {b % rank for b in axes}]
        out_rank = None if rank is None else (rank if keep else (rank - len(axes) if axes else 0))
        if not axes:
            return t.add(onnx_op, [x], name, out_rank, keepdims=keep)
        if onnx_op != "ReduceSum":  # axes is an attribute of the other reductions up to opset 17
            return t.add(onnx_op, [x], name, out_rank, keepdims=keep, axes=axes)
        return t.add(onnx_op, [x, t.const(axes, f"{name}_axes", np.int64)], name, out_rank, keepdims=keep)

    return run


def _square_sum(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    sq = t.add("Mul", [args[0], args[0]], f"{name}_sq", t.ranks.get(args[0]))
    return _reduce("ReduceSum")(t, attrs, [sq], name)


def _square(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    return t.add("Mul", [args[0], args[0]], name, t.ranks.get(args[0]))


def _concat(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    return t.add("Concat", args, name, _rank(t, *args), axis=int(attrs.get("dim", 1)))


def _loss(t: Translator, attrs: dict, args: list[str], name: str, op: str) -> str:
    x = args[0]
    if op == "Softmax":
        if not _flag(attrs, "multi_output") and t.ranks.get(x) not in (2, None):
            x = t.add("Flatten", [x], f"{name}_flat", 2, axis=1)
        return t.add("Softmax", [x], name, t.ranks.get(x), axis=1 if _flag(attrs, "multi_output") else -1)
    return t.add(op, [x], name, t.ranks.get(x))


def _loss_op(kind: str):
    def run(t: Translator, attrs: dict, args: list[str], name: str) -> str:
        return _loss(t, attrs, args, name, kind)

    return run


_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softrelu": "Softplus", "softsign": "Softsign"}


def _activation(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    kind = str(attrs.get("act_type", "relu"))
    if kind not in _ACTIVATIONS:
        raise NotLoadable(f"the MXNet Activation {name} uses act_type={kind}, which artifact-tools does not translate")
    return t.add(_ACTIVATIONS[kind], args[:1], name, t.ranks.get(args[0]))


def _leaky_relu(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    kind = str(attrs.get("act_type", "leaky"))
    slope = _float(attrs, "slope", 0.25)
    if kind == "leaky":
        return t.add("LeakyRelu", args[:1], name, t.ranks.get(args[0]), alpha=slope)
    if kind == "elu":
        return t.add("Elu", args[:1], name, t.ranks.get(args[0]), alpha=slope)
    if kind == "prelu" and len(args) > 1:  # gamma (C,) broadcast over axis 1
        rank = t.ranks.get(args[0]) or 2
        shape = t.const([-1] + [1] * (rank - 2), f"{name}_shape", np.int64)
        gamma = t.add("Reshape", [args[1], shape], f"{name}_gamma", rank - 1)
        return t.add("PRelu", [args[0], gamma], name, rank)
    raise NotLoadable(f"the MXNet LeakyReLU {name} uses act_type={kind}, which artifact-tools does not translate")


def _softmax(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    text = str(attrs.get("axis", "-1"))
    return t.add("Softmax", args[:1], name, t.ranks.get(args[0]), axis=int(text) if text.lstrip("-").isdigit() else -1)


def _spatial(attrs: dict, key: str, n: int, default: int) -> list[int]:
    values = _ints(attrs.get(key, "")) if key in attrs else []
    return values if len(values) == n else [default] * n


def _convolution(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    kernel = _ints(attrs.get("kernel", ""))
    if not kernel:
        raise CorruptArtifact(f"the MXNet Convolution {name} has no kernel attribute")
    n = len(kernel)
    pad = _spatial(attrs, "pad", n, 0)
    inputs = args[:2] + ([args[2]] if len(args) > 2 and not _flag(attrs, "no_bias") else [])
    return t.add("Conv", inputs, name, n + 2, kernel_shape=kernel, strides=_spatial(attrs, "stride", n, 1),
                 dilations=_spatial(attrs, "dilate", n, 1), pads=pad + pad, group=int(attrs.get("num_group", 1)))


def _pooling(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    kind = str(attrs.get("pool_type", "max"))
    rank = t.ranks.get(args[0])
    if kind not in ("max", "avg"):
        raise NotLoadable(f"the MXNet Pooling {name} uses pool_type={kind}, which artifact-tools does not translate")
    if _flag(attrs, "global_pool"):
        return t.add("GlobalMaxPool" if kind == "max" else "GlobalAveragePool", args[:1], name, rank)
    kernel = _ints(attrs.get("kernel", ""))
    n = len(kernel)
    pad = _spatial(attrs, "pad", n, 0)
    extra: dict[str, Any] = {"kernel_shape": kernel, "strides": _spatial(attrs, "stride", n, 1), "pads": pad + pad,
                             "ceil_mode": 1 if str(attrs.get("pooling_convention", "valid")) == "full" else 0}
    if kind == "avg":
        extra["count_include_pad"] = 1 if _flag(attrs, "count_include_pad", True) else 0
    return t.add("MaxPool" if kind == "max" else "AveragePool", args[:1], name, rank, **extra)


def _batch_norm(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    if int(attrs.get("axis", 1)) != 1:
        raise NotLoadable(f"the MXNet BatchNorm {name} normalizes axis {attrs.get('axis')}; only axis 1 is translated")
    x, gamma, beta, mean, var = args[:5]
    if _flag(attrs, "fix_gamma", True):  # gamma is fixed at 1 (batch_norm.cc)
        size = t.weights[gamma].shape if gamma in t.weights else None
        if size is None:
            raise NotLoadable(f"the MXNet BatchNorm {name} fixes gamma of unknown size")
        gamma = t.const(np.ones(size, dtype=np.float32), f"{name}_gamma1")
    return t.add("BatchNormalization", [x, gamma, beta, mean, var], name, t.ranks.get(x),
                 epsilon=_float(attrs, "eps", 1e-3))


def _reshape(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    shape = _ints(attrs.get("shape", ""))
    if any(d < -1 for d in shape) or _flag(attrs, "reverse"):
        raise NotLoadable(f"the MXNet Reshape {name} uses special shape codes {shape}, which artifact-tools does not "
                          "translate")
    return t.add("Reshape", [args[0], t.const(shape, f"{name}_shape", np.int64)], name, len(shape))


def _transpose(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    axes = _ints(attrs.get("axes", ""))
    return t.add("Transpose", args[:1], name, t.ranks.get(args[0]), **({"perm": axes} if axes else {}))


def _expand_dims(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    rank = t.ranks.get(args[0])
    return t.add("Unsqueeze", [args[0], t.const([int(attrs.get("axis", 0))], f"{name}_axes", np.int64)], name,
                 None if rank is None else rank + 1)


def _clip(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    lo, hi = t.const(_float(attrs, "a_min", -np.inf), f"{name}_min"), t.const(_float(attrs, "a_max", np.inf),
                                                                               f"{name}_max")
    return t.add("Clip", [args[0], lo, hi], name, t.ranks.get(args[0]))


def _embedding(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    ids = t.add("Cast", args[:1], f"{name}_ids", t.ranks.get(args[0]), to=t.onnx.TensorProto.INT64)
    rank = t.ranks.get(args[0])
    return t.add("Gather", [args[1], ids], name, None if rank is None else rank + 1, axis=0)


def _flatten(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    return t.add("Flatten", args[:1], name, 2, axis=1)


def _cast(t: Translator, attrs: dict, args: list[str], name: str) -> str:
    if str(attrs.get("dtype", "float32")) not in ("float32", "float16", "float64"):
        raise NotLoadable(f"the MXNet Cast {name} casts to {attrs.get('dtype')}, which artifact-tools does not "
                          "translate")
    return t.add("Identity", args[:1], name, t.ranks.get(args[0]))  # the graph runs in float32


_OPS: dict[str, Any] = {
    "dot": _dot, "FullyConnected": _fully_connected,
    **{op: _binary("Add") for op in ("broadcast_add", "broadcast_plus", "elemwise_add", "_plus", "_Plus")},
    **{op: _binary("Sub") for op in ("broadcast_sub", "broadcast_minus", "elemwise_sub", "_minus", "_Minus")},
    **{op: _binary("Mul") for op in ("broadcast_mul", "elemwise_mul", "_mul", "_Mul")},
    **{op: _binary("Div") for op in ("broadcast_div", "elemwise_div", "_div", "_Div")},
    "_mul_scalar": _scalar("Mul"), "_plus_scalar": _scalar("Add"), "_minus_scalar": _scalar("Sub"),
    "_rminus_scalar": _scalar("Sub", reverse=True), "_div_scalar": _scalar("Div"),
    "_rdiv_scalar": _scalar("Div", reverse=True),
    "negative": _unary("Neg"), "square": _square, "sqrt": _unary("Sqrt"), "exp": _unary("Exp"), "log": _unary("Log"),
    "abs": _unary("Abs"), "relu": _unary("Relu"), "sigmoid": _unary("Sigmoid"), "tanh": _unary("Tanh"),
    "sum": _reduce("ReduceSum"), "mean": _reduce("ReduceMean"), "max": _reduce("ReduceMax"), "_square_sum": _square_sum,
    "Concat": _concat, "concat": _concat,
    **{op: _loss_op(kind) for op, kind in _LOSS.items()},
    "Activation": _activation, "LeakyReLU": _leaky_relu, "softmax": _softmax, "SoftmaxActivation": _softmax,
    "Convolution": _convolution, "Pooling": _pooling, "BatchNorm": _batch_norm,
    "Flatten": _flatten, "flatten": _flatten, "Reshape": _reshape, "reshape": _reshape, "transpose": _transpose,
    "expand_dims": _expand_dims, "clip": _clip, "Embedding": _embedding, "Cast": _cast, "cast": _cast,
    **{op: _unary("Identity") for op in ("Dropout", "_copy", "identity", "BlockGrad", "stop_gradient",
                                         "cast_storage")},
}


# ----------------------------------------------------------------------------------------------- models

def _graph(symbol: bytes) -> dict:
    if not mxformat.is_symbol_json(symbol):
        raise CorruptArtifact("the MXNet symbol file is not a symbol graph")
    return json.loads(symbol)


def _weights(params: bytes) -> dict[str, np.ndarray]:
    return {mxformat.strip_prefix(k): v for k, v in mxformat.load_arrays(params).items()}


def linear_learner(symbol: bytes, params: bytes, feature_dim: int, predictor: str | None, threshold: float | None,
                   producer: str) -> Built:
    """Linear Learner: the graph, then ``score`` and ``predicted_label`` as the built-in answers."""
    return _builtin_head(symbol, params, feature_dim, predictor, 0.5 if threshold is None else float(threshold),
                         producer)


def factorization_machines(symbol: bytes, params: bytes, feature_dim: int, predictor: str | None,
                           producer: str) -> Built:
    """Factorization Machines: the graph on dense rows (threshold 0.5 for the binary classifier, as the loader)."""
    return _builtin_head(symbol, params, feature_dim, predictor, 0.5, producer)


def _builtin_head(symbol: bytes, params: bytes, feature_dim: int, predictor: str | None, threshold: float,
                  producer: str) -> Built:
    onnx = _onnx()
    TP = onnx.TensorProto
    t = Translator(_graph(symbol), _weights(params), {"data": [None, int(feature_dim)]})
    heads = t.translate()
    if len(heads) != 1:
        raise NotLoadable(f"the built-in's graph has {len(heads)} outputs; one was expected")
    out = heads[0]
    if predictor == "multiclass_classifier":
        label = t.add("ArgMax", [out], "predicted_label", 1, axis=1, keepdims=0)
        return Built(t.model([("score", out, TP.FLOAT, ["batch", None]), ("predicted_label", label, TP.INT64,
                                                                          ["batch"])], producer),
                     ["score", "predicted_label"])
    flat = t.add("Flatten", [out], "score_2d", 2, axis=1)
    score = t.add("Gather", [flat, t.const(0, "first_column", np.int64)], "score", 1, axis=1)
    if predictor != "binary_classifier":
        return Built(t.model([("score", score, TP.FLOAT, ["batch"])], producer), ["score"])
    above = t.add("Greater", [score, t.const(threshold, "threshold")], "above", 1)
    label = t.add("Cast", [above], "predicted_label", 1, to=TP.INT64)
    return Built(t.model([("score", score, TP.FLOAT, ["batch"]), ("predicted_label", label, TP.INT64, ["batch"])],
                         producer), ["score", "predicted_label"])


def ntm(symbol: bytes, params: bytes, vocab_size: int, producer: str) -> Built:
    """Neural Topic Model: the encoder up to its ``mean`` layer (the topic representation the loader predicts,
    ``loaders/mxnet.py`` ``_ntm_encoder``); the training-only rest of the graph (sampling, losses) is left out."""
    onnx = _onnx()
    graph = _graph(symbol)
    index = next((i for i, n in enumerate(graph["nodes"]) if n.get("name") == "mean" and n.get("op") != "null"), None)
    if index is None:
        raise NotLoadable("this NTM graph has no 'mean' encoder layer to export")
    graph = dict(graph, heads=[[index, 0, 0]])
    t = Translator(graph, _weights(params), {"data": [None, int(vocab_size)]})
    (head,) = t.translate()
    return Built(t.model([("mean", head, onnx.TensorProto.FLOAT, ["batch", None])], producer), ["mean"])


def kmeans(centroids: np.ndarray, producer: str) -> Built:
    """k-means: ``closest_cluster`` and ``distance_to_cluster`` (float64, see the module notes)."""
    onnx = _onnx()
    TP = onnx.TensorProto
    if centroids.ndim != 2:
        raise CorruptArtifact("the k-means model should hold one (k x dim) array of centroids")
    c = centroids.astype(np.float64)
    t = Translator({"nodes": [], "heads": []}, {}, {"data": [None, int(c.shape[1])]})
    x = t.add("Cast", ["data"], "x64", 2, to=TP.DOUBLE)
    x2 = t.add("ReduceSum", [t.add("Mul", [x, x], "x_sq", 2), t.const([1], "axis1", np.int64)], "x_norm", 2,
               keepdims=1)
    cross = t.add("MatMul", [x, t.const(c.T, "centroids_t", np.float64)], "cross", 2)
    twice = t.add("Mul", [cross, t.const(2.0, "two", np.float64)], "cross2", 2)
    d2 = t.add("Add", [t.add("Sub", [x2, twice], "partial", 2), t.const((c * c).sum(axis=1)[None, :], "c_norm",
                                                                        np.float64)], "d2_raw", 2)
    d2 = t.add("Max", [d2, t.const(0.0, "zero", np.float64)], "d2", 2)
    closest = t.add("ArgMin", [d2], "closest", 1, axis=1, keepdims=0)
    dist = t.add("Sqrt", [t.add("ReduceMin", [d2], "d2_min", 1, keepdims=0, axes=[1])],
                 "distance", 1)
    model = t.model([("closest_cluster", closest, TP.INT64, ["batch"]),
                     ("distance_to_cluster", dist, TP.DOUBLE, ["batch"])], producer)
    return Built(model, ["closest_cluster", "distance_to_cluster"])


def pca(v: np.ndarray, mean: np.ndarray | None, producer: str) -> Built:
    """PCA: ``projection`` = ``(x - mean) @ v`` in float32."""
    onnx = _onnx()
    TP = onnx.TensorProto
    if v.ndim != 2:
        raise CorruptArtifact("the PCA model has no 2-D component matrix 'v'")
    t = Translator({"nodes": [], "heads": []}, {}, {"data": [None, int(v.shape[0])]})
    x = "data"
    if mean is not None:
        x = t.add("Sub", [x, t.const(mean.reshape(1, -1), "mean")], "centered", 2)
    out = t.add("MatMul", [x, t.const(v, "v")], "projection", 2)
    return Built(t.model([("projection", out, TP.FLOAT, ["batch", int(v.shape[1])])], producer), ["projection"])


def symbol_graph(symbol: bytes, params: bytes, inputs: dict[str, list], producer: str) -> Built:
    """A Gluon / Module export: every head an output named after its node (``<name>_output``)."""
    onnx = _onnx()
    graph = _graph(symbol)
    t = Translator(graph, _weights(params), inputs)
    heads = t.translate()
    names: list[str] = []
    for h in graph["heads"]:
        base = f"{graph['nodes'][h[0]]['name']}_output"
        names.append(base if base not in names else f"{base}{len(names)}")
    outputs = [(n, v, onnx.TensorProto.FLOAT, _free_shape(t.ranks.get(v))) for n, v in zip(names, heads)]
    return Built(t.model(outputs, producer), names)


def _free_shape(rank: int | None) -> list:
    """An output shape of ``rank`` free dimensions (the first named ``batch``); rank 2 when unknown."""
    return ["batch"] + [None] * ((rank or 2) - 1)


def require_dims(found: Any, what: str) -> int:
    if not isinstance(found, int) or found <= 0:
        raise ArtifactError(f"the {what} model does not record its number of features")
    return found
