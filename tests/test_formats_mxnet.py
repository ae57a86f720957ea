"""The native MXNet readers against MXNet itself, on the corpus and on files MXNet writes during the test."""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import CorruptArtifact, NotLoadable
from artifact_tools.formats import mxnet as mxf

from helpers import ShortBytes, tar_members

mx = pytest.importorskip("mxnet")

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def _mx_arrays(data: bytes) -> dict[str, np.ndarray]:
    loaded = mx.nd.load_frombuffer(data)
    if isinstance(loaded, list):
        loaded = {str(i): a for i, a in enumerate(loaded)}
    return {k: (v.tostype("default") if v.stype != "default" else v).asnumpy() for k, v in loaded.items()}


def _assert_same_as_mxnet(data: bytes) -> None:
    expected = _mx_arrays(data)
    got = mxf.load_arrays(data)
    assert list(got) == list(expected)
    for name, ref in expected.items():
        assert got[name].dtype == ref.dtype, name
        assert got[name].shape == ref.shape, name
        np.testing.assert_array_equal(got[name], ref)
    infos = mxf.read_params(data)
    assert [tuple(p.shape) for p in infos] == [ref.shape for ref in expected.values()]
    assert [p.dtype for p in infos] == [str(ref.dtype) for ref in expected.values()]
    for p, ref in zip(infos, expected.values()):  # offset/nbytes locate exactly the array's bytes
        if p.storage == "default":
            assert data[p.offset : p.offset + p.nbytes] == ref.astype(ref.dtype.newbyteorder("<")).tobytes()


def _corpus_params(corpus) -> dict[str, bytes]:
    out = {}
    for entry, tar in [("cookbook-ll", "model.tar.gz"), ("ex-ll-adult", "ll-adult-prediction-model.tar.gz")]:
        inner = _zip_members(tar_members(corpus / entry / tar)["model_algo-1"])
        out[entry] = inner["mx-mod-0000.params"]
    for host, data in tar_members(corpus / "covid-ntm" / "downloaded_model.tar.gz").items():
        out[f"covid-ntm/{host}"] = _zip_members(data)["params"]
    for name, data in tar_members(corpus / "movies-kmeans-a" / "model.tar.gz").items():
        out[f"movies-kmeans-a/{name}"] = data
    out["plagiarism-pca"] = tar_members(corpus / "plagiarism-pca" / "model.tar.gz")["model_algo-1"]
    out["sdk-mxnet-mnist"] = tar_members(corpus / "sdk-mxnet-mnist" / "model.tar.gz")["model-0000.params"]
    out["sm-fm-recsys"] = _zip_members(tar_members(corpus / "sm-fm-recsys" / "model.tar.gz")["model_algo-1"])["params"]
    return out


def test_corpus_params_match_mxnet(corpus):
    params = _corpus_params(corpus)
    assert len(params) == 9
    for name, data in params.items():
        assert mxf.is_params(data[:16]), name
        _assert_same_as_mxnet(data)


def test_corpus_row_sparse_factorization_machines_params(corpus):
    """The FM built-in stores v and w1_weight row_sparse: read as data, located exactly, equal to MXNet's."""
    data = _corpus_params(corpus)["sm-fm-recsys"]
    loaded = mx.nd.load_frombuffer(data)
    infos = {p.name: p for p in mxf.read_params(data)}
    assert {k: a.stype for k, a in loaded.items()} == {k: p.storage for k, p in infos.items()}
    for name in ("arg:v", "arg:w1_weight"):
        ref, info = loaded[name], infos[name]
        assert info.storage == "row_sparse" and info.shape == ref.shape
        assert info.storage_shape == ref.data.shape
        values = ref.data.asnumpy()
        assert data[info.offset: info.offset + values.nbytes] == values.astype("<f4").tobytes()
        (rows,) = info.aux
        assert rows.shape == ref.indices.shape
        assert data[rows.offset: rows.offset + 8 * rows.shape[0]] == ref.indices.asnumpy().astype("<i8").tobytes()


def test_export_files_choose_the_pair_or_say_why_not():
    assert mxf.export_files(["m-symbol.json"], ["m-0002.params", "m-0010.params"]) == mxf.ExportFiles(
        "m-symbol.json", "m-0010.params")
    assert mxf.export_files(["m-symbol.json"], ["weights.params"]).params == "weights.params"
    cases = [
        (["m-symbol.json"], [], "no .params file next to m-symbol.json"),
        ([], ["net.params"], "net.params holds weights without a symbol graph"),
        (["m-symbol.json"], ["a.params", "b.params"], "cannot tell which of a.params, b.params"),
    ]
    for symbols, params, reason in cases:
        chosen = mxf.export_files(symbols, params)
        assert chosen.reason.startswith(reason) and chosen.reason.count(".") >= 1
        assert chosen.symbol is None or chosen.params is None


