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

Which pickle: the one inspection names as the model (``summary["role"]``, chosen in ``artifact_tools.inspection``
as SageMaker's containers and the artifact's own ``model_fn`` would: the file ``model_fn`` names, a conventional
name, the object that predicts), or the one ``member=`` names. ``predict`` calls the object's ``predict``, else
``kneighbors`` (the neighbours' indices), else ``transform``; ``sample_input()`` is built from the fitted
estimator's own metadata (:func:`_sample_fn`).
"""

from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotLoadable, TrustRequired
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

    class Restricted(pickle._Unpickler):
        dispatch: ClassVar[dict[int, Callable[[Any], Any]]] = dict(base.dispatch)  # opcode -> method
        # bound by pickle._Unpickler.load() (framed reads of the stream); typeshed does not declare them
        read: Callable[[int], bytes]
        readline: Callable[[], bytes]

        def __init__(self, file: Any, **kwargs: Any) -> None:
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
        obj = _restricted_unpickler(trust, versions)(io.BytesIO(data)).load()
        check_structures(obj, label)
        return obj
    except pickle.UnpicklingError as e:
        hint = ("; pass trust=True (CLI: --trust) if you trust its author"
                if not trust and "outside the allowlist" in str(e) else "")
        raise TrustRequired(f"{label}: {str(e)[:300]}{hint}") from None
    except ModuleNotFoundError as e:
        package = (e.name or "").split(".")[0]
        if package in ("sklearn", "scipy", "joblib"):
            installed = require(package, "sklearn")
            raise NotLoadable(f"{label} needs the module {e.name}, which {package} "
                              f"{getattr(installed, '__version__', '')} does not have (saved with "
                              f"{versions[-1] if versions else 'another release'}); load it with the release "
                              "that saved it") from None
        raise CorruptArtifact(f"{label} needs the Python module {e.name}, which is not installed") from None
    except ArtifactError:
        raise
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, RecursionError,
            OverflowError) as e:
        raise CorruptArtifact(f"{label} could not be unpickled ({type(e).__name__}: {str(e)[:200]})") from None


_MAX_WALK = 200_000  # objects visited when looking for native structures (a forest of 10k trees is ~50k)


def check_structures(obj: Any, label: str) -> None:
    """Refuse native index structures that scikit-learn's compiled code would follow out of bounds.

    Unpickling a fitted tree restores its node arrays as given (``sklearn/tree/_tree.pyx`` ``Tree.__setstate__``
    checks their dtype and shape, not the indices in them), and ``predict`` then walks ``children_left`` /
    ``children_right`` and reads ``X[:, feature]`` without bounds checks: a pickle of only allowlisted types can
    still crash the interpreter. So, wherever they sit in the loaded object (forests, pipelines, boosting
    stages): in every ``Tree`` an internal node's children come after it and inside the node count (the builders
    number nodes that way: ``_tree.pyx`` ``_add_node``), leaves have both children -1 and feature -2, internal
    features lie in ``[0, n_features)`` and ``value`` has one row per node; in every histogram-gradient-boosting
    ``TreePredictor`` the same holds for its ``nodes`` record array (``left``/``right``/``feature_idx``,
    ``_hist_gradient_boosting/_predictor.pyx``); in every ``KDTree``/``BallTree`` the index array is a
    permutation of the data rows and each node's ``[idx_start, idx_end)`` lies inside it
    (``neighbors/_binary_tree.pxi``).
    """
    import numpy as np

    seen: set[int] = set()
    stack = [obj]
    while stack and len(seen) < _MAX_WALK:
        x = stack.pop()
        if id(x) in seen or isinstance(x, (str, bytes, int, float, bool, type(None), np.generic)):
            continue
        seen.add(id(x))
        kind = f"{type(x).__module__}.{type(x).__qualname__}"
        if kind == "sklearn.tree._tree.Tree":
            _check_tree(x, label)
        elif kind.endswith("_hist_gradient_boosting.predictor.TreePredictor"):
            _check_hgb(x, label)
        elif kind in ("sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree"):
            _check_binary_tree(x, label)
        if isinstance(x, np.ndarray):
            if x.dtype == object:
                stack.extend(x.ravel().tolist())
            continue
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend(x)
        else:
            stack.extend(getattr(x, "__dict__", {}).values())


def _bad(label: str, what: str) -> CorruptArtifact:
    return CorruptArtifact(f"{label}: {what}; scikit-learn would read memory outside the model, so it is refused")


def _check_tree(tree: Any, label: str) -> None:
    import numpy as np

    n = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, value = np.asarray(tree.feature), np.asarray(tree.value)
    if not (len(left) == len(right) == len(feature) == n and value.shape[:1] == (n,)) or n < 1:
        raise _bad(label, f"a decision tree's node arrays disagree with its node count {n}")
    nodes = np.arange(n)
    leaf = left == -1
    if np.any(leaf != (right == -1)) or np.any(feature[leaf] != -2):
        raise _bad(label, "a decision tree has a node with one child, or a leaf with a split feature")
    inner = ~leaf
    if np.any((left[inner] <= nodes[inner]) | (left[inner] >= n) | (right[inner] <= nodes[inner]) |
              (right[inner] >= n)):
        raise _bad(label, f"a decision tree names a child node outside its {n} nodes (or before its parent)")
    n_features = int(getattr(tree, "n_features", 0))
    if np.any((feature[inner] < 0) | (feature[inner] >= n_features)):
        raise _bad(label, f"a decision tree splits on a feature outside its {n_features} features")


def _check_hgb(predictor: Any, label: str) -> None:
    import numpy as np

    nodes = np.asarray(predictor.nodes)
    n = len(nodes)
    if n < 1 or nodes.dtype.names is None or not {"left", "right", "is_leaf", "feature_idx"} <= set(nodes.dtype.names):
        raise _bad(label, "a histogram gradient boosting tree has no node records")
    inner = ~nodes["is_leaf"].astype(bool)
    idx = np.arange(n)
    left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
    if np.any((left[inner] <= idx[inner]) | (left[inner] >= n) | (right[inner] <= idx[inner]) | (right[inner] >= n)):
        raise _bad(label, f"a histogram gradient boosting tree names a child node outside its {n} nodes")
    if np.any(nodes["feature_idx"][inner].astype(np.int64) < 0):
        raise _bad(label, "a histogram gradient boosting tree splits on a negative feature index")


def _check_binary_tree(tree: Any, label: str) -> None:
    import numpy as np

    state = tree.__getstate__()  # (data, idx_array, node_data, node_bounds, ...): neighbors/_binary_tree.pxi
    data, idx, node_data = np.asarray(state[0]), np.asarray(state[1]), np.asarray(state[2])
    rows = len(data)
    if len(idx) != rows or (rows and not np.array_equal(np.sort(idx.astype(np.int64)), np.arange(rows))):
        raise _bad(label, "a neighbours tree's index array is not a permutation of its data rows")
    if node_data.dtype.names and {"idx_start", "idx_end"} <= set(node_data.dtype.names):
        start, end = node_data["idx_start"].astype(np.int64), node_data["idx_end"].astype(np.int64)
        if np.any((start < 0) | (end > rows) | (start > end)):
            raise _bad(label, "a neighbours tree has a node whose rows lie outside its data")


def _first_step(model):
    """The estimator a Pipeline feeds its input to (skipping ``None``/``"passthrough"`` steps), else the model."""
    for _ in range(8):
        steps = getattr(model, "steps", None)
        if not (isinstance(steps, list) and steps and type(model).__name__ == "Pipeline"):
            break
        live = [est for _, est in steps if est is not None and est != "passthrough"]
        if not live:
            break
        model = live[0]
    return model


def _takes_1d(model) -> bool:
    """Whether the model's input is one value per row: text vectorisers (they have ``build_analyzer``) and the
    target encoders of ``sklearn.preprocessing._label`` (LabelEncoder, LabelBinarizer)."""
    first = _first_step(model)
    return hasattr(first, "build_analyzer") or type(first).__module__ == "sklearn.preprocessing._label"


def _method(model) -> str:
    """What ``predict`` calls: ``predict``; else ``kneighbors`` (NearestNeighbors: the neighbours' indices, as a
    SageMaker ``predict_fn`` for it returns), else ``transform``."""
    for name in ("predict", "kneighbors", "transform"):
        if callable(getattr(model, name, None)):
            return name
    raise NotLoadable(f"the pickled {type(model).__name__} has no predict method (nor kneighbors or transform), "
                      "so it is not a model that can be called")


def _predictor(model, method: str):
    takes_1d = _takes_1d(model)
    call = getattr(model, method)

    def predict(data):
        import numpy as np

        if isinstance(data, (list, tuple)):
            data = np.asarray(data)
        if not takes_1d and hasattr(data, "ndim") and data.ndim == 1:
            data = data.reshape(1, -1)
        if method == "kneighbors":
            return call(data, return_distance=False)
        return call(data)

    return predict


def _sample_fn(model):
    """A function building a small valid input from the fitted estimator's own metadata (never from data), or
    None when the estimator records nothing to build one from.

    scikit-learn records the input of ``fit`` on the estimator that received it (for a Pipeline, its first
    step): ``feature_names_in_`` (column names, when fitted on a DataFrame, since 1.0) and ``n_features_in_``
    (since 0.24); encoders keep each column's ``categories_``, text vectorisers their ``vocabulary_``
    (term -> column index), label encoders their ``classes_``. Two rows are built: column names give a
    DataFrame, a count gives a float array; a column an encoder reads takes its first categories, a column a text
    vectoriser reads (inside a ColumnTransformer) takes words of its vocabulary; other values are 0.0.
    """
    first = _first_step(model)
    if hasattr(first, "build_analyzer"):
        return lambda: _texts(first)
    if type(first).__module__ == "sklearn.preprocessing._label" and getattr(first, "classes_", None) is not None:
        return lambda: list(first.classes_[:2]) * (2 if len(first.classes_) < 2 else 1)
    names = getattr(first, "feature_names_in_", None)
    count = getattr(first, "n_features_in_", None)
    if names is None and not isinstance(count, int):
        return None

    def build():
        import numpy as np

        columns = [str(n) for n in names] if names is not None else list(range(count))
        values = {c: [0.0, 0.0] for c in columns}
        for cols, est in _column_readers(first, columns):
            cats = getattr(est, "categories_", None)
            for j, c in enumerate(cols):
                if hasattr(est, "build_analyzer"):
                    values[c] = _texts(est)
                elif cats is not None and j < len(cats) and len(cats[j]):
                    values[c] = [cats[j][0], cats[j][min(1, len(cats[j]) - 1)]]
        if names is not None:
            import pandas as pd

            return pd.DataFrame({c: values[c] for c in columns})
        rows = [[values[c][i] for c in columns] for i in range(2)]
        numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for r in rows for v in r)
        return np.asarray(rows, dtype=np.float64 if numeric else object)

    return build


def _column_readers(first, columns: list):
    """``(columns, estimator)`` pairs: which input columns each encoder reads (a ColumnTransformer's fitted
    ``transformers_``, a Pipeline inside it read through its first step), or the estimator itself for all."""
    fitted = getattr(first, "transformers_", None)
    if not isinstance(fitted, list):
        return [(columns, first)]
    out = []
    for item in fitted:
        if not (isinstance(item, tuple) and len(item) == 3):
            continue
        _, est, cols = item
        if isinstance(est, str):
            continue
        est = _first_step(est)
        if isinstance(cols, str):
            cols = [cols]
        try:
            picked = [columns[c] if isinstance(c, int) and not isinstance(c, bool) else c for c in list(cols)]
        except (TypeError, IndexError):
            continue
        if all(c in columns for c in picked) and picked:
            out.append((picked, est))
    return out


def _texts(vectoriser) -> list[str]:
    """Two short texts made of the fitted vocabulary's first terms (``vocabulary_``: term -> column), or plain
    words for a vectoriser without one (HashingVectorizer)."""
    vocab = getattr(vectoriser, "vocabulary_", None)
    words = [str(t) for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])[:6]] if isinstance(vocab, dict) else []
    words = words or ["sample", "text"]
    return [" ".join(words[:3]), " ".join(words[3:6] or words[:1])]


@dataclass(frozen=True)
class SklearnOptions:
    """``member``: which pickle of the artifact to load (default: the one inspection names as the model)."""

    member: str | None = None


OPTIONS = SklearnOptions


def _choose(report, member: str | None):
    """The pickle to load: ``member`` (as listed in the report, with or without the extra top folder or ``./``),
    else the one inspection chose as the model (``summary["role"] == "model"``), else the first."""
    pickles = [m for m in report.models if m.format == "pickle"]
    if member is None:
        return next((m for m in pickles if m.summary.get("role") == "model"), pickles[0])
    wanted = member.strip()
    while wanted.startswith("./"):
        wanted = wanted[2:]
    wanted = wanted.strip("/")
    prefix = f"{report.root_prefix}/" if report.root_prefix else ""
    if prefix and wanted.startswith(prefix):
        wanted = wanted[len(prefix):]
    named = [m for m in pickles if m.path == wanted]
    if named:
        return named[0]
    listed = ", ".join(m.path for m in pickles)
    kind = next((f.kind for f in report.files if f.path in (wanted, prefix + wanted)), None)
    if kind is None:
        raise ArtifactError(f"member {member} is not in the artifact; its pickles are {listed}")
    raise ArtifactError(f"member {member} is a {kind} file, not a pickle; the artifact's pickles are {listed}")


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the pickle inspection names as the model, or the one ``member`` names (:class:`SklearnOptions`)."""
    member = parse_options(SklearnOptions, options, "pickle artifacts").member
    require("sklearn", "sklearn")
    chosen = _choose(report, member)
    path = root / chosen.path
    versions: list[str] = []
    obj = unpickle(path.read_bytes(), trust, chosen.path, versions)
    try:
        method = _method(obj)
    except NotLoadable as e:
        raise NotLoadable(f"{chosen.path}: {e}") from None
    import sklearn

    info = {"file": chosen.path, "method": method, "sklearn_version_installed": sklearn.__version__,
            "sklearn_version_saved": versions[-1] if versions else None}
    others = [m.path for m in report.models if m.format == "pickle" and m.path != chosen.path]
    if others:
        info["other_pickles"] = others
    if versions and versions[-1] != sklearn.__version__:
        info["warning"] = (f"saved with scikit-learn {versions[-1]}, loaded with {sklearn.__version__}; "
                           "scikit-learn does not promise identical predictions across versions")
    return LoadedModel(obj, "sklearn", _predictor(obj, method), info=info, sample_fn=_sample_fn(obj))
