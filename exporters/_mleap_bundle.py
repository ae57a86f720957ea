"""A saved Spark ML pipeline as an MLeap bundle, in pure Python (no JVM, no MLeap JARs). Private: shared by
the ``mleap`` target (:mod:`exporters.mleap`) and the SparkML Serving layout of the ``sagemaker`` target.

The input is Spark's own saved format (``PipelineModel.write().save(dir)``), read by
:mod:`artifact_tools.formats.spark_ml`.  Every stage is translated into the node MLeap's Spark
integration would write for it, with the same op names, attribute names, encodings and ports
(combust/mleap @ 88de54dd, ``mleap-spark/src/main/scala/org/apache/spark/ml/bundle/ops/**/*Op.scala``,
``mleap-spark-extension/.../ops/feature/ImputerOp.scala``, ``mleap-spark-base/.../SparkShape.scala``,
``bundle-ml/.../json/JsonSupport.scala``), with these deliberate choices:

- multi-column StringIndexer, Imputer and Bucketizer stages become one single-column node per
  column (``<uid>`` when single, ``<uid>_<i>`` otherwise) with ports ``input``/``output``, which
  every MLeap runtime reads (MLeap 0.20, used by the SageMaker SparkML Serving container, rejects
  multi-column StringIndexers); OneHotEncoder keeps MLeap's multi-column form (``input0``...);
- nested PipelineModels are flattened into one pipeline (same execution order);
- VectorAssembler input sizes (MLeap's ``input_shapes``) are derived from the stages that produce
  each column; a raw input column of a VectorAssembler is taken to be a numeric scalar.

Known differences that come from MLeap's ops, not from this writer: MLeap's imputer also replaces
NaN when ``missingValue`` is not NaN and returns doubles where Spark casts back to the input type;
a 2-class multinomial LogisticRegression and a StandardScaler without mean and std cannot be
represented and raise :class:`NotLoadable`.

:func:`write_sparkml_serving` writes what the SageMaker SparkML Serving container loads from
``/opt/ml/model``: the bundle unzipped at the archive root (aws/sagemaker-sparkml-serving-container
``BeanConfiguration.java``), plus the ``SAGEMAKER_SPARKML_SCHEMA`` JSON (its README: ``input`` is a
list of ``{"name", "type"[, "struct"]}``, ``output`` one such mapping, ``struct`` one of ``basic``,
``vector``, ``array``).
"""

from __future__ import annotations

import datetime
import io
import json
import math
import os
import re
import tarfile
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotAnArtifact, NotLoadable, UnsafeArtifact
from artifact_tools.filetree import DirTree, FileTree
from artifact_tools.formats import spark_ml
from artifact_tools.formats.spark_ml import SparkStage

from ._atomic import staged

MLEAP_VERSION = "0.25.2"  # the MLeap release whose op encodings this writer follows
MAX_TREE_NODES = 10_000_000


@dataclass
class SparkMLServing:
    """Result of :func:`write_sparkml_serving`."""

    archive: Path  # model.tar.gz: bundle.json + root/ at the archive root
    schema_path: Path  # the schema JSON, the value of SAGEMAKER_SPARKML_SCHEMA
    schema: dict

    @property
    def environment(self) -> dict[str, str]:
        """The container environment variables to set on the SageMaker model."""
        return {"SAGEMAKER_SPARKML_SCHEMA": json.dumps(self.schema)}


def export_pipeline(source: str | os.PathLike | FileTree, out_path: str | os.PathLike, form: str = "zip") -> Path:
    """Write the Spark model at ``source`` as an MLeap bundle: a ``.zip`` file or a directory."""
    if form not in ("zip", "dir"):
        raise ValueError("form must be 'zip' or 'dir'")
    plan = _convert(_open(source))
    out = Path(out_path)
    if form == "zip":
        _write_file(out, _zip_bytes(plan.files))
    else:
        with staged(out) as folder:  # an existing folder is refused
            for name, data in plan.files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
    return out


def write_sparkml_serving(source: str | os.PathLike | FileTree, out_dir: str | os.PathLike,
                          output_column: str | None = None) -> SparkMLServing:
    """Write ``model.tar.gz`` and ``sparkml_schema.json`` for the SageMaker SparkML Serving container.

    ``output_column`` defaults to the last stage's prediction column (or its last output).
    """
    plan = _convert(_open(source))
    schema = plan.schema(output_column)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "model.tar.gz"
    schema_path = out / "sparkml_schema.json"
    _write_file(archive, _tar_gz_bytes(plan.files))
    _write_file(schema_path, (json.dumps(schema, indent=2) + "\n").encode())
    return SparkMLServing(archive=archive, schema_path=schema_path, schema=schema)


