"""SageMaker built-in artifacts identified and summarized, checked against MXNet, FAISS and the files' own JSON."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import CorruptArtifact
from artifact_tools.filetree import DirTree, MappingTree
from artifact_tools.formats import sagemaker_builtins as sb

from helpers import tar_members

mx = pytest.importorskip("mxnet")

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# What each corpus entry is, as its EXPECTED.tsv line says.
EXPECTED_ALGORITHM = {
    "cookbook-ll": ("model.tar.gz", "linear-learner", "mxnet"),
    "ex-ll-adult": ("ll-adult-prediction-model.tar.gz", "linear-learner", "mxnet"),
    "covid-ntm": ("downloaded_model.tar.gz", "ntm", "mxnet"),
    "movies-kmeans-a": ("model.tar.gz", "kmeans", "mxnet"),
    "plagiarism-pca": ("model.tar.gz", "pca", "mxnet"),
    "cookbook-knn": ("model.tar.gz", "knn", "sagemaker-builtin"),
    "tweetsage-blazingtext": ("model.tar.gz", "blazingtext", "sagemaker-builtin"),
    "sm-fm-recsys": ("model.tar.gz", "factorization-machines", "mxnet"),
}
NOT_BUILTIN = [
    ("sdk-mxnet-mnist", "model.tar.gz"),
    ("cookbook-r.custom", "model.tar.gz"),
    ("sdk-pytorch-mnist", "model.tar.gz"),
    ("sdk-pytorch-mnist", "packed_model.tar.gz"),
]


def _tree(corpus, entry: str, tar: str) -> MappingTree:
    return MappingTree(tar_members(corpus / entry / tar))


def _zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _mx_load(data: bytes) -> dict:
    loaded = mx.nd.load_frombuffer(data)
    return {k.split(":", 1)[-1]: v for k, v in loaded.items()} if isinstance(loaded, dict) else loaded


@pytest.mark.parametrize("entry", sorted(EXPECTED_ALGORITHM))
def test_corpus_algorithm(corpus, entry):
    tar, algorithm, framework = EXPECTED_ALGORITHM[entry]
    result = sb.identify(_tree(corpus, entry, tar))
    assert result["algorithm"] == algorithm
    assert result["framework"] == framework
    assert result["not_loadable_reason"] is None  # every one of them loads (tests/test_load_*.py)
    json.dumps(result)


@pytest.mark.parametrize("entry,tar", NOT_BUILTIN)
def test_corpus_not_builtin(corpus, entry, tar):
    assert sb.identify(_tree(corpus, entry, tar)) is None


@pytest.mark.parametrize("entry", ["cookbook-ll", "ex-ll-adult"])
def test_linear_learner_facts(corpus, entry):
    tar = EXPECTED_ALGORITHM[entry][0]
    members = tar_members(corpus / entry / tar)
    inner = _zip(members["model_algo-1"])
    extra = json.loads(inner["additional-params.json"])
    weight = _mx_load(inner["mx-mod-0000.params"])["fc0_weight"]
    result = sb.identify(MappingTree(members))
    assert result["hosts"] == ["model_algo-1"]
    assert result["predictor_type"] == extra["predictor_type"]
    assert result["threshold"] == extra["threshold"]
    assert result["feature_dim"] == weight.shape[0]
    assert result["num_outputs"] == weight.shape[1]
    sym = mx.sym.load_json(inner["mx-mod-symbol.json"].decode())
    stored = _mx_load(inner["mx-mod-0000.params"])
    assert result["symbol"]["labels"] == [a for a in sym.list_arguments() if a not in stored and a != "data"]
    if extra["predictor_type"] == "binary_classifier":
        assert result["num_classes"] == 2


def test_ntm_two_hosts(corpus):
    members = tar_members(corpus / "covid-ntm" / "downloaded_model.tar.gz")
    result = sb.identify(MappingTree(members))
    assert result["hosts"] == sorted(members)
    inner = _zip(members["model_algo-1"])
    meta = json.loads(inner["meta.json"])["training_parameters"]
    projection = _mx_load(inner["params"])["projection_weight"]
    assert result["num_topics"] == int(meta["num_topics"]) == projection.shape[1]
    assert result["vocab_size"] == int(meta["feature_dim"]) == projection.shape[0]
    assert {p["name"] for p in result["params"]} == {"arg:" + k for k in _mx_load(inner["params"])}


def test_kmeans_facts(corpus):
    members = tar_members(corpus / "movies-kmeans-a" / "model.tar.gz")
    (centroids,) = _mx_load(members["model_algo-1"])
    result = sb.identify(MappingTree(members))
    assert (result["k"], result["dim"]) == centroids.shape
    assert result["hosts"] == ["model_algo-1"]
    assert result["state_files"] == [n for n in members if n.startswith("state_")]


def test_pca_facts(corpus):
    members = tar_members(corpus / "plagiarism-pca" / "model.tar.gz")
    arrays = _mx_load(members["model_algo-1"])
    result = sb.identify(MappingTree(members))
    assert result["num_components"] == arrays["s"].shape[0] == arrays["v"].shape[1]
    assert result["feature_dim"] == arrays["v"].shape[0] == arrays["mean"].shape[1]
    assert result["subtracts_mean"] is True


def test_knn_facts(corpus):
    members = tar_members(corpus / "cookbook-knn" / "model.tar.gz")
    meta = json.loads(members["model_algo-1.json"])
    labels = np.load(io.BytesIO(members["model_algo-1-labels.npy"]), allow_pickle=False)
    result = sb.identify(MappingTree(members))
    assert result["k"] == meta["k"]
    assert result["predictor_type"] == meta["predictor_type"]
    assert result["dimension"] == meta["dimension_reduction"]["input_dim"]
    assert result["labels"] == {"shape": list(labels.shape), "dtype": str(labels.dtype)}
    assert result["row_count"] == labels.shape[0]
    faiss = pytest.importorskip("faiss")
    index = faiss.deserialize_index(np.frombuffer(members["model_algo-1"], dtype=np.uint8))
    assert (result["dimension"], result["row_count"]) == (index.d, index.ntotal)
    assert result["index_type"] == type(index).__name__


def test_blazingtext_facts(corpus):
    members = tar_members(corpus / "tweetsage-blazingtext" / "model.tar.gz")
    count, dim = map(int, members["vectors.txt"].split(b"\n", 1)[0].split())
    result = sb.identify(MappingTree(members))
    assert (result["vocab_size"], result["dim"]) == (count, dim)
    assert result["text_vectors"] == {"file": "vectors.txt", "count": count, "dim": dim}
    assert result["files"] == ["vectors.bin", "vectors.txt"]


def test_image_classification_without_params(corpus):
    root = corpus / "tempe-graffiti-ic"
    result = sb.identify(DirTree(root))
    assert result["algorithm"] == "image-classification"
    assert result["epoch"] is None
    assert result["missing_params"].startswith("image-classification-") and result["missing_params"].endswith(".params")
    assert result["missing_params"] in result["not_loadable_reason"]
    shapes = json.loads((root / "model-shapes.json").read_bytes())
    assert result["input_shape"] == shapes[0]["shape"][1:]
    sym = mx.sym.load(str(root / "image-classification-symbol.json"))
    _, out_shapes, _ = sym.infer_shape(data=tuple(shapes[0]["shape"]))
    assert result["num_classes"] == out_shapes[0][1]
    assert result["num_layers"] in (18, 34, 50, 101, 152, 200)  # the depths SageMaker offers for ResNet
    assert result["symbol"]["inputs"] == ["data"]


def test_image_classification_with_params(corpus, tmp_path):
    """The same layout with the epoch's params present: the epoch is read from the file name."""
    root = corpus / "tempe-graffiti-ic"
    files = {n: (root / n).read_bytes() for n in ("image-classification-symbol.json", "model-shapes.json")}
    arrays = {"arg:fc_weight": mx.nd.ones((2, 2048)), "arg:fc_bias": mx.nd.zeros((2,))}
    mx.nd.save(str(tmp_path / "p.params"), arrays)
    files["image-classification-0017.params"] = (tmp_path / "p.params").read_bytes()
    result = sb.identify(MappingTree(files))
    assert result["epoch"] == 17 and result["missing_params"] is None
    assert {p["name"]: p["shape"] for p in result["params"]} == {k: list(v.shape) for k, v in arrays.items()}


