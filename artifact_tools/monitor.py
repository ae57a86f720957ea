"""Model Monitor without AWS: baselines (``statistics.json``, ``constraints.json``) and monitoring runs
(``constraint_violations.json`` and an HTML report) in SageMaker Model Monitor's schemas.

Sources. The file schemas are the SageMaker developer guide's "Schema for Statistics (statistics.json file)",
"Schema for Constraints (constraints.json file)" and "Schema for Violations (constraint_violations.json file)"
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-statistics.html, ...-byoc-constraints.html,
...-interpreting-violations.html). Model Monitor's prebuilt container computes them with Deequ (awslabs/deequ), whose
source gives the definitions the guide leaves out; each is cited below.

``statistics.json`` (``version`` 0):

- ``dataset.item_count``: rows read.
- per feature ``name``: the CSV header's name, ``_c0``, ``_c1``... without a header (Spark's names for headerless
  CSV columns, which Model Monitor reports), the key for JSON Lines objects.
- ``inferred_type``: every present value is classified as Deequ's ``DataType`` analyzer does
  (``StatefulDataType.scala``): Integral ``^[+-]? ?\\d+$``, Fractional ``^[+-]? ?\\d*\\.\\d*$`` (here with at
  least one digit), Boolean ``true``/``false``, else String. One addition: a number in scientific notation
  (``1e-05``, as Python and Spark write small floats) is Fractional too. The column's type is Deequ's
  ``DataTypeHistogram.determineType``: no
  present value -> ``Unknown``; any String, or Booleans mixed with numbers -> ``String``; Booleans only ->
  ``String`` (Model Monitor's types are Integral, Fractional, String, Unknown); any Fractional -> ``Fractional``;
  else ``Integral``. A missing value is an empty (or blank) CSV cell, a JSON ``null`` or an absent key.
- ``numerical_statistics`` (Integral, Fractional) / ``string_statistics`` (String, Unknown): ``common.num_present``,
  ``common.num_missing``; ``mean``, ``sum``, ``std_dev`` (the population standard deviation, Deequ's
  ``StandardDeviation`` = Spark's ``stddev_pop``), ``min``, ``max`` over the present values (computed per chunk
  and merged with Chan et al.'s pairwise update, so any row count fits); ``distinct_count`` (String only, as in
  the schema: exact up to 1,000 distinct values, else a HyperLogLog estimate, p = 14, ~0.8 % standard error, as
  Deequ's ``ApproxCountDistinct`` is HyperLogLog++; numbers in a String column count once per value). The files
  hold exactly the schema pages' keys (``tests/test_monitor.py`` holds them side by side).
- ``distribution.kll``: ``buckets`` -- 10 buckets of equal width from ``min`` to ``max`` ("By default, the
  distribution is materialized in 10 buckets", statistics schema), each ``{lower_bound, upper_bound, count}``
  with count = items below the upper bound minus items below the lower bound, the last bucket including its
  upper bound (Deequ ``KLLSketch.computeMetricFrom``); ``sketch.parameters.k`` = 2048 (Model Monitor's and Deequ's
  sketch size); ``sketch.parameters.c``: Apache DataSketches' KLL (the sketch used here, ``kll_doubles_sketch``;
  https://datasketches.apache.org/docs/KLL/KLLSketch.html, which the schema page links) shrinks level capacities
  by the fixed factor 2/3, written as c (Deequ's own KLL takes c = 0.64); ``sketch.data``: the retained items,
  one list per compactor level, level i holding items of weight 2^i (Deequ ``QuantileNonSample.getCompactorItems``;
  DataSketches gives each retained item with its weight).
- ``distribution.categorical.buckets`` (String): ``{value, count}`` for the most frequent values (exact while the
  column has at most 1,000 distinct values; beyond, DataSketches' frequent-items sketch of the values).

``constraints.json`` (``version`` 0), per feature: ``name``, ``inferred_type``, ``completeness`` (present / rows),
``num_constraints.is_non_negative`` (min >= 0, Deequ ``NonNegativeNumbersRule``), ``string_constraints.domains``
(String features with at most 120 distinct values of which at most 10 % occur once: Deequ's ``ColumnProfiler``
keeps histograms up to 120 values, ``CategoricalRangeRule`` requires the unique-value ratio <= 0.1),
``monitoringConfigOverrides`` (empty; when present in a baseline, its keys override ``monitoring_config`` for the
feature). ``monitoring_config``: ``evaluate_constraints`` "Enabled", ``emit_metrics`` "Enabled",
``datatype_check_threshold`` 1.0 and ``domain_content_threshold`` 1.0 (what Model Monitor's generated
constraints hold), ``distribution_constraints``: ``perform_comparison`` "Enabled", ``comparison_threshold`` 0.1,
``comparison_method`` "Robust" (or "Simple"), ``categorical_comparison_threshold`` 0.1,
``categorical_drift_method`` "LInfinity" (the constraints schema's table gives these defaults).

``constraint_violations.json``: ``{"violations": [{"feature_name", "constraint_check_type", "description"}]}``,
the checks and their meanings from the violations schema:

- ``data_type_check``: the share of present values matching the baseline type (Integral: integral values;
  Fractional: integral or fractional; String: all) is below ``datatype_check_threshold``. Described as Model
  Monitor does ("Data type match requirement is not met. Expected data type: Integral, Expected match: 100.0%.
  Observed: Only 50.0% of data is Integral.").
- ``completeness_check``: completeness below the feature's ``completeness`` (the violations schema: "the
  completeness threshold specified per feature"; a ``completeness_threshold`` in ``monitoring_config``, not in the
  schema and not written, scales it when present, default 1.0).
- ``baseline_drift_check``: the distance between the baseline and the observed distributions exceeds
  ``comparison_threshold`` (``categorical_comparison_threshold`` for String features). Numbers: Deequ's
  ``Distance.numericalDistance`` -- the L-infinity distance between the two CDFs, each read from its KLL sketch's
  items and weights, evaluated at every item of both sketches ("Simple", ``linf_simple``); "Robust"
  (``linf_robust``) subtracts the two-sample Kolmogorov-Smirnov allowance: max(0, linf - 1.8 sqrt((n + m) / (n m)))
  with n, m the sketches' counts (c(alpha) = 1.8, Deequ's default, alpha ~ 0.003). Categories:
  ``categoricalLInfinityDistance``, the largest difference of a value's share, with the same correction.
  ``ChiSquared`` is not computed (a warning says so).
- ``missing_column_check`` / ``extra_column_check``: a baseline feature absent from the observed data, or an
  observed column the baseline does not have.
- ``categorical_values_check``: the share of a String feature's present values inside the baseline's
  ``domains`` is below ``domain_content_threshold``.

The observed dataset of a run is rebuilt from capture files (:mod:`artifact_tools.capture`): CSV request rows
take the baseline's feature names by position (captured CSV has no header), JSON objects their keys.

Datasets are read in chunks and every statistic is kept in bounded state (sums, sketches, capped dictionaries), so
memory does not grow with the row count. CSV: the file is cut into chunks of whole records (4 MiB; a line break ends
a record when an even number of quotes precede it) parsed by Arrow on a thread one chunk ahead of the statistics.
The first 1 MiB, read as texts, decides how each column is parsed: as int64 when every present text there is a
decimal integer, as float64 when all are numbers and one is Fractional, else as texts (dictionary-encoded,
classified once per distinct value). A later text those numbers cannot stand for (a fraction in an int64 column:
float64; a word, '+5', 'nan', '1e400', a blank, a hexadecimal integer, which Arrow's int64 parser would read) makes
the read start over with that column parsed differently (at most 4 times, then every column as texts), so the
statistics are always those of the text rules above; a float64 column's values all count as Fractional (its type is
Fractional either way). JSON Lines: 20,000 lines at a time, as texts. ``--engine spark`` (``spark_statistics``)
reads the dataset with Spark (every CSV cell and JSON value a text), profiles each partition where it lies with the
same text rules, and merges the partitions' profiles on the driver: counts and sums add, moments merge pairwise,
DataSketches' KLL and frequent-items sketches merge within their error bounds, HyperLogLog registers take the
maximum, exact value counts add while under 1,000 distinct values. Outputs are written whole: a new folder is filled
under a temporary name and renamed into place; into an existing folder each file is written to a temporary name and
renamed over the old one.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .capture import CaptureError, observed_rows, read_capture
from .errors import ArtifactError

__all__ = ["MonitorError", "add_monitor_command", "baseline", "run", "statistics"]

log = logging.getLogger(__name__)

VERSION = 0
KLL_K = 2048
KLL_C = 2.0 / 3.0
BUCKETS = 10
CATEGORY_CAP = 1000  # distinct values of a column counted exactly
DOMAIN_CAP = 120  # Deequ ColumnProfiler's histogram threshold
UNIQUE_RATIO = 0.1  # Deequ CategoricalRangeRule
TOP_VALUES = 20  # categorical buckets written
C_ALPHA = 1.8  # Deequ Distance.defaultCAlpha
CSV_BLOCK = 4 << 20
KINDS_BLOCK = 1 << 20  # the first block, read as texts, decides which columns are read as numbers
JSON_LINES_CHUNK = 20_000
ROWS_CHUNK = 20_000
CHECK_TYPES = ("data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
               "extra_column_check", "categorical_values_check")
DEFAULT_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}
_INTEGRAL = r"^[+-]? ?\d+$"
_FRACTIONAL = r"^[+-]? ?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|\.\d+[eE][+-]?\d+)$"
_BOOLEAN = r"^(true|false)$"


class MonitorError(ArtifactError):
    """A dataset, baseline or capture window that cannot be monitored, explained in one sentence."""


def _require():
    try:
        import datasketches  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise MonitorError(f"Model Monitor needs the '{e.name}' package: pip install 'artifact-tools[monitor]'") \
            from None


# ============================================================================================ distinct counts

def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (Steele et al. 2014), modulo 2^64, on uint64 arrays."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _HyperLogLog:
    """HyperLogLog (Flajolet et al. 2007) with 2^14 registers over a 64-bit hash; linear counting below 2.5 m."""

    P = 14
    M = 1 << P

    def __init__(self) -> None:
        self.reg = np.zeros(self.M, np.uint8)

    def add_hashes(self, h: np.ndarray) -> None:
        if not len(h):
            return
        idx = (h >> np.uint64(64 - self.P)).astype(np.intp)
        w = (h << np.uint64(self.P)) | np.uint64(1 << (self.P - 1))  # a stop bit caps the rank at 64 - P + 1
        bits = np.frexp((w >> np.uint64(11)).astype(np.float64))[1]  # exact: at most 53 significant bits
        np.maximum.at(self.reg, idx, (54 - bits).astype(np.uint8))

    def add_numbers(self, values: np.ndarray) -> None:
        self.add_hashes(_mix64((values + 0.0).view(np.uint64)))  # + 0.0: -0.0 and 0.0 are one value

    def add_texts(self, arr) -> None:
        """The UTF-8 bytes of a pyarrow string array without nulls, hashed 8 bytes at a time (each word xor-ed into
        the running hash, then mixed; the length seeds it), vectorised over the values; values over 64 bytes go
        through BLAKE2b."""
        import pyarrow as pa

        n = len(arr)
        if not n:
            return
        if arr.type != pa.string():
            arr = arr.cast(pa.string())
        _, offsets_buf, data_buf = arr.buffers()
        offsets = np.frombuffer(offsets_buf, np.int32, n + 1, arr.offset * 4).astype(np.int64)
        data = np.frombuffer(data_buf, np.uint8) if data_buf is not None and data_buf.size else np.zeros(1, np.uint8)
        starts, lengths = offsets[:-1], np.diff(offsets)
        hashes = np.empty(n, np.uint64)
        short = np.flatnonzero(lengths <= 64)
        for lo in range(0, len(short), 8192):
            idx = short[lo:lo + 8192]
            length = lengths[idx]
            width = max(8, int(-(-int(length.max()) // 8) * 8))
            cols = np.arange(width)
            inside = cols < length[:, None]
            block = np.zeros((len(idx), width), np.uint8)
            block[inside] = data[(starts[idx][:, None] + cols)[inside]]
            words = block.view("<u8")
            z = _mix64(length.astype(np.uint64) + np.uint64(0x243F6A8885A308D3))
            for j in range(words.shape[1]):
                z = _mix64(z ^ words[:, j])
            hashes[idx] = z
        for i in np.flatnonzero(lengths > 64).tolist():
            raw = data[starts[i]:starts[i] + lengths[i]].tobytes()
            hashes[i] = int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")
        self.add_hashes(hashes)

    def estimate(self) -> int:
        m = float(self.M)
        z = float(np.sum(np.ldexp(1.0, -self.reg.astype(np.int32))))
        e = 0.7213 / (1 + 1.079 / m) * m * m / z
        zeros = int(np.count_nonzero(self.reg == 0))
        if e <= 2.5 * m and zeros:
            e = m * math.log(m / zeros)
        return int(round(e))


# ============================================================================================ one column

class _Column:
    """Bounded running statistics of one column (see the module notes for each field's rule)."""

    def __init__(self, name: str, missing_before: int = 0, domain: Iterable[str] | None = None):
        from datasketches import frequent_strings_sketch, kll_doubles_sketch

        self.name = name
        self.missing = missing_before
        self.integral = self.fractional = self.boolean = self.string = 0
        self.n = 0
        self.mean = self.m2 = self.total = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.kll = kll_doubles_sketch(KLL_K)
        self.hll = _HyperLogLog()
        self.categories: dict[str, int] | None = {}
        self.frequent = frequent_strings_sketch(10)
        self.domain = None if domain is None else list(domain)
        self.in_domain = 0

    @property
    def present(self) -> int:
        return self.integral + self.fractional + self.boolean + self.string

    # ------------------------------------------------------------------ shipping and merging (Spark partitions)
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["kll"] = self.kll.serialize()
        state["frequent"] = self.frequent.serialize()
        return state

    def __setstate__(self, state: dict) -> None:
        from datasketches import frequent_strings_sketch, kll_doubles_sketch

        self.__dict__.update(state)
        self.kll = kll_doubles_sketch.deserialize(state["kll"])
        self.frequent = frequent_strings_sketch.deserialize(state["frequent"])

    def merge(self, other: "_Column") -> None:
        """Add the statistics of the same column over other rows: counts and sums add, the moments merge with Chan
        et al.'s pairwise update, the sketches merge (DataSketches' KLL and frequent-items merges keep their error
        bounds; HyperLogLog registers take the maximum), exact value counts add while both are exact."""
        for key in ("missing", "integral", "fractional", "boolean", "string", "in_domain"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        if other.n:
            n = self.n + other.n
            delta = other.mean - self.mean
            self.m2 += other.m2 + delta * delta * self.n * other.n / n
            self.mean += delta * other.n / n
            self.n = n
            self.total += other.total
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.kll.merge(other.kll)
        np.maximum(self.hll.reg, other.hll.reg, out=self.hll.reg)
        self.frequent.merge(other.frequent)
        if self.categories is None or other.categories is None:  # a side still exact has its texts in no sketch
            if other.categories:
                self._give_up_categories(other.categories)
            self._give_up_categories()
        else:
            for key, c in other.categories.items():
                self.categories[key] = self.categories.get(key, 0) + c
            if len(self.categories) > CATEGORY_CAP:
                self._give_up_categories()

    def update(self, arr) -> None:
        """Add one chunk: a pyarrow string array (texts, classified as the module notes say) or an int64 / float64
        array (a CSV column read as numbers, see ``_csv_chunks``); nulls are missing values."""
        import pyarrow as pa

        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            self._update_numbers(arr)
        else:
            self._update_texts(arr)

    def _update_numbers(self, arr) -> None:
        """A column the CSV reader parsed as numbers: int64 columns hold only Integral texts; a float64 column is
        read so only once a Fractional text is known in it (``_csv_chunks``), so its values count as Fractional
        (whichever text each had: the column's type is Fractional either way)."""
        import pyarrow as pa

        if arr.null_count:
            self.missing += arr.null_count
            arr = arr.drop_null()
        if not len(arr):
            return
        values = arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        if pa.types.is_integer(arr.type):
            self.integral += len(values)
        else:
            if not np.isfinite(values).all():  # 'nan', 'inf', '1e400': texts Deequ calls String
                raise _Retype(self.name)
            self.fractional += len(values)
        self.categories = None  # a numeric column's type cannot be String: its values are not counted as texts
        self._add_numbers(values)

    def _update_texts(self, arr) -> None:
        """Texts: the work is done once per distinct value of the chunk, weighted by its count."""
        import pyarrow as pa
        import pyarrow.compute as pc

        self.missing += arr.null_count
        if not len(arr) or arr.null_count == len(arr):
            return
        if pa.types.is_dictionary(arr.type):  # the CSV reader's dictionary-encoded texts: count the indices
            if isinstance(arr, pa.ChunkedArray):  # one dictionary for every chunk, then all indices at once
                arr = arr.unify_dictionaries()
                dictionary = arr.chunk(0).dictionary
                indices = pa.chunked_array([c.indices for c in arr.chunks], arr.chunk(0).indices.type)
            else:
                dictionary, indices = arr.dictionary, arr.indices
            indices = (indices.drop_null() if arr.null_count else indices).to_numpy(zero_copy_only=False)
            weights = np.bincount(indices, minlength=len(dictionary))
            used = weights > 0
            keys = pc.utf8_trim_whitespace(dictionary.filter(pa.array(used)))
            weights = weights[used]
        else:
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            counts = pc.value_counts(arr.drop_null() if arr.null_count else arr)
            keys = pc.utf8_trim_whitespace(counts.field("values"))
            weights = counts.field("counts").to_numpy(zero_copy_only=False)
        blank = pc.equal(keys, "").to_numpy(zero_copy_only=False)
        if blank.any():
            self.missing += int(weights[blank].sum())
            keep = pa.array(~blank)
            keys, weights = keys.filter(keep), weights[~blank]
        if not len(keys):
            return
        is_int = pc.match_substring_regex(keys, _INTEGRAL).to_numpy(zero_copy_only=False)
        is_frac = pc.match_substring_regex(keys, _FRACTIONAL).to_numpy(zero_copy_only=False) & ~is_int
        is_num = is_int | is_frac
        values = np.empty(0)
        if is_num.any():
            texts = pc.replace_substring(keys.filter(pa.array(is_num)), " ", "")
            values = pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)
            finite = np.isfinite(values)
            if not finite.all():  # '1e400' overflows: not a number Deequ could hold, so a String
                where = np.flatnonzero(is_num)[~finite]
                is_int[where] = is_frac[where] = is_num[where] = False
                values = values[finite]
        is_bool = pc.match_substring_regex(keys, _BOOLEAN).to_numpy(zero_copy_only=False) & ~is_num
        n_int, n_frac, n_bool = (int(weights[m].sum()) for m in (is_int, is_frac, is_bool))
        self.integral += n_int
        self.fractional += n_frac
        self.boolean += n_bool
        self.string += int(weights.sum()) - n_int - n_frac - n_bool
        if len(values):
            self._add_numbers(np.repeat(values, weights[is_num]))
            self.hll.add_numbers(values)  # by value: '1.0' and '1' are one number
        if self.categories is not None:  # exact counts; the sketches take them over if they overflow
            self._count_categories(keys, weights, numeric_only=bool(is_num.all()))
        elif not is_num.all():
            self._sketch_texts(keys.filter(pa.array(~is_num)), weights[~is_num])
        if self.domain is not None:
            inside = pc.is_in(keys, value_set=pa.array(self.domain, pa.string())).to_numpy(zero_copy_only=False)
            self.in_domain += int(weights[inside].sum())

    def _count_categories(self, keys, weights: np.ndarray, numeric_only: bool) -> None:
        cats = self.categories
        assert cats is not None  # called only while the counts are exact
        if numeric_only and len(cats) + len(keys) > CATEGORY_CAP:
            if len(keys) > CATEGORY_CAP or any(k not in cats for k in keys.to_pylist()):
                self._give_up_categories()  # more distinct numbers than are counted exactly
                return
        for key, c in zip(keys.to_pylist(), weights.tolist()):
            cats[key] = cats.get(key, 0) + c
        if len(cats) > CATEGORY_CAP:
            self._give_up_categories()

    def _sketch_texts(self, strings, weights: np.ndarray) -> None:
        """Non-numeric texts (a pyarrow string array) and their counts into the frequent-items sketch and the
        HyperLogLog (numbers go to the HyperLogLog by value as they come)."""
        for key, c in zip(strings.to_pylist(), weights.tolist()):
            self.frequent.update(key, c)
        self.hll.add_texts(strings)

    def _give_up_categories(self, categories: dict | None = None) -> None:
        """Stop counting values exactly: the sketches take over, seeded with the non-numeric texts counted so far
        (``categories``, else this column's own)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        cats = self.categories if categories is None else categories
        self.categories = None
        if not cats:
            return
        keys = pa.array(list(cats), pa.string())
        weights = np.fromiter(cats.values(), np.int64, len(cats))
        numeric = pc.or_(pc.match_substring_regex(keys, _INTEGRAL),
                         pc.match_substring_regex(keys, _FRACTIONAL)).to_numpy(zero_copy_only=False)
        if numeric.any():  # as _update_texts decides: a number that overflows is a String
            values = pc.cast(pc.replace_substring(keys.filter(pa.array(numeric)), " ", ""), pa.float64())
            numeric[np.flatnonzero(numeric)[~np.isfinite(values.to_numpy(zero_copy_only=False))]] = False
        if not numeric.all():
            self._sketch_texts(keys.filter(pa.array(~numeric)), weights[~numeric])

    def _add_numbers(self, values: np.ndarray) -> None:
        """Moments merged with Chan et al.'s pairwise update; the chunk goes to the KLL sketch sorted (the sketch's
        compactions then sort presorted runs, 2-4x faster; KLL's error bound holds for any input order)."""
        values = np.sort(values)
        k = len(values)
        total = float(values.sum())
        mean = total / k
        centred = values - mean
        m2 = float(np.dot(centred, centred))
        n = self.n + k
        delta = mean - self.mean
        self.mean += delta * k / n
        self.m2 += m2 + delta * delta * self.n * k / n
        self.n = n
        self.total += total
        self.min = min(self.min, float(values[0]))
        self.max = max(self.max, float(values[-1]))
        self.kll.update(values)

    # ------------------------------------------------------------------ results
    def inferred_type(self) -> str:
        if not self.present:
            return "Unknown"
        if self.string or self.boolean:
            return "String"
        return "Fractional" if self.fractional else "Integral"

    def matching(self, kind: str) -> float:
        """Share of present values matching ``kind`` (1.0 when nothing is present)."""
        present = self.present
        if not present or kind in ("String", "Unknown"):
            return 1.0
        good = self.integral if kind == "Integral" else self.integral + self.fractional
        return good / present

    def top_values(self, limit: int | None = TOP_VALUES) -> list[tuple[str, int]]:
        from datasketches import frequent_items_error_type

        if self.categories is not None:
            items = sorted(self.categories.items(), key=lambda kv: (-kv[1], kv[0]))
        else:
            items = [(v, int(est)) for v, est, _lo, _hi in
                     self.frequent.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)]
        return items[:limit] if limit else items

    def distinct(self) -> int:
        if self.categories is not None and self.inferred_type() == "String":
            return len(self.categories)
        return self.hll.estimate()

    def feature_statistics(self) -> dict:
        kind = self.inferred_type()
        common = {"num_present": self.present, "num_missing": self.missing}
        if kind in ("Integral", "Fractional"):
            return {"name": self.name, "inferred_type": kind, "numerical_statistics": {
                "common": common, "mean": self.mean, "sum": self.total,
                "std_dev": math.sqrt(self.m2 / self.n) if self.n else 0.0,
                "min": self.min, "max": self.max,
                "distribution": {"kll": self.kll_json()}}}
        buckets = [{"value": v, "count": c} for v, c in self.top_values()]
        return {"name": self.name, "inferred_type": kind, "string_statistics": {
            "common": common, "distinct_count": self.distinct() if self.present else 0,
            "distribution": {"categorical": {"buckets": buckets}}}}

    def kll_json(self) -> dict:
        sketch = self.kll
        lo, hi = self.min, self.max
        n = sketch.n
        buckets = []
        for i in range(BUCKETS):
            lower = lo + (hi - lo) * i / BUCKETS
            upper = lo + (hi - lo) * (i + 1) / BUCKETS
            below_upper = sketch.get_rank(upper, inclusive=(i == BUCKETS - 1))
            below_lower = sketch.get_rank(lower, inclusive=False)
            buckets.append({"lower_bound": lower, "upper_bound": upper,
                            "count": float(round((below_upper - below_lower) * n))})
        retained = np.array(list(sketch), dtype=np.float64).reshape(-1, 2)  # (item, weight) pairs
        level = np.frexp(retained[:, 1])[1] - 1  # weight 2^i -> level i
        data = [np.sort(retained[level == i, 0]).tolist() for i in range(int(level.max()) + 1)] if len(level) else []
        return {"buckets": buckets, "sketch": {"parameters": {"c": KLL_C, "k": float(sketch.k)}, "data": data}}

    def constraint(self, rows: int) -> dict:
        kind = self.inferred_type()
        out: dict[str, Any] = {"name": self.name, "inferred_type": kind,
                               "completeness": self.present / rows if rows else 0.0}
        if kind in ("Integral", "Fractional"):
            out["num_constraints"] = {"is_non_negative": bool(self.min >= 0)}
        elif kind == "String" and self.categories is not None and 0 < len(self.categories) <= DOMAIN_CAP:
            once = sum(1 for c in self.categories.values() if c == 1)
            if once / len(self.categories) <= UNIQUE_RATIO:
                out["string_constraints"] = {"domains": [v for v, _ in self.top_values(None)]}
        out["monitoringConfigOverrides"] = {}
        return out


