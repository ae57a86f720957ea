"""Artifacts loaded through their own SageMaker inference code (``loaders/inference_code.py``), with ``trust=True``.

Fixtures come from ``scripts/make_code_fixtures.py`` (real torch state dicts, real scikit-learn joblib files, real
scripts). Expected values come from the frameworks run directly here: the test's own copy of the network with the
weights read by ``torch.load(weights_only=True)`` from the archive member, and the estimator read by joblib.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
nn = torch.nn

import loaders  # noqa: E402
from artifact_tools.errors import ArtifactError, NotLoadable, TrustRequired  # noqa: E402
from loaders import inference_code  # noqa: E402

from helpers import run_cli, sklearn_reference, tar_members  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import make_code_fixtures  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACT_TOOLS_CACHE", str(tmp_path_factory.mktemp("extracted")))
        yield


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("code-fixtures")
    return {name: build(out) for name, build in make_code_fixtures.BUILDERS.items()}


class Reference(nn.Module):
    """The fixtures' network, written here independently (same parameter names)."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.hidden = nn.Linear(4, hidden)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x):
        return torch.log_softmax(self.out(torch.relu(self.hidden(x))), dim=-1)


def reference(archive: Path) -> Reference:
    state = torch.load(io.BytesIO(tar_members(archive)["model.pth"]), weights_only=True)
    net = Reference(state["hidden.weight"].shape[0])
    net.load_state_dict(state)
    return net.eval()


def run(net: nn.Module, X) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(X, dtype=np.float32))).numpy()


X = np.random.default_rng(3).normal(size=(5, 4))


# ------------------------------------------------------------------------------------ a state dict + its model_fn

def test_state_dict_with_model_fn_loads_through_its_code(fixtures):
    art = fixtures["pytorch-model-fn"]
    path_before, modules_before = list(sys.path), set(sys.modules)
    model = loaders.load(art, trust=True)
    assert model.info["kind"] == "inference-code" and model.info["entry_point"] == "code/inference.py"
    assert model.info["handlers"]["model_fn"] == "artifact"
    assert model.info["handlers"]["predict_fn"] == "default (PyTorch container)"
    assert type(model.model).__name__ == "Net" and model.framework == "pytorch"
    np.testing.assert_allclose(model.predict(X), run(reference(art), X), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict(X.tolist()), run(reference(art), X), rtol=1e-6, atol=1e-7)
    # code/requirements.txt is reported, never installed
    assert model.info["requirements_file"] == "code/requirements.txt"
    assert "artifact-tools-fixture-never-installed==0.0.1" in model.info["requirements"]
    assert importlib.util.find_spec("artifact_tools_fixture_never_installed") is None
    # the script's folder and its sibling modules are gone from the process once it has run
    assert sys.path == path_before
    assert "model_def" not in sys.modules and "inference" not in sys.modules
    cache = Path(os.environ["ARTIFACT_TOOLS_CACHE"]).resolve()
    left = [m for m in set(sys.modules) - modules_before
            if cache in Path(getattr(sys.modules[m], "__file__", None) or "/").resolve().parents]
    assert not left, f"modules of the artifact left in sys.modules: {left}"


def test_without_trust_the_refusal_names_the_script_and_its_functions(fixtures):
    art = fixtures["pytorch-model-fn"]
    weights = loaders.load(art)  # the weights load as data; running the script needs trust
    assert weights.info["kind"] == "state_dict"
    with pytest.raises(NotLoadable, match=r"code/inference\.py.*model_fn.*trust=True"):
        weights.predict(X)
    with pytest.raises(TrustRequired, match=r"code/inference\.py runs its model_fn"):
        loaders.load(art, entry_point="code/inference.py")
    art2 = fixtures["pytorch-json-csv"]
    with pytest.raises(NotLoadable, match=r"code/inference\.py.*model_fn, input_fn, predict_fn, output_fn"):
        loaders.load(art2).predict(X)
    assert "input_fn" in loaders.load(art2).info["warning"]


