"""scikit-learn / joblib / plain pickle loader with an exact-type restricted unpickler (extra ``sklearn``).

Audit before construct (the order skops uses): the bytes are first read as data (``formats/pickle_data.py``) and
judged by ``artifact_tools.trust`` exactly as inspection judged them; only then does this module's unpickler run,
enforcing the same table at every step:

- ``find_class`` admits an allowlisted ``(module, qualified name)`` pair, resolved by importing exactly that module
  and walking the qualified name through classes only (never through modules: ``numpy.distutils.exec_command``
  exposing ``subprocess.Popen`` is not a way in); the object must be defined in that package. At ``trust=True``
  it also admits classes outside the allowlist, provided they are classes, defined exactly where the pickle says
  (``__module__``/``__qualname__``), and not from the standard library or the strictly judged packages.
- REDUCE, INST and OBJ call only what real pickles call (``trust.callable_directly``), or, at ``trust=True``,
  the admitted classes; a callable that did not come from ``find_class`` is never called.
- joblib's arrays are read here, not by joblib: ``NumpyArrayWrapper`` (``joblib/numpy_pickle.py``) is followed by
  the array's raw bytes (after an optional padding byte and padding when ``numpy_array_alignment_bytes`` is set),
  or, when the dtype holds objects, by a nested pickle that this same restricted unpickler reads. joblib's own
  unpickler is never used, so what joblib version is installed does not change what runs.

``trust="all"`` unpickles with the standard rules (still through this module, so joblib arrays still load).
"""

from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact_tools.errors import ArtifactError, CorruptArtifact, TrustRequired
from artifact_tools.formats.pickle_data import decompress_joblib, read_pickle
from artifact_tools.trust import callable_directly, check, classify, normalize, pickle_findings, summarize

from .base import LoadedModel, parse_options, require

# Callables that call one of their arguments (see ``formats/pickle_data.py``, ``_CALLS_ARGUMENT``).
CALLS_ARGUMENT = {("copyreg", "_reconstructor"): 1, ("numpy.random._pickle", "__randomstate_ctor"): 1,
                  ("numpy.random._pickle", "__generator_ctor"): 1}
