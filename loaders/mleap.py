"""Pure numpy/pandas scorer for MLeap bundles: no JVM, no MLeap runtime.

:func:`load` compiles a bundle once into per-op objects with two paths:

- ``score_row(dict) -> dict | None``: plain Python on one row (floats, strings, lists for vectors);
  ``None`` means a ``skip`` op dropped the row.  This is the low-latency path.
- ``score_frame(DataFrame) -> DataFrame``: vectorized numpy on a whole frame; vector columns come
  out as one 1-D float array per row.  Rows dropped by ``skip`` ops disappear, as in MLeap/Spark.

Both return the input columns plus every column the pipeline produces (``score_frame`` can be
limited to some of them, which saves building per-row vector cells).  Semantics follow the MLeap
runtime (combust/mleap @ 88de54dd, ``mleap-core/src/main/scala/ml/combust/mleap/core/**``,
``mleap-runtime/.../runtime/transformer/**`` and ``.../bundle/ops/**`` for the attribute reading):

- ``string_indexer``: unseen or null labels -> ``keep``: index ``len(labels)``; ``skip``: the row is
  dropped; ``error``: ValueError.  Non-string inputs are compared as Spark casts them to text.
- ``one_hot_encoder``: labels must be integral; out-of-range -> ``keep``: the extra category,
  ``error``: ValueError; sizes follow ``dropLast``/``keep`` (``OneHotEncoderModel.scala``).  Old
  bundles' ``size`` attribute is read as one category size, ``keep`` when ``drop_last``.
- ``bucketizer``: ``splits`` with a null (NaN) first/last split meaning -inf/+inf; NaN input ->
  ``keep``: last bucket, ``skip``: row dropped, ``error``: ValueError; out of range: ValueError.
- ``imputer``: null, NaN or ``missing_value`` -> ``surrogate_value``.
- ``standard_scaler``, ``min_max_scaler``, ``vector_assembler``, ``linear_regression``.
- ``logistic_regression``: binary (sigmoid, ``threshold``) or multinomial (softmax shifted by the
  max margin when positive; ``coefficient_matrix`` is stored column-major), ``thresholds``.
- decision trees, random forests (regression: mean of trees; classification: sum of normalized
  leaf class counts), GBTs (margin = weighted sum; classifier probability ``1/(1+exp(-2m))``).
- ``k_means``: the index of the nearest of ``cluster_centers`` by squared Euclidean distance, the first
  centre winning ties, as an integer (``core/clustering/KMeansModel.scala``: MLeap's model has no distance
  measure, so a Spark model trained with ``distanceMeasure=cosine`` is scored with Euclidean distance;
  ``bundle/ops/clustering/KMeansOp.scala`` reads ``cluster_centers`` (a tensor list) and ``num_features``).
  MLeap computes the distance with Spark's ``fastSquaredDistance`` (norms and a dot product when that is
  accurate to 1e-6 relative); the exact sum of squared differences is used here.

Rows may also come without the column names (an array, lists of values) or, for a model that reads one vector
column, as separate numeric columns: :mod:`loaders._columns` maps them onto the bundle's input columns, and
:meth:`LoadedModel.sample_input` builds rows from the bundle itself (indexer labels, category sizes, bucket
splits, vector sizes).

Numeric inputs that are None are treated as NaN (pandas semantics).  Unknown ops raise
:class:`NotLoadable` naming the op.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from operator import mul
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from artifact_tools.errors import CorruptArtifact, NotLoadable
from artifact_tools.filetree import DirTree, FileTree, ZipTree
from artifact_tools.formats import mleap_bundle
from artifact_tools.formats.mleap_bundle import Bundle, Node, Tensor
from loaders._columns import InputColumn, frame_for, sample_frame
from loaders.base import LoadedModel, parse_options, require

_NAN = math.nan
_INF = math.inf
SAMPLE_VALUES = 3  # distinct recorded values (labels, categories, buckets) a sample row cycles through


@dataclass(frozen=True)
class MLeapOptions:
    """MLeap bundles take no loader options."""


OPTIONS = MLeapOptions


def load(source: FileTree | os.PathLike | str, report: Any = None, *, trust: bool | str = False,
         **options: Any) -> LoadedModel:
    """Read and compile an MLeap bundle: a FileTree, or a folder / zip path (as ``loaders.load`` passes it).

    With a report, the bundle is the one inspection found (``bundle.json`` in a folder, or a zip member).
    MLeap bundles hold data only, so ``trust`` changes nothing.
    """
    parse_options(MLeapOptions, options, "MLeap bundles")
    tree = source if not isinstance(source, (str, os.PathLike)) else _tree_at(Path(source), report)
    pipeline = CompiledPipeline(mleap_bundle.read_bundle(tree))
    return LoadedModel(
        model=pipeline,
        framework="mleap",
        predict_fn=pipeline.predict,
        sample_fn=lambda: sample_frame(pipeline.inputs, "MLeap bundle"),
        info={
            "bundle_name": pipeline.bundle.info.get("name"),
            "mleap_version": pipeline.bundle.info.get("version"),
            "inputs": pipeline.input_columns,
            "outputs": pipeline.output_columns,
        },
    )


def _tree_at(path: Path, report: Any) -> FileTree:
    """The bundle's files under ``path``: the zip or folder inspection named, else ``path`` itself."""
    entry = report.model("mleap-bundle") if report is not None else None
    target = path
    if entry is not None:
        target = path / entry.path
        if target.name == "bundle.json":
            target = target.parent
    if target.is_file():
        return ZipTree(str(target), target.name)
    return DirTree(target)