def test_default_pytorch_handlers_round_trip(fixtures):
    art = fixtures["pytorch-model-fn"]
    model = loaders.load(art, trust=True)
    want = run(reference(art), X)
    body, ctype = model.invoke_fn(json.dumps(X.tolist()).encode(), "application/json", "*/*")
    assert ctype == "application/json"
    np.testing.assert_allclose(json.loads(body), want, rtol=1e-6, atol=1e-7)
    csv_in = "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()
    body, ctype = model.invoke_fn(csv_in, "text/csv", "text/csv")
    assert ctype == "text/csv"
    np.testing.assert_allclose(np.loadtxt(io.StringIO(body.decode()), delimiter=","), want, rtol=1e-6, atol=1e-7)
    buf = io.BytesIO()
    np.save(buf, X.astype(np.float32))
    body, ctype = model.invoke_fn(buf.getvalue(), "application/x-npy", "application/x-npy, application/json")
    assert ctype == "application/x-npy"
    np.testing.assert_allclose(np.load(io.BytesIO(body)), want, rtol=1e-6, atol=1e-7)
    with pytest.raises(inference_code.HandlerError, match="text/plain") as e:
        model.invoke_fn(b"1 2 3 4", "text/plain", "application/json")
    assert e.value.status == 415
    with pytest.raises(inference_code.HandlerError, match="image/png") as e:
        model.invoke_fn(b"[[1, 2, 3, 4]]", "application/json", "image/png")
    assert e.value.status == 406
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(inference_code.HandlerError, match="cannot be decoded"):
        model.invoke_fn(pickled.getvalue(), "application/x-npy", "application/json")  # never unpickled


def test_custom_input_and_output_functions(fixtures):
    art = fixtures["pytorch-json-csv"]
    model = loaders.load(art, trust=True)
    assert model.info["handlers"] == {"model_fn": "artifact", "input_fn": "artifact", "predict_fn": "artifact",
                                      "output_fn": "artifact"}
    want = np.exp(run(reference(art), X))
    np.testing.assert_allclose(model.predict({"instances": X}), want, rtol=1e-6, atol=1e-7)
    body, ctype = model.invoke_fn(json.dumps({"instances": X.tolist()}).encode(), "application/json", "text/csv")
    assert ctype == "text/csv"
    rows = np.loadtxt(io.StringIO(body.decode()), delimiter=",", ndmin=2)
    np.testing.assert_array_equal(rows[:, 0], want.argmax(axis=1))
    np.testing.assert_allclose(rows[:, 1:], want, rtol=1e-6, atol=1e-7)
    with pytest.raises(inference_code.HandlerError, match=r"input_fn raised ValueError: this model reads") as e:
        model.invoke_fn(b"1,2,3,4", "text/csv", "text/csv")
    assert e.value.status == 500


def test_sklearn_predict_fn_overrides_the_default(fixtures):
    art = fixtures["sklearn-predict-fn"]
    est = sklearn_reference(art)
    model = loaders.load(art, trust=True)
    assert model.info["entry_point"] == "inference.py" and model.info["handlers"]["predict_fn"] == "artifact"
    # the scikit-learn container's default input_fn makes float32 rows of the request
    want = est.predict_proba(X.astype(np.float32))
    np.testing.assert_allclose(model.predict(X), want, rtol=1e-12)
    body, ctype = model.invoke_fn(json.dumps(X[0].tolist()).encode(), "application/json", "application/json")
    np.testing.assert_allclose(json.loads(body), want[:1], rtol=1e-12)
    native = loaders.load(art)  # without trust: the estimator's own predict, and a warning naming the script
    np.testing.assert_array_equal(native.predict(X), est.predict(X))
    assert "inference.py defines predict_fn" in native.info["warning"]


def test_sklearn_transform_fn(fixtures):
    art = fixtures["sklearn-transform-fn"]
    est = sklearn_reference(art)
    model = loaders.load(art, trust=True)
    assert model.info["handlers"] == {"model_fn": "artifact", "transform_fn": "artifact"}
    assert model.predict(X) == {"predictions": est.predict(X).tolist()}
    body, ctype = model.invoke_fn(json.dumps(X.tolist()).encode(), "application/json", "*/*")
    assert (json.loads(body), ctype) == ({"predictions": est.predict(X).tolist()}, "application/json")


# ------------------------------------------------------------------------------------ isolation, odd scripts

