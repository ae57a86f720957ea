"""Input columns of frame-scoring models (Spark ML pipelines, MLeap bundles): what each raw input column holds,
how rows given without those names are mapped onto them, and a small sample frame built from them.

Private: shared by :mod:`loaders.spark` and :mod:`loaders.mleap`. The facts come from the artifact (the stages
that first read each column: StringIndexer labels, OneHotEncoder category sizes, Bucketizer splits, the feature
count of a predictor or of KMeans' centres...), never from data.

Mapping rules of :func:`frame_for` (the SageMaker SparkML Serving container maps header-less CSV rows onto its
schema's columns by position, aws/sagemaker-sparkml-serving-container ``README.md``; the same is done here):

- rows that name every input column (a DataFrame, a dict, a list of dicts) are used as they are;
- when the model reads one vector column of known size ``n`` and the rows do not name it, rows of ``n`` numbers
  (an array, lists, or a frame whose numeric columns number ``n``, taken in order) are assembled into it;
- rows without names (an array, lists) whose width is the number of input columns map onto them in order;
- otherwise a :class:`ValueError` names the columns the model expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

SAMPLE_ROWS = 3


@dataclass(frozen=True)
class InputColumn:
    """One raw input column: ``kind`` is ``number``, ``text``, ``vector`` or ``unknown``; ``size`` the length of
    a vector (None when not recorded); ``values``: valid values recorded by the artifact (labels, categories,
    in-range numbers) to build samples from; ``reader``: the stage or op that reads it first."""

    name: str
    kind: str
    size: int | None = None
    values: tuple = ()
    reader: str = ""

    def describe(self) -> str:
        if self.kind == "vector":
            if self.size is None:
                return f"{self.name} (a vector)"
            return f"{self.name} (a vector of {self.size} numbers)"
        return f"{self.name} ({self.kind})" if self.kind != "unknown" else self.name


def describe(columns: Sequence[InputColumn]) -> str:
    return ", ".join(c.describe() for c in columns)


def lone_vector(columns: Sequence[InputColumn]) -> InputColumn | None:
    """The model's only input column when it is a vector of known size, else None."""
    if len(columns) == 1 and columns[0].kind == "vector" and columns[0].size is not None:
        return columns[0]
    return None


def frame_for(data: Any, columns: Sequence[InputColumn]) -> Any:
    """``data`` as a pandas DataFrame holding the model's input columns (rules in the module notes)."""
    import numpy as np
    import pandas as pd

    names = [c.name for c in columns]
    vector = lone_vector(columns)
    if isinstance(data, Mapping):
        data = [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(r, Mapping) for r in data):
        data = pd.DataFrame(list(data))
    if isinstance(data, pd.DataFrame):
        missing = [n for n in names if n not in data.columns]
        if not missing:
            return data
        if vector is not None:
            numeric = [c for c in data.columns if pd.api.types.is_numeric_dtype(data[c]) and not
                       pd.api.types.is_bool_dtype(data[c])]
            if len(numeric) == vector.size:
                out = data.drop(columns=numeric)
                out[vector.name] = list(data[numeric].to_numpy(dtype=float))
                return out
            raise ValueError(f"the model reads the column {vector.describe()}; the rows have no such column and "
                             f"{len(numeric)} numeric columns to assemble it from, not {vector.size}")
        raise ValueError(f"the rows lack the column(s) {', '.join(missing)}; the model reads {describe(columns)}")
    if isinstance(data, pd.Series):
        data = data.to_numpy()
    try:
        array = np.asarray(data, dtype=object) if not isinstance(data, np.ndarray) else data
    except (TypeError, ValueError):
        raise ValueError(f"the rows cannot be read as a table; the model reads {describe(columns)}") from None
    if array.ndim == 1 and vector is not None and len(array) == vector.size:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise ValueError(f"give rows with named columns (a CSV header, JSON objects, a DataFrame); the model reads "
                         f"{describe(columns)}")
    width = array.shape[1]
    if vector is not None and width == vector.size:
        try:
            return pd.DataFrame({vector.name: list(array.astype(float))})
        except (TypeError, ValueError):
            raise ValueError(f"the rows do not hold {vector.size} numbers each for the column "
                             f"{vector.describe()}") from None
    if width == len(columns) and all(c.kind != "vector" for c in columns):
        frame = pd.DataFrame(array, columns=names)
        for c in columns:
            if c.kind == "number":
                try:
                    frame[c.name] = frame[c.name].astype(float)
                except (TypeError, ValueError):
                    raise ValueError(f"column {c.name} (position {names.index(c.name) + 1}) does not hold "
                                     "numbers") from None
        return frame
    raise ValueError(f"the rows have {width} unnamed values each; the model reads {describe(columns)} "
                     "(name the columns with a CSV header or JSON objects)")


def sample_frame(columns: Sequence[InputColumn], what: str, rows: int = SAMPLE_ROWS) -> Any:
    """A DataFrame of ``rows`` valid rows built from the columns' recorded facts; ArtifactError when a column's
    type is not recorded. ``what`` names the model in that sentence."""
    import numpy as np
    import pandas as pd

    from artifact_tools.errors import ArtifactError

    data: dict[str, list] = {}
    for c in columns:
        if c.kind == "text":
            values = c.values or ("a",)
            data[c.name] = [values[i % len(values)] for i in range(rows)]
        elif c.kind == "number":
            values = c.values or tuple(float(i) for i in range(rows))
            data[c.name] = [float(values[i % len(values)]) for i in range(rows)]
        elif c.kind == "vector" and c.size is not None:
            base = np.arange(c.size, dtype=float) % 7 / 7.0
            data[c.name] = [base * (i + 1) for i in range(rows)]
        else:
            reader = f" (read by {c.reader})" if c.reader else ""
            detail = "its size" if c.kind == "vector" else "its type"
            raise ArtifactError(f"no sample input can be built for this {what}: the artifact does not record "
                                f"{detail} of the input column {c.name!r}{reader}")
    return pd.DataFrame(data)
