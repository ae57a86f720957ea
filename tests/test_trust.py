"""The trust policy's exact-type allowlist, its resolution rules, and the joblib reader that enforces it.

Expected outcomes come from the libraries themselves: every scikit-learn estimator's own predictions before
pickling, and what ``importlib`` resolves a name to.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import sys
import textwrap

import numpy as np
import pytest

from artifact_tools import trust
from artifact_tools.audit import audit_pickle_bytes
from artifact_tools.errors import ArtifactError, TrustRequired

joblib = pytest.importorskip("joblib")
sklearn = pytest.importorskip("sklearn")

from loaders.sklearn import unpickle  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "scripts"))
import make_pickle_allowlist  # noqa: E402


class _Payload:
    """Pickles as ``os.system(cmd)``; building the pickle never runs it."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


def _sg(module: str, name: str) -> bytes:
    """Opcodes pushing the global ``module.name`` (SHORT_BINUNICODE x2, STACK_GLOBAL)."""
    return b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93"


def _level(data: bytes) -> str:
    return trust.worst(f.level for f in audit_pickle_bytes("x.pkl", data, 1 << 30))


def _predictions(obj, X):
    for method in ("predict", "transform", "predict_proba"):
        if hasattr(obj, method):
            try:
                return getattr(obj, method)(X)
            except Exception:  # noqa: BLE001 - some fitted estimators cannot score this X; compared by type then
                return None
    return None


ESTIMATOR_PARTS = 4  # the registry in parts the test workers share


@pytest.mark.parametrize("part", range(ESTIMATOR_PARTS))
def test_every_estimator_scikit_learn_lists_unpickles_without_trust(part):
    """Pickles (protocol 2 and 5) and joblib files of every estimator in scikit-learn's registry, fitted where
    it can be: the audit says safe, the restricted unpickler rebuilds them, and they predict as before.
    One native thread: the test workers already fill the cores, and OpenMP pools spinning against each other
    cost this test most of its time."""
    from threadpoolctl import threadpool_limits

    X = np.random.default_rng(0).random((40, 4))
    with threadpool_limits(1):
        checked = _check_estimators(part, X)
    assert checked > 150 // ESTIMATOR_PARTS  # scikit-learn 1.x lists about 200 estimators


def _check_estimators(part: int, X) -> int:
    checked = 0
    for cls, obj in make_pickle_allowlist.fitted_estimators(part, ESTIMATOR_PARTS):
        if obj is None:
            continue
        expected = _predictions(obj, X)
        for data in (pickle.dumps(obj, protocol=2), pickle.dumps(obj, protocol=5), _joblib_bytes(obj)):
            assert _level(data) == "safe", cls
            back = unpickle(data, trust=False, label=cls.__name__)
            assert type(back) is type(obj)
            got = _predictions(back, X)
            if isinstance(expected, np.ndarray) and expected.dtype.kind in "fiub":
                np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float),
                                           err_msg=cls.__name__)
        checked += 1
    return checked


def _joblib_bytes(obj, **kw) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3), ("lz4", 3)])
def test_joblib_compressors_are_read_and_audited(compress):
    pytest.importorskip("lz4")
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(1).random((30, 3))
    model = LogisticRegression().fit(X, np.arange(30) % 2)
    data = _joblib_bytes(model, compress=compress)
    assert _level(data) == "safe"
    np.testing.assert_array_equal(unpickle(data).predict(X), model.predict(X))
    hostile = _joblib_bytes({"model": model, "x": _Payload("true")}, compress=compress)
    assert _level(hostile) == "dangerous"
    with pytest.raises(TrustRequired, match="posix.system"):
        unpickle(hostile, trust=True)


def test_nested_joblib_pickles_hidden_in_object_fields_are_audited():
    """A structured dtype with an object field, and an object array: joblib writes both as nested pickles."""
    rec = np.zeros(2, dtype=[("a", "O"), ("b", "<f8")])
    rec["a"][0] = _Payload("true")
    objs = np.empty(2, dtype=object)
    objs[1] = _Payload("true")
    for arr in (rec, objs):
        data = _joblib_bytes({"w": np.arange(3.0), "hidden": arr})
        assert _level(data) == "dangerous"
        with pytest.raises(TrustRequired):
            unpickle(data, trust=True)
    clean = _joblib_bytes({"w": np.arange(3.0), "names": np.array(["a", "b"], dtype=object)})
    back = unpickle(clean)
    assert back["names"].tolist() == ["a", "b"] and back["w"].tolist() == [0.0, 1.0, 2.0]


def test_alignment_set_to_none_does_not_desynchronise_the_reader():
    """``numpy_array_alignment_bytes=None`` means no padding byte (joblib ``read_array``)."""
    wrapper = joblib.numpy_pickle.NumpyArrayWrapper
    arr = np.arange(4.0)
    w = wrapper.__new__(wrapper)
    w.__dict__.update(subclass=np.ndarray, shape=arr.shape, order="C", dtype=arr.dtype, allow_mmap=False,
                      numpy_array_alignment_bytes=None)
    head = pickle.dumps(w, protocol=4)[:-1]  # drop STOP; the raw array bytes follow the wrapper's BUILD
    data = head + arr.tobytes() + pickle.dumps(_Payload("true"), protocol=4)[2:]
    # after the array, the stream goes on with the payload's opcodes; a reader that skipped a padding byte would
    # lose its place and could miss them
    assert _level(head + arr.tobytes() + b".") == "safe"
    assert _level(data) != "safe"


