"""Reader of Spark ML's saved-model format (``model.write().save(path)``), without a Spark session.

Layout (apache/spark ``mllib/src/main/scala/org/apache/spark/ml/util/ReadWrite.scala``:
``DefaultParamsWriter.saveMetadata`` / ``DefaultParamsReader.loadMetadata``; ``ml/Pipeline.scala``:
``SharedReadWrite``; checked against files written by pyspark 4.3):

- ``metadata/`` is a Spark text output folder holding one JSON line in a part file: Spark 4 names it
  ``part-00000-<uuid>-c000.txt``, Spark 2/3 ``part-00000``, next to ``_SUCCESS`` and ``.crc`` files.
  The object has ``class`` (JVM class name), ``timestamp``, ``sparkVersion``, ``uid``, ``paramMap``
  (explicitly set params), ``defaultParamMap`` (Spark >= 2.4) and model-specific extras such as
  ``numFeatures``, ``numClasses``, ``numTrees``.  Double params encode NaN and infinities as the
  strings ``"NaN"``, ``"Inf"``, ``"-Inf"``.
- A ``PipelineModel`` lists ``paramMap.stageUids``; stage ``i`` is saved in
  ``stages/<i>_<uid>/`` with ``i`` zero-padded to the number of digits of the stage count.
- Model data is Parquet under ``data/``; tree ensembles also write ``treesMetadata/`` with the tree
  id, the tree's metadata JSON and its weight, as columns ``treeID``/``metadata``/``weights`` up to
  Spark 3 (``ml/tree/treeModels.scala``, ``EnsembleModelReadWrite``) and ``_1``/``_2``/``_3`` in
  the files Spark 4 writes.  ML vectors are stored as the struct
  ``{type: 0 sparse | 1 dense, size, indices, values}`` and matrices as ``{type, numRows, numCols,
  colPtrs, rowIndices, values, isTransposed}`` (``mllib-local``'s VectorUDT / MatrixUDT).

Parquet is decoded with pyarrow, imported only when data is read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from artifact_tools.errors import CorruptArtifact, MissingExtra, NotAnArtifact
from artifact_tools.filetree import FileTree

MAX_METADATA_BYTES = 64 * 1024 * 1024
MAX_PARQUET_BYTES = 2 * 1024 * 1024 * 1024
MAX_VECTOR_SIZE = 1 << 28
MAX_NESTING = 32

_SPECIAL_DOUBLES = {"NaN": math.nan, "Inf": math.inf, "-Inf": -math.inf}


@dataclass
class SparkStage:
    """One saved Spark ML object (a model, transformer or pipeline) and its place in the tree."""

    class_name: str
    uid: str
    spark_version: str
    params: dict[str, Any]  # defaultParamMap overlaid with paramMap
    explicit_params: dict[str, Any]  # paramMap only
    metadata: dict[str, Any]  # the whole metadata object
    folder: str  # folder of the stage inside the tree ("" for the root)
    stages: list[SparkStage] = field(default_factory=list)  # children of a PipelineModel

    @property
    def short_class(self) -> str:
        return self.class_name.rsplit(".", 1)[-1]

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


def is_spark_ml_model(tree: FileTree) -> bool:
    """True when the tree root holds a Spark ML ``metadata/`` part file naming an ML class."""
    try:
        meta = read_metadata(tree, "")
    except (NotAnArtifact, CorruptArtifact):
        return False
    return str(meta.get("class", "")).startswith("org.apache.spark.ml")


def read_metadata(tree: FileTree, folder: str) -> dict[str, Any]:
    """The metadata JSON object of the object saved in ``folder`` ("" = tree root)."""
    prefix = f"{folder}/metadata/" if folder else "metadata/"
    parts = sorted(n for n in tree.names() if n.startswith(prefix) and "/" not in n[len(prefix):]
                   and n[len(prefix):].startswith("part-"))
    if not parts:
        raise NotAnArtifact(f"no Spark ML metadata part file under {prefix}")
    for name in parts:
        size = tree.size(name)
        if size > MAX_METADATA_BYTES:
            raise CorruptArtifact(f"Spark ML metadata {name} is {size} bytes, over the {MAX_METADATA_BYTES}-byte limit")
        text = _read(tree, name)
        if not text.strip():
            continue
        try:
            line = text.decode("utf-8").strip().splitlines()[0]
            meta = json.loads(line)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise CorruptArtifact(f"Spark ML metadata {name} is not valid JSON ({str(e)[:100]})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("class"), str) or not isinstance(meta.get("uid"), str):
            raise CorruptArtifact(f"Spark ML metadata {name} lacks the class and uid fields")
        return meta
    raise CorruptArtifact(f"every Spark ML metadata part file under {prefix} is empty")


def read_stage(tree: FileTree, folder: str = "", _depth: int = 0) -> SparkStage:
    """Read the saved object in ``folder`` and, for a PipelineModel, every stage below it."""
    if _depth > MAX_NESTING:
        raise CorruptArtifact(f"Spark pipelines are nested more than {MAX_NESTING} levels deep")
    meta = read_metadata(tree, folder)
    explicit = meta.get("paramMap") or {}
    defaults = meta.get("defaultParamMap") or {}
    if not isinstance(explicit, dict) or not isinstance(defaults, dict):
        raise CorruptArtifact(f"Spark ML metadata in {folder or 'the root'} has a malformed paramMap")
    stage = SparkStage(
        class_name=meta["class"],
        uid=meta["uid"],
        spark_version=str(meta.get("sparkVersion", "")),
        params={**defaults, **explicit},
        explicit_params=dict(explicit),
        metadata=meta,
        folder=folder,
    )
    if stage.class_name in ("org.apache.spark.ml.PipelineModel", "org.apache.spark.ml.Pipeline"):
        uids = explicit.get("stageUids")
        if not isinstance(uids, list) or not all(isinstance(u, str) for u in uids):
            raise CorruptArtifact(f"Spark pipeline metadata in {folder or 'the root'} lacks stageUids")
        base = f"{folder}/stages/" if folder else "stages/"
        present = {n[len(base):].split("/", 1)[0] for n in tree.names() if n.startswith(base)}
        for i, uid in enumerate(uids):
            match = [p for p in present if _stage_dir_matches(p, i, uid)]
            if not match:
                raise CorruptArtifact(f"Spark pipeline stage {i} ({uid}) has no folder under {base}")
            stage.stages.append(read_stage(tree, base + sorted(match)[0], _depth + 1))
    return stage


def read_data(tree: FileTree, stage: SparkStage, sub: str = "data") -> list[dict[str, Any]]:
    """All rows of the Parquet files in ``<stage folder>/<sub>/`` as dicts (pyarrow, lazily)."""
    pq, pa = _pyarrow()
    rows: list[dict[str, Any]] = []
    for name in _parquet_files(tree, stage, sub):
        try:
            table = pq.read_table(pa.BufferReader(_read(tree, name)))
            rows.extend(table.to_pylist())
        except (pa.ArrowException, OSError, ValueError) as e:
            raise CorruptArtifact(f"Spark ML data file {name} is not readable Parquet ({str(e)[:100]})") from None
    return rows


def data_schemas(tree: FileTree, stage: SparkStage) -> list[dict[str, Any]]:
    """Column names/types and row counts of each data folder, from the Parquet footers only."""
    out = []
    base = f"{stage.folder}/" if stage.folder else ""
    subs = sorted({n[len(base):].split("/", 1)[0] for n in tree.names()
                   if n.startswith(base) and n.endswith(".parquet") and n[len(base):].count("/") == 1})
    for sub in subs:
        files = _parquet_files(tree, stage, sub)
        entry: dict[str, Any] = {"folder": sub, "files": len(files)}
        try:
            pq, pa = _pyarrow()
        except MissingExtra:
            entry["columns"] = None
            out.append(entry)
            continue
        rows = 0
        columns: list[list[str]] = []
        for name in files:
            try:
                pf = pq.ParquetFile(pa.BufferReader(_read(tree, name)))
                rows += pf.metadata.num_rows
                if not columns:
                    columns = [[f.name, str(f.type)] for f in pf.schema_arrow]
            except (pa.ArrowException, OSError, ValueError) as e:
                raise CorruptArtifact(f"Spark ML data file {name} is not readable Parquet ({str(e)[:100]})") from None
        entry.update(columns=columns, rows=rows)
        out.append(entry)
    return out


def summarize(tree: FileTree) -> dict[str, Any]:
    """Cheap description for inspection: classes, uids, params, Spark version, data schemas."""
    root = read_stage(tree)

    def describe(s: SparkStage) -> dict[str, Any]:
        d: dict[str, Any] = {"class": s.class_name, "uid": s.uid, "params": s.explicit_params}
        extras = {k: v for k, v in s.metadata.items()
                  if k not in ("class", "timestamp", "sparkVersion", "uid", "paramMap", "defaultParamMap")}
        if extras:
            d["extra"] = extras
        schemas = data_schemas(tree, s)
        if schemas:
            d["data"] = schemas
        if s.stages:
            d["stages"] = [describe(c) for c in s.stages]
        return d

    out = {"format": "spark_ml", "spark_version": root.spark_version}
    out.update(describe(root))
    return out


def not_loadable_reason(summary: dict[str, Any]) -> str | None:
    """Why ``loaders.spark`` cannot score the model :func:`summarize` described (one sentence), or None.

    A saved ``Pipeline`` or other estimator (``Pipeline.write().save``, not ``PipelineModel``) holds no fitted
    stages: Spark loads it, but it has no ``transform`` (``ml/Pipeline.scala``: ``Pipeline`` is an Estimator)."""
    cls = str(summary.get("class", ""))
    if cls == "org.apache.spark.ml.Pipeline":
        return "this is an unfitted Spark Pipeline (an estimator); fit it and save the PipelineModel"
    nested = [s for s in summary.get("stages") or [] if isinstance(s, dict)]
    for stage in nested:
        reason = not_loadable_reason(stage)
        if reason:
            return reason
    return None


def spark_double(v: Any) -> float:
    """A double param as Spark's JSON encodes it (numbers, or "NaN" / "Inf" / "-Inf")."""
    if isinstance(v, str) and v in _SPECIAL_DOUBLES:
        return _SPECIAL_DOUBLES[v]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    raise CorruptArtifact(f"Spark ML param value {v!r} is not a double")