def _folder_artifact(tmp: Path, hidden: int, helper_scale: float) -> Path:
    """A folder artifact whose sibling modules share names with the fixtures' (model_def) and a lazy import."""
    torch.manual_seed(hidden)
    net = Reference(hidden)
    (tmp / "code").mkdir(parents=True)
    torch.save(net.state_dict(), tmp / "model.pth")
    (tmp / "code" / "model_def.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self):\n        super()."
        f"__init__()\n        self.hidden = nn.Linear(4, {hidden})\n        self.out = nn.Linear({hidden}, 3)\n\n"
        "    def forward(self, x):\n        return torch.log_softmax(self.out(torch.relu(self.hidden(x))), dim=-1)\n")
    (tmp / "code" / "helper.py").write_text(f"SCALE = {helper_scale!r}\n")
    (tmp / "code" / "inference.py").write_text(
        "import os\nimport torch\nfrom model_def import Net\n\n\ndef model_fn(model_dir, context):\n"
        "    assert context.system_properties['model_dir'] == model_dir\n    net = Net()\n"
        "    net.load_state_dict(torch.load(os.path.join(model_dir, 'model.pth')))\n    return net.eval()\n\n\n"
        "def predict_fn(data, model):\n    import helper  # imported when the request comes, as scripts do\n"
        "    with torch.no_grad():\n        return model(data) * helper.SCALE\n")
    return tmp


def test_two_artifacts_with_same_module_names_stay_apart(tmp_path, fixtures, monkeypatch):
    stranger = types.ModuleType("model_def")  # a module of the process the artifacts' sibling would shadow
    monkeypatch.setitem(sys.modules, "model_def", stranger)
    a = _folder_artifact(tmp_path / "a", 5, 2.0)
    b = _folder_artifact(tmp_path / "b", 9, 3.0)
    ma, mb = loaders.load(a, trust=True), loaders.load(b, trust=True)
    mc = loaders.load(fixtures["pytorch-model-fn"], trust=True)
    assert sys.modules["model_def"] is stranger and "helper" not in sys.modules
    for _ in range(2):  # interleaved calls: each script sees its own modules
        for model, folder, scale in ((ma, a, 2.0), (mb, b, 3.0)):
            state = torch.load(folder / "model.pth", weights_only=True)
            net = Reference(state["hidden.weight"].shape[0])
            net.load_state_dict(state)
            np.testing.assert_allclose(model.predict(X), run(net.eval(), X) * scale, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(mc.predict(X), run(reference(fixtures["pytorch-model-fn"]), X), rtol=1e-6,
                                   atol=1e-7)
    assert sys.modules["model_def"] is stranger and "helper" not in sys.modules


def test_python2_script_is_not_run_and_unknown_entry_point_is_refused(tmp_path):
    import joblib
    from sklearn.linear_model import LinearRegression

    est = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0, 4.0]))
    joblib.dump(est, tmp_path / "model.joblib")
    (tmp_path / "inference.py").write_text("def predict_fn(data, model):\n    print 'python 2'\n")
    model = loaders.load(tmp_path, trust=True)  # not Python 3: the native loader, the script is never run
    assert model.info.get("kind") != "inference-code"
    np.testing.assert_allclose(model.predict(X), est.predict(X))
    with pytest.raises(NotLoadable, match=r"inference\.py is not valid Python 3 \(line 2"):
        loaders.load(tmp_path, trust=True, entry_point="inference.py")
    with pytest.raises(ArtifactError, match="entry_point ../x.py is not a .py file of the artifact"):
        loaders.load(tmp_path, trust=True, entry_point="../x.py")


def test_failing_model_fn_is_one_sentence(tmp_path):
    torch.save(Reference().state_dict(), tmp_path / "model.pth")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "inference.py").write_text("def model_fn(model_dir):\n    raise NotImplementedError('no')\n")
    with pytest.raises(inference_code.HandlerError, match=r"^code/inference\.py: model_fn raised NotImplementedError"):
        loaders.load(tmp_path, trust=True)
    (tmp_path / "code" / "inference.py").write_text("import not_installed_anywhere_xyz\n\ndef model_fn(d):\n    pass\n")
    with pytest.raises(NotLoadable, match="needs the module not_installed_anywhere_xyz, which is not installed"):
        loaders.load(tmp_path, trust=True)
    (tmp_path / "code" / "inference.py").write_text(
        "def model_fn(d):\n    return 1\n\ndef transform_fn(m, b, c, a):\n    pass\n\ndef input_fn(b, c):\n    pass\n")
    with pytest.raises(NotLoadable, match="transform_fn together with input_fn"):
        loaders.load(tmp_path, trust=True)