JOBLIB_WRAPPERS = {("joblib.numpy_pickle", "NumpyArrayWrapper"),
                   ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper")}
MAX_DECOMPRESSED = 4 << 30


def check_pickle(data: bytes, trust: bool | str, label: str) -> None:
    """Gate 1, the audit: refuse, naming what was found, unless the trust level allows it."""
    pk = read_pickle(data)
    check(summarize(pickle_findings(label, pk.globals, pk.called, pk.oddities)), trust)


class _ArrayWrapper:
    """Stands for joblib's NumpyArrayWrapper while unpickling; BUILD replaces it with the array it announces."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Refused(pickle.UnpicklingError):
    pass


def _resolve(module: str, name: str, trust: bool | str):
    """Gate 2 for one global; returns ``(object, may_be_called)``."""
    level = classify(module, name)
    full = f"{module}.{name}"[:200]
    if level == "dangerous" and trust != "all":
        raise _Refused(f"refused dangerous global {full}")
    if level == "unknown" and not trust:
        raise _Refused(f"refused global outside the allowlist {full}")
    module, name = normalize(module, name)
    if (module, name) in JOBLIB_WRAPPERS:
        return _ArrayWrapper, False
    obj: Any = importlib.import_module(module)
    parts = name.split(".")
    for i, part in enumerate(parts):
        if i > 0 and not isinstance(obj, type) and trust != "all":
            raise _Refused(f"refused {full}: its name walks through {type(obj).__name__} objects, not classes")
        obj = getattr(obj, part)
    if trust == "all":
        return obj, True
    defined = getattr(obj, "__module__", None) or ""
    if level == "allowed":
        if callable(obj) and defined.split(".")[0] != module.split(".")[0]:  # constants (torch.float32) have none
            raise _Refused(f"refused {full}: it is defined in {defined or 'no module'}, not where the pickle says")
        return obj, callable_directly(module, name)
    if not isinstance(obj, type):
        raise _Refused(f"refused {full}: it is a {type(obj).__name__}, not a class; trust=True admits classes only")
    if defined != module or getattr(obj, "__qualname__", None) != name:
        raise _Refused(f"refused {full}: it is defined as {defined}.{getattr(obj, '__qualname__', '?')}, "
                       "not where the pickle says")
    if classify(defined, name) == "dangerous":
        raise _Refused(f"refused {full}: standard-library and library internals outside the allowlist are refused")
    return obj, True


def resolve_class(module: str, name: str, trust: bool | str):
    """A class a pickle names, resolved and checked exactly as the restricted unpickler would (for torch's
    ``safe_globals``); refuses what is not a class."""
    try:
        obj, _ = _resolve(module, name, trust)
    except _Refused as e:
        raise TrustRequired(str(e)) from None
    if not isinstance(obj, type):
        raise TrustRequired(f"refused {module}.{name}: it is not a class")
    return obj


class _Reader:
    """A file-like view of the outer unpickler's stream, for the nested pickles joblib writes."""

    def __init__(self, read, readline):
        self.read = read
        self.readline = readline


def _restricted_unpickler(trust: bool | str, seen_versions: list[str]):
    """A pure-Python unpickler class enforcing the trust table (see the module docstring)."""
    base = pickle._Unpickler  # the pure-Python one: its dispatch table can be extended

    class Restricted(base):
        dispatch = dict(base.dispatch)

        def __init__(self, file, **kwargs):
            super().__init__(file, encoding="latin1", **kwargs)
            self._callable: set[int] = set()
            self._admitted: list[Any] = []  # keeps resolved objects alive so their ids stay unique

        def find_class(self, module: str, name: str):
            if module.split(".")[0] == "torch" and trust != "all":
                raise _Refused(f"refused {module}.{name[:100]}: torch objects are read by the PyTorch loader, "
                               "not inside a plain pickle")
            obj, may_call = _resolve(module, name, trust)
            arg = CALLS_ARGUMENT.get(normalize(module, name))
            if arg is not None and trust != "all":
                obj = self._checking_argument(obj, arg)
            self._admitted.append(obj)
            if may_call:
                self._callable.add(id(obj))
            return obj

        def _checking_argument(self, func: Any, index: int):
            """``func`` that calls its argument ``index`` (``copyreg._reconstructor``'s ``base``), checked first."""
            def checked(*args):
                if len(args) > index and args[index] is not object:
                    self._check_call(args[index])
                return func(*args)

            return checked

        def _check_call(self, func: Any) -> None:
            if trust != "all" and id(func) not in self._callable:
                what = getattr(func, "__qualname__", type(func).__name__)
                raise _Refused(f"refused to call {str(what)[:120]}: real pickles of it never call it directly")

        def load_reduce(self):
            self._check_call(self.stack[-2])
            base.load_reduce(self)

        dispatch[pickle.REDUCE[0]] = load_reduce

        def _instantiate(self, klass, args):
            self._check_call(klass)
            return base._instantiate(self, klass, args)

        def load_build(self):
            inst = self.stack[-2]
            if isinstance(inst, _ArrayWrapper):
                state = self.stack.pop()
                self.stack[-1] = self._read_array(state)
                return
            self.stack[-1] = _upgrade_state(inst, self.stack[-1], seen_versions)
            base.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build

        def _read_array(self, state: Any):
            import numpy as np

            if not isinstance(state, dict) or not isinstance(state.get("dtype"), np.dtype):
                raise CorruptArtifact("a joblib array wrapper has no readable dtype")
            dtype, shape, order = state["dtype"], state.get("shape"), state.get("order", "C")
            if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise CorruptArtifact("a joblib array wrapper has no readable shape")
            if dtype.hasobject:
                array = Restricted(_Reader(self.read, self.readline)).load()
            else:
                if state.get("numpy_array_alignment_bytes") is not None:
                    pad = self.read(1)
                    if pad:
                        self.read(pad[0])
                count = 1
                for d in shape:
                    count *= d
                raw = self.read(count * dtype.itemsize)
                if len(raw) != count * dtype.itemsize:
                    raise CorruptArtifact("a joblib array is truncated")
                flat = np.frombuffer(bytearray(raw), dtype=dtype, count=count)
                array = flat.reshape(shape[::-1]).transpose() if order == "F" else flat.reshape(shape)
                if not dtype.isnative:
                    array = array.byteswap().view(dtype.newbyteorder("="))
            subclass = state.get("subclass")
            if isinstance(subclass, type) and issubclass(subclass, np.ndarray) and subclass is not np.ndarray \
                    and subclass is not np.memmap and isinstance(array, np.ndarray):
                array = array.view(subclass)
            return array

    return Restricted


def _upgrade_state(inst, state, seen_versions: list[str]):
    """Adapt the state of objects pickled by older scikit-learn releases, and note the version they record.

    scikit-learn >= 1.3 added the ``missing_go_to_left`` field to a tree's node records
    (sklearn/tree/_tree.pyx, ``NODE_DTYPE``); older pickles lack it and current releases refuse them. Those
    releases rejected NaN inputs outright, so the added field (0) only matters for inputs they could not score.
    """
    if isinstance(state, dict) and isinstance(state.get("_sklearn_version"), str):
        seen_versions.append(state["_sklearn_version"])
    cls = type(inst)
    if cls.__name__ == "Tree" and cls.__module__.startswith("sklearn.tree") and isinstance(state, dict):
        import numpy as np

        nodes = state.get("nodes")
        if isinstance(nodes, np.ndarray) and nodes.dtype.names and "missing_go_to_left" not in nodes.dtype.names:
            new = np.zeros(nodes.shape, dtype=nodes.dtype.descr + [("missing_go_to_left", "u1")])
            for name in nodes.dtype.names:
                new[name] = nodes[name]
            state = {**state, "nodes": new}
    return state


def unpickle(data: bytes, trust: bool | str = False, label: str = "pickle", seen_versions: list[str] | None = None):
    """The audit, then the restricted unpickling (joblib-aware). Returns the object."""
    data = decompress_joblib(data, MAX_DECOMPRESSED)
    check_pickle(data, trust, label)
    versions = seen_versions if seen_versions is not None else []
    try:
        return _restricted_unpickler(trust, versions)(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise TrustRequired(f"{label}: {str(e)[:300]}") from None
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] in ("sklearn", "scipy", "joblib"):
            require(e.name, "sklearn")
        raise CorruptArtifact(f"{label} needs the Python module {e.name}, which is not installed") from None
    except ArtifactError:
        raise
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, RecursionError,
            OverflowError) as e:
        raise CorruptArtifact(f"{label} could not be unpickled ({type(e).__name__}: {str(e)[:200]})") from None