def _fits_mxnet(symbol_json: bytes, params: bytes, name: str, shape: list, size: int) -> bool:
    """MXNet's own shape inference, for ``shape`` with its free dimensions set to ``size`` (the batch to 2), gives
    every stored parameter its stored shape."""
    sym = mx.sym.load_json(symbol_json.decode())
    trial = tuple(2 if i == 0 else (size if d is None else d) for i, d in enumerate(shape))
    try:
        args, _, aux = sym.infer_shape_partial(**{name: trial})
    except mx.base.MXNetError:
        return False
    inferred = dict(zip(sym.list_arguments() + sym.list_auxiliary_states(), list(args) + list(aux)))
    stored = {mxf.strip_prefix(k): v.shape for k, v in mx.nd.load_frombuffer(params).items()}
    return all(inferred[k] == v for k, v in stored.items() if k in inferred)


def test_data_input_shapes_agree_with_mxnet_shape_inference(corpus, tmp_path):
    ll = _zip_members(tar_members(corpus / "cookbook-ll" / "model.tar.gz")["model_algo-1"])
    adult = _zip_members(tar_members(corpus / "ex-ll-adult" / "ll-adult-prediction-model.tar.gz")["model_algo-1"])
    fm = _zip_members(tar_members(corpus / "sm-fm-recsys" / "model.tar.gz")["model_algo-1"])
    mnist = tar_members(corpus / "sdk-mxnet-mnist" / "model.tar.gz")
    conv_symbol, conv_params = _small_net(tmp_path)
    cases = [
        (ll["mx-mod-symbol.json"], ll["mx-mod-0000.params"], 2),
        (adult["mx-mod-symbol.json"], adult["mx-mod-0000.params"], 2),
        (fm["symbol.json"], fm["params"], 2),
        (mnist["model-symbol.json"], mnist["model-0000.params"], 2),
        (conv_symbol, conv_params, 4),
    ]
    for symbol_json, params, rank in cases:
        stored = {p.name: p.shape for p in mxf.read_params(params)}
        shape = mxf.data_input_shapes(symbol_json, stored, ["data"])["data"]
        assert shape is not None and len(shape) == rank and shape[0] is None
        free = [d for d in shape[1:] if d is None]
        sizes = [8] if free else [1]  # _small_net was built on 8 x 8 images
        assert any(_fits_mxnet(symbol_json, params, "data", shape, s) for s in sizes)
    assert mxf.data_input_shapes(conv_symbol, {}, ["data", "nothing"]) == {"data": None, "nothing": None}


def test_arrays_saved_by_mxnet(tmp_path):
    arrays = {
        "arg:f32": mx.nd.array(np.random.default_rng(0).normal(size=(3, 4, 5)), dtype="float32"),
        "arg:f16": mx.nd.array([[1.5, -2.25]], dtype="float16"),
        "aux:f64": mx.nd.array([np.pi], dtype="float64"),
        "i32": mx.nd.array(np.arange(12).reshape(2, 2, 3), dtype="int32"),
        "i64": mx.nd.array([[-(2**40), 7]], dtype="int64"),
        "i8": mx.nd.array([-128, 0, 127], dtype="int8"),
        "u8": mx.nd.array([[[255]]], dtype="uint8"),
        "bool": mx.nd.array([1, 0, 1], dtype="bool"),
        "rows": mx.nd.array([[0, 0], [1, 2], [0, 0], [3, 4]]).tostype("row_sparse"),
        "csr": mx.nd.array([[0, 5, 0], [0, 0, 0], [7, 0, 1]]).tostype("csr"),
    }
    mx.nd.save(str(tmp_path / "named.params"), arrays)
    data = (tmp_path / "named.params").read_bytes()
    _assert_same_as_mxnet(data)
    storages = {p.name: p.storage for p in mxf.read_params(data)}
    assert storages["rows"] == "row_sparse" and storages["csr"] == "csr" and storages["i32"] == "default"

    mx.nd.save(str(tmp_path / "unnamed.params"), [arrays["arg:f32"], arrays["i8"]])
    unnamed = (tmp_path / "unnamed.params").read_bytes()
    _assert_same_as_mxnet(unnamed)
    assert [p.name for p in mxf.read_params(unnamed)] == [None, None]


