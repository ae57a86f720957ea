"""Spark ML pipelines to ONNX with onnxmltools' ``sparkml`` converters, and the stage converters artifact-tools
puts in their place where onnxmltools 1.x does not follow Spark. Private to :mod:`exporters.onnx`.

Which stages convert: those whose pyspark class onnxmltools names (``onnxmltools/convert/sparkml/ops_names.py``)
*and* has a registered converter for (``onnxmltools/convert/common/_registration.py``): the name table also lists
``HashingTF``, ``IDFModel``, ``NGram``, ``QuantileDiscretizer``, ``RegexTokenizer`` and
``IsotonicRegressionModel``, which have none. Nested ``PipelineModel`` stages are walked (onnxmltools' parser
flattens them, ``sparkml/_parse.py``). The first stage without a converter is refused by name.

Graph inputs: one per raw input column of the pipeline, batch dimension free (onnxmltools' own
``buildInitialTypesSimple`` fixes text inputs at batch 1): text columns ``StringTensorType([None, 1])``, numbers
``FloatTensorType([None, 1])``, vector columns ``FloatTensorType([None, size])``.

Replaced converters (passed per call through ``convert_sparkml(custom_conversion_functions=...)``; the semantics
are Spark's, ``mllib/src/main/scala/org/apache/spark/ml/feature/OneHotEncoder.scala`` and
``StringIndexer.scala``):

- ``OneHotEncoderModel``: onnxmltools refuses Spark's *default* (``handleInvalid='error'``, ``dropLast=True``)
  and ``('keep', False)``. A category index ``i < n`` (``n`` = ``categorySizes``) gives a one-hot vector of
  ``n`` slots; ``dropLast`` drops the last slot (index ``n - 1`` becomes all zeros); ``keep`` adds a slot for
  invalid indexes (then dropped again by ``dropLast``), ``error`` fails on them. Built as ONNX-ML
  ``OneHotEncoder`` (``zeros=0`` fails on an unknown category, like ``error``; ``zeros=1`` gives zeros), then a
  ``Slice`` dropping the last slot, or an extra slot ``1 - sum`` for ``('keep', False)``.
- ``VectorAssembler``: onnxmltools concatenates its inputs as they are, so an index column (int64, from a
  StringIndexer) beside numbers gives an invalid ``Concat`` of mixed types, and its shape calculator fails on a
  column without a second dimension; Spark assembles doubles (``VectorAssembler.scala``). The replacement casts
  every input to float and makes scalar columns ``[N, 1]`` before the ``Concat``.
- ``StringIndexerModel``: onnxmltools' ``LabelEncoder`` maps an unseen label to ``-1``; with
  ``handleInvalid='keep'`` Spark gives it the index ``len(labels)``, which is what the replacement's
  ``default_int64`` says.
"""

from __future__ import annotations

from typing import Any

from artifact_tools.errors import NotLoadable

ONE_HOT = "pyspark.ml.feature.OneHotEncoderModel"
STRING_INDEXER = "pyspark.ml.feature.StringIndexerModel"
VECTOR_ASSEMBLER = "pyspark.ml.feature.VectorAssembler"


def flat_stages(model: Any) -> list:
    """The stages of a PipelineModel, nested pipelines walked, in order (a lone model: itself)."""
    stages = getattr(model, "stages", None)
    if stages is None:
        return [model]
    return [s for stage in stages for s in flat_stages(stage)]


def check_stages(model: Any, version: str) -> None:
    """Refuse, naming it, the first stage onnxmltools has no converter for."""
    import onnxmltools.convert.sparkml.operator_converters  # noqa: F401 - registers onnxmltools' converters
    from onnxmltools.convert.common._registration import get_converter
    from onnxmltools.convert.sparkml.ops_names import sparkml_operator_name_map

    for stage in flat_stages(model):
        name = sparkml_operator_name_map.get(type(stage))
        try:
            ok = name is not None and get_converter(name) is not None
        except ValueError:  # get_converter: "Unsupported conversion for operator ..."
            ok = False
        if not ok:
            raise NotLoadable(f"onnxmltools {version} has no ONNX converter for the Spark stage "
                              f"{type(stage).__name__} ({getattr(stage, 'uid', '?')}), so the pipeline cannot be "
                              "converted to ONNX")


def custom_converters() -> tuple[dict, dict]:
    """(conversion functions, shape calculators) replacing onnxmltools' own, by operator type."""
    import onnxmltools.convert.sparkml.operator_converters  # noqa: F401 - registers onnxmltools' converters
    from onnxmltools.convert.common._registration import get_shape_calculator

    # a custom conversion function without a custom shape calculator skips shape inference for that operator
    # (onnxmltools ``common/_container.py`` ``Topology._infer_all_types``): each one gets its calculator here
    return ({ONE_HOT: _one_hot, STRING_INDEXER: _string_indexer, VECTOR_ASSEMBLER: _vector_assembler},
            {ONE_HOT: _one_hot_shapes, VECTOR_ASSEMBLER: _vector_assembler_shapes,
             STRING_INDEXER: get_shape_calculator(STRING_INDEXER)})


def _width(variable: Any) -> int | None:
    shape = list(getattr(variable.type, "shape", None) or [])
    return int(shape[1]) if len(shape) > 1 and shape[1] is not None else 1 if len(shape) <= 1 else None


