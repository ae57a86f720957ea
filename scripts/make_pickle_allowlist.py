"""Generate ``artifact_tools/_pickle_allowlist.py``: the exact ``(module, qualified name)`` pairs safe pickles name.

Sources, all read from the installed libraries, never typed by hand except the vetted standard-library types:
1. scikit-learn's own registry of estimators (``sklearn.utils.discovery.all_estimators``): every class, as defined
   (``cls.__module__``, ``cls.__qualname__``).
2. Pickles of every one of those estimators, fitted on a tiny data set where it can be, written with pickle
   protocols 2-5 and with ``joblib.dump``: every global those pickles name, and whether they call it (REDUCE) or
   only create it (NEWOBJ / ``copyreg._reconstructor``), read with the project's own opcode reader.
3. Pickles of the numpy, scipy.sparse, pandas and XGBoost objects that fitted models hold.
4. torch's own ``weights_only`` allowlist (``torch._weights_only_unpickler._get_allowed_globals``), which is what
   ``torch.load(weights_only=True)`` admits.

Every pair is then screened: standard-library pairs survive only when they are on ``VETTED_STDLIB`` (types whose
construction touches nothing outside the object), and ``NEVER`` lists callables that real pickles name but that
import modules or touch files (e.g. ``numpy.core._ufunc_reconstruct`` imports any module by name). What was
screened out is printed.

Run: ``python scripts/make_pickle_allowlist.py`` (needs the ``sklearn``, ``xgboost``, ``pytorch`` extras and pandas).
"""

from __future__ import annotations

import io
import pickle
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artifact_tools.formats.pickle_data import read_pickle  # noqa: E402

OUT = ROOT / "artifact_tools" / "_pickle_allowlist.py"