# --- conversion ------------------------------------------------------------------------------


@dataclass
class _Column:
    kind: str  # "string" | "double"
    size: int | None = None  # None: scalar; otherwise a vector of this size


@dataclass
class _Node:
    name: str
    op: str
    inputs: list[tuple[str, str]]
    outputs: list[tuple[str, str]]
    attributes: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)  # extra files relative to the node folder


@dataclass
class _Plan:
    files: dict[str, bytes]
    raw_inputs: dict[str, _Column]
    produced: dict[str, _Column]
    default_output: str

    def schema(self, output_column: str | None) -> dict:
        name = output_column or self.default_output
        col = self.produced.get(name) or self.raw_inputs.get(name)
        if col is None:
            raise ArtifactError(f"output column {name!r} is not produced by the pipeline")
        return {"input": [_schema_field(n, c) for n, c in self.raw_inputs.items()], "output": _schema_field(name, col)}


def _schema_field(name: str, col: _Column) -> dict:
    f = {"name": name, "type": col.kind}
    if col.size is not None:
        f["struct"] = "vector"
    return f


class _Converter:
    def __init__(self, tree: FileTree):
        self.tree = tree
        self.columns: dict[str, _Column] = {}
        self.raw: dict[str, _Column] = {}
        self.names: set[str] = set()

    # column bookkeeping: which columns exist, of what kind and size
    def use(self, col: str, kind: str, size: int | None = None) -> _Column:
        if not isinstance(col, str) or not col:
            raise CorruptArtifact("a Spark stage names an empty or non-string column")
        if col in self.columns:
            return self.columns[col]
        if col not in self.raw:
            self.raw[col] = _Column(kind, size)
        return self.raw[col]

    def produce(self, col: str, kind: str = "double", size: int | None = None) -> None:
        if not isinstance(col, str) or not col:
            raise CorruptArtifact("a Spark stage names an empty or non-string output column")
        self.columns[col] = _Column(kind, size)

    def node_name(self, name: str) -> str:
        if not _safe_name(name):
            raise UnsafeArtifact(f"Spark stage uid {name!r} cannot be used as an MLeap node folder name")
        if name in self.names:
            raise CorruptArtifact(f"two Spark stages share the uid {name!r}")
        self.names.add(name)
        return name

    def convert(self, stage: SparkStage) -> list[_Node]:
        handler = _HANDLERS.get(stage.short_class)
        if stage.short_class == "PipelineModel":
            return [n for s in stage.stages for n in self.convert(s)]
        if stage.short_class == "Pipeline":
            raise NotLoadable("this is an unfitted Spark Pipeline; fit it and save the PipelineModel")
        if handler is None:
            raise NotLoadable(f"Spark stage {stage.short_class} ({stage.uid}) has no MLeap conversion; "
                              f"supported: {', '.join(sorted(_HANDLERS))}")
        return handler(self, stage)

    def data_row(self, stage: SparkStage) -> dict:
        rows = spark_ml.read_data(self.tree, stage)
        if len(rows) != 1:
            raise CorruptArtifact(f"Spark {stage.short_class} {stage.uid} data holds {len(rows)} rows instead of 1")
        return rows[0]


def _open(source: str | os.PathLike | FileTree) -> FileTree:
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_dir():
            raise NotAnArtifact(f"{p} is not a folder holding a saved Spark ML model")
        return DirTree(p)
    return source