# ------------------------------------------------------------------------------------ the CLI

def test_cli_load_trust_predict(fixtures, tmp_path):
    art = fixtures["pytorch-model-fn"]
    rows = tmp_path / "rows.csv"
    rows.write_text("\n".join(",".join(repr(float(v)) for v in row) for row in X) + "\n")
    done = run_cli("load", str(art), "--trust", "--predict", str(rows))
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.asarray(json.loads(done.stdout)), run(reference(art), X), rtol=1e-6, atol=1e-7)
    refused = run_cli("load", str(art), "--predict", str(rows))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "code/inference.py" in refused.stderr and "model_fn" in refused.stderr and "--trust" in refused.stderr
    sk = fixtures["sklearn-predict-fn"]
    done = run_cli("load", str(sk), "--trust", "--predict", str(rows))
    assert done.returncode == 0, done.stderr
    want = sklearn_reference(sk).predict_proba(X.astype(np.float32))
    np.testing.assert_allclose(np.asarray(json.loads(done.stdout)), want, rtol=1e-12)


# ------------------------------------------------------------------------------------ the real corpus

def test_corpus_entry_points(corpus):
    # model_fn that only joblib.loads the model: the native loader, with or without trust
    ir = loaders.load(corpus / "sdk-sklearn-ir" / "sklearn-model.tar.gz", trust=True)
    assert ir.info.get("kind") != "inference-code" and type(ir.model).__name__ == "LogisticRegression"
    # TF Serving's own input_handler/output_handler: named, not run; the SavedModel loads natively
    tfs = corpus / "sdk-tfs-model-with-inference"
    if importlib.util.find_spec("tensorflow") is not None:
        tf_model = loaders.load(tfs, trust=True)
        assert tf_model.info.get("kind") != "inference-code" and "input_handler" in tf_model.info["warning"]
    # a state dict whose code/mnist.py holds model_fn: loaded through it under trust (it imports torchvision)
    packed = corpus / "sdk-pytorch-mnist" / "packed_model.tar.gz"
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(NotLoadable, match=r"code/mnist\.py cannot be imported: it needs the module torchvision"):
            loaders.load(packed, trust=True)
    else:
        assert loaders.load(packed, trust=True).info["entry_point"] == "code/mnist.py"
    # input_fn/predict_fn/output_fn of its own: the script's path (its model_fn joblib-loads a 0.23 pickle, which
    # the installed scikit-learn may not read: then one sentence naming the script)
    try:
        multi = loaders.load(corpus / "sklearn-multi-pickles" / "model.tar.gz", trust=True)
    except ArtifactError as e:
        assert str(e).startswith("inference.py: model_fn raised"), e
    else:
        assert multi.info["entry_point"] == "inference.py" and multi.info["handlers"]["input_fn"] == "artifact"


def test_whole_network_pickled_from_the_artifacts_own_module(tmp_path):
    """torch.save(net) of a class defined in code/model_def.py: not importable from here, so with trust the
    artifact loads through its model_fn (code/ on sys.path, as in the container)."""
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / "model_def.py").write_text(make_code_fixtures.MODEL_DEF)
    spec = importlib.util.spec_from_file_location("model_def", folder / "model_def.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["model_def"] = module  # torch.save pickles the class by its module name, as in training
    try:
        spec.loader.exec_module(module)
        torch.manual_seed(11)
        net = module.Net().eval()
        art = tmp_path / "art"
        (art / "code").mkdir(parents=True)
        torch.save(net, art / "model.pth")
        want = run(net, X)
    finally:
        del sys.modules["model_def"]
    (art / "code" / "model_def.py").write_text(make_code_fixtures.MODEL_DEF)
    (art / "code" / "inference.py").write_text(
        "import os\nimport torch\n\n\ndef model_fn(model_dir):\n"
        "    return torch.load(os.path.join(model_dir, 'model.pth'), weights_only=False).eval()\n")
    with pytest.raises(TrustRequired, match="model_def.Net"):
        loaders.load(art)
    model = loaders.load(art, trust=True)
    assert model.info["kind"] == "inference-code" and "model_def" not in sys.modules
    np.testing.assert_allclose(model.predict(X), want, rtol=1e-6, atol=1e-7)