def _vector_assembler_shapes(operator: Any) -> None:
    from onnxmltools.convert.common.data_types import FloatTensorType

    widths = [_width(v) for v in operator.inputs]
    n = (operator.inputs[0].type.shape or [None])[0]
    operator.outputs[0].type = FloatTensorType([n, None if None in widths else sum(w or 0 for w in widths)])


def _vector_assembler(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto
    from onnxmltools.convert.common.data_types import FloatTensorType

    parts = []
    for i, variable in enumerate(operator.inputs):
        name = variable.full_name
        if not isinstance(variable.type, FloatTensorType):
            cast = scope.get_unique_variable_name(f"assembled_{i}")
            container.add_node("Cast", [name], [cast], op_version=13, to=TensorProto.FLOAT,
                               name=scope.get_unique_operator_name("Cast"))
            name = cast
        if len(getattr(variable.type, "shape", None) or []) < 2:  # a column of scalars: one slot per row
            shape = scope.get_unique_variable_name(f"assembled_shape_{i}")
            container.add_initializer(shape, TensorProto.INT64, [2], [-1, 1])
            column = scope.get_unique_variable_name(f"assembled_column_{i}")
            container.add_node("Reshape", [name, shape], [column], op_version=13,
                               name=scope.get_unique_operator_name("Reshape"))
            name = column
        parts.append(name)
    container.add_node("Concat", parts, [operator.outputs[0].full_name], op_version=13, axis=1,
                       name=scope.get_unique_operator_name("Concat"))


def _one_hot_width(op: Any, size: int) -> int:
    keep, drop = op.getHandleInvalid() == "keep", op.getDropLast()
    return size + (1 if keep else 0) - (1 if drop else 0)


def _one_hot_shapes(operator: Any) -> None:
    from onnxmltools.convert.common.data_types import FloatTensorType

    op = operator.raw_operator
    n = operator.inputs[0].type.shape[0] if operator.inputs[0].type.shape else None
    for size, output in zip(op.categorySizes, operator.outputs):
        output.type = FloatTensorType([n, _one_hot_width(op, int(size))])


def _one_hot(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    op = operator.raw_operator
    keep, drop = op.getHandleInvalid() == "keep", op.getDropLast()
    for i, size in enumerate(int(s) for s in op.categorySizes):
        encoded = scope.get_unique_variable_name(f"one_hot_{i}")
        container.add_node("OneHotEncoder", [operator.inputs[i].full_name], [encoded], op_domain="ai.onnx.ml",
                           op_version=1, name=scope.get_unique_operator_name("OneHotEncoder"),
                           cats_int64s=list(range(size)), zeros=1 if keep else 0)
        shape = scope.get_unique_variable_name(f"one_hot_shape_{i}")
        container.add_initializer(shape, TensorProto.INT64, [2], [-1, size])
        out = operator.outputs[i].full_name
        flat = out if keep == drop else scope.get_unique_variable_name(f"one_hot_flat_{i}")
        container.add_node("Reshape", [encoded, shape], [flat], op_version=13,
                           name=scope.get_unique_operator_name("Reshape"))
        if drop and not keep:  # the last category's slot is dropped
            bounds = [scope.get_unique_variable_name(f"one_hot_{k}_{i}") for k in ("start", "end", "axis")]
            for name, value in zip(bounds, (0, size - 1, 1)):
                container.add_initializer(name, TensorProto.INT64, [1], [value])
            container.add_node("Slice", [flat, *bounds], [out], op_version=13,
                               name=scope.get_unique_operator_name("Slice"))
        elif keep and not drop:  # a last slot for invalid indexes: 1 where no known category matched
            axis = scope.get_unique_variable_name(f"one_hot_axis_{i}")
            container.add_initializer(axis, TensorProto.INT64, [1], [1])
            total = scope.get_unique_variable_name(f"one_hot_sum_{i}")
            container.add_node("ReduceSum", [flat, axis], [total], op_version=13, keepdims=1,
                               name=scope.get_unique_operator_name("ReduceSum"))
            one = scope.get_unique_variable_name(f"one_{i}")
            container.add_initializer(one, TensorProto.FLOAT, [1], [1.0])
            invalid = scope.get_unique_variable_name(f"one_hot_invalid_{i}")
            container.add_node("Sub", [one, total], [invalid], op_version=13,
                               name=scope.get_unique_operator_name("Sub"))
            container.add_node("Concat", [flat, invalid], [out], op_version=13, axis=1,
                               name=scope.get_unique_operator_name("Concat"))


def _string_indexer(scope: Any, operator: Any, container: Any) -> None:
    op = operator.raw_operator
    arrays = getattr(op, "labelsArray", None) or [op.labels]
    keep = op.getHandleInvalid() == "keep"
    for i, labels in enumerate(arrays):
        labels = [str(label) for label in labels]
        container.add_node("LabelEncoder", [operator.inputs[i].full_name], [operator.outputs[i].full_name],
                           op_domain="ai.onnx.ml", op_version=2,
                           name=scope.get_unique_operator_name(f"StringIndexer_{i}"), keys_strings=labels,
                           values_int64s=list(range(len(labels))), default_int64=len(labels) if keep else -1)