def _convert(tree: FileTree) -> _Plan:
    root = spark_ml.read_stage(tree)
    conv = _Converter(tree)
    nodes = conv.convert(root)
    if not nodes:
        raise NotLoadable("the Spark pipeline has no stages to export")
    root_name = root.uid if _safe_name(root.uid) else "pipeline"
    files: dict[str, bytes] = {
        "bundle.json": _json({
            "uid": str(uuid.uuid4()),
            "name": root_name,
            "format": "json",
            "version": MLEAP_VERSION,
            "timestamp": datetime.datetime.now().isoformat(timespec="milliseconds"),
        }),
        "root/node.json": _json({"name": root_name, "shape": {"inputs": [], "outputs": []}}),
        "root/model.json": _json({"op": "pipeline", "attributes": {"nodes": _string_list([n.name for n in nodes])}}),
    }
    for n in nodes:
        folder = f"root/{n.name}.node"
        files[f"{folder}/node.json"] = _json({
            "name": n.name,
            "shape": {
                "inputs": [{"name": c, "port": p} for p, c in n.inputs],
                "outputs": [{"name": c, "port": p} for p, c in n.outputs],
            },
        })
        files[f"{folder}/model.json"] = _json({"op": n.op, "attributes": n.attributes})
        for rel, data in n.files.items():
            files[f"{folder}/{rel}"] = data
    last = nodes[-1]
    ports = dict(last.outputs)
    default_output = ports.get("prediction") or last.outputs[-1][1]
    return _Plan(files=files, raw_inputs=conv.raw, produced=conv.columns, default_output=default_output)


def _safe_name(name: str) -> bool:
    """A plain folder name: no separators, no leading dot, bounded length."""
    return bool(re.fullmatch(r"[A-Za-z0-9_:\-][A-Za-z0-9_.:\-]*", name)) and len(name) <= 200


def _cols(stage: SparkStage, single: str, multi: str) -> list[str]:
    v = stage.params.get(multi)
    if isinstance(v, list) and v:
        return v
    v = stage.params.get(single)
    if isinstance(v, str) and v:
        return [v]
    raise CorruptArtifact(f"Spark {stage.short_class} {stage.uid} sets neither {single} nor {multi}")


def _io(stage: SparkStage) -> tuple[list[str], list[str], bool]:
    ins = _cols(stage, "inputCol", "inputCols")
    outs = _cols(stage, "outputCol", "outputCols")
    if len(ins) != len(outs):
        raise CorruptArtifact(
            f"Spark {stage.short_class} {stage.uid} has {len(ins)} input but {len(outs)} output columns")
    multi = isinstance(stage.explicit_params.get("inputCols"), list)
    return ins, outs, multi


def _string_indexer(conv: _Converter, stage: SparkStage) -> list[_Node]:
    ins, outs, multi = _io(stage)
    row = conv.data_row(stage)
    labels_array = row.get("labelsArray")
    if labels_array is None and isinstance(row.get("labels"), list):
        labels_array = [row["labels"]]  # Spark 2 layout
    if not isinstance(labels_array, list) or len(labels_array) != len(ins):
        raise CorruptArtifact(f"Spark StringIndexerModel {stage.uid} data does not hold one label list per column")
    handle = stage.param("handleInvalid", "error")
    nodes = []
    for i, (ic, oc, labels) in enumerate(zip(ins, outs, labels_array)):
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise CorruptArtifact(f"Spark StringIndexerModel {stage.uid} labels are not strings")
        conv.use(ic, "string")
        conv.produce(oc)
        nodes.append(_Node(conv.node_name(f"{stage.uid}_{i}" if multi else stage.uid), "string_indexer",
                           [("input", ic)], [("output", oc)],
                           {"labels_length": _int(1), "labels_array_0": _string_list(labels),
                            "handle_invalid": _string(handle)}))
    return nodes


def _one_hot_encoder(conv: _Converter, stage: SparkStage) -> list[_Node]:
    ins, outs, multi = _io(stage)
    row = conv.data_row(stage)
    sizes = row.get("categorySizes")
    if not isinstance(sizes, list) or len(sizes) != len(ins) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise CorruptArtifact(f"Spark OneHotEncoderModel {stage.uid} data lacks one category size per column")
    drop_last = bool(stage.param("dropLast", True))
    handle = stage.param("handleInvalid", "error")
    keep = handle == "keep"
    for ic, oc, size in zip(ins, outs, sizes):
        conv.use(ic, "double")
        conv.produce(oc, size=size + 1 if keep and not drop_last else size - 1 if drop_last and not keep else size)
    if multi:
        inputs = [(f"input{i}", c) for i, c in enumerate(ins)]
        outputs = [(f"output{i}", c) for i, c in enumerate(outs)]
    else:
        inputs, outputs = [("input", ins[0])], [("output", outs[0])]
    return [_Node(conv.node_name(stage.uid), "one_hot_encoder", inputs, outputs,
                  {"category_sizes": _int_list(sizes), "drop_last": _bool(drop_last),
                   "handle_invalid": _string(handle)})]


