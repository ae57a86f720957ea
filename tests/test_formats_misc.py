"""FAISS, fastText, R RDS and torch.save readers against the real libraries and the artifacts' own companion files."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import CorruptArtifact, NotLoadable
from artifact_tools.filetree import ZipTree
from artifact_tools.formats import faiss as faissf
from artifact_tools.formats import fasttext as ftf
from artifact_tools.formats import rds, torch_zip

from helpers import ShortBytes, tar_members

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _flip(data: bytes, pos: int, value: int) -> bytes:
    out = bytearray(data)
    out[pos % len(out)] = value
    return bytes(out)


# --- FAISS --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def knn_index(corpus) -> bytes:
    return tar_members(corpus / "cookbook-knn" / "model.tar.gz")["model_algo-1"]


def test_corpus_faiss_index(knn_index):
    faiss = pytest.importorskip("faiss")
    index = faiss.deserialize_index(np.frombuffer(knn_index, dtype=np.uint8))
    header = faissf.read_header(knn_index)
    assert (header["d"], header["ntotal"], header["is_trained"]) == (index.d, index.ntotal, index.is_trained)
    assert header["index_type"] == type(index).__name__
    assert header["metric_type"] == "L2" and index.metric_type == faiss.METRIC_L2
    np.testing.assert_array_equal(faissf.read_flat_vectors(knn_index), index.reconstruct_n(0, index.ntotal))


def _serialized(index) -> bytes:
    import faiss

    return faiss.serialize_index(index).tobytes()


def test_indexes_built_by_faiss():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    xb = rng.normal(size=(200, 8)).astype(np.float32)
    flat_ip = faiss.IndexFlatIP(8)
    flat_ip.add(xb)
    l1 = faiss.IndexFlat(8, faiss.METRIC_L1)
    l1.add(xb[:5])
    lp = faiss.IndexFlat(8, faiss.METRIC_Lp)
    lp.metric_arg = 3.0
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatL2(8), 8, 4)
    ivf.train(xb)
    ivf.add(xb)
    ivf.nprobe = 3
    hnsw = faiss.IndexHNSWFlat(8, 16)
    hnsw.add(xb[:20])
    for index in (flat_ip, l1, lp, ivf, hnsw):
        data = _serialized(index)
        header = faissf.read_header(data)
        assert faissf.is_index(data[:4])
        assert header["index_type"] == type(index).__name__
        assert (header["d"], header["ntotal"], header["is_trained"]) == (index.d, index.ntotal, index.is_trained)
        metric = {
            faiss.METRIC_INNER_PRODUCT: "INNER_PRODUCT",
            faiss.METRIC_L2: "L2",
            faiss.METRIC_L1: "L1",
            faiss.METRIC_Lp: "Lp",
        }
        assert header["metric_type"] == metric[index.metric_type]
    assert faissf.read_header(_serialized(lp))["metric_arg"] == 3.0
    assert (faissf.read_header(_serialized(ivf))["nlist"], faissf.read_header(_serialized(ivf))["nprobe"]) == (4, 3)
    np.testing.assert_array_equal(faissf.read_flat_vectors(_serialized(flat_ip)), xb)
    with pytest.raises(CorruptArtifact):
        faissf.read_flat_vectors(_serialized(ivf))


@FAST
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_faiss_raises_corrupt(knn_index, cut):
    with pytest.raises(CorruptArtifact):
        faissf.read_flat_vectors(knn_index[: cut % len(knn_index)])


@FAST
@given(pos=st.integers(min_value=0, max_value=100), value=st.integers(min_value=0, max_value=255))
def test_flipped_faiss_is_read_or_rejected(knn_index, pos, value):
    try:
        vectors = faissf.read_flat_vectors(_flip(knn_index, pos, value))
    except CorruptArtifact:
        return
    assert vectors.dtype == np.float32


# --- fastText -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blazingtext(corpus) -> dict[str, bytes]:
    return tar_members(corpus / "tweetsage-blazingtext" / "model.tar.gz")


def test_fasttext_binary_matches_text_vectors(blazingtext):
    binary, text = blazingtext["vectors.bin"], blazingtext["vectors.txt"]
    first_line = text.split(b"\n", 1)[0].split()
    header = ftf.read_header(binary)
    assert ftf.is_model(binary[:8])
    assert (header["vocab_size"], header["dim"]) == (int(first_line[0]), int(first_line[1]))
    assert ftf.read_text_header(text) == (header["vocab_size"], header["dim"])
    assert header["input_matrix"] == {"rows": header["vocab_size"] + header["args"]["bucket"], "cols": header["dim"]}
    words, vectors = ftf.word_vectors(binary)
    text_words, text_vectors = ftf.read_text_vectors(text)
    # the text file, parsed here independently of the module
    lines = text.decode().splitlines()[1:]
    assert words == text_words == [line.split(" ")[0] for line in lines]
    expected = np.array([[float(x) for x in line.split()[1:]] for line in lines], dtype=np.float32)
    np.testing.assert_array_equal(text_vectors, expected)
    np.testing.assert_allclose(vectors, expected, rtol=1e-4, atol=1e-5)  # the text keeps 5 significant digits
    assert header["words_sample"] == words[: len(header["words_sample"])]


@pytest.fixture(scope="module")
def fasttext_models(tmp_path_factory) -> dict:
    """Tiny models trained by fastText itself: skipgram with subwords, cbow without, supervised, quantized."""
    fasttext = pytest.importorskip("fasttext")
    root = tmp_path_factory.mktemp("fasttext")
    rng = np.random.default_rng(0)
    vocab = "le chat été über naïve 日本 voiture rouge bleu maison".split()
    (root / "text.txt").write_text("\n".join(" ".join(rng.choice(vocab, 8)) for _ in range(200)), encoding="utf-8")
    (root / "labeled.txt").write_text(
        # 260 labels: fastText quantizes an output matrix only from 256 rows on
        "\n".join(f"__label__c{i % 260} " + " ".join(rng.choice(vocab, 6)) for i in range(520)), encoding="utf-8"
    )
    common = dict(epoch=1, minCount=1, thread=1, verbose=0)
    models = {
        "skipgram": fasttext.train_unsupervised(
            str(root / "text.txt"), model="skipgram", dim=8, minn=2, maxn=4, bucket=1000, **common
        ),
        "cbow": fasttext.train_unsupervised(str(root / "text.txt"), model="cbow", dim=5, maxn=0, **common),
        "supervised": fasttext.train_supervised(str(root / "labeled.txt"), dim=4, wordNgrams=2, bucket=500, **common),
    }
    out = {}
    for name, model in models.items():
        model.save_model(str(root / f"{name}.bin"))
        out[name] = (model, ShortBytes((root / f"{name}.bin").read_bytes()))
    quantized = fasttext.load_model(str(root / "supervised.bin"))
    quantized.quantize(input=str(root / "labeled.txt"), qnorm=True, qout=True, retrain=False, dsub=2)
    quantized.save_model(str(root / "supervised.ftz"))
    out["quantized"] = (quantized, ShortBytes((root / "supervised.ftz").read_bytes()))
    return out


@pytest.mark.parametrize("name", ["skipgram", "cbow", "supervised"])
def test_fasttext_models_match_fasttext(fasttext_models, name):
    model, data = fasttext_models[name]
    header = ftf.read_header(data)
    assert header["model"] == name
    assert header["dim"] == model.get_dimension()
    assert header["labels"] == (model.labels if name == "supervised" else [])
    words, vectors = ftf.word_vectors(data)
    assert words == model.words
    np.testing.assert_allclose(vectors, np.array([model.get_word_vector(w) for w in words]), rtol=1e-5, atol=1e-6)
    assert header["input_matrix"] == dict(zip(("rows", "cols"), model.get_input_matrix().shape))
    assert header["output_matrix"] == dict(zip(("rows", "cols"), model.get_output_matrix().shape))


def test_fasttext_quantized_model(fasttext_models):
    model, data = fasttext_models["quantized"]
    header = ftf.read_header(data)
    assert header["quantized"] is True and header["model"] == "supervised"
    assert header["labels"] == model.labels and header["vocab_size"] == len(model.words)
    with pytest.raises(NotLoadable):
        ftf.word_vectors(data)
    for cut in range(0, len(data), 97):
        with pytest.raises(CorruptArtifact):
            ftf.read_header(data[:cut])


@FAST
@given(cut=st.integers(min_value=0, max_value=200_000))
def test_truncated_fasttext_raises_corrupt(blazingtext, cut):
    data = blazingtext["vectors.bin"]
    with pytest.raises(CorruptArtifact):
        ftf.word_vectors(data[: cut % len(data)])


@FAST
@given(pos=st.integers(min_value=0, max_value=3000), value=st.integers(min_value=0, max_value=255))
def test_flipped_fasttext_is_read_or_rejected(blazingtext, pos, value):
    try:
        ftf.read_header(_flip(blazingtext["vectors.bin"], pos, value))
    except CorruptArtifact:
        pass


# --- R RDS --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def r_model(corpus) -> bytes:
    return tar_members(corpus / "cookbook-r.custom" / "model.tar.gz")["model"]


def _rdata_facts(raw: bytes) -> dict:
    """Class, names and header of an RDS stream, read with the independent ``rdata`` package."""
    rdata = pytest.importorskip("rdata")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = rdata.parser.parse_data(raw)

    def deref(x):
        while x is not None and x.info.type.name == "REF":
            x = x.referenced_object
        return x

    attrs, node = {}, parsed.object.attributes
    while node is not None and node.info.type.name == "LIST":
        value = deref(node.value[0])
        if value.info.type.name == "STR":
            attrs[deref(node.tag).value.value.decode()] = [s.value.decode() for s in value.value]
        node = node.value[1]
    version = parsed.versions.serialized
    return {
        "class": attrs.get("class"),
        "names": attrs.get("names"),
        "r_version": f"{version >> 16}.{(version >> 8) & 255}.{version & 255}",
        "version": parsed.versions.format,
        "native_encoding": parsed.extra.encoding,
        "is_object": parsed.object.info.object,
    }


def test_rds_matches_rdata(r_model):
    raw = gzip.decompress(r_model)
    expected = _rdata_facts(raw)
    variants = ((r_model, "gzip"), (bz2.compress(raw), "bzip2"), (lzma.compress(raw), "xz"), (raw, "none"))
    for data, compression in variants:
        summary = rds.summarize(data)
        assert summary["compression"] == compression
        assert summary["serialization"] == "xdr"
        for key, value in expected.items():
            assert summary[key] == value, key
    assert summary["class"] == ["lm"]  # EXPECTED.tsv: an R linear model


def test_not_rds():
    with pytest.raises(CorruptArtifact):
        rds.summarize(gzip.compress(b"hello world"))


@FAST
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_rds_raises_corrupt(r_model, cut):
    raw = gzip.decompress(r_model)
    with pytest.raises(CorruptArtifact):
        rds.summarize(raw[: cut % len(raw)])


@FAST
@given(pos=st.integers(min_value=0, max_value=10_000), value=st.integers(min_value=0, max_value=255))
def test_flipped_rds_is_read_or_rejected(r_model, pos, value):
    try:
        rds.summarize(_flip(gzip.decompress(r_model), pos, value))
    except CorruptArtifact:
        pass


# --- torch.save ---------------------------------------------------------------------------------------


def _torch_facts(path_or_bytes) -> dict:
    torch = pytest.importorskip("torch")
    src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    state = torch.load(src, weights_only=True)
    return {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}


def _summary_facts(summary: dict) -> dict:
    return {t["name"]: (t["shape"], t["dtype"]) for t in summary["tensors"]}


@pytest.mark.parametrize("tar", ["model.tar.gz", "packed_model.tar.gz"])
def test_corpus_pth_matches_torch(corpus, tar):
    data = tar_members(corpus / "sdk-pytorch-mnist" / tar)["model.pth"]
    summary = torch_zip.summarize(data)
    assert summary["format"] == "torch-legacy" and torch_zip.is_legacy(data)
    assert not torch_zip.is_torch_zip(data)
    assert _summary_facts(summary) == _torch_facts(data)
    state = pytest.importorskip("torch").load(io.BytesIO(data), weights_only=True)
    for t in summary["tensors"]:  # the storage offsets point at the tensors' bytes
        storage = summary["storages"][t["storage"]]
        raw = np.frombuffer(data, dtype="<f4", count=storage["numel"], offset=storage["offset"])
        np.testing.assert_array_equal(raw.reshape(t["shape"]), state[t["name"]].numpy())
    assert summary["missing_storages"] == []


@pytest.fixture(scope="module")
def tiny_module():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(), torch.nn.Linear(8, 3).to(torch.bfloat16)
    )


@pytest.mark.parametrize("zipfile_format", [True, False])
def test_saved_state_dict_matches_torch(tmp_path, tiny_module, zipfile_format):
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.pt"
    state = dict(tiny_module.state_dict(), half=torch.arange(3, dtype=torch.float16), flags=torch.tensor([True]))
    torch.save(state, path, _use_new_zipfile_serialization=zipfile_format)
    data = path.read_bytes()
    summary = torch_zip.summarize(data)
    assert summary["format"] == ("torch-zip" if zipfile_format else "torch-legacy")
    assert torch_zip.is_torch_zip(data) is zipfile_format
    assert _summary_facts(summary) == _torch_facts(data)
    if zipfile_format:
        tree = ZipTree(data)
        assert torch_zip.is_torch_zip(tree) and torch_zip.summarize(tree) == summary
        assert summary["byteorder"] == "little" and summary["archive"] == "m"
        for key, storage in summary["storages"].items():
            assert storage["nbytes"] == tree.size(f"m/data/{key}")


def test_whole_module_and_torchscript(tmp_path, tiny_module):
    torch = pytest.importorskip("torch")
    expected = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in tiny_module.state_dict().items()}
    torch.save(tiny_module, tmp_path / "whole.pt")
    whole = torch_zip.summarize((tmp_path / "whole.pt").read_bytes())
    assert whole["object"] == "torch.nn.modules.container.Sequential"
    assert sorted(v for v in _summary_facts(whole).values()) == sorted(expected.values())
    assert "torch.nn.modules.conv.Conv2d" in whole["globals"]
    torch.jit.save(torch.jit.script(tiny_module), tmp_path / "script.pt")
    script = torch_zip.summarize((tmp_path / "script.pt").read_bytes())
    assert script["torchscript"] is True
    assert _summary_facts(script) == expected


class _Hostile:
    def __reduce__(self):
        import os

        return (os.system, ("touch should-not-exist",))


def test_pickled_code_is_named_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"x": _Hostile()}, protocol=2))
        z.writestr("evil/version", "3\n")
    summary = torch_zip.summarize(buf.getvalue())
    assert not (tmp_path / "should-not-exist").exists()
    assert any(g.endswith(".system") for g in summary["globals"])
    assert summary["tensors"] == []


def test_not_torch():
    with pytest.raises(CorruptArtifact):
        torch_zip.summarize(b"\x80\x02}q\x00.")
    assert not torch_zip.is_torch_zip(b"PK\x03\x04 not really a zip")


@pytest.fixture(scope="module")
def legacy_pth(corpus) -> bytes:
    return tar_members(corpus / "sdk-pytorch-mnist" / "model.tar.gz")["model.pth"]


@FAST
@given(cut=st.integers(min_value=0, max_value=100_000))
def test_truncated_torch_raises_corrupt(legacy_pth, cut):
    with pytest.raises(CorruptArtifact):
        torch_zip.summarize(legacy_pth[: cut % len(legacy_pth)])


@FAST
@given(pos=st.integers(min_value=0, max_value=1400), value=st.integers(min_value=0, max_value=255))
def test_flipped_torch_is_read_or_rejected(legacy_pth, pos, value):
    try:
        torch_zip.summarize(_flip(legacy_pth, pos, value))
    except CorruptArtifact:
        pass