def _predictor(model):
    def predict(data):
        import numpy as np

        if isinstance(data, list):
            data = np.asarray(data)
        if hasattr(data, "ndim") and data.ndim == 1:
            data = data.reshape(1, -1)
        return model.predict(data)

    return predict


@dataclass(frozen=True)
class SklearnOptions:
    """``member``: which pickle of the artifact to load (default: the first scikit-learn one, else the first)."""

    member: str | None = None


OPTIONS = SklearnOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the pickle the report names (``member``, else the first scikit-learn one, else the first pickle)."""
    member = parse_options(SklearnOptions, options, "pickle artifacts").member
    require("sklearn", "sklearn")
    pickles = [m for m in report.models if m.format == "pickle"]
    if member is not None:
        named = [m for m in pickles if m.path == member.strip("/")]
        if not named:
            raise ArtifactError(f"{member} is not a pickle of the artifact, whose pickles are "
                                f"{', '.join(m.path for m in pickles)}")
        chosen = named[0]
    else:
        chosen = next((m for m in pickles if str(m.summary.get("top_level", "")).startswith("sklearn.")),
                      pickles[0])
    path = root / chosen.path
    versions: list[str] = []
    obj = unpickle(path.read_bytes(), trust, chosen.path, versions)
    if not hasattr(obj, "predict"):
        raise CorruptArtifact(f"{chosen.path} holds a {type(obj).__name__}, which has no predict method")
    import sklearn

    info = {"file": chosen.path, "sklearn_version_installed": sklearn.__version__,
            "sklearn_version_saved": versions[-1] if versions else None}
    if versions and versions[-1] != sklearn.__version__:
        info["warning"] = (f"saved with scikit-learn {versions[-1]}, loaded with {sklearn.__version__}; "
                           "scikit-learn does not promise identical predictions across versions")
    return LoadedModel(obj, "sklearn", _predictor(obj), info=info)