def test_factorization_machines(tmp_path):
    """An FM ``model_algo-1`` as documented (symbol.json + params with v, w1_weight, w0_weight), built by MXNet."""
    feature_dim, factors = 6, 3
    data, label = mx.sym.var("data"), mx.sym.var("out_label")
    v, w1, w0 = mx.sym.var("v"), mx.sym.var("w1_weight"), mx.sym.var("w0_weight")
    linear = mx.sym.broadcast_add(mx.sym.dot(data, w1), w0)
    interactions = mx.sym.square(mx.sym.dot(data, v)) - mx.sym.dot(mx.sym.square(data), mx.sym.square(v))
    pairwise = 0.5 * mx.sym.sum(interactions, axis=1, keepdims=True)
    out = mx.sym.LogisticRegressionOutput(linear + pairwise, label)
    params = {
        "arg:v": mx.nd.ones((feature_dim, factors)),
        "arg:w1_weight": mx.nd.ones((feature_dim, 1)),
        "arg:w0_weight": mx.nd.ones((1,)),
    }
    mx.nd.save(str(tmp_path / "params"), params)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("symbol.json", out.tojson())
        z.writestr("params", (tmp_path / "params").read_bytes())
    result = sb.identify(MappingTree({"model_algo-1": buf.getvalue()}))
    assert result["algorithm"] == "factorization-machines"
    assert (result["feature_dim"], result["num_factors"]) == params["arg:v"].shape
    assert result["predictor_type"] == "binary_classifier"
    assert result["symbol"]["inputs"] == ["data"] and result["symbol"]["labels"] == ["out_label"]