def test_bfloat16_is_widened_to_float32(tmp_path):
    bf16 = np.dtype([("bfloat16", np.uint16)])  # how MXNet 1.x spells its bfloat16 dtype
    values = mx.nd.amp_cast(mx.nd.array([1.5, -2.25, 1e20, 3.0]), dtype=bf16)
    mx.nd.save(str(tmp_path / "bf16.params"), {"w": values})
    data = (tmp_path / "bf16.params").read_bytes()
    (info,) = mxf.read_params(data)
    assert info.dtype == "bfloat16"
    expected = mx.nd.load(str(tmp_path / "bf16.params"))["w"].astype("float32").asnumpy()
    np.testing.assert_array_equal(mxf.load_arrays(data)["w"], expected)


def test_numpy_shape_semantics_v3(tmp_path):
    from mxnet import np as mnp
    from mxnet import npx

    npx.set_np()
    try:
        npx.save(str(tmp_path / "np.params"), {"scalar": mnp.array(3.0), "empty": mnp.ones((2, 0)), "m": mnp.eye(3)})
        expected = {k: v.asnumpy() for k, v in npx.load(str(tmp_path / "np.params")).items()}
    finally:
        npx.reset_np()
    data = (tmp_path / "np.params").read_bytes()
    assert {p.format for p in mxf.read_params(data)} == {"v3"}
    got = mxf.load_arrays(data)
    for name, ref in expected.items():
        assert got[name].shape == ref.shape
        np.testing.assert_array_equal(got[name], ref)


def _ndarray_list(records: list[bytes], names: list[str]) -> bytes:
    out = struct.pack("<QQQ", 0x112, 0, len(records)) + b"".join(records) + struct.pack("<Q", len(names))
    return out + b"".join(struct.pack("<Q", len(n)) + n.encode() for n in names)


