"""Load an XGBoost model artifact into current XGBoost, whatever era wrote it.

SageMaker's XGBoost containers left pickles of ``xgboost.core.Booster`` (0.90 and 1.x) and legacy
binary models, which XGBoost 3.x refuses; :mod:`artifact_tools.formats.xgboost` reads those as data
and converts them, and checks JSON/UBJSON model files before XGBoost runs them (a current file is
then given to XGBoost as it is). Nothing is unpickled, so ``trust`` changes nothing here. The model
file is the one inspection reported, or else the one file whose bytes are an XGBoost model
(SageMaker calls it ``xgboost-model``, without extension).
"""

from __future__ import annotations

import _thread
import ctypes
import json
import os
import re
import weakref
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np

from artifact_tools.errors import NotLoadable
from artifact_tools.filetree import DirTree, FileTree
from artifact_tools.formats import xgboost as xgb_format

from .base import LoadedModel, parse_options, require

SAGEMAKER_MODEL_NAME = "xgboost-model"


@dataclass(frozen=True)
class XGBoostOptions:
    """``member``: the model file inside the artifact (default: the one inspection found)."""

    member: str | None = None


OPTIONS = XGBoostOptions


def find_model_file(tree: FileTree) -> str:
    """The one XGBoost model file in a tree, recognised by its bytes (``detect_era``)."""
    found = [name for name in tree.names() if xgb_format.detect_era(tree.read(name))]
    if not found:
        raise NotLoadable("no XGBoost model file (pickled Booster, legacy binary, JSON or "
                          "UBJSON model) was found in the artifact")
    if len(found) > 1:
        named = [n for n in found if PurePosixPath(n).name == SAGEMAKER_MODEL_NAME]
        if len(named) != 1:
            raise NotLoadable(f"the artifact holds {len(found)} XGBoost model files "
                              f"({', '.join(found[:5])}); choose one with member=")
        return named[0]
    return found[0]


def load_booster(data: bytes, *, configure: bool = True) -> tuple[Any, dict]:
    """A live ``xgboost.Booster`` of current XGBoost for any model file, and the facts about it.

    XGBoost gets the file itself when it is a current JSON/UBJSON model, else the converted UBJSON document
    (:func:`artifact_tools.formats.xgboost.prepare`). The checks XGBoost's reading relies on come first;
    XGBoost then reads in the calling thread, as ``Booster.load_model`` would (ctypes releases the GIL while
    its C library runs; its OpenMP threads are the calling thread's own), while the checks its use relies on
    run in another thread, and the Booster is returned only when they passed. XGBoost validates some learner
    parameters lazily, on first use; ``configure`` does that now, so that a model XGBoost refuses raises
    NotLoadable here (:func:`load` leaves it to the first prediction, which pays it anyway).
    """
    xgb = require("xgboost", "xgboost")
    prepared = xgb_format.prepare(data)
    booster = xgb.Booster()
    checked = _in_background(prepared.finish)
    failed: BaseException | None = None
    try:
        _read_model(xgb, booster, prepared.payload)
    except BaseException as e:  # raised below, after the checks: a damaged model is reported as such
        failed = e
    refused = checked()
    if refused is not None:
        raise refused
    info = prepared.facts
    try:
        if failed is not None:
            raise failed
        if configure:
            booster.num_features()
    except xgb.core.XGBoostError as e:
        raise _rejected(xgb, info, e) from None
    return booster, dict(info, xgboost=xgb.__version__)


def _in_background(check: Callable[[], None]) -> Callable[[], BaseException | None]:
    """Start ``check`` in a new thread without waiting for it to start (``threading.Thread.start`` waits);
    the function returned waits for it and gives the exception it raised, or None."""
    done = _thread.allocate_lock()
    done.acquire()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            check()
        except BaseException as e:  # given to the waiting thread
            raised.append(e)
        finally:
            done.release()

    try:
        _thread.start_new_thread(run, ())
    except RuntimeError:  # no thread to be had (a process at its limit): the check runs now
        run()

    def wait() -> BaseException | None:
        with done:
            return raised[0] if raised else None

    return wait