@pytest.mark.parametrize("module,name", [
    ("numpy.distutils.exec_command", "Popen"),  # a re-export of subprocess.Popen
    ("numpy.lib.format", "Unpickler"),
    ("numpy.testing._private.utils", "operator.attrgetter"),  # a walk through a module attribute
    ("xgboost.core", "ctypes.CDLL"),
    ("numpy", "memmap"),
    ("scipy.io", "FortranFile"),
    ("joblib.memory", "Memory"),
    ("__builtin__", "exec"),
    ("builtins", "dict.get"),
    ("_operator", "attrgetter"),
    ("posixpath", "os.system"),
    ("timeit", "timeit"),
    ("functools", "partial"),
    ("torch.serialization", "load"),
])
def test_dangerous_names_under_any_spelling(module, name):
    assert trust.classify(module, name) == "dangerous"
    data = b"\x80\x04" + _sg(module, name) + b")R."
    assert _level(data) == "dangerous"
    for level in (False, True):
        with pytest.raises(TrustRequired):
            unpickle(data, trust=level)


def test_allowlisted_class_called_directly_is_dangerous():
    """Real Booster pickles create it with cls.__new__ and set its state; calling it with a path would read a file."""
    data = b"\x80\x04" + _sg("xgboost.core", "Booster") + b"N)\x8c\x04/etc\x87R."
    assert trust.classify("xgboost.core", "Booster") == "allowed"
    assert _level(data) == "dangerous"
    with pytest.raises(TrustRequired):
        unpickle(data, trust=True)


def test_copyreg_reconstructor_may_not_call_an_allowlisted_class():
    """``copyreg._reconstructor(cls, base, state)`` runs ``base.__init__(obj, state)``."""
    data = (b"ccopy_reg\n_reconstructor\n(cxgboost.core\nBooster\ncxgboost.core\nBooster\nS'/etc'\ntR.")
    assert _level(data) == "dangerous"
    with pytest.raises(TrustRequired):
        unpickle(data, trust=True)


def test_huge_allocation_through_an_allowlisted_builtin_is_dangerous():
    data = b"\x80\x04" + _sg("builtins", "bytearray") + b"\x8a\x05\x00\x00\x00\x00\x01\x85R."  # bytearray(2**32)
    assert _level(data) == "dangerous"


def test_trust_true_admits_user_classes_only_where_they_are_defined(tmp_path, monkeypatch):
    (tmp_path / "usermod.py").write_text(textwrap.dedent("""
        from subprocess import Popen  # a re-export: usermod.Popen is subprocess.Popen
        def helper(x):
            return x
        class Model:
            def predict(self, X):
                return [len(X)]
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    model_pickle = b"\x80\x04" + _sg("usermod", "Model") + b")\x81."
    assert _level(model_pickle) == "unknown-types"
    with pytest.raises(TrustRequired, match="usermod.Model"):
        unpickle(model_pickle, trust=False)
    assert unpickle(model_pickle, trust=True).predict([1, 2]) == [2]
    reexport = b"\x80\x04" + _sg("usermod", "Popen") + b"\x8c\x04true\x85R."
    assert _level(reexport) == "unknown-types"  # as data, usermod.Popen is just a name
    with pytest.raises(TrustRequired, match="defined as subprocess.Popen"):
        unpickle(reexport, trust=True)
    function = b"\x80\x04" + _sg("usermod", "helper") + b"K\x01\x85R."
    with pytest.raises(TrustRequired, match="not a class"):
        unpickle(function, trust=True)
    walk = b"\x80\x04" + _sg("usermod", "Popen.__init__") + b"."
    with pytest.raises(TrustRequired):
        unpickle(walk, trust=True)


def test_every_allowlisted_pair_is_defined_in_its_own_package():
    """Each pair resolves (when its library is installed) to an object whose ``__module__`` is in that package."""
    from loaders.sklearn import _resolve

    checked = 0
    for (module, name), _use in trust.ALLOWED.items():
        root = module.split(".")[0]
        if root in ("torch", "pandas", "xgboost") and importlib.util.find_spec(root) is None:
            continue
        try:
            importlib.import_module(module)
        except ImportError:
            continue  # the other numpy major's spelling
        try:
            obj, _ = _resolve(module, name, False)
        except AttributeError:
            continue  # a name this release of the library no longer has
        assert obj is not None
        checked += 1
    assert checked > 300


def test_exponential_value_is_audited_in_linear_time():
    out = bytearray(b"\x80\x04]\x94")
    for i in range(200):
        out += b"(h" + bytes([i]) + b"h" + bytes([i]) + b"l\x94" if i < 255 else b""
    data = bytes(out[: 4 + 9 * 200]) + b"."
    assert _level(data) == "safe"


def test_unreadable_compressed_pickle_is_a_finding_not_a_pass():
    import zlib

    broken = zlib.compress(pickle.dumps({"a": 1}))[:-6]
    findings = audit_pickle_bytes("m.pkl", broken, 1 << 20)
    assert findings and findings[0].level == "unknown-types"
    with pytest.raises(ArtifactError):
        unpickle(broken)