class _Profile:
    """Columns by name, filled chunk by chunk; a column first seen late counts the earlier rows as missing."""

    def __init__(self, domains: dict[str, list[str]] | None = None):
        _require()
        self.rows = 0
        self.columns: dict[str, _Column] = {}
        self.domains = domains or {}

    def add(self, names: list[str], arrays: list, rows: int) -> None:
        import pyarrow as pa

        for name, arr in zip(names, arrays):
            col = self.columns.get(name)
            if col is None:
                col = self.columns[name] = _Column(name, self.rows, self.domains.get(name))
            col.update(arr)
        for name, col in self.columns.items():
            if name not in names:
                col.update(pa.nulls(rows, pa.string()))
        self.rows += rows

    def merge(self, other: "_Profile") -> None:
        """Add ``other``'s rows (a column one side lacks counts the other side's rows as missing)."""
        for name, col in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                mine = self.columns[name] = _Column(name, self.rows, self.domains.get(name))
            mine.merge(col)
        for name, col in self.columns.items():
            if name not in other.columns:
                col.missing += other.rows
        self.rows += other.rows

    def statistics(self) -> dict:
        return {"version": VERSION, "dataset": {"item_count": self.rows},
                "features": [c.feature_statistics() for c in self.columns.values()]}

    def constraints(self) -> dict:
        return {"version": VERSION, "features": [c.constraint(self.rows) for c in self.columns.values()],
                "monitoring_config": json.loads(json.dumps(DEFAULT_CONFIG))}