# Standard-library pairs real model pickles need; constructing them touches nothing outside the object.
VETTED_STDLIB = {
    ("copyreg", "_reconstructor"): "call", ("copyreg", "__newobj__"): "call", ("copyreg", "__newobj_ex__"): "call",
    ("_codecs", "encode"): "call",
    **{("builtins", n): "call" for n in ("set", "frozenset", "slice", "complex", "bytearray", "bytes", "object",
                                         "float", "int", "list", "dict", "tuple", "range", "str", "bool")},
    ("collections", "OrderedDict"): "call", ("collections", "defaultdict"): "call", ("collections", "deque"): "call",
    ("collections", "Counter"): "call",
    ("datetime", "datetime"): "call", ("datetime", "date"): "call", ("datetime", "time"): "call",
    ("datetime", "timedelta"): "call", ("datetime", "timezone"): "call", ("decimal", "Decimal"): "call",
    ("fractions", "Fraction"): "call", ("uuid", "UUID"): "new", ("pathlib", "PurePosixPath"): "call",
    ("pathlib", "PureWindowsPath"): "call", ("pathlib", "PosixPath"): "call", ("pathlib", "WindowsPath"): "call",
}
# Named by real pickles, but they import modules by name, read files or build arbitrary functions.
NEVER = {
    ("numpy.core", "_ufunc_reconstruct"), ("numpy._core", "_ufunc_reconstruct"),
    ("numpy", "memmap"), ("numpy.core.memmap", "memmap"), ("numpy._core.memmap", "memmap"),
    ("numpy", "load"), ("numpy", "loadtxt"), ("numpy", "fromfile"), ("numpy.lib.npyio", "NpzFile"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"), ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
    ("torch.serialization", "_get_layout"),
}
NUMPY_RENAMES = (("numpy.core.", "numpy._core."), ("numpy._core.", "numpy.core."))


def pickles_of(obj) -> list[bytes]:
    import joblib

    out = []
    for proto in (2, 4, 5):
        try:
            out.append(pickle.dumps(obj, protocol=proto))
        except Exception:  # noqa: BLE001 - some objects cannot be pickled; they simply add nothing
            pass
    buf = io.BytesIO()
    try:
        joblib.dump(obj, buf)
        out.append(buf.getvalue())
    except Exception:  # noqa: BLE001
        pass
    return out


def record(pairs: dict, data: bytes) -> None:
    pk = read_pickle(data)
    called = {(g.module, g.name) for g in pk.called}
    for g in pk.globals:
        key = (g.module, g.name)
        use = "call" if key in called else "new"
        if pairs.get(key) != "call":
            pairs[key] = use


def fitted_estimators(part: int = 0, parts: int = 1):
    """Every estimator class in scikit-learn's registry, unfitted (``None``) and fitted in each variant it takes;
    ``part`` of ``parts``: only the classes whose index in the registry is ``part`` modulo ``parts``."""
    import numpy as np
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.utils.discovery import all_estimators

    rng = np.random.default_rng(0)
    X = rng.random((40, 4))
    y_class = np.arange(40) % 2
    y_multi = np.array(["setosa", "versicolor", "virginica"], dtype=object)[np.arange(40) % 3]
    y_reg = rng.random(40)
    base = {"estimator": LogisticRegression(), "base_estimator": LogisticRegression(),
            "estimators": [("a", LogisticRegression()), ("b", LogisticRegression())],
            "transformers": [("s", "passthrough", [0, 1])], "steps": [("m", LinearRegression())],
            "transformer_list": [("p", "passthrough")]}
    for index, (_name, cls) in enumerate(all_estimators()):
        if index % parts != part:
            continue
        yield cls, None
        obj = None
        for kwargs in ({}, {k: v for k, v in base.items()}):
            try:
                import inspect as _inspect

                params = _inspect.signature(cls).parameters
                obj = cls(**{k: v for k, v in kwargs.items() if k in params})
                break
            except Exception:  # noqa: BLE001 - estimators that need other arguments are pickled unfitted only
                obj = None
        if obj is None:
            continue
        yield cls, obj
        # every target kind the estimator takes (binary, multiclass with string labels, regression, none): each
        # fits other helper objects (HalfBinomialLoss vs HalfMultinomialLoss, classes_ of strings...), and each
        # option of the parameters that choose a native structure or a loss (neighbours' ball/kd trees, losses)
        for variant in _variants(obj):
            for y in (y_class, y_multi, y_reg, None):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        fitted = variant.fit(X, y) if y is not None else variant.fit(X)
                    yield cls, fitted
                except Exception:  # noqa: BLE001
                    continue


def _variants(obj):
    """``obj`` and clones of it with each string option of its ``algorithm`` and ``loss`` parameters."""
    import copy

    yield obj
    constraints = getattr(obj, "_parameter_constraints", {}) or {}
    params = obj.get_params(deep=False)
    for name in ("algorithm", "loss"):
        if name not in params:
            continue
        for option in constraints.get(name, []):
            for value in sorted(getattr(option, "options", ()) or (), key=str):
                if isinstance(value, str) and value != params[name]:
                    try:
                        yield copy.deepcopy(obj).set_params(**{name: value})
                    except Exception:  # noqa: BLE001
                        continue


def library_objects():
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    import xgboost as xgb

    rng = np.random.default_rng(0)
    arrays = [np.zeros(3, dtype=t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                             np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_,
                                             np.complex64, np.complex128, "U4", "S4", object, "M8[ns]", "m8[s]")]
    arrays.append(np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4")]))
    arrays += [np.ma.masked_array([1.0, 2.0], mask=[0, 1]), np.asfortranarray(np.zeros((2, 3))),
               np.float64(1.5), np.int64(3), np.bool_(True), np.str_("a"), np.dtype("f8"),
               np.random.RandomState(0), np.random.default_rng(0), np.random.Generator(np.random.PCG64(1)),
               np.random.Generator(np.random.MT19937(1)), np.random.Generator(np.random.Philox(1)),
               np.random.Generator(np.random.SFC64(1)), np.matrix([[1.0]])]
    for fmt in ("csr", "csc", "coo", "lil", "dok", "bsr", "dia"):
        arrays.append(sp.random(4, 4, density=0.5, format=fmt, random_state=0))
        arrays.append(getattr(sp, f"{fmt}_array")(np.eye(3)))
    df = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "c": pd.Categorical(["p", "q"]),
                       "d": pd.to_datetime(["2020-01-01", "2021-01-01"])})
    arrays += [df, df["a"], df.index, pd.Index(["a", "b"]), pd.RangeIndex(3), df["c"].cat.categories]
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(rng.random((20, 3)), label=rng.random(20)), 2)
    arrays.append(booster)
    for cls in (xgb.XGBClassifier, xgb.XGBRegressor, xgb.XGBRanker, xgb.XGBRFClassifier, xgb.XGBRFRegressor):
        m = cls(n_estimators=2, max_depth=2)
        try:
            if cls is xgb.XGBRanker:
                m.fit(rng.random((20, 3)), np.arange(20) % 3, qid=np.repeat([0, 1], 10))
            else:
                m.fit(rng.random((20, 3)), np.arange(20) % 2)
        except Exception:  # noqa: BLE001
            pass
        arrays.append(m)
    return arrays