def test_factorization_machines_corpus_facts(corpus):
    """The real FM built-in (row_sparse v and w1_weight): feature_dim and factors from the stored shapes."""
    members = tar_members(corpus / "sm-fm-recsys" / "model.tar.gz")
    inner = _zip(members["model_algo-1"])
    meta = json.loads(inner["meta.json"])["training_parameters"]
    arrays = _mx_load(inner["params"])
    assert arrays["v"].stype == arrays["w1_weight"].stype == "row_sparse"
    result = sb.identify(MappingTree(members))
    assert result["algorithm"] == "factorization-machines" and result["hosts"] == ["model_algo-1"]
    assert (result["feature_dim"], result["num_factors"]) == arrays["v"].shape
    assert (result["feature_dim"], result["num_factors"]) == (int(meta["feature_dim"]), int(meta["num_factors"]))
    assert result["predictor_type"] == meta["predictor_type"] == "regressor"
    storage = {p["name"]: p["storage"] for p in result["params"]}
    assert storage == {"arg:" + k: a.stype for k, a in arrays.items()}
    assert result["not_loadable_reason"] is None


@pytest.mark.parametrize("predictor", ["regressor", "binary_classifier"])
def test_factorization_machines_fixture_facts(tmp_path, predictor):
    """The FM fixture scripts/make_mxnet_fixtures.py writes through MXNet, identified like the real one."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import make_mxnet_fixtures

    artifact = make_mxnet_fixtures.build_factorization_machines(tmp_path, predictor, feature_dim=30, num_factors=5)
    members = tar_members(artifact)
    arrays = _mx_load(_zip(members["model_algo-1"])["params"])
    result = sb.identify(MappingTree(members))
    assert result["algorithm"] == "factorization-machines"
    assert (result["feature_dim"], result["num_factors"]) == arrays["v"].shape == (30, 5)
    assert result["predictor_type"] == predictor
    assert [p["storage"] for p in result["params"]] == ["row_sparse", "default", "row_sparse"]


def test_factorization_machines_without_linear_terms(tmp_path):
    """use_linear=false leaves w1_weight out; meta.json's num_factors still says FM."""
    v = mx.sym.var("v")
    pair = mx.sym.sum(mx.sym.square(mx.sym.dot(mx.sym.var("data"), v)), axis=1, keepdims=True)
    out = mx.sym.LinearRegressionOutput(pair, mx.sym.var("out_label"))
    mx.nd.save(str(tmp_path / "params"), {"arg:v": mx.nd.ones((7, 2)), "arg:w0_weight": mx.nd.ones((1,))})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("symbol.json", out.tojson())
        z.writestr("params", (tmp_path / "params").read_bytes())
        z.writestr("meta.json", json.dumps({"training_parameters": {"num_factors": "2", "use_linear": "false"}}))
    result = sb.identify(MappingTree({"model_algo-1": buf.getvalue()}))
    assert result["algorithm"] == "factorization-machines"
    assert (result["feature_dim"], result["num_factors"], result["predictor_type"]) == (7, 2, "regressor")


