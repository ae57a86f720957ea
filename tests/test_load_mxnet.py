"""MXNet loader: a Gluon export built here (make_samples.build_mxnet), the real built-in artifacts of the corpus
(Linear Learner, k-means, PCA, NTM with two hosts, the MXNet MNIST export, the image classifier without weights),
and small image-classification / factorization-machines artifacts written here in the built-ins' layouts.

Expected values come from MXNet itself, run directly in the test on files the test extracts with tarfile/zipfile
(Gluon layers, ``SymbolBlock``, the symbol executor, ``mx.nd.load``) or from scipy; the numpy backend is checked
against the Gluon one and, in a subprocess, for never importing MXNet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
from mxnet import gluon  # noqa: E402

import artifact_tools  # noqa: E402
import loaders  # noqa: E402
from artifact_tools.errors import ArtifactError, NotLoadable  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Cannot decide type:UserWarning")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_mxnet_fixtures  # noqa: E402
import make_samples  # noqa: E402

from helpers import untar  # noqa: E402

LL_ADULT = "ex-ll-adult/ll-adult-prediction-model.tar.gz"
LL_COOKBOOK = "cookbook-ll/model.tar.gz"
KMEANS = "movies-kmeans-a/model.tar.gz"
PCA = "plagiarism-pca/model.tar.gz"
NTM = "covid-ntm/downloaded_model.tar.gz"
MNIST = "sdk-mxnet-mnist/model.tar.gz"


def _unzip(archive: Path, dest: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


def _symbol_block(symbol: Path, inputs: list[str], params: Path):
    return gluon.SymbolBlock.imports(str(symbol), inputs, str(params), ctx=mx.cpu())


# ------------------------------------------------------------------------------------ Gluon export sample

@pytest.fixture(scope="module")
def gluon_sample(tmp_path_factory) -> Path:
    return make_samples.build_mxnet(tmp_path_factory.mktemp("mxnet-sample"))


def _original_net(params_file: Path):
    """make_samples' architecture (Dense(8, relu) -> Dense(2)) as Gluon layers, holding the exported weights."""
    saved = mx.nd.load(str(params_file))
    weights = [saved[k] for k in sorted(saved) if k.endswith("_weight")]
    biases = [saved[k] for k in sorted(saved) if k.endswith("_bias")]
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(8, activation="relu"), gluon.nn.Dense(2))
    net.initialize(ctx=mx.cpu())
    net(mx.nd.zeros((1, weights[0].shape[1])))
    for layer, w, b in zip(net, weights, biases):
        layer.weight.set_data(w)
        layer.bias.set_data(b)
    return net


def test_gluon_export_predicts_like_the_original_network(gluon_sample, tmp_path):
    files = untar(gluon_sample, tmp_path / "files")
    net = _original_net(files / "model-0000.params")
    X, _ = make_samples.make_data()
    expected = net(mx.nd.array(X)).asnumpy()

    m = loaders.load(gluon_sample)
    assert m.framework == "mxnet" and isinstance(m.model, gluon.SymbolBlock)
    assert m.info["inputs"] == ["data"] and m.info["input_shapes"] == [{"shape": [1, 4], "name": "data"}]
    np.testing.assert_allclose(m.predict(X), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.predict(X[0]), expected[:1], rtol=1e-5, atol=1e-6)  # one sample: batch added


def test_gluon_export_without_shapes_file_takes_inputs_from_the_graph(gluon_sample, tmp_path):
    files = untar(gluon_sample, tmp_path / "files")
    (files / "model-shapes.json").unlink()
    artifact = make_samples.tar_folder(files, tmp_path / "no-shapes.tar.gz")
    expected = _original_net(files / "model-0000.params")(mx.nd.array(make_samples.make_data()[0][:7])).asnumpy()

    m = loaders.load(artifact)
    assert m.info["inputs"] == ["data"] and m.info["input_shapes"] is None
    np.testing.assert_allclose(m.predict(make_samples.make_data()[0][:7]), expected, rtol=1e-5, atol=1e-6)