def _imputer(conv: _Converter, stage: SparkStage) -> list[_Node]:
    ins, outs, multi = _io(stage)
    row = conv.data_row(stage)
    missing = spark_ml.spark_double(stage.param("missingValue", "NaN"))
    strategy = stage.param("strategy", "mean")
    nodes = []
    for i, (ic, oc) in enumerate(zip(ins, outs)):
        surrogate = row.get(ic)
        if not isinstance(surrogate, (int, float)) or isinstance(surrogate, bool):
            raise CorruptArtifact(f"Spark ImputerModel {stage.uid} data lacks a surrogate for column {ic!r}")
        conv.use(ic, "double")
        conv.produce(oc)
        nodes.append(_Node(conv.node_name(f"{stage.uid}_{i}" if multi else stage.uid), "imputer",
                           [("input", ic)], [("output", oc)],
                           {"nullable_input": _bool(True), "surrogate_value": _double(float(surrogate)),
                            "missing_value": _double(missing), "strategy": _string(strategy)}))
    return nodes


def _bucketizer(conv: _Converter, stage: SparkStage) -> list[_Node]:
    ins, outs, multi = _io(stage)
    splits_list = stage.param("splitsArray") if multi else [stage.param("splits")]
    if not isinstance(splits_list, list) or len(splits_list) != len(ins):
        raise CorruptArtifact(f"Spark Bucketizer {stage.uid} lacks one splits list per column")
    handle = stage.param("handleInvalid", "error")
    nodes = []
    for i, (ic, oc, splits) in enumerate(zip(ins, outs, splits_list)):
        if not isinstance(splits, list) or len(splits) < 3:
            raise CorruptArtifact(f"Spark Bucketizer {stage.uid} needs at least 3 splits")
        values = [spark_ml.spark_double(s) for s in splits]
        conv.use(ic, "double")
        conv.produce(oc)
        nodes.append(_Node(conv.node_name(f"{stage.uid}_{i}" if multi else stage.uid), "bucketizer",
                           [("input", ic)], [("output", oc)],
                           {"splits": _double_list(values), "handle_invalid": _string(handle)}))
    return nodes


def _vector_assembler(conv: _Converter, stage: SparkStage) -> list[_Node]:
    ins = _cols(stage, "inputCol", "inputCols")
    out = stage.param("outputCol")
    shapes, total = [], 0
    for c in ins:
        col = conv.use(c, "double")
        if col.kind != "double":
            raise NotLoadable(f"VectorAssembler {stage.uid} input {c!r} is a string column")
        if col.size is None:
            shapes.append({"base": "scalar", "isNullable": True})
            total += 1
        else:
            shapes.append({"base": "tensor", "isNullable": True,
                           "tensorShape": {"dimensions": [{"size": col.size, "name": ""}]}})
            total += col.size
    conv.produce(out, size=total)
    return [_Node(conv.node_name(stage.uid), "vector_assembler",
                  [(f"input{i}", c) for i, c in enumerate(ins)], [("output", out)],
                  {"input_shapes": {"data_shape": shapes, "type": "list"}})]


def _vector_io(conv: _Converter, stage: SparkStage, size: int) -> tuple[str, str]:
    ic, oc = stage.param("inputCol"), stage.param("outputCol")
    col = conv.use(ic, "double", size)
    if col.size != size:
        raise CorruptArtifact(
            f"Spark {stage.short_class} {stage.uid} expects {size} features but column {ic!r} has {col.size}")
    conv.produce(oc, size=size)
    return ic, oc


def _standard_scaler(conv: _Converter, stage: SparkStage) -> list[_Node]:
    row = conv.data_row(stage)
    std = spark_ml.vector_values(row.get("std"), f"StandardScalerModel {stage.uid} std")
    mean = spark_ml.vector_values(row.get("mean"), f"StandardScalerModel {stage.uid} mean")
    with_mean, with_std = bool(stage.param("withMean", False)), bool(stage.param("withStd", True))
    if not (with_mean or with_std):
        raise NotLoadable(f"StandardScalerModel {stage.uid} uses neither mean nor std, which MLeap cannot represent")
    ic, oc = _vector_io(conv, stage, len(std))
    attrs = {}
    if with_mean:
        attrs["mean"] = _tensor(mean)
    if with_std:
        attrs["std"] = _tensor(std)
    return [_Node(conv.node_name(stage.uid), "standard_scaler", [("input", ic)], [("output", oc)], attrs)]