def vector_values(v: Any, what: str) -> list[float]:
    """Dense values of an ML vector struct (``type`` 0 = sparse, 1 = dense)."""
    if not isinstance(v, dict) or v.get("type") not in (0, 1):
        raise CorruptArtifact(f"Spark ML {what} is not a vector")
    values = _floats(v.get("values") or [], what)
    if v["type"] == 1:
        return values
    size, indices = v.get("size"), v.get("indices") or []
    if not isinstance(size, int) or not 0 <= size <= MAX_VECTOR_SIZE or len(indices) != len(values):
        raise CorruptArtifact(f"Spark ML {what} is a malformed sparse vector")
    dense = [0.0] * size
    for i, x in zip(indices, values):
        if not isinstance(i, int) or not 0 <= i < size:
            raise CorruptArtifact(f"Spark ML {what} has a sparse index out of range")
        dense[i] = x
    return dense


def matrix_rows(m: Any, what: str) -> list[list[float]]:
    """Row lists of an ML matrix struct (dense column-major unless transposed; sparse CSC/CSR)."""
    if not isinstance(m, dict) or m.get("type") not in (0, 1):
        raise CorruptArtifact(f"Spark ML {what} is not a matrix")
    rows, cols = m.get("numRows"), m.get("numCols")
    if not isinstance(rows, int) or not isinstance(cols, int) or rows < 0 or cols < 0 or rows * cols > MAX_VECTOR_SIZE:
        raise CorruptArtifact(f"Spark ML {what} has an invalid shape")
    values = _floats(m.get("values") or [], what)
    transposed = bool(m.get("isTransposed"))
    out = [[0.0] * cols for _ in range(rows)]
    if m["type"] == 1:
        if len(values) != rows * cols:
            raise CorruptArtifact(f"Spark ML {what} holds {len(values)} values for a {rows}x{cols} matrix")
        for k, x in enumerate(values):
            r, c = (k // cols, k % cols) if transposed else (k % rows, k // rows)
            out[r][c] = x
        return out
    ptrs, idx = m.get("colPtrs") or [], m.get("rowIndices") or []
    major, minor = (rows, cols) if transposed else (cols, rows)
    if len(ptrs) != major + 1 or len(idx) != len(values):
        raise CorruptArtifact(f"Spark ML {what} is a malformed sparse matrix")
    for j in range(major):
        lo, hi = ptrs[j], ptrs[j + 1]
        if not isinstance(lo, int) or not isinstance(hi, int) or not 0 <= lo <= hi <= len(values):
            raise CorruptArtifact(f"Spark ML {what} has sparse pointers out of range")
        for k in range(lo, hi):
            i = idx[k]
            if not isinstance(i, int) or not 0 <= i < minor:
                raise CorruptArtifact(f"Spark ML {what} has a sparse index out of range")
            if transposed:
                out[j][i] = values[k]
            else:
                out[i][j] = values[k]
    return out


# --- internals -------------------------------------------------------------------------------


def _floats(values: Any, what: str) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        raise CorruptArtifact(f"Spark ML {what} holds values that are not numbers")
    return [float(x) for x in values]


def _read(tree: FileTree, name: str) -> bytes:
    try:
        return tree.read(name)
    except KeyError:  # listed with a size but its content is not available
        raise CorruptArtifact(f"Spark ML file {name} is listed but its content cannot be read") from None


def _stage_dir_matches(name: str, index: int, uid: str) -> bool:
    m = re.fullmatch(r"(\d+)_(.+)", name)
    return m is not None and int(m.group(1)) == index and m.group(2) == uid


def _parquet_files(tree: FileTree, stage: SparkStage, sub: str) -> list[str]:
    prefix = f"{stage.folder}/{sub}/" if stage.folder else f"{sub}/"
    files = sorted(n for n in tree.names() if n.startswith(prefix) and "/" not in n[len(prefix):]
                   and n[len(prefix):].startswith("part-") and n.endswith(".parquet"))
    if not files:
        raise CorruptArtifact(f"Spark ML {stage.short_class} {stage.uid} has no Parquet file under {prefix}")
    for name in files:
        if tree.size(name) > MAX_PARQUET_BYTES:
            raise CorruptArtifact(f"Spark ML data file {name} is over the {MAX_PARQUET_BYTES}-byte limit")
    return files


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra("spark", "pyarrow") from None
    return pq, pa