# ============================================================================================ reading datasets

def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _has_header(rows: list[list[str]]) -> bool:
    """The first row is a header when it is followed by other rows and some column holds a non-number in the first
    row and only numbers (or blanks) below (the rule of :mod:`artifact_tools.codec` and ``csv.Sniffer``)."""
    if len(rows) < 2:
        return False
    first, rest = rows[0], rows[1:]
    for i, cell in enumerate(first):
        below = [r[i].strip() for r in rest if i < len(r) and r[i].strip()]
        if cell.strip() and not _number(cell) and below and all(_number(v) for v in below):
            return True
    return False


def _open(path: str, storage_options: dict | None = None):
    import fsspec

    try:
        fs, local = fsspec.core.url_to_fs(str(path), **(storage_options or {}))
        if not fs.isfile(local):
            raise MonitorError(f"dataset {path} does not exist or is not a file")
        return fs.open(local, "rb")
    except (OSError, ValueError, ImportError) as e:
        raise MonitorError(f"dataset {path} cannot be opened: {e}") from None


def _sniff_format(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    return "jsonlines" if text[:1] in (b"{", b"[") else "csv"


class _Retype(Exception):
    """Internal: a CSV column read as numbers holds a text those numbers cannot stand for; the read starts over
    with the column read differently (``statistics``)."""

    def __init__(self, name: str | None = None, index: int | None = None, value: str | None = None,
                 hexadecimal: bool = False):
        super().__init__(name or index)
        self.name, self.index, self.value, self.hexadecimal = name, index, value, hexadecimal


def _has_hex_cell(buf: bytes, at_cell_start: bool = True, end: int | None = None) -> bool:
    """Whether ``buf`` holds ``0x`` / ``0X`` then a hexadecimal digit at the start of a cell (after an optional
    sign); ``at_cell_start``: whether ``buf`` itself starts a cell. Without an 'x' or 'X' (memchr) there is none;
    else numpy finds the two-byte pairs in two 16-bit views (even and odd offsets). Only ``buf[:end]`` is read."""
    end = len(buf) if end is None else end
    if buf.find(b"x", 0, end) < 0 and buf.find(b"X", 0, end) < 0:
        return False
    candidates: list[int] = []  # positions of the letter after a '0'
    for offset in (0, 1):
        pairs = np.frombuffer(buf, "<u2", (end - offset) // 2, offset)
        for pair in (0x7830, 0x5830):  # b"0x", b"0X" read little-endian
            candidates += (np.flatnonzero(pairs == pair) * 2 + offset + 1).tolist()
    for i in candidates:
        j = i - 2
        if j >= 0 and buf[j] in b"+-":
            j -= 1
        starts_cell = buf[j] in b',"\r\n\t ' if j >= 0 else at_cell_start
        if starts_cell and i + 1 < end and buf[i + 1] in b"0123456789abcdefABCDEF":
            return True
    return False


_CONVERSION_ERROR = re.compile(r"column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value '(.*)'$",
                               re.S)
_ARROW_INTEGER = r"^-?\d+$"  # the integral texts Arrow's int64 parser reads (no '+', no space after the sign)
MAX_RETYPES = 4  # then every column still read as numbers is read as text


def _csv_layout(path: str, header: bool | None, storage_options=None) -> tuple[list[str], bool]:
    """The column names and whether the first row is a header, from the first 64 KiB."""
    with _open(path, storage_options) as f:
        head = f.read(1 << 16)
    text = head.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()[:-1] if len(head) == 1 << 16 else text.splitlines()
    sample = [r for r in csv.reader(io.StringIO("\n".join(lines[:200]))) if any(c.strip() for c in r)]
    if not sample:
        raise MonitorError(f"dataset {path} holds no rows")
    if header is None:
        header = _has_header(sample)
    width = len(sample[0])
    if not header:
        return [f"_c{i}" for i in range(width)], False
    names = [c.strip() for c in sample[0]]
    seen = set()
    for n in names:
        if not n:
            raise MonitorError(f"the header of {path} has an empty column name")
        if n in seen:
            raise MonitorError(f"the header of {path} names the column {n!r} twice")
        seen.add(n)
    return names, True


def _column_kind(arr) -> str:
    """How a column is read after its first block: "int64" when every present text is an integer Arrow reads,
    "float64" when they are all numbers and one is Fractional, else "string" (texts, classified one by one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pc.utf8_trim_whitespace(arr)
    present = texts.filter(pc.not_equal(texts, ""))
    if not len(present):
        return "string"
    try:
        if pc.all(pc.match_substring_regex(present, _ARROW_INTEGER)).as_py():
            pc.cast(present, pa.int64())
            return "int64"
        is_int = pc.match_substring_regex(present, _INTEGRAL)
        is_frac = pc.and_(pc.match_substring_regex(present, _FRACTIONAL), pc.invert(is_int))
        if pc.all(pc.or_(is_int, is_frac)).as_py() and pc.any(is_frac).as_py():
            values = pc.cast(present, pa.float64()).to_numpy(zero_copy_only=False)
            if np.isfinite(values).all():
                return "float64"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    return "string"


def _parse_csv(data, width: int, skip_header: bool, kinds: list[str]):
    """One chunk of whole records (bytes or a memoryview) parsed by Arrow as one block."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    types = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.dictionary(pa.int32(), pa.string())}
    internal = [f"f{i}" for i in range(width)]
    return pcsv.read_csv(
        pa.py_buffer(data),
        read_options=pcsv.ReadOptions(column_names=internal, skip_rows=1 if skip_header else 0, encoding="utf8",
                                      block_size=max(len(data) + 1, 1 << 20), use_threads=False),
        parse_options=pcsv.ParseOptions(ignore_empty_lines=True, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(column_types={n: types[k] for n, k in zip(internal, kinds)},
                                            null_values=[""], strings_can_be_null=False,
                                            quoted_strings_can_be_null=False))


def _record_end(buf: bytes) -> int:
    """The end of the last whole CSV record in ``buf`` (which starts a record): after its last line break outside
    quotes (a quoted field's quotes, doubled ones included, come in pairs, so a line break with an even number of
    quotes before it ends a record); 0 when there is none."""
    if b'"' not in buf:
        return max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
    b = np.frombuffer(buf, np.uint8)
    outside = np.cumsum(b == 0x22) % 2 == 0
    breaks = np.flatnonzero(((b == 0x0A) | (b == 0x0D)) & outside)
    return int(breaks[-1]) + 1 if len(breaks) else 0


MAX_RECORD = 64 << 20  # a CSV record longer than this is refused (memory stays bounded)


def _record_chunks(f, size: int) -> Iterator[tuple[bytes, int]]:
    """``f``'s bytes in chunks of about ``size`` that end on a record boundary: ``(buffer, end)``, the chunk being
    ``buffer[:end]`` (not copied out)."""
    rest = b""
    while True:
        data = f.read(size)
        if not data:
            if rest.strip():
                yield rest, len(rest)
            return
        buf = rest + data if rest else data
        cut = _record_end(buf)
        if cut == 0:
            if len(buf) > MAX_RECORD:
                raise MonitorError(f"a CSV record is longer than {MAX_RECORD >> 20} MiB (an unclosed quote?)")
            rest = buf
            continue
        yield buf, cut
        rest = buf[cut:]


def _csv_errors(path: str, width: int):
    """Arrow's CSV errors as one sentence (a conversion error of a column read as numbers: ``_Retype``)."""
    import pyarrow as pa

    class _Errors:
        def __enter__(self):
            return self

        def __exit__(self, kind, e, tb):
            if kind is None or not issubclass(kind, pa.ArrowInvalid):
                return False
            message = str(e).splitlines()[0] if str(e) else ""
            found = _CONVERSION_ERROR.search(str(e))
            if found:
                raise _Retype(index=int(found.group(1)), value=found.group(2)) from None
            if "Expected" in message and "columns" in message:
                raise MonitorError(f"dataset {path}: the CSV rows do not all have the first row's {width} "
                                   f"columns ({message[:200]})") from None
            raise MonitorError(f"dataset {path} is not readable CSV: {message[:200]}") from None

    return _Errors()


def _csv_kinds(path: str, width: int, header: bool, storage_options=None) -> list[str]:
    """Each column's reading (``_column_kind``) from the first ``KINDS_BLOCK`` bytes' records read as texts."""
    import pyarrow as pa

    with _open(path, storage_options) as f, _csv_errors(path, width):
        buf, end = next(_record_chunks(f, KINDS_BLOCK), (b"", 0))
        first = buf[:end].removeprefix(b"\xef\xbb\xbf")
        if not first.strip():
            return ["string"] * width
        table = _parse_csv(first, width, header, ["string"] * width)
    return [_column_kind(pa.concat_arrays([c.cast(pa.string()) for c in col.chunks]) if col.num_chunks
                         else pa.array([], pa.string())) for col in table.columns]


def _prefetched(batches: Iterator, depth: int = 2) -> Iterator:
    """``batches`` produced on a thread (Arrow parses without the GIL, so parsing the next block overlaps the
    statistics of this one), at most ``depth`` ahead; the thread ends when the consumer stops."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as e:  # handed to the consumer, raised there
            q.put((False, e))

    thread = threading.Thread(target=produce, name="monitor-csv-reader", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()


def _csv_chunks(path: str, names: list[str], header: bool, kinds: list[str],
                storage_options=None) -> Iterator[tuple[list[str], list, int]]:
    """Batches of the CSV: column names, one pyarrow array per column (int64 / float64 for the columns ``kinds``
    reads as numbers, dictionary-encoded texts for the others; empty cells null in numeric columns), row count. The
    file is cut into chunks of whole records (``CSV_BLOCK`` bytes), read and parsed on a thread one chunk ahead of
    the statistics (Arrow parses without the GIL), so memory stays a few chunks whatever the size.
    Raises ``_Retype`` when a column read as numbers holds another text (a hexadecimal integer cell included, which
    Arrow's int64 parser would read)."""
    width = len(names)
    watch_hex = "int64" in kinds

    def tables():
        with _open(path, storage_options) as f:
            for i, (buf, end) in enumerate(_record_chunks(f, CSV_BLOCK)):
                start = 3 if i == 0 and buf.startswith(b"\xef\xbb\xbf") else 0
                if watch_hex and _has_hex_cell(buf, end=end):
                    raise _Retype(hexadecimal=True)
                yield _parse_csv(memoryview(buf)[start:end], width, header and i == 0, kinds)

    with _csv_errors(path, width):
        for table in _prefetched(tables(), depth=1):
            yield names, list(table.columns), table.num_rows



def _retyped(kinds: list[str], names: list[str], e: _Retype, attempt: int) -> list[str]:
    """The next reading after ``e``: an int64 column with a Fractional text becomes float64, any other column read
    as numbers becomes text; after ``MAX_RETYPES`` restarts every column is read as text."""
    kinds = list(kinds)
    if attempt >= MAX_RETYPES:
        return ["string"] * len(kinds)
    if e.hexadecimal:
        return ["string" if k == "int64" else k for k in kinds]
    index = e.index if e.index is not None else (names.index(e.name) if e.name in names else None)
    if index is None or not 0 <= index < len(kinds) or kinds[index] == "string":
        return ["string"] * len(kinds)
    value = (e.value or "").strip()
    fractional = bool(re.match(_FRACTIONAL, value)) and not re.match(_INTEGRAL, value)
    if kinds[index] == "int64" and fractional and math.isfinite(float(value.replace(" ", ""))):
        kinds[index] = "float64"
    else:
        kinds[index] = "string"
    return kinds


def _csv_profile(path: str, header: bool | None, storage_options=None) -> "_Profile":
    names, header = _csv_layout(path, header, storage_options)
    kinds = _csv_kinds(path, len(names), header, storage_options)
    attempt = 0
    while True:
        profile = _Profile()
        try:
            for cols, arrays, rows in _csv_chunks(path, names, header, kinds, storage_options):
                profile.add(cols, arrays, rows)
            return profile
        except _Retype as e:
            attempt += 1
            kinds = _retyped(kinds, names, e, attempt)
            log.info("dataset %s: reading it again with the columns read as %s", path, kinds)


def _json_value_cells(row: Any) -> dict | list:
    from .capture import _cell

    if isinstance(row, dict):
        return {str(k): _cell(v) for k, v in row.items()}
    if isinstance(row, list):
        return [_cell(v) for v in row]
    return [_cell(row)]


def _rows_to_columns(rows: list[tuple[str, Any]], positional: list[str]) -> tuple[list[str], list, int]:
    """Rows (``("csv", cells)`` or ``("json", list | dict)``) -> column names and pyarrow string arrays. Positional
    cells take the names in ``positional`` (then ``_cN``)."""
    import pyarrow as pa

    columns: dict[str, list] = {}
    n = len(rows)
    for i, (kind, row) in enumerate(rows):
        if kind == "json":
            row = _json_value_cells(row)
        items: Iterable[tuple[Any, Any]]
        if isinstance(row, dict):
            items = row.items()
        else:
            items = ((positional[j] if j < len(positional) else f"_c{j}", v) for j, v in enumerate(row))
        for name, value in items:
            col = columns.get(name)
            if col is None:
                col = columns[name] = [None] * n
            col[i] = value
    names = list(columns)
    return names, [pa.array(columns[k], pa.string()) for k in names], n


def _jsonl_chunks(path: str, storage_options=None) -> Iterator[tuple[list[str], list, int]]:
    with _open(path, storage_options) as f:
        rows: list = []
        number = 0
        for raw in f:
            number += 1
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError) as e:
                raise MonitorError(f"dataset {path} line {number} is not JSON ({e})") from None
            rows.append(("json", value))
            if len(rows) >= JSON_LINES_CHUNK:
                yield _rows_to_columns(rows, [])
                rows = []
        if rows:
            yield _rows_to_columns(rows, [])


def _dataset_format(dataset: str, dataset_format: str | None, storage_options=None) -> str:
    if dataset_format is None:
        with _open(dataset, storage_options) as f:
            dataset_format = _sniff_format(f.read(4096))
    fmt = dataset_format.lower().replace("_", "").replace("-", "")
    if fmt == "csv":
        return "csv"
    if fmt in ("json", "jsonl", "jsonlines"):
        return "jsonlines"
    raise MonitorError(f"dataset format {dataset_format!r} is not csv or jsonlines")


def statistics(dataset: str | os.PathLike, *, header: bool | None = None, dataset_format: str | None = None,
               storage_options: dict | None = None) -> tuple[dict, dict]:
    """``(statistics, constraints)`` documents of a CSV (``header``: True, False, or None to detect) or JSON Lines
    dataset, streamed."""
    dataset = str(dataset)
    if _dataset_format(dataset, dataset_format, storage_options) == "csv":
        profile = _csv_profile(dataset, header, storage_options)
    else:
        profile = _Profile()
        for names, arrays, rows in _jsonl_chunks(dataset, storage_options):
            profile.add(names, arrays, rows)
    if not profile.rows:
        raise MonitorError(f"dataset {dataset} holds no rows")
    return profile.statistics(), profile.constraints()


# ============================================================================================ writing outputs

def _dumps(doc: dict) -> bytes:
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _write_outputs(folder: str | os.PathLike, files: dict[str, bytes]) -> None:
    """Write ``files`` into ``folder`` whole (see the module notes)."""
    folder = Path(folder).absolute()
    if folder.exists() and not folder.is_dir():
        raise MonitorError(f"{folder} exists and is not a folder")
    tag = f"partial-{os.getpid()}"
    try:
        if not folder.exists():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = folder.with_name(f".{folder.name}.{tag}")
            tmp.mkdir()
            try:
                for name, data in files.items():
                    with open(tmp / name, "xb") as f:
                        f.write(data)
                os.rename(tmp, folder)
            except BaseException:
                for p in tmp.glob("*"):
                    p.unlink()
                tmp.rmdir()
                raise
            return
        for name, data in files.items():
            tmp = folder / f".{name}.{tag}"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, folder / name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    except OSError as e:
        raise MonitorError(f"cannot write into {folder}: {e.strerror or e}") from None


# ============================================================================================ baseline

def _partition_profiles(batches):
    """Spark ``mapInArrow`` function: the profile of one partition's Arrow batches (every column a text), pickled
    into one row."""
    import pickle

    import pyarrow as pa
    import pyarrow.compute as pc

    profile = _Profile()
    for batch in batches:
        names = batch.schema.names
        profile.add(names, [pc.cast(c, pa.string()) for c in batch.columns], batch.num_rows)
    yield pa.RecordBatch.from_pydict({"profile": [pickle.dumps(profile, protocol=5)]},
                                     schema=pa.schema([("profile", pa.binary())]))


def spark_statistics(spark, dataset: str, *, header: bool | None = None,
                     dataset_format: str | None = None) -> tuple[dict, dict]:
    """``(statistics, constraints)`` of a dataset Spark reads (a file, a folder of part files, a glob, any URI the
    session's Hadoop file systems open), for data that does not fit one machine: every partition is profiled where it
    lies (CSV cells and JSON values as texts, the local engine's text rules) and the partitions' profiles (counts,
    moments, KLL / frequent-items sketches, HyperLogLog registers) merge on the driver."""
    import pickle

    fmt = (dataset_format or ("jsonlines" if str(dataset).lower().endswith((".jsonl", ".json", ".ndjson"))
                              else "csv")).lower().replace("_", "").replace("-", "")
    try:
        if fmt in ("json", "jsonl", "jsonlines"):
            df = spark.read.option("primitivesAsString", "true").json(str(dataset))
            df = df.select([df[c].cast("string").alias(c) for c in df.columns])
        elif fmt == "csv":
            reader = spark.read.option("inferSchema", "false").option("mode", "FAILFAST")
            if header is None:
                sample = [list(r) for r in reader.option("header", "false").csv(str(dataset)).limit(200).collect()]
                header = _has_header([[c or "" for c in row] for row in sample])
            df = reader.option("header", "true" if header else "false").csv(str(dataset))
        else:
            raise MonitorError(f"dataset format {dataset_format!r} is not csv or jsonlines")
        rows = df.mapInArrow(_partition_profiles, "profile binary").collect()
    except MonitorError:
        raise
    except Exception as e:  # Spark's errors (AnalysisException, Py4JJavaError): the first line says it
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MonitorError(f"Spark cannot profile {dataset}: {first[:300]}") from None
    profile = _Profile()
    for row in rows:
        profile.merge(pickle.loads(row["profile"]))
    if not profile.rows:
        raise MonitorError(f"dataset {dataset} holds no rows")
    return profile.statistics(), profile.constraints()


def _spark_session():
    from .spark import session

    return session(None, "artifact-tools monitor")


def baseline(dataset: str | os.PathLike, out: str | os.PathLike, *, header: bool | None = None,
             engine: str = "local", dataset_format: str | None = None,
             storage_options: dict | None = None, spark=None) -> dict:
    """Write ``statistics.json`` and ``constraints.json`` of ``dataset`` into the folder ``out``; returns
    ``{"statistics": ..., "constraints": ...}``. ``engine``: ``"local"`` (streamed, any size) or ``"spark"``
    (``spark_statistics`` on ``spark``, else the active SparkSession, else a new one from ``spark-submit``'s
    settings)."""
    if engine == "spark":
        stats, cons = spark_statistics(spark or _spark_session(), str(dataset), header=header,
                                       dataset_format=dataset_format)
    elif engine == "local":
        stats, cons = statistics(dataset, header=header, dataset_format=dataset_format,
                                 storage_options=storage_options)
    else:
        raise MonitorError(f"the baseline engine {engine!r} is not 'local' or 'spark'")
    _write_outputs(out, {"statistics.json": _dumps(stats), "constraints.json": _dumps(cons)})
    return {"statistics": stats, "constraints": cons}


# ============================================================================================ comparing

def _load_json(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MonitorError(f"the baseline has no {what} ({path} is missing)") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise MonitorError(f"the baseline's {what} ({path}) is not readable JSON: {e}") from None
    return doc


def _check_schema(doc: Any, what: str, path: Path) -> None:
    if not isinstance(doc, dict) or "features" not in doc or not isinstance(doc.get("features"), list):
        raise MonitorError(f"{path} is not a Model Monitor {what} (no features list)")
    try:
        version = float(doc.get("version", 0))
    except (TypeError, ValueError):
        version = None
    if version != VERSION:
        raise MonitorError(f"{path} is a {what} of version {doc.get('version')!r}; only Model Monitor's version 0 "
                           "is understood")
    for f in doc["features"]:
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or "inferred_type" not in f:
            raise MonitorError(f"{path} is not a Model Monitor {what}: a feature has no name or inferred_type")


def load_baseline(folder: str | os.PathLike) -> tuple[dict, dict]:
    """``(statistics, constraints)`` read from a baseline folder, checked against Model Monitor's schemas."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MonitorError(f"the baseline folder {folder} does not exist")
    stats = _load_json(folder / "statistics.json", "statistics.json")
    cons = _load_json(folder / "constraints.json", "constraints.json")
    _check_schema(stats, "statistics file", folder / "statistics.json")
    _check_schema(cons, "constraints file", folder / "constraints.json")
    return stats, cons


def _sketch_cdf(kll: dict) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Sorted items, their cumulative weights and the total weight of a ``kll`` object's ``sketch.data``."""
    try:
        data = kll["sketch"]["data"]
        values: list[float] = []
        weights: list[float] = []
        for level, items in enumerate(data):
            values.extend(float(v) for v in items)
            weights.extend([float(2 ** level)] * len(items))
    except (KeyError, TypeError, ValueError):
        return None
    if not values:
        return None
    order = np.argsort(values, kind="stable")
    v = np.asarray(values)[order]
    cum = np.cumsum(np.asarray(weights)[order])
    return v, cum, float(cum[-1])


def _cdf_at(points: tuple, x: np.ndarray) -> np.ndarray:
    v, cum, total = points
    idx = np.searchsorted(v, x, side="right") - 1
    return np.where(idx >= 0, cum[np.clip(idx, 0, None)], 0.0) / total


def _robust(linf: float, n: float, m: float, method: str) -> float:
    if str(method).lower() in ("simple", "linf_simple"):
        return linf
    return max(0.0, linf - C_ALPHA * math.sqrt((n + m) / (n * m)))


def numerical_distance(baseline_kll: dict, observed_kll: dict, method: str = "Robust") -> float | None:
    """Deequ's ``numericalDistance`` between two ``kll`` objects (see the module notes); None without sketches."""
    a, b = _sketch_cdf(baseline_kll), _sketch_cdf(observed_kll)
    if a is None or b is None:
        return None
    keys = np.union1d(a[0], b[0])
    linf = float(np.max(np.abs(_cdf_at(a, keys) - _cdf_at(b, keys))))
    return _robust(linf, a[2], b[2], method)


def categorical_distance(baseline_counts: dict[str, float], observed_counts: dict[str, float],
                         method: str = "Robust") -> float | None:
    """Deequ's ``categoricalLInfinityDistance``: the largest difference of a value's share, corrected as above."""
    n, m = sum(baseline_counts.values()), sum(observed_counts.values())
    if not n or not m:
        return None
    linf = max(abs(baseline_counts.get(k, 0) / n - observed_counts.get(k, 0) / m)
               for k in set(baseline_counts) | set(observed_counts))
    return _robust(linf, n, m, method)


def _config(cons: dict, feature: dict) -> dict:
    config = json.loads(json.dumps(DEFAULT_CONFIG))
    given = cons.get("monitoring_config") or {}
    overrides = feature.get("monitoringConfigOverrides") or feature.get("monitoring_config_overrides") or {}
    for source in (given, overrides):
        if not isinstance(source, dict):
            continue
        for k, v in source.items():
            if k == "distribution_constraints" and isinstance(v, dict):
                config["distribution_constraints"].update(v)
            else:
                config[k] = v
    dist = config["distribution_constraints"]
    if "comparion_method" in dist and "comparison_method" not in (given.get("distribution_constraints") or {}):
        dist["comparison_method"] = dist["comparion_method"]  # the schema page's own spelling
    if "categorical_comparison_threshold" not in (given.get("distribution_constraints") or {}):
        dist["categorical_comparison_threshold"] = dist["comparison_threshold"]
    return config


def _enabled(value: Any) -> bool:
    return str(value).lower() not in ("disabled", "false", "0")


def _pct(x: float) -> str:
    return f"{round(x * 100, 4)}%"


def check(stats_baseline: dict, cons: dict, profile: "_Profile") -> tuple[list[dict], dict[str, dict]]:
    """The violations of the observed ``profile`` against a baseline, and per feature the numbers behind them."""
    by_name = {f["name"]: f for f in stats_baseline.get("features", [])}
    violations: list[dict] = []
    details: dict[str, dict] = {}
    baseline_names = [f["name"] for f in cons["features"]]
    observed = profile.columns

    def flag(name: str, kind: str, text: str) -> None:
        violations.append({"feature_name": name, "constraint_check_type": kind, "description": text})

    for feature in cons["features"]:
        name, kind = feature["name"], feature["inferred_type"]
        config = _config(cons, feature)
        col = observed.get(name)
        info: dict[str, Any] = {"inferred_type": kind}
        details[name] = info
        if col is None:
            flag(name, "missing_column_check",
                 f"There are missing columns in current dataset. Number of columns in current dataset: "
                 f"{len(observed)}, Number of columns in baseline constraints: {len(baseline_names)}")
            continue
        if not _enabled(config.get("evaluate_constraints", "Enabled")):
            continue
        rows = profile.rows
        completeness = col.present / rows if rows else 0.0
        expected = float(feature.get("completeness", 0.0) or 0.0)
        needed = expected * float(config.get("completeness_threshold", 1.0))
        info.update(completeness=completeness, expected_completeness=expected, observed_type=col.inferred_type())
        if completeness + 1e-12 < needed:
            flag(name, "completeness_check",
                 f"Data completeness requirement is not met. Expected completeness: {_pct(needed)}, Observed: Only "
                 f"{_pct(completeness)} of data is complete.")
        match = col.matching(kind)
        threshold = float(config.get("datatype_check_threshold", 1.0))
        info["type_match"] = match
        if col.present and match + 1e-12 < threshold:
            flag(name, "data_type_check",
                 f"Data type match requirement is not met. Expected data type: {kind}, Expected match: "
                 f"{_pct(threshold)}. Observed: Only {_pct(match)} of data is {kind}.")
        domains = (feature.get("string_constraints") or {}).get("domains")
        if kind == "String" and domains and col.present:
            share = col.in_domain / col.present
            threshold = float(config.get("domain_content_threshold", 1.0))
            info["domain_match"] = share
            if share + 1e-12 < threshold:
                flag(name, "categorical_values_check",
                     f"Categorical value match requirement is not met. Expected match: {_pct(threshold)}. "
                     f"Observed: Only {_pct(share)} of data is within the baseline domain.")
        dist = config["distribution_constraints"]
        if not _enabled(dist.get("perform_comparison", "Enabled")):
            continue
        method = dist.get("comparison_method", "Robust")
        base = by_name.get(name, {})
        if kind in ("Integral", "Fractional") and col.n:
            kll = ((base.get("numerical_statistics") or {}).get("distribution") or {}).get("kll")
            distance = numerical_distance(kll, col.kll_json(), method) if kll else None
            threshold = float(dist.get("comparison_threshold", 0.1))
        elif kind == "String" and col.present:
            if str(dist.get("categorical_drift_method", "LInfinity")).lower() != "linfinity":
                log.warning("feature %s: categorical drift method %s is not computed (LInfinity only)", name,
                            dist.get("categorical_drift_method"))
                continue
            buckets = (((base.get("string_statistics") or {}).get("distribution") or {}).get("categorical")
                       or {}).get("buckets") or []
            base_counts = {str(b.get("value")): float(b.get("count", 0)) for b in buckets}
            distance = categorical_distance(base_counts, dict(col.top_values(None)), method) if base_counts else None
            threshold = float(dist.get("categorical_comparison_threshold", dist.get("comparison_threshold", 0.1)))
        else:
            continue
        if distance is None:
            log.warning("feature %s: the baseline has no distribution to compare with", name)
            continue
        info.update(distance=distance, method=method, threshold=threshold)
        if distance > threshold:
            flag(name, "baseline_drift_check",
                 f"Baseline drift distance: {distance:.6g} exceeds threshold: {threshold:g} ({method} L-infinity "
                 "distance between the baseline and observed distributions)")
    extra = [n for n in observed if n not in set(baseline_names)]
    for name in extra:
        flag(name, "extra_column_check",
             f"There are extra columns in current dataset. Number of columns in current dataset: {len(observed)}, "
             f"Number of columns in baseline constraints: {len(baseline_names)}")
    return violations, details


# ============================================================================================ run

def _capture_chunks(rows: Iterator[tuple[str, Any]], positional: list[str]):
    batch: list = []
    for row in rows:
        batch.append(row)
        if len(batch) >= ROWS_CHUNK:
            yield _rows_to_columns(batch, positional)
            batch = []
    if batch:
        yield _rows_to_columns(batch, positional)


def run(capture: str | os.PathLike, baseline_dir: str | os.PathLike, report_dir: str | os.PathLike,
        start=None, end=None, *, storage_options: dict | None = None) -> dict:
    """Compare the requests captured under ``capture`` in ``[start, end)`` with the baseline in ``baseline_dir``;
    write ``constraint_violations.json``, ``statistics.json`` (of the observed data) and ``report.html`` into
    ``report_dir``. Returns ``{"violations", "item_count", "records", "skipped_records", "details"}``."""
    stats_b, cons = load_baseline(baseline_dir)
    names = [f["name"] for f in cons["features"]]
    domains = {f["name"]: list((f.get("string_constraints") or {}).get("domains") or [])
               for f in cons["features"] if (f.get("string_constraints") or {}).get("domains")}
    profile = _Profile(domains)
    counter = {"records": 0}
    skipped: list = []

    def records():
        for r in read_capture(capture, start, end, storage_options=storage_options):
            counter["records"] += 1
            yield r

    for cols, arrays, n in _capture_chunks(observed_rows(records(), "input", skipped), names):
        profile.add(cols, arrays, n)
    window = f" between {start or 'the beginning'} and {end or 'the end'}" if (start or end) else ""
    if not counter["records"]:
        raise MonitorError(f"no captured invocations in {capture}{window}: the window is empty")
    if not profile.rows:
        raise MonitorError(f"the {counter['records']} captured invocations in {capture}{window} hold no CSV or "
                           "JSON request rows to monitor")
    violations, details = check(stats_b, cons, profile)
    observed = profile.statistics()
    doc = {"violations": violations}
    page = report_html(stats_b, observed, violations, details, capture=str(capture), window=(start, end),
                       records=counter["records"], skipped=len(skipped))
    _write_outputs(report_dir, {"constraint_violations.json": _dumps(doc), "statistics.json": _dumps(observed),
                                "report.html": page.encode("utf-8")})
    return {"violations": violations, "item_count": profile.rows, "records": counter["records"],
            "skipped_records": len(skipped), "details": details}


# ============================================================================================ HTML report

_W, _H, _PAD = 520, 220, 40


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    return html.escape(str(x))


def _numeric_svg(name: str, base: dict | None, obs: dict | None) -> str:
    curves = []
    for cls, stats in (("baseline", base), ("observed", obs)):
        kll = ((stats or {}).get("numerical_statistics") or {}).get("distribution", {}).get("kll")
        pts = _sketch_cdf(kll) if kll else None
        curves.append((cls, pts, stats))
    ranges = [(p[0][0], p[0][-1]) for _, p, _ in curves if p is not None]
    if not ranges:
        return ""
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if hi <= lo:
        hi = lo + 1.0
    xs = np.linspace(lo, hi, 240)
    parts = [f'<svg class="dist" data-feature="{html.escape(name)}" data-kind="cdf" xmlns="http://www.w3.org/2000/svg" '
             f'width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img">',
             f'<title>Cumulative distribution of {html.escape(name)}: baseline and observed</title>',
             f'<rect x="{_PAD}" y="10" width="{_W - _PAD - 10}" height="{_H - _PAD - 10}" fill="#fafafa" '
             'stroke="#999"/>']
    for cls, pts, _ in curves:
        if pts is None:
            continue
        ys = _cdf_at(pts, xs)
        coords = " ".join(f"{_PAD + (x - lo) / (hi - lo) * (_W - _PAD - 10):.1f},{_H - _PAD - y * (_H - _PAD - 10):.1f}"
                          for x, y in zip(xs, ys))
        color = "#1f77b4" if cls == "baseline" else "#ff7f0e"
        parts.append(f'<polyline class="{cls}" fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
    parts.append(f'<text x="{_PAD}" y="{_H - _PAD + 16}" font-size="11">{_fmt(float(lo))}</text>')
    parts.append(f'<text x="{_W - 10}" y="{_H - _PAD + 16}" font-size="11" text-anchor="end">{_fmt(float(hi))}</text>')
    parts.append(f'<text x="{_PAD - 4}" y="16" font-size="11" text-anchor="end">1</text>')
    parts.append(f'<text x="{_PAD - 4}" y="{_H - _PAD}" font-size="11" text-anchor="end">0</text>')
    parts.append(f'<text x="{_PAD + 8}" y="{_H - 8}" font-size="11" fill="#1f77b4">baseline</text>')
    parts.append(f'<text x="{_PAD + 80}" y="{_H - 8}" font-size="11" fill="#ff7f0e">observed</text>')
    parts.append("</svg>")
    return "".join(parts)


def _categorical_svg(name: str, base: dict | None, obs: dict | None) -> str:
    def shares(stats):
        buckets = (((stats or {}).get("string_statistics") or {}).get("distribution", {}).get("categorical")
                   or {}).get("buckets") or []
        total = sum(float(b.get("count", 0)) for b in buckets) or 1.0
        return {str(b.get("value")): float(b.get("count", 0)) / total for b in buckets}

    b, o = shares(base), shares(obs)
    values = sorted(set(b) | set(o), key=lambda v: -(b.get(v, 0) + o.get(v, 0)))[:12]
    if not values:
        return ""
    width = (_W - _PAD - 10) / len(values)
    parts = [f'<svg class="dist" data-feature="{html.escape(name)}" data-kind="categorical" '
             f'xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img">',
             f'<title>Value shares of {html.escape(name)}: baseline and observed</title>']
    top = max([*b.values(), *o.values(), 1e-9])
    for i, v in enumerate(values):
        for j, (cls, share, color) in enumerate((("baseline", b.get(v, 0), "#1f77b4"),
                                                 ("observed", o.get(v, 0), "#ff7f0e"))):
            h = share / top * (_H - _PAD - 10)
            x = _PAD + i * width + j * width / 2
            parts.append(f'<rect class="{cls}" x="{x:.1f}" y="{_H - _PAD - h:.1f}" width="{width / 2 - 2:.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{html.escape(v)}: {share:.1%}</title></rect>')
        parts.append(f'<text x="{_PAD + (i + 0.5) * width:.1f}" y="{_H - _PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{html.escape(v[:10])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def report_html(stats_baseline: dict, stats_observed: dict, violations: list[dict], details: dict, *,
                capture: str = "", window: tuple = (None, None), records: int = 0, skipped: int = 0) -> str:
    """A self-contained HTML page: per feature an inline SVG of the baseline and observed distributions, and the
    violations table."""
    base = {f["name"]: f for f in stats_baseline.get("features", [])}
    obs = {f["name"]: f for f in stats_observed.get("features", [])}
    flagged: dict[str, list[str]] = {}
    for v in violations:
        flagged.setdefault(v["feature_name"], []).append(v["constraint_check_type"])
    rows = "".join(f'<tr class="violation"><td>{html.escape(v["feature_name"])}</td>'
                   f'<td>{html.escape(v["constraint_check_type"])}</td><td>{html.escape(v["description"])}</td></tr>'
                   for v in violations) or '<tr class="none"><td colspan="3">No violations.</td></tr>'
    sections = []
    for name in list(base) + [n for n in obs if n not in base]:
        b, o = base.get(name), obs.get(name)
        kind = (b or o or {}).get("inferred_type", "Unknown")
        svg = _categorical_svg(name, b, o) if kind in ("String", "Unknown") else _numeric_svg(name, b, o)
        info = details.get(name, {})
        facts = []
        for label, key in (("type match", "type_match"), ("completeness", "completeness"),
                           ("distance", "distance"), ("threshold", "threshold")):
            if key in info:
                facts.append(f"<li>{label}: {_fmt(info[key])}</li>")
        checks = ", ".join(flagged.get(name, [])) or "none"
        sections.append(f'<section class="feature" data-feature="{html.escape(name)}"><h3>{html.escape(name)} '
                        f'<small>({html.escape(str(kind))})</small></h3><p>violations: {html.escape(checks)}</p>'
                        f'<ul>{"".join(facts)}</ul>{svg}</section>')
    start, end = window
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model Monitor report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}section{margin:1.5em 0}"
            ".violation td:first-child{font-weight:bold}</style></head><body>"
            f"<h1>Model Monitor report</h1><p>Capture: {html.escape(capture)}; window: "
            f"{html.escape(str(start or '-'))} to {html.escape(str(end or '-'))}; {records} invocations, "
            f"{stats_observed.get('dataset', {}).get('item_count', 0)} rows"
            f"{f', {skipped} invocations skipped (not CSV or JSON)' if skipped else ''}.</p>"
            f"<h2>Violations ({len(violations)})</h2><table id=\"violations\"><thead><tr><th>feature</th>"
            f"<th>check</th><th>description</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<h2>Features</h2>{''.join(sections)}</body></html>\n")


# ============================================================================================ command line

def add_monitor_command(subparsers, add_opening=None, add_global=None) -> argparse.ArgumentParser:
    """``artifact-tools monitor baseline|run``: register it on the CLI's subparsers (``add_global`` is the CLI's
    helper for the global flags; ``add_opening`` is unused: no artifact is opened)."""
    help_ = "Model Monitor without AWS: baselines of a dataset and violation reports of captured traffic"
    m = subparsers.add_parser("monitor", help=help_, description=help_)
    if add_global is not None:
        add_global(m, sub=True)
    sub = m.add_subparsers(dest="monitor_command", metavar="{baseline,run}")
    sub.required = True
    b = sub.add_parser("baseline", help="write statistics.json and constraints.json of a dataset",
                       description="write statistics.json and constraints.json (Model Monitor's schemas) of a CSV "
                                   "or JSON Lines dataset into OUT")
    if add_global is not None:
        add_global(b, sub=True)
    b.add_argument("dataset", help="CSV (with or without a header) or JSON Lines file, local or fsspec URI")
    b.add_argument("out", help="folder receiving statistics.json and constraints.json")
    b.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                   help="whether the CSV's first row names the columns (default: detected)")
    b.add_argument("--format", choices=["auto", "csv", "jsonlines"], default="auto", dest="dataset_format",
                   help="dataset format (default: detected from the content)")
    b.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local: streamed on this machine, any size; spark: profiled per partition by the active "
                        "or a new SparkSession (run under spark-submit for a cluster), for data that does not fit "
                        "one machine")
    b.set_defaults(func=cmd_monitor_baseline)
    r = sub.add_parser("run", help="compare captured requests with a baseline",
                       description="rebuild the requests captured under CAPTURE, compare them with a baseline and "
                                   "write constraint_violations.json, statistics.json and report.html")
    if add_global is not None:
        add_global(r, sub=True)
    r.add_argument("capture", help="capture folder or fsspec prefix (or one capture file)")
    r.add_argument("--baseline", required=True, metavar="OUT", help="folder written by 'monitor baseline'")
    r.add_argument("--report", required=True, metavar="DIR", help="folder receiving the report")
    r.add_argument("--start", help="first inference time included (ISO 8601, e.g. 2024-05-01T13:00:00Z)")
    r.add_argument("--end", help="first inference time excluded")
    r.set_defaults(func=cmd_monitor_run)
    return m


def cmd_monitor_baseline(args) -> int:
    header = {"auto": None, "yes": True, "no": False}[args.header]
    fmt = None if args.dataset_format == "auto" else args.dataset_format
    done = baseline(args.dataset, args.out, header=header, engine=args.engine, dataset_format=fmt)
    stats = done["statistics"]
    print(f"baseline of {stats['dataset']['item_count']} rows and {len(stats['features'])} features written to "
          f"{args.out} (statistics.json, constraints.json)", file=sys.stderr)
    return 0


def cmd_monitor_run(args) -> int:
    try:
        result = run(args.capture, args.baseline, args.report, args.start, args.end)
    except CaptureError as e:
        raise MonitorError(str(e)) from None
    n = len(result["violations"])
    print(f"{result['item_count']} rows from {result['records']} captured invocations checked: {n} violation"
          f"{'' if n == 1 else 's'}; report in {args.report}", file=sys.stderr)
    for v in result["violations"]:
        print(f"  {v['feature_name']}: {v['constraint_check_type']}", file=sys.stderr)
    return 0