def test_second_load_does_not_extract_again(corpus, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARTIFACT_TOOLS_CACHE", str(cache))

    def snapshot() -> dict:
        return {str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.rglob("*")}

    first = loaders.load(corpus / LL_ADULT)  # a tar holding a zip: both are unpacked on first use
    before = snapshot()
    assert any("/.unzipped/model_algo-1/" in name for name in before)
    second = loaders.load(corpus / LL_ADULT)
    assert snapshot() == before
    x = np.random.default_rng(1).normal(size=(4, 14))
    assert first.predict(x).equals(second.predict(x))


# ------------------------------------------------------------------------------------ Linear Learner

def _adult_rows(n: int = 512) -> np.ndarray:
    """Rows whose scores sweep across 0.5 and the threshold: feature 9 carries the adult model's largest weight."""
    x = np.random.default_rng(2).normal(size=(n, 14))
    x[:, 9] = np.linspace(0, 20, n)
    return x


@pytest.mark.parametrize("name, rows", [(LL_ADULT, _adult_rows()),
                                        (LL_COOKBOOK, np.random.default_rng(3).normal(size=(16, 1)))])
def test_linear_learner_matches_a_direct_symbol_block_with_both_backends(corpus, tmp_path, name, rows):
    files = untar(corpus / name, tmp_path / "files")
    inner = _unzip(files / "model_algo-1", tmp_path / "inner")
    block = _symbol_block(inner / "mx-mod-symbol.json", ["data", "out_label"], inner / "mx-mod-0000.params")
    expected = block(mx.nd.array(rows), mx.nd.zeros((len(rows),))).asnumpy().ravel()
    extra = json.loads((inner / "additional-params.json").read_text())

    gluon_model = loaders.load(corpus / name, backend="mxnet")
    numpy_model = loaders.load(corpus / name, backend="numpy")
    assert isinstance(gluon_model.model, gluon.SymbolBlock) and isinstance(numpy_model.model, dict)
    for m in (gluon_model, numpy_model):
        out = m.predict(rows)
        np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-5, atol=1e-30)
        if extra["predictor_type"] == "binary_classifier":
            labels = (expected > extra["threshold"]).astype(int)
            assert ((expected > extra["threshold"]) & (expected <= 0.5)).any()  # the threshold is not 0.5
            assert out["predicted_label"].tolist() == labels.tolist()
        else:
            assert list(out.columns) == ["score"]


# ------------------------------------------------------------------------------------ k-means and PCA

def test_kmeans_nearest_centroid_and_distance(corpus, tmp_path):
    from scipy.spatial.distance import cdist

    files = untar(corpus / KMEANS, tmp_path / "files")
    centroids = mx.nd.load(str(files / "model_algo-1"))[0].asnumpy()
    x = np.random.default_rng(4).normal(scale=20, size=(50, centroids.shape[1]))
    distances = cdist(x, centroids)

    outs = [loaders.load(corpus / KMEANS, backend=b).predict(x) for b in ("mxnet", "numpy")]
    for out in outs:
        assert out["closest_cluster"].tolist() == distances.argmin(axis=1).tolist()
        np.testing.assert_allclose(out["distance_to_cluster"], distances.min(axis=1), rtol=1e-9)
    assert outs[0].equals(outs[1])


def test_pca_projects_centered_rows_on_v(corpus, tmp_path):
    files = untar(corpus / PCA, tmp_path / "files")
    arrays = mx.nd.load(str(files / "model_algo-1"))
    x = np.random.default_rng(5).normal(size=(10, arrays["v"].shape[0]))
    expected = mx.nd.dot(mx.nd.array(x, dtype="float64") - arrays["mean"].astype("float64"),
                         arrays["v"].astype("float64")).asnumpy()

    for backend in ("mxnet", "numpy"):
        m = loaders.load(corpus / PCA, backend=backend)
        assert m.info["backend"] == backend
        np.testing.assert_allclose(m.predict(x), expected, rtol=1e-9, atol=1e-12)