def test_not_loadable_reasons_are_one_sentence():
    cases = [
        {"algorithm": "knn", "files": ["model_algo-1", "model_algo-1.json"]},
        {"algorithm": "knn", "files": ["m", "m-labels.npy"], "index_type": "IndexIVFFlat", "metric": "L2"},
        {"algorithm": "knn", "files": ["m", "m-labels.npy"], "index_type": "IndexFlatL2", "metric": "L1"},
        {"algorithm": "knn", "files": ["m", "m-labels.npy"], "index_type": "IndexFlatL2", "metric": "L2",
         "dimension_reduction": {"type": "sign"}},
        {"algorithm": "blazingtext", "nlabels": 2},
        {"algorithm": "ntm", "symbol": {"layers": ["encoder"]}},
        {"algorithm": "image-classification", "missing_params": "x-NNNN.params"},
    ]
    for facts in cases:
        reason = sb.not_loadable_reason(facts)
        assert reason and "\n" not in reason and not reason.endswith("."), facts
    assert sb.not_loadable_reason({"algorithm": "knn", "files": ["m", "m-labels.npy"], "index_type": "IndexFlatIP",
                                   "metric": "INNER_PRODUCT", "dimension_reduction": {"type": "identity"}}) is None


def test_members_listed_without_content_are_skipped():
    assert sb.identify(MappingTree({}, sizes={"model_algo-1": 100})) is None


@pytest.fixture(scope="module")
def kmeans_members(corpus) -> dict[str, bytes]:
    return tar_members(corpus / "movies-kmeans-a" / "model.tar.gz")


@FAST
@given(cut=st.integers(min_value=16, max_value=10_000))
def test_truncated_kmeans_raises_corrupt(kmeans_members, cut):
    data = kmeans_members["model_algo-1"]
    with pytest.raises(CorruptArtifact):
        sb.identify(MappingTree({"model_algo-1": data[: 16 + cut % (len(data) - 16)]}))


@pytest.fixture(scope="module")
def ll_members(corpus) -> dict[str, bytes]:
    return tar_members(corpus / "cookbook-ll" / "model.tar.gz")


@FAST
@given(pos=st.integers(min_value=0, max_value=100_000), value=st.integers(min_value=0, max_value=255))
def test_flipped_linear_learner_is_read_or_rejected(ll_members, pos, value):
    data = bytearray(ll_members["model_algo-1"])
    data[pos % len(data)] = value
    try:
        result = sb.identify(MappingTree({"model_algo-1": bytes(data)}))
    except CorruptArtifact:
        return
    json.dumps(result)