def _min_max_scaler(conv: _Converter, stage: SparkStage) -> list[_Node]:
    row = conv.data_row(stage)
    lo = spark_ml.vector_values(row.get("originalMin"), f"MinMaxScalerModel {stage.uid} originalMin")
    hi = spark_ml.vector_values(row.get("originalMax"), f"MinMaxScalerModel {stage.uid} originalMax")
    if len(lo) != len(hi):
        raise CorruptArtifact(f"MinMaxScalerModel {stage.uid} has min and max vectors of different sizes")
    ic, oc = _vector_io(conv, stage, len(lo))
    return [_Node(conv.node_name(stage.uid), "min_max_scaler", [("input", ic)], [("output", oc)],
                  {"min": _tensor(lo), "max": _tensor(hi),
                   "minValue": _double(spark_ml.spark_double(stage.param("min", 0.0))),
                   "maxValue": _double(spark_ml.spark_double(stage.param("max", 1.0)))})]


def _predictor_io(conv: _Converter, stage: SparkStage, num_features: int, num_classes: int | None) -> tuple[list, list]:
    fc = stage.param("featuresCol", "features")
    col = conv.use(fc, "double", num_features)
    if col.size != num_features:
        raise CorruptArtifact(f"Spark {stage.short_class} {stage.uid} expects {num_features} features but column "
                              f"{fc!r} has {col.size}")
    outputs = []
    if num_classes is not None:
        for port, param in (("raw_prediction", "rawPredictionCol"), ("probability", "probabilityCol")):
            c = stage.param(param, "")
            if c:
                outputs.append((port, c))
                conv.produce(c, size=num_classes)
    pc = stage.param("predictionCol", "prediction")
    if pc:
        outputs.append(("prediction", pc))
        conv.produce(pc)
    if not outputs:
        raise NotLoadable(f"Spark {stage.short_class} {stage.uid} has no output column")
    return [("features", fc)], outputs


def _linear_regression(conv: _Converter, stage: SparkStage) -> list[_Node]:
    row = conv.data_row(stage)
    coef = spark_ml.vector_values(row.get("coefficients"), f"LinearRegressionModel {stage.uid} coefficients")
    intercept = _data_double(row, "intercept", stage)
    inputs, outputs = _predictor_io(conv, stage, len(coef), None)
    return [_Node(conv.node_name(stage.uid), "linear_regression", inputs, outputs,
                  {"coefficients": _tensor(coef), "intercept": _double(intercept)})]


def _logistic_regression(conv: _Converter, stage: SparkStage) -> list[_Node]:
    row = conv.data_row(stage)
    what = f"LogisticRegressionModel {stage.uid}"
    if "coefficientMatrix" in row:
        matrix = spark_ml.matrix_rows(row.get("coefficientMatrix"), f"{what} coefficientMatrix")
        intercepts = spark_ml.vector_values(row.get("interceptVector"), f"{what} interceptVector")
        num_classes = row.get("numClasses")
        multinomial = bool(row.get("isMultinomial"))
    else:  # Spark 2.0/2.1 layout: binary only
        matrix = [spark_ml.vector_values(row.get("coefficients"), f"{what} coefficients")]
        intercepts = [_data_double(row, "intercept", stage)]
        num_classes, multinomial = 2, False
    if not isinstance(num_classes, int) or num_classes < 2 or not matrix or len(intercepts) != len(matrix):
        raise CorruptArtifact(f"{what} data has inconsistent class counts")
    num_features = len(matrix[0])
    inputs, outputs = _predictor_io(conv, stage, num_features, num_classes)
    attrs: dict[str, Any] = {"num_classes": _long(num_classes)}
    thresholds = stage.explicit_params.get("thresholds")
    if multinomial:
        if num_classes <= 2:
            raise NotLoadable(f"{what} is a 2-class multinomial model, which MLeap cannot represent; "
                              "refit it with family='binomial'")
        if len(matrix) != num_classes:
            raise CorruptArtifact(f"{what} coefficient matrix has {len(matrix)} rows for {num_classes} classes")
        column_major = [matrix[r][c] for c in range(num_features) for r in range(num_classes)]
        attrs["coefficient_matrix"] = _tensor(column_major, [num_classes, num_features])
        attrs["intercept_vector"] = _tensor(intercepts)
        if isinstance(thresholds, list):
            attrs["thresholds"] = _double_list([spark_ml.spark_double(t) for t in thresholds])
    else:
        if isinstance(thresholds, list) and len(thresholds) == 2:
            t0, t1 = (spark_ml.spark_double(t) for t in thresholds)
            threshold = 1.0 / (1.0 + t0 / t1) if t1 != 0 else 1.0  # LogisticRegression.getThreshold
        else:
            threshold = spark_ml.spark_double(stage.param("threshold", 0.5))
        attrs.update(coefficients=_tensor(matrix[0]), intercept=_double(intercepts[0]), threshold=_double(threshold))
    return [_Node(conv.node_name(stage.uid), "logistic_regression", inputs, outputs, attrs)]


