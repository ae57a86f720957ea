"""Load an ONNX model with onnxruntime (extra ``onnx``).

The file is the one inspection reported as ``onnx`` (``member=`` chooses among several; without a report the
folder's files are recognised by content, ``artifact_tools.formats.onnx.is_onnx``). Before onnxruntime reads a
byte, the model is decoded as data (``formats.onnx.summarize``: damage is a CorruptArtifact) and every external
data file it names must be a relative path inside the model's folder that exists. ONNX graphs carry no code,
so ``trust`` changes nothing; sessions run on the CPU execution provider.

``predict`` takes a dict ``{input name: array}``, or for a one-input model an array / list / DataFrame (a row
missing its batch axis gets one); a DataFrame whose columns are the input names feeds one column per input
(as skl2onnx converts column transformers). Values are cast to the input's element type. It returns the
single output as numpy, or a dict ``{output name: value}`` when the model has several (skl2onnx classifiers:
``label`` and the ``probabilities`` list of dicts of ZipMap). ``info["inputs"]`` lists each input's name, type
and shape (ints, symbolic names or None) for building a sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from artifact_tools.errors import ArtifactError, NotLoadable, UnsafeArtifact
from artifact_tools.formats import onnx as onnx_format

from .base import LoadedModel, parse_options, require

_DTYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint64)": np.uint64, "tensor(uint32)": np.uint32, "tensor(uint16)": np.uint16, "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_, "tensor(string)": object,
}


@dataclass(frozen=True)
class OnnxOptions:
    """``member``: which ONNX file of the artifact to load, when it holds several."""

    member: str | None = None


OPTIONS = OnnxOptions


def load(root: Path, report: Any = None, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the ONNX model of an unpacked artifact folder ``root``; options: :class:`OnnxOptions`."""
    del trust  # an ONNX graph runs no code of its own
    member = parse_options(OnnxOptions, options, "ONNX artifacts").member
    root = Path(root)
    name = choose_file(root, report, "onnx", member, "ONNX model", onnx_format.is_onnx)
    path = root / name
    data = path.read_bytes()
    summary = onnx_format.summarize(data)
    del data
    check_external_data(path.parent, summary["external_data"], name)
    ort = require("onnxruntime", "onnx")
    options_ = ort.SessionOptions()
    options_.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options_, providers=["CPUExecutionProvider"])
    except ort_errors(ort) as e:
        raise NotLoadable(f"onnxruntime {ort.__version__} cannot load {name}: {_first_line(e)}") from None
    inputs = [{"name": i.name, "type": i.type, "shape": list(i.shape) if i.shape is not None else None}
              for i in session.get_inputs()]
    outputs = [{"name": o.name, "type": o.type, "shape": list(o.shape) if o.shape is not None else None}
               for o in session.get_outputs()]
    info = {"file": name, "ir_version": summary["ir_version"], "opsets": summary["opsets"],
            "producer": " ".join(x for x in (summary["producer_name"], summary["producer_version"]) if x) or None,
            "inputs": inputs, "outputs": outputs, "external_data": summary["external_data"],
            "onnxruntime_version_installed": ort.__version__}
    errors = ort_errors(ort) + (TypeError,)
    return LoadedModel(session, "onnx", lambda x: _predict(session, inputs, outputs, x, errors), info=info,
                       sample_fn=lambda: sample_feeds(inputs))


SAMPLE_BATCH = 2  # a symbolic or unknown first dimension (the batch, by convention) becomes this
SAMPLE_DIM = 1  # any other symbolic or unknown dimension becomes this
MAX_SAMPLE_ELEMENTS = 1 << 25
"""A sample input holds at most this many elements (256 MiB of float64): the shape comes from the file, and a
declared dimension of 2**40 would otherwise be allocated."""


def sample_feeds(inputs: list[dict]) -> Any:
    """A sample for the graph inputs (``info["inputs"]``: name, type, shape): fixed dims as declared, a
    symbolic dim the same value wherever its name recurs (:data:`SAMPLE_BATCH` when first seen on the first
    axis, else :data:`SAMPLE_DIM`), an unnamed unknown dim likewise by position; seeded normal numbers for
    floats, 0/1 for integers, False for booleans, ``"a"`` for strings. One array for a one-input graph, else a
    dict by input name. Inputs that are sequences or maps have no sample, nor inputs declaring more than
    :data:`MAX_SAMPLE_ELEMENTS` elements."""
    symbols: dict[str, int] = {}
    feeds = {}
    for seed, spec in enumerate(inputs):
        dtype = _DTYPES.get(spec["type"])
        if dtype is None:
            raise ArtifactError(f"no sample input can be built: input {spec['name']} is a {spec['type']}, "
                                "not a tensor")
        shape = []
        for axis, dim in enumerate(spec["shape"] if spec["shape"] is not None else [None]):
            default = SAMPLE_BATCH if axis == 0 else SAMPLE_DIM
            if isinstance(dim, int) and dim >= 0:
                shape.append(dim)
            elif isinstance(dim, str) and dim:
                shape.append(symbols.setdefault(dim, default))
            else:
                shape.append(default)
        if math.prod(shape) > MAX_SAMPLE_ELEMENTS:
            raise ArtifactError(f"no sample input can be built: input {spec['name']} declares shape "
                                f"{tuple(shape)}, {math.prod(shape):,} elements (the limit is {MAX_SAMPLE_ELEMENTS:,})")
        feeds[spec["name"]] = _values(dtype, tuple(shape), seed)
    return next(iter(feeds.values())) if len(feeds) == 1 else feeds