def test_hand_written_records_match_mxnet():
    """Legacy (uint32 shape), V1 (int64 shape, no storage type) and odd sparse records, as MXNet reads them."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([7, 8, 9], dtype=np.int32)
    legacy = struct.pack("<I2I", 2, 2, 3) + struct.pack("<ii", 1, 0) + struct.pack("<i", 0) + a.tobytes()
    v1 = struct.pack("<Ii1q", mxf.V1_MAGIC, 1, 3) + struct.pack("<ii", 1, 0) + struct.pack("<i", 4) + b.tobytes()
    # a V2 row_sparse record whose storage shape was saved empty, (0, 2): MXNet derives it from the row indices
    values, rows = np.array([[1, 2], [3, 4]], dtype=np.float32), np.array([1, 3], dtype=np.int64)
    sparse = (
        struct.pack("<Ii", mxf.V2_MAGIC, 1)
        + struct.pack("<i2q", 2, 0, 2)  # storage shape
        + struct.pack("<i2q", 2, 4, 2)  # shape
        + struct.pack("<iii", 1, 0, 0)  # context, float32
        + struct.pack("<ii1q", 6, 1, 2)  # aux 0: int64, shape (2,)
        + values.tobytes()
        + rows.tobytes()
    )
    data = _ndarray_list([legacy, v1, sparse], ["a", "b", "c"])
    _assert_same_as_mxnet(data)
    assert [p.format for p in mxf.read_params(data)] == ["legacy", "v1", "v2"]


def _small_net(tmp_path):
    from mxnet import gluon

    net = gluon.nn.HybridSequential()
    with net.name_scope():
        net.add(gluon.nn.Conv2D(4, kernel_size=3, activation="relu"))
        net.add(gluon.nn.BatchNorm())
        net.add(gluon.nn.Flatten())
        net.add(gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.ones((1, 1, 8, 8)))
    net.export(str(tmp_path / "net"), epoch=7)
    return (tmp_path / "net-symbol.json").read_bytes(), (tmp_path / "net-0007.params").read_bytes()


def test_gluon_export(tmp_path):
    symbol_json, params = _small_net(tmp_path)
    _assert_same_as_mxnet(params)
    names = [p.name for p in mxf.read_params(params)]
    assert all(n.startswith(("arg:", "aux:")) for n in names)
    assert mxf.is_symbol_json(symbol_json)

    sym = mx.sym.load_json(symbol_json.decode())
    expected_params = set(sym.list_arguments()) - {"data"} | set(sym.list_auxiliary_states())
    assert {mxf.strip_prefix(n) for n in names} == expected_params
    for param_names in (names, None):  # with the params file, and from the graph alone
        summary = mxf.summarize_symbol(symbol_json, param_names)
        assert summary["inputs"] == ["data"]
        assert set(summary["parameters"]) == expected_params
        assert [o["name"] + "_output" for o in summary["outputs"]] == sym.list_outputs()
        assert summary["mxnet_version"] == mx.__version__
    internals = json.loads(sym.tojson())["nodes"]
    assert sum(summary["ops"].values()) == sum(1 for n in internals if n["op"] != "null")
    json.dumps(summary)


def test_corpus_symbols(corpus):
    ll = _zip_members(tar_members(corpus / "cookbook-ll" / "model.tar.gz")["model_algo-1"])
    ntm = _zip_members(tar_members(corpus / "covid-ntm" / "downloaded_model.tar.gz")["model_algo-1"])
    mnist = tar_members(corpus / "sdk-mxnet-mnist" / "model.tar.gz")
    ic = (corpus / "tempe-graffiti-ic" / "image-classification-symbol.json").read_bytes()
    cases = [
        (ll["mx-mod-symbol.json"], ll["mx-mod-0000.params"]),
        (ntm["symbol.json"], ntm["params"]),
        (mnist["model-symbol.json"], mnist["model-0000.params"]),
        (ic, None),
    ]
    for symbol_json, params in cases:
        sym = mx.sym.load_json(symbol_json.decode())
        param_names = [p.name for p in mxf.read_params(params)] if params else None
        summary = mxf.summarize_symbol(symbol_json, param_names)
        json.dumps(summary)
        variables = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
        assert set(summary["inputs"]) | set(summary["labels"]) | set(summary["parameters"]) == variables
        if params:  # every argument MXNet needs that the params file lacks is a data input or a label
            stored = {mxf.strip_prefix(n) for n in param_names}
            assert set(summary["inputs"]) | set(summary["labels"]) == variables - stored
        assert [o["name"] + "_output" for o in summary["outputs"]] == sym.list_outputs()
    assert not mxf.is_symbol_json(ll["manifest.json"])
    assert not mxf.is_symbol_json(b"\x00garbage")


def test_graph_heuristic_matches_params_file_on_corpus(corpus):
    ntm = _zip_members(tar_members(corpus / "covid-ntm" / "downloaded_model.tar.gz")["model_algo-1"])
    with_file = mxf.summarize_symbol(ntm["symbol.json"], [p.name for p in mxf.read_params(ntm["params"])])
    from_graph = mxf.summarize_symbol(ntm["symbol.json"])
    assert with_file["parameters_from"] == "params file" and from_graph["parameters_from"] == "graph"
    assert set(with_file["parameters"]) == set(from_graph["parameters"])
    assert with_file["inputs"] == from_graph["inputs"]


def test_is_params():
    assert mxf.is_params(struct.pack("<QQ", 0x112, 0))
    assert not mxf.is_params(struct.pack("<QQ", 0x113, 0))
    assert not mxf.is_params(b"\x12\x01")


@pytest.fixture(scope="module")
def saved_params(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("p") / "x.params"
    mx.nd.save(
        str(path),
        {
            "arg:w": mx.nd.array(np.ones((3, 2))),
            "aux:m": mx.nd.array([1, 2], dtype="int64"),
            "csr": mx.nd.array([[0, 1], [2, 0]]).tostype("csr"),
            "rsp": mx.nd.array([[0, 0], [1, 1]]).tostype("row_sparse"),
        },
    )
    return ShortBytes(path.read_bytes())


@FAST
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_params_raise_corrupt(saved_params, cut):
    cut %= len(saved_params)
    with pytest.raises(CorruptArtifact):
        mxf.read_params(saved_params[:cut])


@FAST
@given(pos=st.integers(min_value=0, max_value=10_000), value=st.integers(min_value=0, max_value=255))
def test_flipped_params_are_read_or_rejected(saved_params, pos, value):
    data = bytearray(saved_params)
    data[pos % len(data)] = value
    try:
        arrays = mxf.load_arrays(bytes(data))
    except CorruptArtifact:
        return
    except NotLoadable:  # a flipped dense shape of a sparse array can claim a matrix too large to densify
        return
    assert all(isinstance(a, np.ndarray) for a in arrays.values())


@FAST
@given(pos=st.integers(min_value=0, max_value=10_000), value=st.integers(min_value=0, max_value=255))
def test_flipped_symbol_is_read_or_rejected(pos, value):
    symbol = json.dumps(
        {
            "nodes": [
                {"op": "null", "name": "data", "inputs": []},
                {"op": "null", "name": "w", "inputs": []},
                {"op": "FullyConnected", "name": "fc", "attrs": {"num_hidden": "2"}, "inputs": [[0, 0, 0], [1, 0, 0]]},
            ],
            "arg_nodes": [0, 1],
            "heads": [[2, 0, 0]],
        }
    ).encode()
    data = bytearray(symbol)
    data[pos % len(data)] = value
    try:
        summary = mxf.summarize_symbol(bytes(data))
    except CorruptArtifact:
        return
    json.dumps(summary)