def _tree_lines(nodes: Iterable[dict], with_impurities: bool, what: str) -> bytes:
    """Spark's node records (id, children ids, split) as MLeap's pre-order ``tree.json`` lines."""
    by_id: dict[int, dict] = {}
    for n in nodes:
        nid = n.get("id")
        if not isinstance(nid, int) or nid in by_id:
            raise CorruptArtifact(f"{what} has missing or duplicate node ids")
        by_id[nid] = n
        if len(by_id) > MAX_TREE_NODES:
            raise CorruptArtifact(f"{what} has more than {MAX_TREE_NODES} nodes")
    if 0 not in by_id:
        raise CorruptArtifact(f"{what} has no root node")
    lines: list[dict[str, Any]] = []
    stack, seen = [0], set()
    while stack:
        nid = stack.pop()
        if nid in seen or nid not in by_id:
            raise CorruptArtifact(f"{what} node links are not a tree")
        seen.add(nid)
        n = by_id[nid]
        left, right = n.get("leftChild", -1), n.get("rightChild", -1)
        if left == -1:
            values = n.get("impurityStats") if with_impurities else [n.get("prediction")]
            if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
                raise CorruptArtifact(f"{what} has a leaf without values")
            lines.append({"type": "leaf", "values": [_json_double(v) for v in values]})
            continue
        split = n.get("split") or {}
        feature, cats = split.get("featureIndex"), split.get("leftCategoriesOrThreshold")
        num = split.get("numCategories")
        if not isinstance(feature, int) or not isinstance(cats, list) or not isinstance(num, int):
            raise CorruptArtifact(f"{what} has an internal node without a valid split")
        if num == -1:
            if len(cats) != 1:
                raise CorruptArtifact(f"{what} has a continuous split without one threshold")
            s = {"type": "continuous", "featureIndex": feature, "threshold": _json_double(cats[0])}
        else:
            left_cats = sorted(float(c) for c in cats)
            left_set = set(left_cats)
            right_cats = [float(c) for c in range(num) if float(c) not in left_set]
            is_left = len(left_cats) < len(right_cats)  # MLeap keeps the shorter side (SparkNodeWrapper)
            s = {"type": "categorical", "featureIndex": feature, "isLeft": is_left, "numCategories": num,
                 "categories": left_cats if is_left else right_cats}
        lines.append({"type": "internal", "split": s})
        stack.extend([right, left])
    return "".join(json.dumps(x, allow_nan=False, separators=(",", ":")) + "\n" for x in lines).encode()


def _tree_meta(stage: SparkStage, key: str) -> int:
    v = stage.metadata.get(key)
    if not isinstance(v, int) or v < 0:
        raise CorruptArtifact(f"Spark {stage.short_class} {stage.uid} metadata lacks {key}")
    return v


def _classifier_attrs(stage: SparkStage, num_classes: int) -> dict:
    attrs = {"num_classes": _long(num_classes)}
    thresholds = stage.explicit_params.get("thresholds")
    if isinstance(thresholds, list):
        attrs["thresholds"] = _double_list([spark_ml.spark_double(t) for t in thresholds])
    return attrs