def _read_model(xgb: Any, booster: Any, payload: bytes | bytearray) -> None:
    """``booster.load_model(payload)`` without its copy of ``payload`` when it is ``bytes``.

    ``Booster.load_model`` takes a ``bytearray`` (it wraps it with ``ctypes`` ``from_buffer``, which wants a
    writable buffer) and passes it to the C function ``XGBoosterLoadModelFromBuffer(handle, const void *buf,
    bst_ulong len)`` (include/xgboost/c_api.h), which only reads it: src/c_api/c_api.cc (v3.2.0) views it as a
    ``Span<char const>`` and parses it with ``Json::Load`` from a ``StringView``. So the bytes themselves are
    given to that function, as ``load_model`` would call it; an XGBoost without these names gets the copy.
    """
    lib, check_call = getattr(xgb.core, "_LIB", None), getattr(xgb.core, "_check_call", None)
    if isinstance(payload, bytes) and lib is not None and check_call is not None and \
            hasattr(lib, "XGBoosterLoadModelFromBuffer"):
        check_call(lib.XGBoosterLoadModelFromBuffer(booster.handle, ctypes.c_char_p(payload),
                                                    ctypes.c_uint64(len(payload))))
    else:
        booster.load_model(payload if isinstance(payload, bytearray) else bytearray(payload))


def _rejected(xgb: Any, info: dict, e: BaseException) -> NotLoadable:
    return NotLoadable(f"XGBoost {xgb.__version__} rejected the {info['era']} model: {_first_line(e)}")


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines() or ["no message"]
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0])[:300]


