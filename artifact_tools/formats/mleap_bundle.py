"""Reader of MLeap bundles (Bundle.ML), in zip or directory form, as plain data.

Layout (combust/mleap ``bundle-ml/src/main/scala/ml/combust/bundle/BundleFile.scala``,
``serializer/BundleSerializer.scala``, ``serializer/GraphSerializer.scala``, ``dsl/Bundle.scala``):

- ``bundle.json`` at the bundle root: ``uid``, ``name``, ``format`` (``json`` | ``protobuf``; MLeap
  <= 0.7 also ``mixed``), ``version`` (MLeap release), ``timestamp``, optional ``meta``.
- ``root/`` is the root node's folder; every node folder holds ``node.json`` (``name`` and
  ``shape.inputs``/``shape.outputs``: lists of ``{"port", "name"}`` sockets, the name being a frame
  column) and ``model.json`` (``op`` and ``attributes``).  A ``pipeline`` op lists its children in
  the ``nodes`` attribute; child ``N`` lives in the sub-folder ``N.node/``.
- Tree models store their nodes in ``tree.json`` next to ``model.json``: one compact JSON object a
  line, in pre-order (node, left subtree, right subtree), ``{"type": "internal", "split": {...}}`` or
  ``{"type": "leaf", "values": [...]}``; a split is ``{"type": "continuous", "featureIndex",
  "threshold"}`` or ``{"type": "categorical", "featureIndex", "isLeft", "numCategories",
  "categories"}`` (``bundle-ml/.../tree/JsonSupport.scala``, ``tree/decision/TreeSerializer.scala``).
  Ensembles keep each tree as a sub-model folder (``tree0/model.json`` + ``tree0/tree.json``) named
  by the ``trees`` attribute (``mleap-spark/.../bundle/ops/regression/RandomForestRegressionOp.scala``).

Attribute values, current style (MLeap >= 0.8, ``bundle-ml/.../json/JsonSupport.scala``):

- scalar: an object with one key naming its type (``boolean``, ``int``, ``long``, ``float``,
  ``double``, ``string``, ``byte_string``, ``tensor``, ``basic_type``, ``data_shape``, ``model``).
  Zero, false and empty-string values are omitted, so ``{}`` means "the zero value"; NaN and
  infinities are written as ``null`` (spray-json), so ``null`` reads as NaN.
- list: ``{"type": "list", "<basic type>": [...]}`` (no payload key for an empty list).
- tensor: ``{"type": "tensor", "<basic type>": [flat values], "shape": {"dimensions": [{"size",
  "name"}]}}``; values are stored flat in the order of the writer (a Spark matrix is column-major).

Old style (MLeap <= 0.7, before commit 185cdf4d "overhaul of typing system"):
``{"type": <data type>, "value": <value>}`` where the data type is a basic name (``"double"``),
``{"type": "list", "base": <data type>}`` or ``{"type": "tensor", "tensor": {"base": ...}}`` and a
tensor value is ``{"values": [...], "dimensions": [...]}`` (dense) or also has ``indices`` (sparse;
``mleap-tensor/.../tensor/JsonSupport.scala`` at that commit).

Only the JSON serialization is read; protobuf bundles raise :class:`NotLoadable` (inspection still reports
their ``bundle.json``).

:data:`SCORED_OPS` names the ops the pure-Python runtime (``loaders.mleap``) scores, so that inspection can say
``loadable: false`` with the op's name exactly when loading would fail (:func:`not_loadable_reason`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from artifact_tools.errors import CorruptArtifact, NotAnArtifact, NotLoadable
from artifact_tools.filetree import FileTree, SubTree

MAX_JSON_BYTES = 256 * 1024 * 1024  # one model.json / tree.json; a big forest tree stays far below
MAX_NESTING = 64  # pipelines inside pipelines
MAX_TENSOR_VALUES = 50_000_000

# Ops scored by loaders.mleap (its op table is checked against this set by tests/test_mleap.py). Names from
# combust/mleap ``bundle-ml/src/main/scala/ml/combust/bundle/dsl/Bundle.scala`` (``BuiltinOps``).
SCORED_OPS = frozenset({
    "pipeline", "string_indexer", "one_hot_encoder", "vector_assembler", "standard_scaler", "min_max_scaler",
    "imputer", "bucketizer", "linear_regression", "logistic_regression", "decision_tree_regression",
    "random_forest_regression", "gbt_regression", "decision_tree_classifier", "random_forest_classifier",
    "gbt_classifier", "k_means",
})

_BASIC_TYPES = ("boolean", "byte", "short", "int", "long", "float", "double", "string", "byte_string")
_SCALAR_KEYS = _BASIC_TYPES + ("tensor", "basic_type", "data_shape", "model")


@dataclass(frozen=True)
class Tensor:
    """A decoded tensor attribute: flat ``values`` in stored order and its ``dims``."""

    base: str
    values: list
    dims: tuple[int, ...]


@dataclass
class Node:
    """One node of the bundle graph: op, sockets (port, column) and decoded attributes."""

    name: str
    op: str
    folder: str  # path of the node folder inside the bundle tree, e.g. "root/x.node"
    inputs: list[tuple[str, str]]
    outputs: list[tuple[str, str]]
    attributes: dict[str, Any]
    children: list[Node] = field(default_factory=list)


@dataclass
class Bundle:
    """A parsed bundle: ``info`` from bundle.json, the ``root`` node, and the tree it came from."""

    info: dict
    root: Node
    tree: FileTree

    def nodes(self) -> list[Node]:
        """Every node in execution order (pre-order, pipelines before their children)."""
        out: list[Node] = []
        stack = [self.root]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(reversed(n.children))
        return out


@dataclass
class DecisionTree:
    """A decision tree flattened into parallel lists (index 0 is the root).

    ``left[i] == -1`` marks a leaf whose ``values[i]`` holds the prediction (regression) or the
    class impurity statistics (classification).  ``categories[i]`` is ``None`` for a continuous
    split (go left when ``x[feature] <= threshold``) or ``(is_left, set_of_categories)``: go left
    when ``(x[feature] in set) == is_left`` (``mleap-core/.../core/tree/Split.scala``).
    """

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    categories: list[tuple[bool, frozenset] | None]
    values: list[list[float] | None]
    depth: int


def find_bundle_root(tree: FileTree) -> str | None:
    """The folder holding the shallowest ``bundle.json`` next to a ``root/`` folder, or None."""
    candidates = []
    names = tree.names()
    name_set = set(names)
    for n in names:
        if n == "bundle.json" or n.endswith("/bundle.json"):
            prefix = n[: -len("bundle.json")]
            if any(x.startswith(prefix + "root/") for x in name_set):
                candidates.append(prefix.rstrip("/"))
    if not candidates:
        return None
    return min(candidates, key=lambda p: (p.count("/") if p else -1, p))


def read_bundle(tree: FileTree) -> Bundle:
    """Parse bundle.json and every node.json/model.json of the graph (tree files are read lazily)."""
    prefix = find_bundle_root(tree)
    if prefix is None:
        raise NotAnArtifact("no MLeap bundle here: bundle.json with a root/ folder was not found")
    if prefix:
        tree = SubTree(tree, prefix)
    info = read_json(tree, "bundle.json")
    if not isinstance(info, dict):
        raise CorruptArtifact("MLeap bundle.json is not a JSON object")
    fmt = info.get("format", "json")
    if fmt == "protobuf":
        raise NotLoadable("this MLeap bundle uses the protobuf serialization; only JSON bundles can be read")
    root = _read_node(tree, "root", 0)
    return Bundle(info=info, root=root, tree=tree)


def read_json(tree: FileTree, name: str) -> Any:
    """One JSON file of the bundle, size-bounded; bad bytes raise :class:`CorruptArtifact`."""
    try:
        size = tree.size(name)
    except KeyError:
        if name.endswith(".json") and _has(tree, name[:-5] + ".pb"):
            raise NotLoadable(
                f"MLeap file {name[:-5]}.pb uses the protobuf serialization, which is not supported"
            ) from None
        raise CorruptArtifact(f"MLeap bundle is missing {name}") from None
    if size > MAX_JSON_BYTES:
        raise CorruptArtifact(f"MLeap file {name} is {size} bytes, over the {MAX_JSON_BYTES}-byte limit")
    data = _read(tree, name)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CorruptArtifact(f"MLeap file {name} is not valid JSON ({_short(e)})") from None


def read_submodel(bundle: Bundle, node: Node, sub: str) -> tuple[str, dict[str, Any]]:
    """The (op, attributes) of a sub-model folder of a node, e.g. ``tree3`` of a forest."""
    _check_component(sub, node.name)
    model = read_json(bundle.tree, f"{node.folder}/{sub}/model.json")
    return _parse_model(model, f"{node.folder}/{sub}/model.json")


def read_decision_tree(bundle: Bundle, folder: str) -> DecisionTree:
    """Read ``<folder>/tree.json`` (pre-order node lines) into a :class:`DecisionTree`."""
    name = f"{folder}/tree.json"
    try:
        size = bundle.tree.size(name)
    except KeyError:
        if _has(bundle.tree, f"{folder}/tree.pb"):
            raise NotLoadable(
                f"MLeap tree {folder}/tree.pb uses the protobuf serialization, which is not supported"
            ) from None
        raise CorruptArtifact(f"MLeap bundle is missing {name}") from None
    if size > MAX_JSON_BYTES:
        raise CorruptArtifact(f"MLeap file {name} is {size} bytes, over the {MAX_JSON_BYTES}-byte limit")
    try:
        lines = _read(bundle.tree, name).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise CorruptArtifact(f"MLeap file {name} is not UTF-8 text") from None
    t = DecisionTree([], [], [], [], [], [], 0)
    stack: list[tuple[int, int]] = []  # (internal node index, its depth) still waiting for a child
    complete = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise CorruptArtifact(f"MLeap file {name} line {lineno} is not valid JSON ({_short(e)})") from None
        i = len(t.left)
        depth = 0
        if stack:
            parent, pdepth = stack[-1]
            depth = pdepth + 1
            if t.left[parent] == -1:
                t.left[parent] = i
            else:
                t.right[parent] = i
                stack.pop()
        t.depth = max(t.depth, depth)
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "internal":
            feature, threshold, cats = _parse_split(obj.get("split"), name, lineno)
            t.feature.append(feature)
            t.threshold.append(threshold)
            t.categories.append(cats)
            t.values.append(None)
            t.left.append(-1)
            t.right.append(-1)
            stack.append((i, depth))
        elif kind == "leaf":
            values = obj.get("values")
            if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
                raise CorruptArtifact(f"MLeap file {name} line {lineno}: a leaf needs a non-empty list of numbers")
            t.feature.append(-1)
            t.threshold.append(math.nan)
            t.categories.append(None)
            t.values.append([_num(v) for v in values])
            t.left.append(-1)
            t.right.append(-1)
        else:
            raise CorruptArtifact(f"MLeap file {name} line {lineno}: node type must be 'internal' or 'leaf'")
        if not stack:
            complete = True
            break
    if not complete:
        raise CorruptArtifact(f"MLeap file {name} ends before its decision tree is complete")
    return t


def decode_value(v: Any, where: str = "attribute") -> Any:
    """Decode one attribute value (current or old style) into Python data.

    Scalars become Python scalars (``None`` for the omitted zero value ``{}``), lists become lists,
    tensors :class:`Tensor`, data shapes dicts.
    """
    if not isinstance(v, dict):
        raise CorruptArtifact(f"MLeap {where} is not a JSON object")
    if "value" in v and "type" in v:
        return _decode_old(v["type"], v["value"], where, 0)
    kind = v.get("type")
    if kind is None:
        keys = [k for k in _SCALAR_KEYS if k in v]
        if not keys:
            return None
        k = keys[0]
        if k == "tensor":
            return _decode_tensor(v[k], where)
        return _decode_basic(k, v[k], where)
    if kind == "list":
        keys = [k for k in _SCALAR_KEYS if k in v]
        if not keys:
            return []
        k = keys[0]
        items = v[k]
        if not isinstance(items, list):
            raise CorruptArtifact(f"MLeap {where}: list payload is not a JSON array")
        if k == "tensor":
            return [_decode_tensor(x, where) for x in items]
        return [_decode_basic(k, x, where) for x in items]
    if kind == "tensor":
        return _decode_tensor(v, where)
    raise CorruptArtifact(f"MLeap {where} has unknown value type {kind!r}")


def summarize(tree: FileTree) -> dict:
    """Cheap description for inspection: bundle info and every op with its input/output columns.

    A protobuf bundle is described from its ``bundle.json`` alone, with ``not_loadable_reason`` saying why its
    graph is not read; ``unsupported_ops`` lists the graph's ops outside :data:`SCORED_OPS` (by name, in order).
    """
    try:
        bundle = read_bundle(tree)
    except NotLoadable as e:  # protobuf serialization: bundle.json is JSON still
        prefix = find_bundle_root(tree) or ""
        info = read_json(SubTree(tree, prefix) if prefix else tree, "bundle.json")
        info = info if isinstance(info, dict) else {}
        return {"format": "mleap", "name": info.get("name"), "mleap_version": info.get("version"),
                "serialization": info.get("format", "json"), "timestamp": info.get("timestamp"),
                "uid": info.get("uid"), "ops": [], "inputs": [], "outputs": [], "unsupported_ops": [],
                "not_loadable_reason": str(e)}
    ops = []
    produced: list[str] = []
    consumed: list[str] = []
    for n in bundle.nodes():
        entry: dict[str, Any] = {
            "name": n.name,
            "op": n.op,
            "inputs": [c for _, c in n.inputs],
            "outputs": [c for _, c in n.outputs],
        }
        if "trees" in n.attributes and isinstance(n.attributes["trees"], list):
            entry["num_trees"] = len(n.attributes["trees"])
        ops.append(entry)
        if n.op != "pipeline":
            consumed += [c for _, c in n.inputs if c not in produced and c not in consumed]
            produced += [c for _, c in n.outputs if c not in produced]
    info = bundle.info
    return {
        "format": "mleap",
        "name": info.get("name"),
        "mleap_version": info.get("version"),
        "serialization": info.get("format", "json"),
        "timestamp": info.get("timestamp"),
        "uid": info.get("uid"),
        "ops": ops,
        "inputs": consumed,
        "outputs": produced,
        "unsupported_ops": list(dict.fromkeys(o["op"] for o in ops if o["op"] not in SCORED_OPS)),
    }


def not_loadable_reason(summary: dict) -> str | None:
    """Why ``loaders.mleap`` cannot score the bundle :func:`summarize` described (one sentence), or None."""
    if summary.get("not_loadable_reason"):
        return str(summary["not_loadable_reason"])
    unsupported = summary.get("unsupported_ops") or []
    if unsupported:
        names = ", ".join(f"'{op}'" for op in unsupported)
        return (f"the bundle uses MLeap op{'s' if len(unsupported) > 1 else ''} {names}, which the pure-Python "
                "MLeap runtime does not score")
    return None


# --- internals -------------------------------------------------------------------------------


def _read_node(tree: FileTree, folder: str, depth: int) -> Node:
    if depth > MAX_NESTING:
        raise CorruptArtifact(f"MLeap pipelines are nested more than {MAX_NESTING} levels deep")
    node_json = read_json(tree, f"{folder}/node.json")
    model_json = read_json(tree, f"{folder}/model.json")
    if not isinstance(node_json, dict) or not isinstance(node_json.get("name"), str):
        raise CorruptArtifact(f"MLeap file {folder}/node.json lacks a node name")
    shape = node_json.get("shape") or {}
    if not isinstance(shape, dict):
        raise CorruptArtifact(f"MLeap file {folder}/node.json has a malformed shape")
    inputs = _sockets(shape.get("inputs", []), f"{folder}/node.json")
    outputs = _sockets(shape.get("outputs", []), f"{folder}/node.json")
    op, attrs = _parse_model(model_json, f"{folder}/model.json")
    node = Node(node_json["name"], op, folder, inputs, outputs, attrs)
    if op == "pipeline":
        children = attrs.get("nodes")
        if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
            raise CorruptArtifact(f"MLeap pipeline {folder} lacks its list of node names")
        for child in children:
            _check_component(child, node.name)
            node.children.append(_read_node(tree, f"{folder}/{child}.node", depth + 1))
    return node


def _parse_model(model: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(model, dict) or not isinstance(model.get("op"), str):
        raise CorruptArtifact(f"MLeap file {where} lacks an op name")
    raw = model.get("attributes", {})
    if not isinstance(raw, dict):
        raise CorruptArtifact(f"MLeap file {where} has malformed attributes")
    attrs = {str(k): decode_value(v, f"attribute {k!r} in {where}") for k, v in raw.items()}
    return model["op"], attrs


def _sockets(items: Any, where: str) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise CorruptArtifact(f"MLeap file {where} has malformed input/output sockets")
    out = []
    for s in items:
        if not isinstance(s, dict) or not isinstance(s.get("port"), str) or not isinstance(s.get("name"), str):
            raise CorruptArtifact(f"MLeap file {where} has a socket without port and name")
        out.append((s["port"], s["name"]))
    return out


def _parse_split(split: Any, name: str, lineno: int) -> tuple[int, float, tuple[bool, frozenset] | None]:
    if not isinstance(split, dict):
        raise CorruptArtifact(f"MLeap file {name} line {lineno}: internal node without a split")
    feature = split.get("featureIndex", 0)
    if not isinstance(feature, int) or isinstance(feature, bool) or feature < 0:
        raise CorruptArtifact(f"MLeap file {name} line {lineno}: split feature index is not a non-negative integer")
    kind = split.get("type")
    if kind == "continuous":
        thr = split.get("threshold", 0.0)
        if not (_is_number(thr) or thr is None):
            raise CorruptArtifact(f"MLeap file {name} line {lineno}: split threshold is not a number")
        return feature, _num(thr), None
    if kind == "categorical":
        cats = split.get("categories", [])
        if not isinstance(cats, list) or not all(_is_number(c) for c in cats):
            raise CorruptArtifact(f"MLeap file {name} line {lineno}: split categories are not numbers")
        return feature, math.nan, (bool(split.get("isLeft", False)), frozenset(float(c) for c in cats))
    raise CorruptArtifact(f"MLeap file {name} line {lineno}: split type must be 'continuous' or 'categorical'")


def _decode_basic(kind: str, v: Any, where: str) -> Any:
    if kind in ("double", "float"):
        if v is None:
            return math.nan  # spray-json writes NaN and infinities as null
        if not _is_number(v):
            raise CorruptArtifact(f"MLeap {where}: expected a number")
        return _num(v)
    if kind in ("int", "long", "short", "byte"):
        if not isinstance(v, int) or isinstance(v, bool):
            raise CorruptArtifact(f"MLeap {where}: expected an integer")
        return v
    if kind == "boolean":
        if not isinstance(v, bool):
            raise CorruptArtifact(f"MLeap {where}: expected true or false")
        return v
    if kind in ("string", "byte_string", "basic_type"):
        if not isinstance(v, str):
            raise CorruptArtifact(f"MLeap {where}: expected a string")
        return v
    if kind in ("data_shape", "model"):
        if not isinstance(v, dict):
            raise CorruptArtifact(f"MLeap {where}: expected a JSON object")
        return v
    raise CorruptArtifact(f"MLeap {where} has unknown basic type {kind!r}")


def _decode_tensor(v: Any, where: str) -> Tensor:
    if not isinstance(v, dict):
        raise CorruptArtifact(f"MLeap {where}: tensor is not a JSON object")
    keys = [k for k in _BASIC_TYPES if k in v]
    if not keys:
        raise CorruptArtifact(f"MLeap {where}: tensor has no values")
    base = keys[0]
    values = v[base]
    if not isinstance(values, list):
        raise CorruptArtifact(f"MLeap {where}: tensor values are not a JSON array")
    values = [_decode_basic(base, x, where) for x in values]
    shape = v.get("shape") or {}
    dims_json = shape.get("dimensions", []) if isinstance(shape, dict) else None
    if not isinstance(dims_json, list):
        raise CorruptArtifact(f"MLeap {where}: tensor shape is malformed")
    dims = []
    for d in dims_json:
        size = d.get("size") if isinstance(d, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < -1:
            raise CorruptArtifact(f"MLeap {where}: tensor dimension size is not an integer")
        dims.append(size)
    return _checked_tensor(base, values, tuple(dims), where)


def _checked_tensor(base: str, values: list, dims: tuple[int, ...], where: str) -> Tensor:
    if not dims:
        dims = (len(values),)
    known = [d for d in dims if d >= 0]
    if len(known) == len(dims):
        total = math.prod(dims)
        if total != len(values):
            raise CorruptArtifact(
                f"MLeap {where}: tensor holds {len(values)} values but its shape {list(dims)} needs {total}"
            )
    return Tensor(base, values, dims)


def _decode_old(dtype: Any, value: Any, where: str, depth: int) -> Any:
    if depth > 8:
        raise CorruptArtifact(f"MLeap {where}: data type is nested too deeply")
    if isinstance(dtype, str):
        if dtype == "data_type":
            return value
        return _decode_basic(dtype, value, where)
    if not isinstance(dtype, dict):
        raise CorruptArtifact(f"MLeap {where}: malformed data type")
    kind = dtype.get("type")
    if kind == "list":
        if not isinstance(value, list):
            raise CorruptArtifact(f"MLeap {where}: list value is not a JSON array")
        return [_decode_old(dtype.get("base"), x, where, depth + 1) for x in value]
    if kind == "tensor":
        base = (dtype.get("tensor") or {}).get("base", "double") if isinstance(dtype.get("tensor"), dict) else "double"
        if not isinstance(value, dict) or not isinstance(value.get("values"), list):
            raise CorruptArtifact(f"MLeap {where}: tensor value lacks its values")
        dims = value.get("dimensions", [len(value["values"])])
        if not isinstance(dims, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise CorruptArtifact(f"MLeap {where}: tensor dimensions are not integers")
        vals = [_decode_basic(base, x, where) for x in value["values"]]
        if "indices" in value:  # sparse: indices are coordinate lists; densify
            if any(d < 0 for d in dims) or math.prod(dims) > MAX_TENSOR_VALUES:
                raise CorruptArtifact(f"MLeap {where}: sparse tensor is too large to densify")
            idx = value["indices"]
            if not isinstance(idx, list) or len(idx) != len(vals):
                raise CorruptArtifact(f"MLeap {where}: sparse tensor indices do not match its values")
            dense = [0.0] * math.prod(dims)
            for coords, x in zip(idx, vals):
                if not isinstance(coords, list) or len(coords) != len(dims):
                    raise CorruptArtifact(f"MLeap {where}: sparse tensor index has the wrong rank")
                flat = 0
                for c, d in zip(coords, dims):
                    if not isinstance(c, int) or not 0 <= c < d:
                        raise CorruptArtifact(f"MLeap {where}: sparse tensor index is out of range")
                    flat = flat * d + c
                dense[flat] = x
            vals = dense
        return _checked_tensor(base, vals, tuple(dims), where)
    raise CorruptArtifact(f"MLeap {where}: unsupported data type {kind!r}")


def _check_component(name: str, parent: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise CorruptArtifact(f"MLeap node {parent!r} names a child {name!r} that is not a plain folder name")


def _read(tree: FileTree, name: str) -> bytes:
    try:
        return tree.read(name)
    except KeyError:  # listed with a size but its content is not available
        raise CorruptArtifact(f"MLeap file {name} is listed but its content cannot be read") from None


def _has(tree: FileTree, name: str) -> bool:
    try:
        tree.size(name)
        return True
    except KeyError:
        return False


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except OverflowError:
        raise CorruptArtifact(f"MLeap number {str(v)[:40]}... does not fit a double") from None


def _short(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__