def _decision_tree(conv: _Converter, stage: SparkStage) -> list[_Node]:
    classifier = stage.short_class == "DecisionTreeClassificationModel"
    num_features = _tree_meta(stage, "numFeatures")
    num_classes = _tree_meta(stage, "numClasses") if classifier else None
    rows = spark_ml.read_data(conv.tree, stage)
    tree = _tree_lines(rows, classifier, f"{stage.short_class} {stage.uid}")
    inputs, outputs = _predictor_io(conv, stage, num_features, num_classes)
    attrs = {"num_features": _long(num_features)}
    if classifier:
        assert num_classes is not None
        attrs.update(_classifier_attrs(stage, num_classes))
    op = "decision_tree_classifier" if classifier else "decision_tree_regression"
    return [_Node(conv.node_name(stage.uid), op, inputs, outputs, attrs, {"tree.json": tree})]


def _ensemble(conv: _Converter, stage: SparkStage) -> list[_Node]:
    cls = stage.short_class
    forest = cls.startswith("RandomForest")
    classifier = cls.endswith("ClassificationModel")
    num_features = _tree_meta(stage, "numFeatures")
    num_classes = (_tree_meta(stage, "numClasses") if forest else 2) if classifier else None
    what = f"{cls} {stage.uid}"
    grouped: dict[int, list[dict]] = {}
    for r in spark_ml.read_data(conv.tree, stage):
        tid, nd = r.get("treeID"), r.get("nodeData")
        if not isinstance(tid, int) or not isinstance(nd, dict):
            raise CorruptArtifact(f"{what} data rows lack treeID and nodeData")
        grouped.setdefault(tid, []).append(nd)
    weights: dict[int, float] = {}
    for r in spark_ml.read_data(conv.tree, stage, "treesMetadata"):
        tid, w = r.get("_1", r.get("treeID")), r.get("_3", r.get("weights"))
        if not isinstance(tid, int) or not isinstance(w, (int, float)):
            raise CorruptArtifact(f"{what} treesMetadata rows lack tree ids and weights")
        weights[tid] = float(w)
    ids = sorted(grouped)
    if not ids or ids != sorted(weights) or ids != list(range(len(ids))):
        raise CorruptArtifact(f"{what} tree data and tree weights do not match")
    tree_classifier = classifier and forest  # GBT classifiers are made of regression trees
    sub_op = "decision_tree_classifier" if tree_classifier else "decision_tree_regression"
    files: dict[str, bytes] = {}
    names = []
    for tid in ids:
        name = f"tree{tid}"
        sub_attrs = {"num_features": _long(num_features)}
        if tree_classifier:
            assert num_classes is not None
            sub_attrs["num_classes"] = _long(num_classes)
        files[f"{name}/model.json"] = _json({"op": sub_op, "attributes": sub_attrs})
        files[f"{name}/tree.json"] = _tree_lines(grouped[tid], tree_classifier, f"{what} tree {tid}")
        names.append(name)
    inputs, outputs = _predictor_io(conv, stage, num_features, num_classes)
    attrs = {"num_features": _long(num_features)}
    if classifier:
        assert num_classes is not None
        attrs.update(_classifier_attrs(stage, num_classes))
    attrs.update(tree_weights=_double_list([weights[t] for t in ids]), trees=_string_list(names))
    op = {"RandomForestRegressionModel": "random_forest_regression",
          "RandomForestClassificationModel": "random_forest_classifier",
          "GBTRegressionModel": "gbt_regression", "GBTClassificationModel": "gbt_classifier"}[cls]
    return [_Node(conv.node_name(stage.uid), op, inputs, outputs, attrs, files)]