def load(source: FileTree | bytes | str | os.PathLike, report: Any = None, *,
         trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the XGBoost model of an artifact: an unpacked folder, a FileTree, a file or its bytes.

    Options (:class:`XGBoostOptions`): ``member`` (or the first ``xgboost`` model of ``report``)
    names the file inside a folder or tree; by default it is found by content. ``predict`` takes
    numpy arrays, lists or pandas DataFrames (``nan`` = missing) and returns numpy; ``info`` holds
    the era, version hint, objective, whether the model was converted, and the file;
    ``sample_input()`` gives three rows built from the model alone (:func:`sample_rows`).
    """
    del trust  # reading never runs code from the artifact
    member = parse_options(XGBoostOptions, options, "XGBoost artifacts").member
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), None
    else:
        path = Path(source) if isinstance(source, (str, os.PathLike)) else None
        tree: FileTree
        if path is not None and path.is_file():
            tree, member = DirTree(path.parent), member or path.name
        else:
            tree = DirTree(path) if path is not None else source  # type: ignore[assignment]
        reported = [m.path for m in getattr(report, "models", []) if m.format == "xgboost"]
        name = member or (reported[0] if reported else find_model_file(tree))
        try:
            data = tree.read(name)
        except KeyError:
            raise NotLoadable(f"the artifact has no file {name}") from None
    booster, info = load_booster(data, configure=False)
    if name is not None:
        info["file"] = name
    xgb = require("xgboost", "xgboost")
    configured: list[bool] = []

    def predict(x: Any) -> np.ndarray:
        if not configured:  # the learner checks XGBoost makes on first use (see load_booster)
            try:
                booster.num_features()
            except xgb.core.XGBoostError as e:
                raise _rejected(xgb, info, e) from None
            configured.append(True)
        return _predict(xgb, booster, x)

    return LoadedModel(model=booster, framework="xgboost", predict_fn=predict, info=info,
                       sample_fn=lambda: sample_rows(booster))


def sample_rows(booster: Any) -> Any:
    """Three rows the model can predict on, built from the model alone: for each numerical feature the lower
    quartile, median and upper quartile of its split thresholds
    (:func:`artifact_tools.formats.xgboost.split_quartiles` of XGBoost's own UBJSON document of the Booster),
    0 for a feature no split uses. As wide as ``Booster.num_features()``. A model with feature names gets a
    pandas DataFrame with those columns, its categorical features (``feature_types`` ``c``) a categorical
    column holding the first category the model recorded (XGBoost 3.1+ keeps the training categories;
    ``Booster.get_categories``, read through pyarrow when it is installed) or category code 0; a model
    without names gets a float32 array."""
    xgb = require("xgboost", "xgboost")
    try:
        width = booster.num_features()
        raw = bytes(booster.save_raw("ubj"))
    except xgb.core.XGBoostError as e:
        raise NotLoadable(f"XGBoost {xgb.__version__} rejected the model: {_first_line(e)}") from None
    values = xgb_format.split_quartiles(raw)
    rows = np.zeros((3, width), np.float32)
    rows[:, :min(width, values.shape[1])] = values[:, :width]
    names = booster.feature_names
    if not names:
        return rows
    import pandas as pd

    types = booster.feature_types or []
    recorded = recorded_categories(xgb, booster) if "c" in types else {}
    columns: dict[str, Any] = {}
    for j, name in enumerate(names):
        if j < len(types) and types[j] == "c":
            categories = recorded.get(name) or [0]
            columns[name] = pd.Categorical([categories[0]] * len(rows), categories=categories)
        else:
            columns[name] = rows[:, j]
    return pd.DataFrame(columns)


def recorded_categories(xgb: Any, booster: Any) -> dict[str, list]:
    """The training categories of each categorical feature, as XGBoost 3.1+ keeps them; {} when the model
    records none or they cannot be read (older XGBoost, no pyarrow)."""
    try:
        found = booster.get_categories(export_to_arrow=True)
        if found.empty():
            return {}
        return {name: values.to_pylist() for name, values in found.to_arrow() if values is not None}
    except (AttributeError, TypeError, ValueError, ImportError, xgb.core.XGBoostError):
        return {}


_BOOSTER_KIND: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_UNASKED = object()


def booster_kind(booster: Any) -> str | None:
    """The kind of ``booster``'s gradient booster (``gbtree``, ``dart``, ``gblinear``: its saved config's
    ``learner.gradient_booster.name``), asked once per booster; None when the config does not say."""
    kind = _BOOSTER_KIND.get(booster, _UNASKED)  # (one lookup: this runs on every prediction)
    if kind is not _UNASKED:
        return kind
    try:
        name = json.loads(booster.save_config())["learner"]["gradient_booster"]["name"]
    except (ValueError, KeyError, TypeError):
        name = None
    kind = _BOOSTER_KIND[booster] = name if isinstance(name, str) else None
    return kind


def _predict(xgb: Any, booster: Any, data: Any) -> np.ndarray:
    """Predictions of ``booster`` for rows of numbers (numpy, lists) or a DataFrame."""
    if isinstance(data, xgb.DMatrix):
        matrix = data
    elif hasattr(data, "columns") and hasattr(data, "dtypes"):  # a pandas DataFrame
        names = booster.feature_names
        if names and set(names) <= set(map(str, data.columns)):
            data = data[names]
        matrix = xgb.DMatrix(data, missing=np.nan, enable_categorical=True)
    else:
        rows = np.asarray(data)
        if rows.dtype.kind not in "fiub":
            rows = rows.astype(np.float32)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        types = booster.feature_types
        if not (types and "c" in types) and booster_kind(booster) == "gbtree":
            # numbers through a tree booster: XGBoost reads the array in place (each value as float32, as a DMatrix
            # stores it), without a DMatrix or a float32 copy, and gives the DMatrix path's predictions bit for bit
            # (dart's differ in the last bit, gblinear has no in-place predict)
            return np.asarray(booster.inplace_predict(rows, missing=np.nan))
        matrix = xgb.DMatrix(rows, missing=np.nan, feature_names=booster.feature_names,
                             feature_types=types, enable_categorical=True)
    return np.asarray(booster.predict(matrix))