def torch_pairs() -> dict:
    import torch
    from torch._weights_only_unpickler import _get_allowed_globals

    pairs = {}
    for full in _get_allowed_globals():
        module, _, name = full.rpartition(".")
        if module:
            pairs[(module, name)] = "call"
    for obj in (torch.zeros(2), {"w": torch.nn.Parameter(torch.zeros(2))}, torch.nn.Linear(2, 2).state_dict(),
                torch.zeros(2, dtype=torch.float16), torch.zeros(2, dtype=torch.bfloat16), torch.Size([2]),
                torch.device("cpu"), torch.float32):
        buf = io.BytesIO()
        torch.save(obj, buf, _use_new_zipfile_serialization=False)
        data = buf.getvalue()
        # legacy format: magic, protocol, sys info, then the object pickle
        pos = 0
        for _ in range(4):
            pk = read_pickle(data, pos)
            for g in pk.globals:
                pairs.setdefault((g.module, g.name), "call")
            pos = pk.end
    return pairs


def main() -> None:
    import numpy
    import sklearn
    import torch
    import xgboost

    pairs: dict[tuple[str, str], str] = {}
    estimators = 0
    for cls, obj in fitted_estimators():
        key = (cls.__module__, cls.__qualname__)
        pairs.setdefault(key, "new")
        if obj is not None:
            estimators += 1
            for data in pickles_of(obj):
                record(pairs, data)
    for obj in library_objects():
        for data in pickles_of(obj):
            record(pairs, data)
    import numpy as np

    for t in set(np.sctypeDict.values()):  # scalar types, referenced as values (``dtype=np.float32``)
        pairs.setdefault((t.__module__, t.__qualname__), "new")
    # scikit-learn < 0.23's vendored joblib
    for m, n in (("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
                 ("numpy.random", "__RandomState_ctor")):  # numpy < 1.17 RandomState pickles
        pairs.setdefault((m, n), "new" if n == "NumpyArrayWrapper" else "call")
    for key, use in torch_pairs().items():
        if pairs.get(key) != "call":
            pairs[key] = use
    for (m, n), use in list(pairs.items()):  # numpy 2 writes numpy._core where numpy 1 writes numpy.core
        for a, b in NUMPY_RENAMES:
            if m.startswith(a) or m == a[:-1]:
                pairs.setdefault((b[:-1] + m[len(a) - 1:], n), use)
    screened = []
    allowed: dict[tuple[str, str], str] = {}
    stdlib = set(sys.stdlib_module_names) | {"__builtin__", "copy_reg"}
    for (m, n), use in sorted(pairs.items()):
        m2 = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(m, m)
        if (m2, n) in NEVER:
            screened.append(f"{m2}.{n} (never)")
            continue
        if m2.split(".")[0] in stdlib:
            if (m2, n) in VETTED_STDLIB:
                allowed[(m2, n)] = VETTED_STDLIB[(m2, n)]
            else:
                screened.append(f"{m2}.{n} (standard library, not vetted)")
            continue
        allowed[(m2, n)] = use
    allowed.update(VETTED_STDLIB)
    lines = [
        '"""Exact (module, qualified name) pairs that safe pickles name: GENERATED, do not edit.',
        "",
        "Made by scripts/make_pickle_allowlist.py (see its docstring for the sources) with "
        f"Python {sys.version.split()[0]},",
        f"scikit-learn {sklearn.__version__}, numpy {numpy.__version__}, xgboost {xgboost.__version__}, "
        f"torch {torch.__version__.split('+')[0]}; {estimators} estimator objects pickled.",
        '"call": real pickles call it with arguments; "new": they only create it with cls.__new__ and set its state.',
        '"""',
        "",
        "ALLOWED: dict[tuple[str, str], str] = {",
    ]
    lines += [f"    ({m!r}, {n!r}): {u!r}," for (m, n), u in sorted(allowed.items())]
    lines += ["}", ""]
    OUT.write_text("\n".join(lines))
    print(f"{len(allowed)} pairs written to {OUT.relative_to(ROOT)}; screened out {len(screened)}:")
    for s in screened:
        print("  -", s)


if __name__ == "__main__":
    main()