def _kmeans(conv: _Converter, stage: SparkStage) -> list[_Node]:
    """KMeansModel -> ``k_means`` (``mleap-spark/.../ops/clustering/KMeansOp.scala``: ``cluster_centers`` as a
    tensor list, ``num_features``). MLeap's k_means is Euclidean only, so a cosine model is refused. Spark >= 2.0
    stores one ``clusterIdx``/``clusterCenter`` row per centre, Spark 1.6 one row with ``clusterCenters``
    (``ml/clustering/KMeans.scala``, ``KMeansModelReader``)."""
    what = f"KMeansModel {stage.uid}"
    measure = stage.param("distanceMeasure", "euclidean")
    if measure != "euclidean":
        raise NotLoadable(f"Spark {what} uses the {measure} distance; MLeap's k_means op scores Euclidean distance "
                          "only")
    rows = spark_ml.read_data(conv.tree, stage)
    if len(rows) == 1 and "clusterCenters" in rows[0]:
        centers = [spark_ml.vector_values(v, f"{what} clusterCenters") for v in rows[0]["clusterCenters"] or []]
    else:
        if not all(isinstance(r.get("clusterIdx"), int) for r in rows):
            raise CorruptArtifact(f"Spark {what} data lacks clusterIdx")
        ordered = sorted(rows, key=lambda r: r["clusterIdx"])
        if [r["clusterIdx"] for r in ordered] != list(range(len(ordered))):
            raise CorruptArtifact(f"Spark {what} data does not number its centres 0..{len(ordered) - 1}")
        centers = [spark_ml.vector_values(r.get("clusterCenter"), f"{what} clusterCenter") for r in ordered]
    if not centers or len({len(c) for c in centers}) != 1:
        raise CorruptArtifact(f"Spark {what} has no cluster centres or centres of different sizes")
    inputs, outputs = _predictor_io(conv, stage, len(centers[0]), None)
    return [_Node(conv.node_name(stage.uid), "k_means", inputs, outputs,
                  {"cluster_centers": _list("tensor", [_list_tensor(c) for c in centers]),
                   "num_features": _long(len(centers[0]))})]


_HANDLERS = {
    "StringIndexerModel": _string_indexer,
    "OneHotEncoderModel": _one_hot_encoder,
    "ImputerModel": _imputer,
    "Bucketizer": _bucketizer,
    "VectorAssembler": _vector_assembler,
    "StandardScalerModel": _standard_scaler,
    "MinMaxScalerModel": _min_max_scaler,
    "LinearRegressionModel": _linear_regression,
    "LogisticRegressionModel": _logistic_regression,
    "DecisionTreeRegressionModel": _decision_tree,
    "DecisionTreeClassificationModel": _decision_tree,
    "RandomForestRegressionModel": _ensemble,
    "RandomForestClassificationModel": _ensemble,
    "GBTRegressionModel": _ensemble,
    "GBTClassificationModel": _ensemble,
    "KMeansModel": _kmeans,
}


def _data_double(row: dict, key: str, stage: SparkStage) -> float:
    v = row.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise CorruptArtifact(f"Spark {stage.short_class} {stage.uid} data lacks {key}")
    return float(v)


# --- MLeap attribute encodings (bundle-ml JsonSupport: zero scalars are omitted, NaN/inf are null)


def _json_double(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _double(v: float) -> dict:
    return {} if v == 0 else {"double": _json_double(v)}


def _long(v: int) -> dict:
    return {} if v == 0 else {"long": int(v)}


def _int(v: int) -> dict:
    return {} if v == 0 else {"int": int(v)}


def _bool(v: bool) -> dict:
    return {"boolean": True} if v else {}


def _string(v: str) -> dict:
    return {"string": v} if v else {}


def _list(kind: str, values: list) -> dict:
    return {kind: values, "type": "list"} if values else {"type": "list"}


def _string_list(values: list[str]) -> dict:
    return _list("string", list(values))


def _int_list(values: list[int]) -> dict:
    return _list("int", [int(v) for v in values])


def _double_list(values: list[float]) -> dict:
    return _list("double", [_json_double(v) for v in values])


def _tensor(values: list[float], dims: list[int] | None = None) -> dict:
    dims = dims or [len(values)]
    return {"double": [_json_double(v) for v in values],
            "shape": {"dimensions": [{"size": d, "name": ""} for d in dims]}, "type": "tensor"}


def _list_tensor(values: list[float]) -> dict:
    """A tensor inside a tensor list: its items carry no ``type`` (MLeap's JsonSupport, as in the bundles it writes)."""
    return {k: v for k, v in _tensor(values).items() if k != "type"}


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, allow_nan=False).encode()


# --- output ----------------------------------------------------------------------------------


def _folders(names: Iterable[str]) -> list[str]:
    out = set()
    for n in names:
        parts = n.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return sorted(out)


def _zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for d in _folders(files):
            z.writestr(zipfile.ZipInfo(d + "/", stamp), b"")
        for name in sorted(files):
            info = zipfile.ZipInfo(name, stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, files[name])
    return buf.getvalue()


def _tar_gz_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for d in _folders(files):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o644, now
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def _write_file(path: Path, data: bytes) -> None:
    """Write (or replace) one file atomically (:mod:`exporters._atomic`)."""
    with staged(path, force=True, folder=False) as tmp:
        tmp.write_bytes(data)