class CompiledPipeline:
    """A bundle compiled into numpy/Python closures; see the module docstring for the two paths."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self._ops: list[_Op] = []
        _compile(bundle, bundle.root, self._ops)
        produced: list[str] = []
        needed: list[str] = []
        for op in self._ops:
            needed += [c for c in op.inputs if c not in produced and c not in needed]
            produced += [c for c in op.outputs if c not in produced]
        self.input_columns = needed
        self.output_columns = produced
        first_reader: dict[str, _Op] = {}
        for op in self._ops:
            for c in op.inputs:
                first_reader.setdefault(c, op)
        self.inputs: list[InputColumn] = [first_reader[c].input_column(c) for c in needed]
        self._pd = require("pandas", "mleap")

    def score_row(self, row: Mapping[str, Any]) -> dict | None:
        """Score one row; returns the row plus produced columns, or None when a skip op drops it."""
        r = dict(row)
        try:
            for op in self._ops:
                if op.row(r) is False:
                    return None
        except KeyError as e:
            raise ValueError(f"the input row lacks column {e.args[0]!r} needed by the pipeline") from None
        return r

    def score_frame(self, frame, outputs: list[str] | None = None) -> Any:
        """Score a pandas DataFrame with vectorized numpy; returns a new DataFrame.

        The result holds the input columns plus ``outputs`` (default: every produced column).
        """
        pd = self._pd
        wanted = self.output_columns if outputs is None else list(outputs)
        unknown = [c for c in wanted if c not in self.output_columns]
        if unknown:
            raise ValueError(f"the pipeline produces no column {unknown[0]!r}")
        n = len(frame)
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the input frame lacks column {missing[0]!r} needed by the pipeline")
        cols: dict[str, np.ndarray] = {c: frame[c].to_numpy() for c in self.input_columns}
        positions = None
        for op in self._ops:
            keep = op.batch(cols, n)
            if keep is not None and not keep.all():
                cols = {k: v[keep] for k, v in cols.items()}
                positions = np.flatnonzero(keep) if positions is None else positions[keep]
                n = len(positions)
        base = frame if positions is None else frame.iloc[positions]
        base = base.drop(columns=[c for c in wanted if c in base.columns]).reset_index(drop=True)
        new = pd.DataFrame({c: list(cols[c]) if cols[c].ndim == 2 else cols[c] for c in wanted}, index=base.index)
        return pd.concat([base, new], axis=1)

    def predict(self, data: Any) -> Any:
        """Score a DataFrame, one row (dict), a list of rows, or rows without column names (an array, lists)
        mapped onto the input columns (:func:`loaders._columns.frame_for`); always returns a DataFrame."""
        pd = self._pd
        if isinstance(data, pd.DataFrame):
            if all(c in data.columns for c in self.input_columns):
                return self.score_frame(data)
            return self.score_frame(frame_for(data, self.inputs))
        if isinstance(data, Mapping) and all(c in data for c in self.input_columns):
            r = self.score_row(data)
            columns = list(dict.fromkeys([*data.keys(), *self.output_columns]))
            if r is None:
                return pd.DataFrame(columns=columns)
            return pd.DataFrame([{k: np.asarray(v, dtype=float) if isinstance(v, list) else v for k, v in r.items()}],
                                columns=columns)
        if isinstance(data, (str, bytes)):
            raise TypeError("predict takes a pandas DataFrame, a dict (one row), a list of dicts or rows of values")
        return self.score_frame(frame_for(data, self.inputs))


# --- op compilation --------------------------------------------------------------------------


class _Op:
    inputs: list[str]
    outputs: list[str]
    label = ""  # "op 'node name'", set by _compile

    def input_column(self, col: str) -> InputColumn:
        """What the input column ``col`` must hold (this op being the first to read it)."""
        return InputColumn(col, "number", reader=self.label)

    def row(self, r: dict) -> bool | None:  # False drops the row
        raise NotImplementedError

    def batch(self, cols: dict, n: int) -> np.ndarray | None:  # a keep-mask drops rows
        raise NotImplementedError


def _compile(bundle: Bundle, node: Node, ops: list[_Op]) -> None:
    if node.op == "pipeline":
        for child in node.children:
            _compile(bundle, child, ops)
        return
    factory = _OPS.get(node.op)
    if factory is None:
        raise NotLoadable(f"MLeap op '{node.op}' (node '{node.name}') is not supported by the pure-Python scorer")
    op = factory(bundle, node)
    op.label = f"{node.op} '{node.name}'"
    ops.append(op)


def _port_columns(sockets: list[tuple[str, str]], base: str, what: str) -> list[str]:
    """Columns of ports ``base`` (legacy single port) or ``base0``, ``base1``... in order."""
    by_port = dict(sockets)
    if base in by_port:
        return [by_port[base]]
    cols: list[str] = []
    while f"{base}{len(cols)}" in by_port:
        cols.append(by_port[f"{base}{len(cols)}"])
    if not cols:
        raise CorruptArtifact(f"MLeap {what} has no '{base}' port")
    return cols


def _single(sockets: list[tuple[str, str]], port: str, what: str) -> str:
    by_port = dict(sockets)
    if port not in by_port:
        raise CorruptArtifact(f"MLeap {what} has no '{port}' port")
    return by_port[port]


def _attr(node: Node, name: str, default: Any = ...) -> Any:
    if name in node.attributes:
        return node.attributes[name]
    if default is ...:
        raise CorruptArtifact(f"MLeap node '{node.name}' ({node.op}) lacks attribute '{name}'")
    return default


def _float(node: Node, name: str, default: Any = ...) -> float:
    v = _attr(node, name, default)
    if v is None:
        return 0.0  # MLeap omits zero scalars: {} reads as 0.0
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CorruptArtifact(f"MLeap node '{node.name}' attribute '{name}' is not a number")
    return float(v)


def _int(node: Node, name: str, default: Any = ...) -> int:
    v = _attr(node, name, default)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise CorruptArtifact(f"MLeap node '{node.name}' attribute '{name}' is not an integer")
    return v


def _bool(node: Node, name: str, default: Any = ...) -> bool:
    v = _attr(node, name, default)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise CorruptArtifact(f"MLeap node '{node.name}' attribute '{name}' is not a boolean")
    return v


def _str(node: Node, name: str, default: Any = ...) -> str:
    v = _attr(node, name, default)
    if v is None:
        return ""
    if not isinstance(v, str):
        raise CorruptArtifact(f"MLeap node '{node.name}' attribute '{name}' is not a string")
    return v


def _floats(node: Node, name: str, default: Any = ...) -> list[float]:
    v = _attr(node, name, default)
    if isinstance(v, Tensor):
        v = v.values
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise CorruptArtifact(f"MLeap node '{node.name}' attribute '{name}' is not a list of numbers")
    try:
        return [float(x) for x in v]
    except OverflowError:
        raise CorruptArtifact(
            f"MLeap node '{node.name}' attribute '{name}' holds a number too large for a double") from None


def _handle_invalid(node: Node, default: str = "error") -> str:
    h = _str(node, "handle_invalid", default) or default
    if h not in ("error", "skip", "keep"):
        raise CorruptArtifact(f"MLeap node '{node.name}' has unknown handle_invalid {h!r}")
    return h


def _as_matrix(a: np.ndarray, n: int, what: str) -> np.ndarray:
    if a.ndim == 2:
        return a
    if a.dtype == object:
        try:
            return np.stack([np.asarray(v, dtype=float) for v in a]) if n else np.zeros((0, 0))
        except (TypeError, ValueError):
            raise ValueError(f"column {what!r} does not hold equal-length numeric vectors") from None
    raise ValueError(f"column {what!r} holds scalars where a vector is expected")


def _as_floats(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim != 1:
        raise ValueError(f"column {what!r} holds vectors where a number is expected")
    if a.dtype == np.float64:
        return a
    try:
        return np.array([_NAN if v is None else v for v in a], dtype=float) if a.dtype == object else a.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"column {what!r} does not hold numbers") from None


def _row_float(v: Any) -> float:
    if type(v) is float:
        return v
    if v is None:
        return _NAN
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {v!r}") from None


def _row_vector(v: Any, size: int, what: str) -> list:
    if type(v) is not list:
        try:
            v = [float(x) for x in v]
        except (TypeError, ValueError):
            raise ValueError(f"column {what!r} does not hold a numeric vector") from None
    if len(v) != size:
        raise ValueError(f"column {what!r} holds a vector of size {len(v)}, expected {size}")
    return v


def _spark_text(v: Any) -> str | None:
    """The text Spark's cast to string gives a non-string label (None for null/NaN)."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return None
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        if v == 0 or 1e-3 <= abs(v) < 1e7:
            return repr(v)  # Java's Double.toString and Python agree on plain notation here
        sign, digits, exp = Decimal(repr(v)).as_tuple()
        assert isinstance(exp, int)  # v is finite: only NaN and infinities have a letter as exponent
        ds = "".join(map(str, digits)).rstrip("0") or "0"
        return f"{'-' if sign else ''}{ds[0]}.{ds[1:] or '0'}E{exp + len(digits) - 1}"
    return str(v)