def _values(dtype: Any, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(size=shape).astype(dt)
    if dt.kind in "iu":
        return rng.integers(0, 2, size=shape).astype(dt)
    if dt.kind == "b":
        return np.zeros(shape, dtype=bool)
    return np.full(shape, "a", dtype=object)


def choose_file(root: Path, report: Any, fmt: str, member: str | None, what: str, recognise) -> str:
    """The file to load: ``member``, else the one ``report`` entry of format ``fmt``, else (no report) the one
    file of ``root`` whose first bytes ``recognise``. Several candidates without ``member`` is an error naming
    them; the chosen path must stay inside ``root``."""
    if report is not None:
        candidates = [m.path for m in getattr(report, "models", []) if m.format == fmt]
    else:
        candidates = sorted(str(p.relative_to(root).as_posix()) for p in root.rglob("*")
                            if p.is_file() and not p.is_symlink() and _head_matches(p, recognise))
    if member is not None:
        wanted = member.strip("/")
        if wanted not in candidates:
            listed = ", ".join(candidates) if candidates else "none"
            raise ArtifactError(f"{member} is not an {what} file of the artifact (its {what} files: {listed})")
        chosen = wanted
    elif not candidates:
        raise NotLoadable(f"the artifact holds no {what} file")
    elif len(candidates) > 1:
        raise ArtifactError(f"the artifact holds {len(candidates)} {what} files ({', '.join(candidates[:10])}); "
                            "choose one with member=<path>")
    else:
        chosen = candidates[0]
    if "!/" in chosen:
        raise NotLoadable(f"{chosen} sits inside a nested archive; extract it and load that file")
    resolved = (root / chosen).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise UnsafeArtifact(f"{chosen} points outside the artifact")
    if not resolved.is_file():
        raise NotLoadable(f"the artifact has no file {chosen}")
    return chosen


def _head_matches(path: Path, recognise) -> bool:
    try:
        with open(path, "rb") as f:
            return bool(recognise(f.read(65536)))
    except OSError:
        return False


def check_external_data(folder: Path, locations: list[str], name: str) -> None:
    """Every external data file an ONNX model names must be a relative path that stays in its folder and
    exists (onnx ``external_data_helper``: locations are relative to the model file's folder)."""
    missing = []
    for loc in locations:
        p = PurePosixPath(loc.replace("\\", "/"))
        if not loc or p.is_absolute() or ".." in p.parts or (len(loc) > 1 and loc[1] == ":"):
            raise UnsafeArtifact(f"{name} names external data {loc!r} outside its folder; refused")
        target = (folder / p).resolve()
        if not target.is_relative_to(folder.resolve()):
            raise UnsafeArtifact(f"{name} names external data {loc!r} that resolves outside its folder; refused")
        if not target.is_file():
            missing.append(loc)
    if missing:
        raise NotLoadable(f"{name} keeps tensors in external data files that the artifact lacks: {', '.join(missing)}")


def ort_errors(ort: Any) -> tuple[type[BaseException], ...]:
    """What onnxruntime raises for a model or input it refuses: RuntimeError / ValueError, and the status
    exceptions of its C++ binding (``onnxruntime.capi.onnxruntime_pybind11_state``: ``Fail``, ``InvalidGraph``,
    ``InvalidArgument``, ``NotImplemented``, ``RuntimeException``...), which derive from ``Exception`` only."""
    state = getattr(getattr(ort, "capi", None), "onnxruntime_pybind11_state", None)
    status = [v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception)] if state else []
    return (RuntimeError, ValueError, *status)


def _predict(session: Any, inputs: list[dict], outputs: list[dict], data: Any,
             errors: tuple[type[BaseException], ...] = (RuntimeError, ValueError, TypeError)) -> Any:
    names = [i["name"] for i in inputs]
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(names))
        missing = [n for n in names if n not in data]
        if unknown or missing:
            raise ArtifactError(f"the model's inputs are {', '.join(names)}; "
                                + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"))
        feeds = {i["name"]: _cast(data[i["name"]], i) for i in inputs}
    elif hasattr(data, "columns") and hasattr(data, "dtypes") and len(inputs) > 1:
        columns = [str(c) for c in data.columns]
        if not set(names) <= set(columns):
            raise ArtifactError(f"the model takes {len(names)} inputs ({', '.join(names)}); give a dict or a "
                                "DataFrame with one column per input")
        feeds = {i["name"]: _cast(data[i["name"]].to_numpy().reshape(-1, 1), i) for i in inputs}
    elif len(inputs) != 1:
        raise ArtifactError(f"the model takes {len(names)} inputs ({', '.join(names)}); give a dict name -> array")
    else:
        value = data.to_numpy() if hasattr(data, "to_numpy") else data
        feeds = {names[0]: _cast(value, inputs[0])}
    try:
        results = session.run(None, feeds)
    except errors as e:
        raise ArtifactError(f"onnxruntime refused the input: {_first_line(e)}") from None
    if len(results) == 1:
        return results[0]
    return {o["name"]: r for o, r in zip(outputs, results)}


def _cast(value: Any, spec: dict) -> Any:
    dtype = _DTYPES.get(spec["type"])
    if dtype is None:
        return value  # sequences, maps: passed as given
    try:
        arr = np.asarray(value, dtype=dtype)
    except (ValueError, TypeError):
        raise ArtifactError(f"input {spec['name']} needs {spec['type']} values") from None
    shape = spec.get("shape")
    if shape is not None and arr.ndim == len(shape) - 1 and shape and not isinstance(shape[0], int):
        arr = arr.reshape((1, *arr.shape))  # one row given without its batch axis
    return arr


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