def test_numpy_backend_never_imports_mxnet_and_is_the_fallback(corpus, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import loaders
        rng = np.random.default_rng(0)
        for name, dim in (({LL_ADULT!r}, 14), ({KMEANS!r}, 10), ({PCA!r}, 7)):
            m = loaders.load({str(corpus)!r} + "/" + name, backend="numpy")
            m.predict(rng.normal(size=(3, dim)))
        assert "mxnet" not in sys.modules, "the numpy backend imported mxnet"
        sys.modules["mxnet"] = None  # as if MXNet were not installed
        m = loaders.load({str(corpus)!r} + "/" + {LL_ADULT!r})
        assert m.info["backend"] == "numpy", m.info
        try:
            loaders.load({str(corpus)!r} + "/" + {NTM!r})
        except Exception as e:
            print(type(e).__name__, e)
        print("ok")
    """)
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "MissingExtra" in done.stdout and "artifact-tools[mxnet]" in done.stdout
    assert done.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------------------ NTM, MNIST, image classification

def test_ntm_predicts_the_encoder_mean_of_the_chosen_host(corpus, tmp_path):
    files = untar(corpus / NTM, tmp_path / "files")
    x = np.random.default_rng(6).poisson(0.05, size=(5, 2000)).astype(np.float32)

    for host, member in ((None, "model_algo-1"), (2, "model_algo-2"), ("model_algo-2", "model_algo-2")):
        inner = _unzip(files / member, tmp_path / member)
        sym = mx.sym.load(str(inner / "symbol.json"))
        encoder = gluon.SymbolBlock(sym.get_internals()["mean_output"], [mx.sym.var("data")])
        encoder.collect_params().load(str(inner / "params"), ctx=mx.cpu(), ignore_extra=True)
        m = loaders.load(corpus / NTM, host=host)
        assert m.info["host"] == member and isinstance(m.model, gluon.SymbolBlock)
        np.testing.assert_allclose(m.predict(x), encoder(mx.nd.array(x)).asnumpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ArtifactError, match="model_algo-1, model_algo-2"):
        loaders.load(corpus / NTM, host=3)
    with pytest.raises(NotLoadable, match="needs MXNet"):
        loaders.load(corpus / NTM, backend="numpy")


def test_mxnet_mnist_export_predicts_on_images(corpus, tmp_path):
    files = untar(corpus / MNIST, tmp_path / "files")
    block = _symbol_block(files / "model-symbol.json", ["data"], files / "model-0000.params")
    images = np.random.default_rng(7).random((3, 1, 28, 28)).astype(np.float32)
    expected = block(mx.nd.array(images)).asnumpy()

    m = loaders.load(corpus / MNIST)
    np.testing.assert_allclose(m.predict(images), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.predict(images[0]), expected[:1], rtol=1e-5, atol=1e-5)  # one 1x28x28 image


def test_image_classifier_without_params_names_the_missing_file(corpus):
    with pytest.raises(NotLoadable, match=r"image-classification-NNNN\.params"):
        loaders.load(corpus / "tempe-graffiti-ic")


def _save_params(path: Path, arrays: dict) -> None:
    mx.nd.save(str(path), {f"arg:{k}": mx.nd.array(v) for k, v in arrays.items()})


def test_image_classification_uses_the_latest_epoch(tmp_path):
    """A small classifier in the built-in's layout; the expected output comes from MXNet's symbol executor."""
    data = mx.sym.var("data")
    conv = mx.sym.Convolution(data, num_filter=2, kernel=(3, 3), name="conv0")
    fc = mx.sym.FullyConnected(mx.sym.flatten(mx.sym.relu(conv)), num_hidden=3, name="fc1")
    sym = mx.sym.SoftmaxOutput(fc, name="softmax")
    folder = tmp_path / "ic"
    folder.mkdir()
    sym.save(str(folder / "image-classification-symbol.json"))
    (folder / "model-shapes.json").write_text(json.dumps([{"shape": [4, 3, 8, 8], "name": "data"}]))
    rng = np.random.default_rng(8)
    epochs = {}
    for epoch in (1, 12):
        epochs[epoch] = {"conv0_weight": rng.normal(size=(2, 3, 3, 3)), "conv0_bias": rng.normal(size=2),
                         "fc1_weight": rng.normal(size=(3, 72)), "fc1_bias": rng.normal(size=3)}
        _save_params(folder / f"image-classification-{epoch:04d}.params", epochs[epoch])
    artifact = make_samples.tar_folder(folder, tmp_path / "ic.tar.gz")
    images = rng.random((2, 3, 8, 8))
    args = {k: mx.nd.array(v) for k, v in epochs[12].items()}
    exe = sym.bind(mx.cpu(), {**args, "data": mx.nd.array(images), "softmax_label": mx.nd.zeros(2)})
    expected = exe.forward(is_train=False)[0].asnumpy()

    m = loaders.load(artifact)
    assert m.info["epoch"] == 12 and m.info["params"] == "image-classification-0012.params"
    assert m.info["labels"] == ["softmax_label"]
    np.testing.assert_allclose(m.predict(images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.predict(images[1]), expected[1:], rtol=1e-5, atol=1e-6)


def test_factorization_machines_with_dense_weights_loads_with_its_label_input(tmp_path):
    """model_algo-1 zipped as the built-in writes it (symbol.json, params, meta.json), with a factorization-machine
    graph written here from dense weights (FullyConnected linear term) and ending in a loss layer."""
    d, f = 6, 3
    data, label = mx.sym.var("data"), mx.sym.var("out_label")
    w1, w0, v = mx.sym.var("w1_weight"), mx.sym.var("w0_weight"), mx.sym.var("v")
    linear = mx.sym.FullyConnected(data, weight=w1, bias=w0, num_hidden=1, name="linear")
    pair = 0.5 * mx.sym.sum(mx.sym.square(mx.sym.dot(data, v)) - mx.sym.dot(mx.sym.square(data), mx.sym.square(v)),
                            axis=1, keepdims=True)
    sym = mx.sym.LogisticRegressionOutput(linear + pair, label=label, name="out")
    rng = np.random.default_rng(9)
    weights = {"w1_weight": rng.normal(size=(1, d)), "w0_weight": rng.normal(size=1), "v": rng.normal(size=(d, f))}
    inner = tmp_path / "inner"
    inner.mkdir()
    sym.save(str(inner / "symbol.json"))
    _save_params(inner / "params", weights)
    (inner / "meta.json").write_text(json.dumps({"training_parameters": {"predictor_type": "binary_classifier"}}))
    outer = tmp_path / "outer"
    outer.mkdir()
    with zipfile.ZipFile(outer / "model_algo-1", "w") as zf:
        for name in ("symbol.json", "params", "meta.json"):
            zf.write(inner / name, name)
    artifact = make_samples.tar_folder(outer, tmp_path / "fm.tar.gz")
    x = rng.normal(size=(5, d))
    args = {k: mx.nd.array(a) for k, a in weights.items()}
    exe = sym.bind(mx.cpu(), {**args, "data": mx.nd.array(x), "out_label": mx.nd.zeros((5, 1))})
    expected = exe.forward(is_train=False)[0].asnumpy().ravel()

    for backend in ("mxnet", "numpy"):
        m = loaders.load(artifact, backend=backend)
        assert m.info["algorithm"] == "factorization-machines" and m.info["labels"] == ["out_label"]
        out = m.predict(x)
        np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
        assert out["predicted_label"].tolist() == (expected > 0.5).astype(int).tolist()


# ------------------------------------------------------------------------------------ Factorization Machines
# row_sparse weights and csr data, as the built-in stores them: fixtures written through MXNet's own API by
# scripts/make_mxnet_fixtures.py; expected scores from MXNet's symbol executor running the ORIGINAL sparse graph on
# the stored sparse arrays (and, as a second source, the factorization-machine formula of Rendle's paper).

FM_CORPUS = "sm-fm-recsys/model.tar.gz"


def _fm_files(artifact: Path, dest: Path) -> Path:
    return _unzip(untar(artifact, dest / "outer") / "model_algo-1", dest / "inner")


def _fm_reference(inner: Path, x: np.ndarray) -> np.ndarray:
    """Scores from MXNet itself: the stored graph bound to the stored (row_sparse) weights, csr data."""
    sym = mx.sym.load(str(inner / "symbol.json"))
    args = {mxformat_strip(k): a for k, a in mx.nd.load(str(inner / "params")).items()}
    assert args["v"].stype == "row_sparse"
    exe = sym.bind(mx.cpu(), {**args, "data": mx.nd.array(x).tostype("csr"), "out_label": mx.nd.zeros((len(x), 1))})
    return exe.forward(is_train=False)[0].asnumpy().ravel()


def mxformat_strip(name: str) -> str:
    return name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name


def _fm_formula(inner: Path, x: np.ndarray, link) -> np.ndarray:
    """w0 + x.w + 1/2 sum_f ((xV)_f^2 - sum_i x_i^2 V_if^2) (Rendle, Factorization Machines, ICDM 2010, eq. 5)."""
    arrays = {mxformat_strip(k): a.tostype("default").asnumpy().astype(np.float64)
              for k, a in mx.nd.load(str(inner / "params")).items()}
    w0, w, v = arrays["w0_weight"], arrays["w1_weight"], arrays["v"]
    xv = x @ v
    return link(w0[0] + (x @ w).ravel() + 0.5 * ((xv ** 2).sum(axis=1) - ((x ** 2) @ (v ** 2)).sum(axis=1)))


def _one_hot_pairs(rng, n: int, d: int) -> np.ndarray:
    """Rows like the built-in's training data: a user and an item one-hot column, some with a rating weight."""
    x = np.zeros((n, d))
    x[np.arange(n), rng.integers(0, d // 2, n)] = 1.0
    x[np.arange(n), rng.integers(d // 2, d, n)] = rng.choice([1.0, 2.0], n)
    return x


@pytest.fixture(scope="module")
def fm_fixtures(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("fm")
    return {p: make_mxnet_fixtures.build_factorization_machines(out, p) for p in ("regressor", "binary_classifier")}


@pytest.mark.parametrize("predictor", ["regressor", "binary_classifier"])
def test_factorization_machines_with_row_sparse_weights_match_mxnet(fm_fixtures, tmp_path, predictor):
    artifact = fm_fixtures[predictor]
    inner = _fm_files(artifact, tmp_path)
    assert {a.stype for a in mx.nd.load(str(inner / "params")).values()} == {"row_sparse", "default"}
    x = _one_hot_pairs(np.random.default_rng(10), 200, 40)
    expected = _fm_reference(inner, x)
    sigmoid = (lambda z: 1 / (1 + np.exp(-z))) if predictor == "binary_classifier" else (lambda z: z)
    np.testing.assert_allclose(_fm_formula(inner, x, sigmoid), expected, rtol=1e-5, atol=1e-6)

    for backend in ("mxnet", "numpy"):
        m = loaders.load(artifact, backend=backend)
        assert m.info["backend"] == backend and m.info["predictor_type"] == predictor
        assert m.info["feature_dim"] == 40 and m.info["num_factors"] == 4
        assert isinstance(m.model, gluon.SymbolBlock if backend == "mxnet" else dict)
        out = m.predict(x)
        np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-5, atol=1e-6)
        if predictor == "binary_classifier":
            labels = (expected > 0.5).astype(int)
            assert 0 < labels.sum() < len(labels)  # the rows straddle the threshold
            assert list(out.columns) == ["score", "predicted_label"]
            assert out["predicted_label"].tolist() == labels.tolist()
        else:
            assert list(out.columns) == ["score"]
        scipy_sparse = pytest.importorskip("scipy.sparse")
        sparse_out = m.predict(scipy_sparse.csr_matrix(x[:7]))
        np.testing.assert_allclose(sparse_out["score"].to_numpy(), expected[:7], rtol=1e-5, atol=1e-6)


def test_factorization_machines_corpus_model_loads_with_both_backends(corpus, tmp_path):
    inner = _fm_files(corpus / FM_CORPUS, tmp_path)
    meta = json.loads((inner / "meta.json").read_text())["training_parameters"]
    d = int(meta["feature_dim"])
    x = _one_hot_pairs(np.random.default_rng(11), 64, d)
    expected = _fm_reference(inner, x)

    report = artifact_tools.inspect(corpus / FM_CORPUS)
    assert report.loadable and report.not_loadable_reason is None
    for backend in ("mxnet", "numpy"):
        m = loaders.load(corpus / FM_CORPUS, backend=backend)
        assert (m.info["feature_dim"], m.info["num_factors"]) == (d, int(meta["num_factors"]))
        out = m.predict(x)
        assert list(out.columns) == ["score"]  # a regressor
        np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(m.predict(x[0])["score"].to_numpy(), expected[:1], rtol=1e-5, atol=1e-5)


def test_factorization_machines_default_backend_without_mxnet_is_numpy(fm_fixtures, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["mxnet"] = None  # as if MXNet were not installed
        import loaders
        m = loaders.load({str(fm_fixtures["regressor"])!r})
        assert m.info["backend"] == "numpy", m.info
        print(m.predict(m.sample_input())["score"].shape)
    """)
    env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2,)"


# ------------------------------------------------------------------------------------ several outputs

HEADPOSE = "mxnet-gluon-py2-headpose/model.tar.gz"


def test_gluon_export_with_four_outputs_of_different_widths(corpus, tmp_path):
    """MXNet 1.0.1 export (Python 2 era) with four heads: every output comes back, in the graph's order."""
    files = untar(corpus / HEADPOSE, tmp_path / "files")
    block = _symbol_block(files / "model-symbol.json", ["data"], files / "model-0000.params")
    images = np.random.default_rng(12).random((3, 1, 48, 48)).astype(np.float32)
    expected = [o.asnumpy() for o in block(mx.nd.array(images))]
    assert len(expected) == 4 and len({e.shape[1] for e in expected}) == 4

    m = loaders.load(corpus / HEADPOSE)
    got = m.predict(images)
    assert isinstance(got, list) and len(got) == 4
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    one = m.predict(images[0])  # one 1x48x48 image: the batch axis is added
    assert [o.shape for o in one] == [(1, e.shape[1]) for e in expected]


# ------------------------------------------------------------------------------------ sample inputs

def _corpus_lines(corpus: Path) -> list[tuple[str, str, str]]:
    out = []
    for table in ("EXPECTED.tsv", "EXPECTED-wild.tsv"):
        path = corpus / table
        if path.is_file():
            for line in path.read_text().splitlines()[1:]:
                entry, file, framework = line.split("\t")[:3]
                out.append((entry, file, framework))
    return out


def _corpus_artifact(corpus: Path, entry: str, file: str) -> Path:
    return corpus / entry if file.startswith("(") else corpus / entry / file.split(",")[0].strip()


def _expected_width(corpus: Path, entry: str, tmp: Path) -> tuple:
    """The input's shape after the batch axis, read with MXNet from the artifact's own files."""
    artifact = _corpus_artifact(corpus, entry, next(f for e, f, _ in _corpus_lines(corpus) if e == entry))
    files = untar(artifact, tmp / "files") if artifact.is_file() else artifact
    if (files / "model-shapes.json").is_file():
        return tuple(json.loads((files / "model-shapes.json").read_text())[0]["shape"][1:])
    if (files / "model_algo-1").is_file() and zipfile.is_zipfile(files / "model_algo-1"):
        inner = _unzip(files / "model_algo-1", tmp / "inner")
        params = next(p for p in inner.iterdir() if p.name == "params" or p.suffix == ".params")
        arrays = {mxformat_strip(k): a for k, a in mx.nd.load(str(params)).items()}
        if "fc0_weight" in arrays:  # Linear Learner: dot(data, fc0_weight)
            return (arrays["fc0_weight"].shape[0],)
        meta = json.loads((inner / "meta.json").read_text())["training_parameters"]
        return (int(meta["feature_dim"]),)  # Factorization Machines, NTM
    if (files / "model_algo-1").is_file():
        stored = mx.nd.load(str(files / "model_algo-1"))
        return (stored["v"].shape[0],) if isinstance(stored, dict) else (stored[0].shape[1],)  # PCA, k-means
    sym = mx.sym.load(str(next(files.glob("*-symbol.json"))))  # an MLP export: its first layer's weight
    first = next(n for n in sym.list_arguments() if n.endswith("_weight"))
    return (mx.nd.load(str(next(files.glob("*.params"))))[f"arg:{first}"].shape[1],)


def test_sample_input_of_every_loadable_mxnet_corpus_entry(corpus, tmp_path):
    """Every MXNet entry of the corpus tables that inspects as loadable loads, builds a sample from its own metadata
    with the width that metadata states, and predicts on it; every other one is refused with its reason."""
    seen = []
    for entry, file, framework in _corpus_lines(corpus):
        if framework != "mxnet":
            continue
        artifact = _corpus_artifact(corpus, entry, file)
        report = artifact_tools.inspect(artifact)
        if not report.loadable:
            assert report.not_loadable_reason, entry
            with pytest.raises(NotLoadable):
                loaders.load(artifact)
            continue
        m = loaders.load(artifact)
        sample = m.sample_input()
        assert isinstance(sample, np.ndarray) and sample.dtype == np.float32, entry
        assert sample.shape[1:] == _expected_width(corpus, entry, tmp_path / entry), entry
        out = m.predict(sample)
        rows = out if isinstance(out, list) else [out]
        assert all(len(o) == len(sample) for o in rows), entry
        seen.append(entry)
    assert {"sm-fm-recsys", "mxnet-gluon-py2-headpose", "sdk-mxnet-mnist", "cookbook-ll"} <= set(seen)


def test_sample_input_of_exports_without_shapes_file(tmp_path):
    """A convolutional Gluon export without model-shapes.json: the channel count comes from the weights, the
    image size is the smallest MXNet's shape inference accepts with them, and MXNet runs it."""
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Conv2D(4, kernel_size=3, in_channels=3, activation="relu"), gluon.nn.MaxPool2D(),
            gluon.nn.Flatten(), gluon.nn.Dense(5))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.ones((1, 3, 12, 12)))
    folder = tmp_path / "conv"
    folder.mkdir()
    net.export(str(folder / "model"), epoch=0)
    artifact = make_samples.tar_folder(folder, tmp_path / "conv.tar.gz")
    m = loaders.load(artifact)
    sample = m.sample_input()
    assert sample.shape[:2] == (1, 3) and sample.shape[2] == sample.shape[3]
    expected = net(mx.nd.array(sample)).asnumpy()  # the original network accepts it and agrees
    np.testing.assert_allclose(m.predict(sample), expected, rtol=1e-5, atol=1e-6)
    # and the size is the one the Dense layer's stored weight fixes: 4 x ((s - 2) // 2)^2 inputs
    assert 4 * ((sample.shape[2] - 2) // 2) ** 2 == net[3].weight.shape[1]


def test_params_without_symbol_is_refused_with_a_sentence(tmp_path):
    net = gluon.nn.Dense(2, in_units=3)
    net.initialize()
    folder = tmp_path / "weights-only"
    folder.mkdir()
    net.save_parameters(str(folder / "model.params"))
    artifact = make_samples.tar_folder(folder, tmp_path / "weights-only.tar.gz")
    with pytest.raises(NotLoadable, match="without a symbol graph"):
        loaders.load(artifact)


def test_a_plain_folder_is_never_written_to(corpus, tmp_path):
    folder = untar(corpus / LL_COOKBOOK, tmp_path / "folder")
    before = sorted(p.name for p in folder.rglob("*"))
    m = loaders.load(folder, backend="numpy")
    assert sorted(p.name for p in folder.rglob("*")) == before
    assert m.predict(np.ones((2, 1)))["score"].shape == (2,)


def test_unknown_options_are_refused(corpus):
    with pytest.raises(ArtifactError, match="unknown option"):
        loaders.load(corpus / PCA, signature="serving_default")
    with pytest.raises(ArtifactError, match="backend must be"):
        loaders.load(corpus / PCA, backend="torch")