class _StringIndexer(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"string_indexer '{node.name}'"
        self.inputs = _port_columns(node.inputs, "input", what)
        self.outputs = _port_columns(node.outputs, "output", what)
        count = _int(node, "labels_length", -1)
        if count == -1:
            labels_array = [_attr(node, "labels")]
        else:
            labels_array = [_attr(node, f"labels_array_{i}") for i in range(count)]
        if len(labels_array) != len(self.inputs) or len(self.outputs) != len(self.inputs):
            raise CorruptArtifact(f"MLeap {what} has {len(labels_array)} label lists for {len(self.inputs)} inputs")
        for labels in labels_array:
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise CorruptArtifact(f"MLeap {what} labels are not a list of strings")
        self.handle = _handle_invalid(node)
        self._pd = require("pandas", "mleap")
        self.cols = [(i, o, {lab: float(k) for k, lab in enumerate(labels)}, float(len(labels)))
                     for i, o, labels in zip(self.inputs, self.outputs, labels_array)]

    def input_column(self, col: str) -> InputColumn:
        labels = next((tuple(t) for i, _, t, _ in self.cols if i == col), ())
        return InputColumn(col, "text", values=labels[:SAMPLE_VALUES], reader=self.label)

    def _invalid(self, value: Any, col: str) -> None:
        raise ValueError(f"string_indexer: unseen or null label {value!r} in column {col!r} (handle_invalid=error)")

    def row(self, r: dict) -> bool | None:
        for ic, oc, table, unknown in self.cols:
            v = r[ic]
            idx = table.get(v) if type(v) is str else table.get(_spark_text(v))
            if idx is None:
                if self.handle == "keep":
                    idx = unknown
                elif self.handle == "skip":
                    return False
                else:
                    self._invalid(v, ic)
            r[oc] = idx
        return None

    def _lookup(self, table: dict, value: Any) -> float:
        idx = table.get(value) if type(value) is str else table.get(_spark_text(value))
        return _NAN if idx is None else idx

    def batch(self, cols: dict, n: int) -> np.ndarray | None:
        keep = None
        for ic, oc, table, unknown in self.cols:
            values = cols[ic]
            if values.ndim != 1:
                raise ValueError(f"column {ic!r} holds vectors where labels are expected")
            try:
                codes, uniques = self._pd.factorize(values)  # nulls get code -1
            except TypeError:
                raise ValueError(f"column {ic!r} holds unhashable values where labels are expected") from None
            mapped = np.array([self._lookup(table, u) for u in uniques.tolist()] + [_NAN])
            out = mapped[codes]
            miss = np.isnan(out)
            if miss.any():
                if self.handle == "keep":
                    out[miss] = unknown
                elif self.handle == "skip":
                    keep = ~miss if keep is None else keep & ~miss
                else:
                    self._invalid(values[np.argmax(miss)], ic)
            cols[oc] = out
        return keep


class _OneHotEncoder(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"one_hot_encoder '{node.name}'"
        self.inputs = _port_columns(node.inputs, "input", what)
        self.outputs = _port_columns(node.outputs, "output", what)
        drop_last = _bool(node, "drop_last", True)
        if "size" in node.attributes:  # bundles from MLeap <= 0.11 (Spark 2 OneHotEncoder): one output size
            sizes = [_int(node, "size")]
            self.handle = _handle_invalid(node, "keep" if drop_last else "error")
        else:
            v = _attr(node, "category_sizes")
            if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
                raise CorruptArtifact(f"MLeap {what} category_sizes is not a list of sizes")
            sizes = v
            self.handle = _handle_invalid(node)
        if len(sizes) != len(self.inputs) or len(self.outputs) != len(self.inputs):
            raise CorruptArtifact(f"MLeap {what} has {len(sizes)} category sizes for {len(self.inputs)} inputs")
        keep = self.handle == "keep"
        self.cols = []
        for ic, oc, size in zip(self.inputs, self.outputs, sizes):
            out_size = size + 1 if keep and not drop_last else size - 1 if drop_last and not keep else size
            self.cols.append((ic, oc, size, max(out_size, 0)))

    def input_column(self, col: str) -> InputColumn:
        size = next((size for i, _, size, _ in self.cols if i == col), 1)
        return InputColumn(col, "number", values=tuple(float(i) for i in range(min(max(size, 1), SAMPLE_VALUES))),
                           reader=self.label)

    def _bad(self, label: float, col: str) -> None:
        raise ValueError(f"one_hot_encoder: invalid label {label!r} in column {col!r} (must be an integer "
                         f"within the category range unless handle_invalid=keep)")

    def row(self, r: dict) -> None:
        keep = self.handle == "keep"
        for ic, oc, size, out_size in self.cols:
            label = _row_float(r[ic])
            if not label.is_integer():
                self._bad(label, ic)
            idx = int(label)
            if not 0 <= idx < size:
                if not keep:
                    self._bad(label, ic)
                idx = size
            vec = [0.0] * out_size
            if idx < out_size:
                vec[idx] = 1.0
            r[oc] = vec
        return None

    def batch(self, cols: dict, n: int) -> None:
        for ic, oc, size, out_size in self.cols:
            labels = _as_floats(cols[ic], ic)
            bad = ~np.isfinite(labels) | (np.floor(labels) != labels)
            if bad.any():
                self._bad(float(labels[np.argmax(bad)]), ic)
            out_range = (labels < 0) | (labels >= size)
            if out_range.any() and self.handle != "keep":
                self._bad(float(labels[np.argmax(out_range)]), ic)
            idx = np.where(out_range, size, labels).astype(np.int64)
            out = np.zeros((n, out_size))
            sel = np.flatnonzero(idx < out_size)
            out[sel, idx[sel]] = 1.0
            cols[oc] = out
        return None


class _VectorAssembler(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"vector_assembler '{node.name}'"
        self.inputs = _port_columns(node.inputs, "input", what)
        self.outputs = [_single(node.outputs, "output", what)]
        self.out = self.outputs[0]
        shapes = _attr(node, "input_shapes", None)
        self.sizes: dict[str, int | None] = {}  # input column -> vector size (None: scalar or not recorded)
        if isinstance(shapes, list) and len(shapes) == len(self.inputs):
            for c, shape in zip(self.inputs, shapes):
                self.sizes[c] = _tensor_size(shape)

    def input_column(self, col: str) -> InputColumn:
        if col in self.sizes and self.sizes[col] is not None:
            return InputColumn(col, "vector", self.sizes[col], reader=self.label)
        return InputColumn(col, "number", reader=self.label)

    def row(self, r: dict) -> None:
        out: list = []
        for c in self.inputs:
            v = r[c]
            t = type(v)
            if t is float:
                out.append(v)
            elif t is list:
                out.extend(v)
            elif v is None:
                out.append(_NAN)
            elif isinstance(v, (tuple, np.ndarray)):
                out.extend(float(x) for x in v)
            else:
                out.append(_row_float(v))
        r[self.out] = out
        return None

    def batch(self, cols: dict, n: int) -> None:
        parts = []
        for c in self.inputs:
            a = cols[c]
            if a.ndim == 2:
                parts.append(a)
            elif a.dtype == object and n and isinstance(a[0], (list, tuple, np.ndarray)):
                parts.append(_as_matrix(a, n, c))
            else:
                parts.append(_as_floats(a, c).reshape(n, 1))
        cols[self.out] = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
        return None


class _StandardScaler(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"standard_scaler '{node.name}'"
        self.inputs = [_single(node.inputs, "input", what)]
        self.outputs = [_single(node.outputs, "output", what)]
        mean = _floats(node, "mean", None) if "mean" in node.attributes else None
        std = _floats(node, "std", None) if "std" in node.attributes else None
        if std is not None:
            self.size = len(std)
        elif mean is not None:
            self.size = len(mean)
        else:
            raise CorruptArtifact(f"MLeap {what} has neither mean nor std")
        if mean is not None and std is not None and len(mean) != len(std):
            raise CorruptArtifact(f"MLeap {what} mean and std sizes differ")
        self.mean, self.std = mean, std
        self.inv = [1.0 / s if s != 0.0 else 0.0 for s in std] if std is not None else None
        self.zero_std = std is not None and any(s == 0.0 for s in std)
        self._mean = np.array(mean) if mean is not None else None
        self._inv = np.array(self.inv) if self.inv is not None else None

    def input_column(self, col: str) -> InputColumn:
        return InputColumn(col, "vector", self.size, reader=self.label)

    def row(self, r: dict) -> None:
        x = _row_vector(r[self.inputs[0]], self.size, self.inputs[0])
        mean, inv = self.mean, self.inv
        if mean is not None and inv is not None:
            if self.zero_std:
                out = [(v - m) * s if s != 0.0 else 0.0 for v, m, s in zip(x, mean, inv)]
            else:
                out = [(v - m) * s for v, m, s in zip(x, mean, inv)]
        elif mean is not None:
            out = [v - m for v, m in zip(x, mean)]
        else:
            assert inv is not None  # the constructor refuses a scaler with neither mean nor std
            out = [v * s for v, s in zip(x, inv)]
        r[self.outputs[0]] = out
        return None

    def batch(self, cols: dict, n: int) -> None:
        x = _as_matrix(cols[self.inputs[0]], n, self.inputs[0])
        if n and x.shape[1] != self.size:
            raise ValueError(f"column {self.inputs[0]!r} holds vectors of size {x.shape[1]}, expected {self.size}")
        if self._mean is not None and self._inv is not None:
            out = (x - self._mean) * self._inv
            if self.zero_std:
                out[:, self._inv == 0.0] = 0.0
        elif self._mean is not None:
            out = x - self._mean
        else:
            out = x * self._inv
        cols[self.outputs[0]] = out
        return None


class _MinMaxScaler(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"min_max_scaler '{node.name}'"
        self.inputs = [_single(node.inputs, "input", what)]
        self.outputs = [_single(node.outputs, "output", what)]
        lo, hi = _floats(node, "min"), _floats(node, "max")
        if len(lo) != len(hi):
            raise CorruptArtifact(f"MLeap {what} min and max sizes differ")
        self.lo, self.range = lo, [b - a for a, b in zip(lo, hi)]
        self.min_value = _float(node, "minValue", 0.0)
        self.scale = _float(node, "maxValue", 1.0) - self.min_value
        self.size = len(lo)
        self._lo, self._range = np.array(lo), np.array(self.range)

    def input_column(self, col: str) -> InputColumn:
        return InputColumn(col, "vector", self.size, reader=self.label)

    def row(self, r: dict) -> None:
        x = _row_vector(r[self.inputs[0]], self.size, self.inputs[0])
        scale, lo_v = self.scale, self.min_value
        r[self.outputs[0]] = [v if v != v else ((v - a) / g if g != 0 else 0.5) * scale + lo_v
                              for v, a, g in zip(x, self.lo, self.range)]
        return None

    def batch(self, cols: dict, n: int) -> None:
        x = _as_matrix(cols[self.inputs[0]], n, self.inputs[0])
        if n and x.shape[1] != self.size:
            raise ValueError(f"column {self.inputs[0]!r} holds vectors of size {x.shape[1]}, expected {self.size}")
        nonzero = self._range != 0
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.where(nonzero, (x - self._lo) / np.where(nonzero, self._range, 1.0), 0.5)
        out = raw * self.scale + self.min_value
        cols[self.outputs[0]] = np.where(np.isnan(x), x, out)
        return None


class _Imputer(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"imputer '{node.name}'"
        self.inputs = [_port_columns(node.inputs, "input", what)[0]]
        self.outputs = [_port_columns(node.outputs, "output", what)[0]]
        self.surrogate = _float(node, "surrogate_value")
        self.missing = _float(node, "missing_value", _NAN)

    def row(self, r: dict) -> None:
        v = r[self.inputs[0]]
        v = _NAN if v is None else _row_float(v)
        r[self.outputs[0]] = self.surrogate if (v != v or v == self.missing) else v
        return None

    def batch(self, cols: dict, n: int) -> None:
        x = _as_floats(cols[self.inputs[0]], self.inputs[0])
        cols[self.outputs[0]] = np.where(np.isnan(x) | (x == self.missing), self.surrogate, x)
        return None


class _Bucketizer(_Op):
    def __init__(self, bundle: Bundle, node: Node):
        what = f"bucketizer '{node.name}'"
        self.inputs = [_port_columns(node.inputs, "input", what)[0]]
        self.outputs = [_port_columns(node.outputs, "output", what)[0]]
        splits = _floats(node, "splits")
        if len(splits) < 3:
            raise CorruptArtifact(f"MLeap {what} needs at least 3 splits")
        if splits[0] != splits[0]:
            splits[0] = -_INF
        if splits[-1] != splits[-1]:
            splits[-1] = _INF
        if any(not a < b for a, b in zip(splits, splits[1:])):
            raise CorruptArtifact(f"MLeap {what} splits are not strictly increasing")
        self.splits = splits
        self._splits = np.array(splits)
        self.handle = _handle_invalid(node)

    def input_column(self, col: str) -> InputColumn:
        values = []
        for a, b in zip(self.splits, self.splits[1:]):
            values.append(b - 1.0 if a == -_INF and b != _INF else a + 1.0 if b == _INF and a != -_INF
                          else 0.0 if a == -_INF else (a + b) / 2)
        return InputColumn(col, "number", values=tuple(values[:SAMPLE_VALUES]), reader=self.label)

    def _out_of_range(self, v: float) -> None:
        raise ValueError(f"bucketizer: value {v!r} in column {self.inputs[0]!r} is outside "
                         f"[{self.splits[0]}, {self.splits[-1]}]")

    def _nan(self) -> None:
        raise ValueError(f"bucketizer: NaN in column {self.inputs[0]!r} (handle_invalid=error)")

    def row(self, r: dict) -> bool | None:
        v = _row_float(r[self.inputs[0]])
        s = self.splits
        if v != v:
            if self.handle == "skip":
                return False
            if self.handle == "error":
                self._nan()
            idx = len(s) - 1
        elif v == s[-1]:
            idx = len(s) - 2
        else:
            idx = bisect_right(s, v) - 1
            if idx < 0 or idx >= len(s) - 1:
                self._out_of_range(v)
        r[self.outputs[0]] = float(idx)
        return None

    def batch(self, cols: dict, n: int) -> np.ndarray | None:
        x = _as_floats(cols[self.inputs[0]], self.inputs[0])
        s = self._splits
        nan = np.isnan(x)
        idx = np.searchsorted(s, x, side="right").astype(float) - 1.0
        idx[x == s[-1]] = len(s) - 2
        bad = ~nan & ((idx < 0) | (idx >= len(s) - 1))
        if bad.any():
            self._out_of_range(float(x[np.argmax(bad)]))
        keep = None
        if nan.any():
            if self.handle == "error":
                self._nan()
            if self.handle == "skip":
                keep = ~nan
            idx[nan] = len(s) - 1
        cols[self.outputs[0]] = idx
        return keep


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return _INF


def _argmax(values: list) -> int:
    best, bi = values[0], 0
    for i in range(1, len(values)):
        if values[i] > best:
            best, bi = values[i], i
    return bi


class _Predictor(_Op):
    """Shared port handling: ``features`` in; ``raw_prediction``/``probability``/``prediction`` out."""

    def __init__(self, node: Node, num_features: int):
        what = f"{node.op} '{node.name}'"
        self.name = what
        self.inputs = [_single(node.inputs, "features", what)]
        ports = dict(node.outputs)
        self.raw_col, self.prob_col = ports.get("raw_prediction"), ports.get("probability")
        self.pred_col = ports.get("prediction")
        self.outputs = [c for c in (self.raw_col, self.prob_col, self.pred_col) if c]
        if not self.outputs:
            raise CorruptArtifact(f"MLeap {what} has no output port")
        self.num_features = num_features

    def input_column(self, col: str) -> InputColumn:
        return InputColumn(col, "vector", self.num_features, reader=self.label)

    def features_row(self, r: dict) -> list:
        return _row_vector(r[self.inputs[0]], self.num_features, self.inputs[0])

    def features_batch(self, cols: dict, n: int) -> np.ndarray:
        x = _as_matrix(cols[self.inputs[0]], n, self.inputs[0])
        if n and x.shape[1] != self.num_features:
            raise ValueError(
                f"column {self.inputs[0]!r} holds vectors of size {x.shape[1]}, expected {self.num_features}")
        return x if n else np.zeros((0, self.num_features))


class _Classifier(_Predictor):
    """Raw scores -> probabilities -> prediction, with optional ``thresholds`` (ProbabilisticClassificationModel)."""

    def __init__(self, node: Node, num_features: int, num_classes: int):
        super().__init__(node, num_features)
        self.num_classes = num_classes
        t = _floats(node, "thresholds", None) if "thresholds" in node.attributes else None
        if t is not None and len(t) != num_classes:
            raise CorruptArtifact(f"MLeap {self.name} has {len(t)} thresholds for {num_classes} classes")
        self.thresholds = t
        self._thresholds = np.array(t) if t is not None else None

    def prediction_row(self, prob: list) -> float:
        t = self.thresholds
        if t is None:
            return float(_argmax(prob))
        return float(_argmax([_INF if ti == 0.0 else p / ti for p, ti in zip(prob, t)]))

    def prediction_batch(self, prob: np.ndarray) -> np.ndarray:
        if self._thresholds is None:
            return np.argmax(prob, axis=1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            zero = self._thresholds == 0.0
            scaled = np.where(zero, _INF, prob / np.where(zero, 1.0, self._thresholds))
        return np.argmax(scaled, axis=1).astype(float)

    def emit_row(self, r: dict, raw: list | None, prob: list, pred: float) -> None:
        if self.raw_col:
            r[self.raw_col] = raw
        if self.prob_col:
            r[self.prob_col] = prob
        if self.pred_col:
            r[self.pred_col] = pred

    def emit_batch(self, cols: dict, raw: np.ndarray, prob: np.ndarray, pred: np.ndarray) -> None:
        if self.raw_col:
            cols[self.raw_col] = raw
        if self.prob_col:
            cols[self.prob_col] = prob
        if self.pred_col:
            cols[self.pred_col] = pred


class _LinearRegression(_Predictor):
    def __init__(self, bundle: Bundle, node: Node):
        self.coef = _floats(node, "coefficients")
        super().__init__(node, len(self.coef))
        self.intercept = _float(node, "intercept", 0.0)
        self._coef = np.array(self.coef)

    def row(self, r: dict) -> None:
        x = self.features_row(r)
        r[self.pred_col] = sum(map(mul, x, self.coef)) + self.intercept
        return None

    def batch(self, cols: dict, n: int) -> None:
        cols[self.pred_col] = self.features_batch(cols, n) @ self._coef + self.intercept
        return None


class _LogisticRegression(_Classifier):
    def __init__(self, bundle: Bundle, node: Node):
        num_classes = _int(node, "num_classes")
        self.multinomial = num_classes > 2
        if self.multinomial:
            cm = _attr(node, "coefficient_matrix")
            if not isinstance(cm, Tensor) or len(cm.dims) != 2 or cm.dims[0] != num_classes:
                raise CorruptArtifact(f"MLeap logistic_regression '{node.name}' coefficient_matrix is not a "
                                      f"{num_classes}-row matrix")
            rows, num_features = cm.dims
            # values are column-major (Spark Matrix.toArray), MLeap reads them with Matrices.dense
            self.matrix = [[float(cm.values[c * rows + k]) for c in range(num_features)] for k in range(rows)]
            self.intercepts = _floats(node, "intercept_vector")
            if len(self.intercepts) != num_classes:
                raise CorruptArtifact(f"MLeap logistic_regression '{node.name}' intercept_vector has the wrong size")
            super().__init__(node, num_features, num_classes)
            self._matrix = np.array(self.matrix)
            self._intercepts = np.array(self.intercepts)
        else:
            self.coef = _floats(node, "coefficients")
            self.intercept = _float(node, "intercept", 0.0)
            self.threshold = _float(node, "threshold", 0.5)
            super().__init__(node, len(self.coef), 2)
            self._coef = np.array(self.coef)

    def row(self, r: dict) -> None:
        x = self.features_row(r)
        if not self.multinomial:
            m = sum(map(mul, x, self.coef)) + self.intercept
            prob = [1.0 / (1.0 + _exp(m)), 1.0 / (1.0 + _exp(-m))]
            self.emit_row(r, [-m, m], prob, 1.0 if prob[1] > self.threshold else 0.0)
            return None
        margins = [b + sum(map(mul, x, w)) for w, b in zip(self.matrix, self.intercepts)]
        k = _argmax(margins)
        top = margins[k]
        if top == _INF:
            prob = [1.0 if i == k else 0.0 for i in range(len(margins))]
        else:
            e = [_exp(m - top) for m in margins] if top > 0 else [_exp(m) for m in margins]
            total = sum(e)
            prob = [v / total for v in e]
        self.emit_row(r, margins, prob, self.prediction_row(prob))
        return None

    def batch(self, cols: dict, n: int) -> None:
        x = self.features_batch(cols, n)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if not self.multinomial:
                m = x @ self._coef + self.intercept
                raw = np.stack([-m, m], axis=1)
                prob = np.stack([1.0 / (1.0 + np.exp(m)), 1.0 / (1.0 + np.exp(-m))], axis=1)
                self.emit_batch(cols, raw, prob, (prob[:, 1] > self.threshold).astype(float))
                return None
            raw = x @ self._matrix.T + self._intercepts
            top = raw.max(axis=1, initial=-_INF, keepdims=True) if n else np.zeros((0, 1))
            shifted = np.where(top > 0, raw - top, raw)
            e = np.exp(shifted)
            prob = e / e.sum(axis=1, keepdims=True)
            inf_rows = np.isinf(top[:, 0]) & (top[:, 0] > 0)
            if inf_rows.any():
                prob[inf_rows] = 0.0
                prob[inf_rows, np.argmax(raw[inf_rows], axis=1)] = 1.0
        self.emit_batch(cols, raw, prob, self.prediction_batch(prob))
        return None


class _Forest:
    """One or more decision trees flattened into shared numpy arrays for vectorized evaluation.

    Leaves loop to themselves (both children are the leaf), so every row walks exactly ``depth``
    steps with no bookkeeping of which rows are done.
    """

    def __init__(self, trees: list[mleap_bundle.DecisionTree], num_features: int, leaf_width: int, what: str):
        self.trees = trees
        offsets, total = [], 0
        for t in trees:
            offsets.append(total)
            total += len(t.left)
        self.roots = np.array(offsets, dtype=np.int64)
        self.feature = np.zeros(total, dtype=np.int64)
        self.threshold = np.zeros(total)
        self.children = np.zeros(2 * total, dtype=np.int64)  # [left, right] of node i at 2i, 2i+1
        self.values = np.zeros((total, leaf_width))
        self.is_cat = np.zeros(total, dtype=bool)
        self.cat_left = np.zeros(total, dtype=bool)
        self.depth = max((t.depth for t in trees), default=0)
        self.cat_sets: dict[int, frozenset] = {}
        for t, off in zip(trees, offsets):
            for i in range(len(t.left)):
                g = off + i
                if t.left[i] >= 0:
                    if not 0 <= t.feature[i] < num_features:
                        raise CorruptArtifact(f"MLeap {what} splits on feature {t.feature[i]} of {num_features}")
                    self.feature[g], self.threshold[g] = t.feature[i], t.threshold[i]
                    self.children[2 * g], self.children[2 * g + 1] = t.left[i] + off, t.right[i] + off
                    split = t.categories[i]
                    if split is not None:
                        self.is_cat[g], self.cat_left[g] = True, split[0]
                        self.cat_sets[g] = split[1]
                else:
                    vals = t.values[i]
                    if vals is None or len(vals) != leaf_width:
                        got = f"{len(vals)} values" if vals is not None else "no values"
                        raise CorruptArtifact(f"MLeap {what} has a leaf with {got}, expected {leaf_width}")
                    self.values[g] = vals
                    self.children[2 * g] = self.children[2 * g + 1] = g
        # categorical splits on small integral categories: one bit per category in a 64-bit mask
        cats = [c for s in self.cat_sets.values() for c in s]
        self.cat_bits = None
        if all(c.is_integer() and 0 <= c < 64 for c in cats):
            self.cat_bits = np.zeros(total, dtype=np.uint64)
            for g, s in self.cat_sets.items():
                self.cat_bits[g] = sum(1 << int(c) for c in s)

    def leaves_row(self, x: list) -> list[int]:
        """Leaf index (into the flat arrays) reached by one feature list in every tree."""
        out = []
        for t, off in zip(self.trees, self.roots.tolist()):
            feature, threshold, left, right, cats = t.feature, t.threshold, t.left, t.right, t.categories
            i = 0
            while True:
                nxt = left[i]
                if nxt < 0:
                    break
                c = cats[i]
                if c is None:
                    i = nxt if x[feature[i]] <= threshold[i] else right[i]
                else:
                    i = nxt if (x[feature[i]] in c[1]) == c[0] else right[i]
            out.append(off + i)
        return out

    def leaves_batch(self, x: np.ndarray) -> np.ndarray:
        """Leaf indices, shape (rows, trees)."""
        n, k = x.shape[0], len(self.trees)
        flat = np.ascontiguousarray(x, dtype=float).ravel()
        row_offset = np.repeat(np.arange(n, dtype=np.int64) * x.shape[1], k)
        node = np.tile(self.roots, n)
        for _ in range(self.depth):
            fv = flat[row_offset + self.feature[node]]
            go = fv <= self.threshold[node]
            if self.cat_sets:
                cm = self.is_cat[node]
                if cm.any():
                    sub = node[cm]
                    go[cm] = self._contains(sub, fv[cm]) == self.cat_left[sub]
            node = self.children[2 * node + ~go]
        return node.reshape(n, k)

    def _contains(self, nodes: np.ndarray, fv: np.ndarray) -> np.ndarray:
        if self.cat_bits is not None:
            ok = (fv >= 0) & (fv < 64) & (np.floor(fv) == fv)  # False for NaN
            shift = np.where(ok, fv, 0).astype(np.uint64)
            return ok & ((self.cat_bits[nodes] >> shift) & np.uint64(1)).astype(bool)
        return np.array([v in self.cat_sets[g] for g, v in zip(nodes.tolist(), fv.tolist())], dtype=bool)


def _read_trees(bundle: Bundle, node: Node) -> tuple[list[mleap_bundle.DecisionTree], list[float], int]:
    """The trees, their weights and num_features of a tree or ensemble node."""
    num_features = _int(node, "num_features")
    if node.op.startswith("decision_tree"):
        return [mleap_bundle.read_decision_tree(bundle, node.folder)], [1.0], num_features
    names = _attr(node, "trees")
    if not isinstance(names, list) or not names or not all(isinstance(t, str) for t in names):
        raise CorruptArtifact(f"MLeap {node.op} '{node.name}' lacks its list of trees")
    weights = _floats(node, "tree_weights", [1.0] * len(names))
    if len(weights) != len(names):
        raise CorruptArtifact(f"MLeap {node.op} '{node.name}' has {len(weights)} weights for {len(names)} trees")
    trees = []
    for name in names:
        mleap_bundle.read_submodel(bundle, node, name)
        trees.append(mleap_bundle.read_decision_tree(bundle, f"{node.folder}/{name}"))
    return trees, weights, num_features


class _TreeRegression(_Predictor):
    """decision_tree_regression, random_forest_regression (mean) and gbt_regression (weighted sum)."""

    def __init__(self, bundle: Bundle, node: Node):
        trees, weights, num_features = _read_trees(bundle, node)
        super().__init__(node, num_features)
        self.forest = _Forest(trees, num_features, 1, self.name)
        self.mode = {"decision_tree_regression": "single", "random_forest_regression": "mean"}.get(node.op, "weighted")
        self.weights = weights
        self._weights = np.array(weights)
        self._leaf = self.forest.values[:, 0].tolist()

    def row(self, r: dict) -> None:
        leaf = self._leaf
        preds = [leaf[i] for i in self.forest.leaves_row(self.features_row(r))]
        if self.mode == "single":
            value = preds[0]
        elif self.mode == "mean":
            value = sum(preds) / len(preds)
        else:
            value = sum(map(mul, preds, self.weights))
        r[self.pred_col] = value
        return None

    def batch(self, cols: dict, n: int) -> None:
        preds = self.forest.values[self.forest.leaves_batch(self.features_batch(cols, n)), 0]
        if self.mode == "single":
            value = preds[:, 0]
        elif self.mode == "mean":
            value = preds.sum(axis=1) / preds.shape[1]
        else:
            value = preds @ self._weights
        cols[self.pred_col] = value
        return None


class _TreeClassifier(_Classifier):
    """decision_tree_classifier (leaf class counts) and random_forest_classifier (summed normalized counts)."""

    def __init__(self, bundle: Bundle, node: Node):
        trees, weights, num_features = _read_trees(bundle, node)
        super().__init__(node, num_features, _int(node, "num_classes"))
        self.forest = _Forest(trees, num_features, self.num_classes, self.name)
        self.single = node.op == "decision_tree_classifier"
        values = self.forest.values
        totals = values.sum(axis=1, keepdims=True)
        self._normalized = np.where(totals != 0, values / np.where(totals != 0, totals, 1.0), 0.0)
        self._rows = values.tolist()
        self._normalized_rows = self._normalized.tolist()

    def row(self, r: dict) -> None:
        leaves = self.forest.leaves_row(self.features_row(r))
        if self.single:
            raw = list(self._rows[leaves[0]])
        else:
            raw = [0.0] * self.num_classes
            for i in leaves:
                counts = self._rows[i]
                total = sum(counts)
                if total != 0:
                    raw = [v + c / total for v, c in zip(raw, counts)]
        total = sum(raw)
        prob = [v / total for v in raw] if total != 0 else list(raw)
        self.emit_row(r, raw, prob, self.prediction_row(prob))
        return None

    def batch(self, cols: dict, n: int) -> None:
        leaves = self.forest.leaves_batch(self.features_batch(cols, n))
        if self.single:
            raw = self.forest.values[leaves[:, 0]]
        else:
            raw = self._normalized[leaves].sum(axis=1)
        total = raw.sum(axis=1, keepdims=True)
        prob = np.where(total != 0, raw / np.where(total != 0, total, 1.0), raw)
        self.emit_batch(cols, raw, prob, self.prediction_batch(prob))
        return None


class _GBTClassifier(_Classifier):
    def __init__(self, bundle: Bundle, node: Node):
        trees, weights, num_features = _read_trees(bundle, node)
        if _int(node, "num_classes", 2) != 2:
            raise NotLoadable(f"MLeap gbt_classifier '{node.name}' is not binary, which MLeap does not support")
        super().__init__(node, num_features, 2)
        self.forest = _Forest(trees, num_features, 1, self.name)
        self.weights = weights
        self._weights = np.array(weights)
        self._leaf = self.forest.values[:, 0].tolist()

    def row(self, r: dict) -> None:
        leaf = self._leaf
        m = sum(map(mul, [leaf[i] for i in self.forest.leaves_row(self.features_row(r))], self.weights))
        p0 = 1.0 / (1.0 + _exp(-2.0 * -m))
        prob = [p0, 1.0 - p0]
        if self.thresholds is not None or self.prob_col:
            pred = self.prediction_row(prob)
        else:
            pred = 1.0 if m > 0.0 else 0.0
        self.emit_row(r, [-m, m], prob, pred)
        return None

    def batch(self, cols: dict, n: int) -> None:
        leaves = self.forest.leaves_batch(self.features_batch(cols, n))
        m = self.forest.values[leaves, 0] @ self._weights
        with np.errstate(over="ignore"):
            p0 = 1.0 / (1.0 + np.exp(2.0 * m))
        prob = np.stack([p0, 1.0 - p0], axis=1)
        if self.thresholds is not None or self.prob_col:
            pred = self.prediction_batch(prob)
        else:
            pred = (m > 0.0).astype(float)
        self.emit_batch(cols, np.stack([-m, m], axis=1), prob, pred)
        return None


class _KMeans(_Op):
    """k_means: the index of the nearest cluster centre (squared Euclidean distance, first centre on ties)."""

    def __init__(self, bundle: Bundle, node: Node):
        what = f"k_means '{node.name}'"
        self.inputs = [_single(node.inputs, "features", what)]
        self.outputs = [_single(node.outputs, "prediction", what)]
        centers = _attr(node, "cluster_centers")
        if not isinstance(centers, list) or not centers or not all(isinstance(t, Tensor) for t in centers):
            raise CorruptArtifact(f"MLeap {what} cluster_centers is not a non-empty list of tensors")
        rows = []
        for t in centers:
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in t.values):
                raise CorruptArtifact(f"MLeap {what} has a cluster centre that is not a list of numbers")
            rows.append([float(x) for x in t.values])
        size = len(rows[0])
        self.num_features = _int(node, "num_features", size)
        if any(len(r) != self.num_features for r in rows):
            raise CorruptArtifact(f"MLeap {what} has cluster centres that are not all of num_features "
                                  f"{self.num_features} values")
        self.centers = rows
        self._centers = np.array(rows, dtype=float)

    def input_column(self, col: str) -> InputColumn:
        return InputColumn(col, "vector", self.num_features, reader=self.label)

    def row(self, r: dict) -> None:
        x = _row_vector(r[self.inputs[0]], self.num_features, self.inputs[0])
        best, best_index = _INF, 0
        for i, c in enumerate(self.centers):
            d = 0.0
            for a, b in zip(x, c):
                d += (a - b) * (a - b)
            if d < best:  # NaN never wins: a row with NaN features goes to centre 0, as in MLeap
                best, best_index = d, i
        r[self.outputs[0]] = best_index
        return None

    def batch(self, cols: dict, n: int) -> None:
        x = _as_matrix(cols[self.inputs[0]], n, self.inputs[0]) if n else np.zeros((0, self.num_features))
        if n and x.shape[1] != self.num_features:
            raise ValueError(
                f"column {self.inputs[0]!r} holds vectors of size {x.shape[1]}, expected {self.num_features}")
        best = np.full(n, _INF)
        index = np.zeros(n, dtype=np.int32)
        with np.errstate(invalid="ignore", over="ignore"):
            for i, c in enumerate(self._centers):
                diff = x - c
                d = np.einsum("ij,ij->i", diff, diff)
                closer = d < best
                best = np.where(closer, d, best)
                index[closer] = i
        cols[self.outputs[0]] = index
        return None


def _tensor_size(shape: Any) -> int | None:
    """The vector size a ``data_shape`` of a vector_assembler's ``input_shapes`` records (None for a scalar)."""
    if not isinstance(shape, dict) or shape.get("base") != "tensor":
        return None
    ts = shape.get("tensorShape") or shape.get("tensor_shape") or {}
    dims = ts.get("dimensions") if isinstance(ts, dict) else None
    if isinstance(dims, list) and len(dims) == 1 and isinstance(dims[0], dict):
        size = dims[0].get("size")
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            return size
    return None


_OPS = {
    "string_indexer": _StringIndexer,
    "one_hot_encoder": _OneHotEncoder,
    "vector_assembler": _VectorAssembler,
    "standard_scaler": _StandardScaler,
    "min_max_scaler": _MinMaxScaler,
    "imputer": _Imputer,
    "bucketizer": _Bucketizer,
    "linear_regression": _LinearRegression,
    "logistic_regression": _LogisticRegression,
    "decision_tree_regression": _TreeRegression,
    "random_forest_regression": _TreeRegression,
    "gbt_regression": _TreeRegression,
    "decision_tree_classifier": _TreeClassifier,
    "random_forest_classifier": _TreeClassifier,
    "gbt_classifier": _GBTClassifier,
    "k_means": _KMeans,
}
