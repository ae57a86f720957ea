"""PyTorch loader: state dicts (zip and legacy format), ``module=``, whole pickled modules, TorchScript, and the
real ``sdk-pytorch-mnist`` artifacts. Expected values come from torch itself: ``torch.load(weights_only=True)``
on files extracted here with tarfile, and the same network run directly."""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import loaders  # noqa: E402
from artifact_tools.errors import ArtifactError, MissingExtra, NotLoadable, TrustRequired, UnsafeArtifact  # noqa: E402
from artifact_tools.formats import torch_zip  # noqa: E402
from artifact_tools.inspection import inspect  # noqa: E402
from artifact_tools.report import ModelInfo, Report  # noqa: E402
from loaders import pytorch as pt_loader  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACT_TOOLS_CACHE", str(tmp_path_factory.mktemp("extracted")))
        yield


def _small_net() -> nn.Module:
    """The architecture make_samples.build_pytorch trains."""
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


class MnistNet(nn.Module):
    """The network of sdk-pytorch-mnist's code/mnist.py (layer sizes read from that script; never imported)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.relu(self.fc1(x.view(-1, 320)))
        return F.log_softmax(self.fc2(F.dropout(x, training=self.training)), dim=1)


def _member(archive: Path, name: str, dest: Path) -> Path:
    with tarfile.open(archive) as t:
        data = t.extractfile(name).read()
    dest.write_bytes(data)
    return dest


def _tar(files: dict[str, object], tmp: Path, **save_kwargs) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name, obj in files.items():
        torch.save(obj, src / name, **save_kwargs)
    return make_samples.tar_folder(src, tmp / "model.tar.gz")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return make_samples.build_pytorch(tmp_path_factory.mktemp("pt-sample"))


@pytest.fixture(scope="module")
def sample_state(sample, tmp_path_factory):
    return torch.load(_member(sample, "model.pth", tmp_path_factory.mktemp("pt-ref") / "model.pth"), weights_only=True)


def test_state_dict_loads_and_predict_names_the_script(sample, sample_state):
    model = loaders.load(sample)
    assert model.framework == "pytorch" and model.info["kind"] == "state_dict"
    assert list(model.model) == list(sample_state)
    for key, tensor in sample_state.items():
        assert torch.equal(model.model[key], tensor)
    with pytest.raises(NotLoadable, match="code/inference.py"):
        model.predict(np.ones((1, 4)))


def test_state_dict_with_its_model_fn(sample, tmp_path):
    """make_samples' code/inference.py defines model_fn (which raises): without trust predict names it and says
    trust=True runs it; with trust the artifact is loaded through it, and its failure is one sentence."""
    with pytest.raises(NotLoadable, match=r"built by code/inference\.py, and loading through it runs its model_fn: "
                                          r"pass trust=True"):
        loaders.load(sample).predict(np.ones((1, 4)))
    with pytest.raises(ArtifactError, match=r"^code/inference\.py: model_fn raised NotImplementedError"):
        loaders.load(sample, trust=True)
    # module= steers the PyTorch loader even with trust: the script is not run
    model = loaders.load(sample, trust=True, module=_small_net())
    assert model.info["kind"] == "state_dict"


def test_state_dict_with_only_the_network_code_names_it(tmp_path):
    """Item 9: a state dict beside code/model_def.py (the network, no model_fn) is not "without code"."""
    torch.save(_small_net().state_dict(), tmp_path / "model.pth")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "model_def.py").write_text(
        "from torch import nn\n\n\ndef build():\n"
        "    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n")
    model = loaders.load(tmp_path, trust=True)  # no model_fn: nothing for the container to call, nothing run
    with pytest.raises(NotLoadable, match=r"the network is defined in code/model_def\.py") as e:
        model.predict(np.ones((1, 4)))
    assert "does not include the code" not in str(e.value)


def test_module_option_runs_the_network(sample, sample_state):
    X = make_samples.make_data(n=5)[0]
    reference = _small_net()
    reference.load_state_dict(sample_state)
    with torch.no_grad():
        expected = reference.eval()(torch.from_numpy(X)).numpy()
    model = loaders.load(sample, module=_small_net())
    np.testing.assert_allclose(model.predict(X.astype(np.float64)), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict(X.tolist()), expected, rtol=1e-6)
    with pytest.raises(ArtifactError, match="does not match the weights"):
        loaders.load(sample, module=nn.Sequential(nn.Linear(4, 3)))


def test_legacy_format_and_checkpoint_dict(tmp_path):
    net = _small_net()
    archive = _tar({"model.pth": {"epoch": 3, "model_state_dict": net.state_dict()}}, tmp_path,
                   _use_new_zipfile_serialization=False)
    model = loaders.load(archive, module=_small_net())
    assert model.info["format"] == "torch-legacy"
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), net.eval()(torch.from_numpy(x)).numpy(), rtol=1e-6)
    plain = loaders.load(archive)
    assert plain.info["kind"] == "checkpoint" and plain.model["epoch"] == 3


def test_whole_pickled_module_needs_trust(tmp_path):
    net = _small_net().eval()
    archive = _tar({"model.pth": net}, tmp_path)
    with pytest.raises(TrustRequired, match="torch.nn.modules"):
        loaders.load(archive)
    model = loaders.load(archive, trust=True)
    x = np.ones((2, 4), np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), net(torch.from_numpy(x)).numpy(), rtol=1e-6)


def test_torchscript_needs_trust(tmp_path):
    net = _small_net().eval()
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    # The report is built from the project's own reader, as inspection does for a torch-zip member.
    report = Report(source=str(path), container="directory", framework="pytorch", loadable=True,
                    models=[ModelInfo("model.pt", "pytorch", torch_zip.summarize(path.read_bytes()))])
    with pytest.raises(TrustRequired, match="TorchScript"):
        pt_loader.load(tmp_path, report)
    model = pt_loader.load(tmp_path, report, trust=True)
    x = np.ones((2, 4), np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x), net(torch.from_numpy(x)).numpy(), rtol=1e-6)


def test_torchscript_through_inspection(tmp_path):
    torch.jit.save(torch.jit.script(_small_net()), str(tmp_path / "model.pt"))
    assert inspect(tmp_path).framework == "pytorch"


def test_corpus_packed_mnist_state_dict(corpus, tmp_path):
    archive = corpus / "sdk-pytorch-mnist" / "packed_model.tar.gz"
    expected = torch.load(_member(archive, "./model.pth", tmp_path / "model.pth"), weights_only=True)
    model = loaders.load(archive)
    assert {k: tuple(v.shape) for k, v in model.model.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    with pytest.raises(NotLoadable, match="code/mnist.py"):
        model.predict(np.zeros((1, 1, 28, 28)))
    # Saved from a DataParallel wrapper (keys "module.conv1.weight"...): loads into the bare network.
    loaded = loaders.load(archive, module=MnistNet())
    reference = MnistNet()
    reference.load_state_dict({k.removeprefix("module."): v for k, v in expected.items()})
    x = np.random.default_rng(1).normal(size=(2, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = reference.eval()(torch.from_numpy(x)).numpy()
    got = loaded.predict(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(got).sum(axis=1), 1.0, rtol=1e-5)  # log-probabilities of 10 digits


def test_corpus_mnist_with_conflicting_copies_is_refused(corpus):
    # refused by the archive layer (UnsafeArtifact) or, when inspection already reports it not loadable, by the gate
    with pytest.raises((UnsafeArtifact, NotLoadable), match="model.pth"):
        loaders.load(corpus / "sdk-pytorch-mnist" / "model.tar.gz")


def test_unknown_option_and_missing_torch(sample, monkeypatch):
    with pytest.raises(ArtifactError, match="unknown option"):
        loaders.load(sample, signature="x")
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees when it is absent
    with pytest.raises(MissingExtra, match=r"artifact-tools\[pytorch\]"):
        loaders.load(sample)
