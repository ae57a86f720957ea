"""ONNX, LightGBM, CatBoost, Triton config.pbtxt, MLflow MLmodel, PMML and Neuron/Neo readers (issue 11), and the
ONNX / LightGBM / CatBoost loaders.

Every fixture is built here with the real writers (skl2onnx and onnx.helper, LightGBM, CatBoost, nyoka,
PyYAML's ``safe_dump`` as MLflow calls it, protobuf's own text format writer with Triton's ModelConfig, torch);
every fact a reader reports is checked against the writer's or an independent reader's own API (onnx / onnxruntime,
``Booster``, ``CatBoost`` getters, PyYAML, ``google.protobuf.text_format``, ``xml.etree``), and every loader
predicts exactly what the framework's own loaded model predicts.
"""

from __future__ import annotations

import json
import math
import random
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotAnArtifact, NotLoadable, UnsafeArtifact
from artifact_tools.formats import catboost as cbf
from artifact_tools.formats import lightgbm as lgf
from artifact_tools.formats import mlflow_model as mlf
from artifact_tools.formats import neuron, pmml, triton
from artifact_tools.formats import onnx as onf
from artifact_tools.report import ModelInfo, Report

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
RNG = np.random.default_rng(11)
RANDOM_4K = np.random.default_rng(5).bytes(4096)


def _report(root: Path, entries: list[tuple[str, str, dict]]) -> Report:
    """The report inspection gives for these model files (the project's own Report, filled by the readers)."""
    return Report(source=str(root), container="directory", models=[ModelInfo(p, f, s) for p, f, s in entries])


def _outcome(fn, data):
    """A reader's result on damaged bytes: its summary, or the ArtifactError it raised (any other exception fails)."""
    try:
        return fn(data)
    except (CorruptArtifact, NotAnArtifact) as e:
        return e


# ============================================================================================== ONNX

@pytest.fixture(scope="module")
def tabular():
    X = RNG.normal(size=(120, 4)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture(scope="module")
def onnx_models(tabular):
    """skl2onnx conversions (ZipMap on and off) and an onnx.helper graph with an If, symbolic dims, a sparse
    initializer and metadata."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = tabular
    lr = to_onnx(LogisticRegression().fit(X, y), X[:1])
    rf = to_onnx(RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, y), X[:1],
                 options={"zipmap": False})
    one = numpy_helper.from_array(np.ones((1, 3), np.float32), "one")
    then = helper.make_graph([helper.make_node("Add", ["h", "one"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)], [one])
    other = helper.make_graph([helper.make_node("Sub", ["h", "b"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["h"]),
        helper.make_node("If", ["flag"], ["z"], then_branch=then, else_branch=other),
        helper.make_node("Relu", ["z"], ["out"]),
    ]
    sparse = helper.make_sparse_tensor(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "S"),
                                       numpy_helper.from_array(np.array([0, 5], np.int64), "S_idx"), [2, 3])
    graph = helper.make_graph(
        nodes, "hand-made",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [4, 3])],  # an initializer as input (IR < 4 style)
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", None])],
        [numpy_helper.from_array(RNG.normal(size=(4, 3)).astype(np.float32), "W"),
         numpy_helper.from_array(np.zeros(3, np.float32), "b")],
        sparse_initializer=[sparse],
    )
    hand = helper.make_model(graph, producer_name="tests", producer_version="1.0", model_version=7,
                             opset_imports=[helper.make_opsetid("", 17)])
    onnx.helper.set_model_props(hand, {"author": "artifact-tools", "task": "regression"})
    return {"lr": lr, "rf": rf, "hand": hand}


def _onnx_op(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def _onnx_nested(graph) -> Counter:
    out: Counter = Counter()
    for n in graph.node:
        for a in n.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                out.update(_onnx_op(x) for x in g.node)
                out.update(_onnx_nested(g))
    return out


def _onnx_value(v, ort_types: dict) -> dict:
    import onnx

    t = v.type
    elem = shape = None
    if t.HasField("tensor_type"):
        elem = onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)
        if t.tensor_type.HasField("shape"):
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.tensor_type.shape.dim]
    return {"name": v.name, "type": ort_types[v.name], "elem_type": elem, "shape": shape}


@pytest.mark.parametrize("which", ["lr", "rf", "hand"])
def test_onnx_summary_matches_onnx_and_onnxruntime(onnx_models, which):
    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(onnx_models[which].SerializeToString())
    data = model.SerializeToString()
    s = onf.summarize(data)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    types = {a.name: a.type for a in [*session.get_inputs(), *session.get_outputs()]}
    g = model.graph
    init_names = {t.name for t in g.initializer} | {s.values.name for s in g.sparse_initializer}
    assert s["ir_version"] == model.ir_version
    assert s["opsets"] == {o.domain: o.version for o in model.opset_import}
    assert (s["producer_name"], s["producer_version"], s["model_version"]) == (
        model.producer_name, model.producer_version, model.model_version)
    assert s["inputs"] == [_onnx_value(v, types) for v in g.input if v.name not in init_names]
    assert [i["name"] for i in s["inputs"]] == [a.name for a in session.get_inputs()]
    assert s["outputs"] == [_onnx_value(v, types) for v in g.output]
    assert s["op_counts"] == dict(Counter(_onnx_op(n) for n in g.node))
    assert s["subgraph_op_counts"] == dict(_onnx_nested(g))
    assert s["initializer_count"] == len(g.initializer)
    assert s["sparse_initializer_count"] == len(g.sparse_initializer)
    assert s["parameter_count"] == sum(int(np.prod(t.dims)) for t in g.initializer) + sum(
        int(np.prod(x.values.dims)) for x in g.sparse_initializer)
    assert s["metadata"] == {p.key: p.value for p in model.metadata_props}
    assert s["external_data"] == [] and onf.is_onnx(data[:64]) and onf.is_onnx(data)


def test_onnx_external_data_and_loader(onnx_models, tabular, tmp_path):
    import onnx
    import onnxruntime as ort

    from loaders import onnx as onnx_loader

    X, _ = tabular
    model = onnx.load_from_string(onnx_models["hand"].SerializeToString())
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    data = (folder / "model.onnx").read_bytes()
    s = onf.summarize(data)
    stored = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    external = [t for t in stored.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    assert s["external_data"] == ["weights.bin"] and s["external_tensor_count"] == len(external) > 0

    feeds = {"x": X, "flag": np.array(True)}
    expected = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    loaded = onnx_loader.load(folder, _report(folder, [("model.onnx", "onnx", s)]))
    assert np.array_equal(loaded.predict(feeds), expected[0])
    assert loaded.info["inputs"][0] == {"name": "x", "type": "tensor(float)", "shape": ["batch", 4]}

    (folder / "weights.bin").unlink()
    with pytest.raises(NotLoadable, match="weights.bin"):
        onnx_loader.load(folder, None)
    for bad in ("../outside.bin", "/etc/passwd"):
        for t in external:
            for e in t.external_data:
                if e.key == "location":
                    e.value = bad
        (folder / "model.onnx").write_bytes(stored.SerializeToString())
        assert onf.summarize((folder / "model.onnx").read_bytes())["external_data"] == [bad]
        with pytest.raises(UnsafeArtifact):
            onnx_loader.load(folder, None)


def test_onnx_loader_predicts_what_onnxruntime_predicts(onnx_models, tabular, tmp_path):
    import onnxruntime as ort

    from loaders import onnx as onnx_loader

    X, _ = tabular
    (tmp_path / "model.onnx").write_bytes(onnx_models["lr"].SerializeToString())
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {"X": X})
    s = onf.summarize((tmp_path / "model.onnx").read_bytes())
    for report in (_report(tmp_path, [("model.onnx", "onnx", s)]), None):
        loaded = onnx_loader.load(tmp_path, report)
        out = loaded.predict(X)
        assert list(out) == [o.name for o in session.get_outputs()]
        assert np.array_equal(out["output_label"], label) and out["output_probability"] == probabilities
        assert np.array_equal(loaded.predict(pd.DataFrame(X.astype(np.float64)))["output_label"], label)
        assert np.array_equal(loaded.predict(X[3].tolist())["output_label"], label[3:4])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "other.onnx").write_bytes(onnx_models["rf"].SerializeToString())
    with pytest.raises(ArtifactError, match="2 ONNX model files"):
        onnx_loader.load(tmp_path, None)
    rf = onnx_loader.load(tmp_path, None, member="sub/other.onnx")
    expected = ort.InferenceSession(str(tmp_path / "sub" / "other.onnx")).run(None, {"X": X})
    assert all(np.array_equal(a, b) for a, b in zip(rf.predict({"X": X}).values(), expected))
    with pytest.raises(ArtifactError, match="unknown option"):
        onnx_loader.load(tmp_path, None, member="model.onnx", providers="cuda")
    (tmp_path / "model.onnx").write_bytes(onnx_models["lr"].SerializeToString()[:-9])
    with pytest.raises(CorruptArtifact):
        onnx_loader.load(tmp_path, None, member="model.onnx")


def test_onnx_is_onnx_refuses_other_protobufs_and_formats(onnx_models):
    from onnx import numpy_helper

    model = onnx_models["hand"]
    assert not onf.is_onnx(numpy_helper.from_array(np.ones((3, 4), np.float32), "t").SerializeToString())
    assert not onf.is_onnx(model.graph.SerializeToString())
    assert not onf.is_onnx(RANDOM_4K)
    assert not onf.is_onnx(b"tree\nversion=v4\n") and not onf.is_onnx(b"CBM1\x10\x00\x00\x00")
    # a TensorFlow SavedModel starts 08 01 12 <len> 0a (schema version 1, meta_graphs, meta_info_def)
    assert not onf.is_onnx(b"\x08\x01\x12\x20\x0a\x1e\x0a\x05serve" + bytes(30))


def test_onnx_damage_is_corrupt_artifact(onnx_models):
    from onnx import TensorProto, helper

    data = onnx_models["rf"].SerializeToString()
    for cut in (3, 40, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptArtifact):
            onf.summarize(data[:cut])
    with pytest.raises(CorruptArtifact):
        onf.summarize(RANDOM_4K)
    with pytest.raises(NotAnArtifact):
        onf.summarize(b"")
    # If inside If, 25 deep (75 nested messages): bounded, refused
    inner = helper.make_graph([helper.make_node("Identity", ["v"], ["o"])], "g", [],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    leaf = inner
    for _ in range(25):  # only the then-branch nests (both would double the model at each level)
        node = helper.make_node("If", ["c"], ["o"], then_branch=inner, else_branch=leaf)
        inner = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    deep = helper.make_model(helper.make_graph([helper.make_node("If", ["c"], ["o"], then_branch=inner,
                                                                 else_branch=leaf)], "top",
                                               [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)]))
    with pytest.raises(CorruptArtifact, match="deep"):
        onf.summarize(deep.SerializeToString())


@FAST
@given(pos=st.integers(0, 10**6), value=st.integers(0, 255), cut=st.integers(0, 10**6))
def test_onnx_mutations_never_escape(onnx_models, pos, value, cut):
    data = bytearray(onnx_models["rf"].SerializeToString())
    data[pos % len(data)] = value
    result = _outcome(onf.summarize, bytes(data[: max(1, cut % (len(data) + 1))]))
    assert isinstance(result, (dict, CorruptArtifact, NotAnArtifact))


# ========================================================================================== LightGBM

@pytest.fixture(scope="module")
def lgb_models():
    import lightgbm as lgb

    X = pd.DataFrame(RNG.normal(size=(300, 5)), columns=["age", "income", "score", "height", "weight"])
    X["city"] = pd.Categorical(RNG.choice(["paris", "oslo", "lima", "rome"], 300))
    y3 = RNG.integers(0, 3, 300)
    yb = (X["age"] + (X["city"] == "oslo") > 0.2).astype(int)
    common = {"verbose": -1, "min_data_in_leaf": 5}
    return {
        "binary": lgb.train({**common, "objective": "binary", "num_leaves": 9}, lgb.Dataset(X, yb), 6),
        "multiclass": lgb.train({**common, "objective": "multiclass", "num_class": 3, "max_depth": 3},
                                lgb.Dataset(X.drop(columns="city").to_numpy(), y3), 4),
        "rf-linear": lgb.train({**common, "objective": "regression", "boosting": "rf", "bagging_freq": 1,
                                "bagging_fraction": 0.6, "linear_tree": True},
                               lgb.Dataset(X.drop(columns="city").to_numpy(), X["age"].to_numpy()), 3),
    }, X


def _lgb_depth(node: dict) -> int:
    return 0 if "split_index" not in node else 1 + max(_lgb_depth(node["left_child"]), _lgb_depth(node["right_child"]))


@pytest.mark.parametrize("which", ["binary", "multiclass", "rf-linear"])
def test_lightgbm_summary_matches_booster(lgb_models, which):
    import lightgbm as lgb

    text = lgb_models[0][which].model_to_string()
    booster = lgb.Booster(model_str=text)
    dump = booster.dump_model()
    s = lgf.summarize(text.encode())
    assert lgf.is_lightgbm(text.encode()[:64])
    assert s["trees"] == booster.num_trees() == len(dump["tree_info"])
    assert s["iterations"] == booster.current_iteration()
    assert s["feature_names"] == booster.feature_name() and s["feature_count"] == booster.num_feature()
    assert s["num_class"] == dump["num_class"] and s["num_tree_per_iteration"] == dump["num_tree_per_iteration"]
    assert s["max_feature_idx"] == dump["max_feature_idx"] and s["label_index"] == dump["label_index"]
    assert [s["objective"], *s["objective_params"]] == dump["objective"].split()
    assert s["version"] == dump["version"]
    assert s["max_depth"] == max(_lgb_depth(t["tree_structure"]) for t in dump["tree_info"])
    assert s["max_leaves"] == max(t["num_leaves"] for t in dump["tree_info"])
    assert s["categorical_features"] == [n for n, info in dump["feature_infos"].items() if info.get("values")]
    assert s["pandas_categorical"] == booster.pandas_categorical
    assert s["average_output"] == (booster.params.get("boosting") == "rf")
    assert s["linear_trees"] == bool(booster.params.get("linear_tree", False))
    assert s["parameters"]["objective"] == dump["objective"].split()[0]


def test_lightgbm_damage_is_corrupt_artifact(lgb_models):
    text = lgb_models[0]["binary"].model_to_string()
    end = text.index("end of trees")
    for cut in (10, len(text) // 3, end - 5):
        with pytest.raises(CorruptArtifact):
            lgf.summarize(text[:cut].encode())
    cycle = text.replace("left_child=1 ", "left_child=0 ", 1)
    assert cycle != text
    with pytest.raises(CorruptArtifact, match="twice|repeated"):
        lgf.summarize(cycle.encode())
    with pytest.raises(CorruptArtifact):
        lgf.summarize(text.replace("num_leaves=", "num_leaves=x", 1).encode())
    with pytest.raises(CorruptArtifact):
        lgf.summarize(RANDOM_4K)
    assert not lgf.is_lightgbm(RANDOM_4K) and not lgf.is_lightgbm(b"tree\n\nversion=v4")


@FAST
@given(pos=st.integers(0, 10**6), value=st.sampled_from(b"0123456789-=\n x."))
def test_lightgbm_mutations_never_escape(lgb_models, pos, value):
    data = bytearray(lgb_models[0]["binary"].model_to_string().encode())
    data[pos % len(data)] = value
    assert isinstance(_outcome(lgf.summarize, bytes(data)), (dict, CorruptArtifact, NotAnArtifact))


def test_lightgbm_loader_predicts_what_lightgbm_predicts(lgb_models, tmp_path):
    import lightgbm as lgb

    from loaders import lightgbm as lgb_loader

    models, X = lgb_models
    models["binary"].save_model(str(tmp_path / "model.txt"))
    s = lgf.summarize((tmp_path / "model.txt").read_bytes())
    own = lgb.Booster(model_file=str(tmp_path / "model.txt"))
    loaded = lgb_loader.load(tmp_path, _report(tmp_path, [("model.txt", "lightgbm", s)]))
    assert np.array_equal(loaded.predict(X), own.predict(X))
    assert np.array_equal(loaded.predict(X[list(reversed(X.columns))]), own.predict(X))  # columns by name
    assert loaded.info["feature_names"] == own.feature_name() and loaded.info["categorical_features"] == ["city"]
    models["multiclass"].save_model(str(tmp_path / "model.txt"))
    rows = X.drop(columns="city").to_numpy()
    own = lgb.Booster(model_file=str(tmp_path / "model.txt"))
    loaded = lgb_loader.load(tmp_path, None)
    assert np.array_equal(loaded.predict(rows), own.predict(rows))
    assert np.array_equal(loaded.predict(rows[0].tolist()), own.predict(rows[:1]))
    with pytest.raises(ArtifactError, match="unknown option"):
        lgb_loader.load(tmp_path, None, num_threads=2)
    (tmp_path / "model.txt").write_text(own.model_to_string()[:2000])
    with pytest.raises(CorruptArtifact):
        lgb_loader.load(tmp_path, None, member="model.txt")


# ========================================================================================== CatBoost

@pytest.fixture(scope="module")
def cb_models(tmp_path_factory):
    import catboost as cb

    folder = tmp_path_factory.mktemp("catboost")
    X = pd.DataFrame(RNG.normal(size=(200, 4)), columns=["a", "b", "c", "d"])
    X["colour"] = RNG.choice(["red", "green", "blue"], 200)
    X["note"] = RNG.choice(["good day", "bad day", "so so day"], 200)
    y3 = RNG.integers(0, 3, 200)
    yb = (X["a"] > 0).astype(int)
    kw = {"verbose": 0, "allow_writing_files": False, "random_seed": 0, "thread_count": 1}
    built = {
        "binary-text": (cb.CatBoostClassifier(iterations=4, depth=4, **kw), X, yb,
                        {"cat_features": ["colour"], "text_features": ["note"]}),
        "multiclass": (cb.CatBoostClassifier(iterations=3, depth=3, **kw), X.drop(columns="note"), y3,
                       {"cat_features": ["colour"]}),
        "regressor": (cb.CatBoostRegressor(iterations=3, depth=2, **kw), X[["a", "b", "c"]].to_numpy(),
                      X["b"].to_numpy(), {}),
        "lossguide": (cb.CatBoostRegressor(iterations=3, grow_policy="Lossguide", max_leaves=6, **kw),
                      X[["a", "b"]], X["a"].to_numpy(), {}),
    }
    out = {}
    for name, (model, data, target, fit) in built.items():
        model.fit(data, target, **fit)
        path = folder / f"{name}.cbm"
        model.save_model(str(path))
        out[name] = (path, data)
    return out


@pytest.mark.parametrize("which", ["binary-text", "multiclass", "regressor", "lossguide"])
def test_catboost_summary_matches_catboost(cb_models, which):
    import catboost as cb

    path, _ = cb_models[which]
    model = cb.CatBoost().load_model(str(path))
    s = cbf.summarize(path.read_bytes())
    assert cbf.is_catboost(path.read_bytes()[:8])
    meta = dict(model.get_metadata())
    params = model.get_all_params()
    leaf_counts = list(model.get_tree_leaf_counts())
    assert s["trees"] == model.tree_count_ == len(leaf_counts)
    assert s["feature_names"] == model.feature_names_
    assert s["cat_feature_indices"] == list(model.get_cat_feature_indices())
    assert [f["flat_index"] for f in s["text_features"]] == list(model.get_text_feature_indices())
    others = {*model.get_cat_feature_indices(), *model.get_text_feature_indices(),
              *model.get_embedding_feature_indices()}
    assert sorted(f["flat_index"] for f in s["float_features"]) == sorted(
        set(range(len(model.feature_names_))) - others)
    borders = model.get_borders()
    assert {f["flat_index"]: f["borders"] for f in s["float_features"] if f["borders"]} == {
        k: len(v) for k, v in borders.items() if v}
    assert s["loss_function"] == params["loss_function"].split(":")[0]
    assert s["info_keys"] == sorted(meta) and s["model_guid"] == meta["model_guid"]
    assert s["train_finish_time"] == meta["train_finish_time"]
    assert s["leaf_count"] == sum(leaf_counts) * max(s["approx_dimension"], 1)
    if s["symmetric_trees"]:
        assert s["max_depth"] == max(int(math.log2(n)) for n in leaf_counts)
    else:
        assert params["grow_policy"] != "SymmetricTree" and s["max_depth"] is None
    if s["model_kind"] == "classifier":
        assert s["class_names"] == list(cb.CatBoostClassifier().load_model(str(path)).classes_)
        assert s["approx_dimension"] == (len(s["class_names"]) if len(s["class_names"]) > 2 else 1)
    assert s["catboost_version"] == cb.__version__
    if which == "binary-text":  # text features bring their text processing model part
        assert any(p.startswith("text_process") for p in s["model_parts"]) and s["trailing_bytes"] > 0
    if which in ("regressor", "lossguide"):  # numbers only: no CTR tables, no text processing
        assert s["model_parts"] == [] and s["trailing_bytes"] == 0


def test_catboost_damage_is_corrupt_artifact(cb_models):
    data = cb_models["binary-text"][0].read_bytes()
    core_end = 8 + int.from_bytes(data[4:8], "little")
    for cut in (3, 6, 100, core_end - 1, core_end):
        with pytest.raises(CorruptArtifact):
            cbf.summarize(data[:cut])
    with pytest.raises(CorruptArtifact):
        cbf.summarize(b"CBM1" + RANDOM_4K)
    with pytest.raises(CorruptArtifact):
        cbf.summarize(RANDOM_4K)
    assert not cbf.is_catboost(RANDOM_4K)


@FAST
@given(pos=st.integers(0, 10**6), value=st.integers(0, 255))
def test_catboost_mutations_never_escape(cb_models, pos, value):
    data = bytearray(cb_models["multiclass"][0].read_bytes())
    core = int.from_bytes(data[4:8], "little")
    data[8 + pos % core] = value  # inside the FlatBuffers core
    assert isinstance(_outcome(cbf.summarize, bytes(data)), (dict, CorruptArtifact))


def test_catboost_loader_predicts_what_catboost_predicts(cb_models, tmp_path):
    import catboost as cb

    from loaders import catboost as cb_loader

    for which, own_cls, method in (("binary-text", cb.CatBoostClassifier, "predict_proba"),
                                   ("multiclass", cb.CatBoostClassifier, "predict_proba"),
                                   ("regressor", cb.CatBoostRegressor, "predict")):
        path, data = cb_models[which]
        (tmp_path / "model.cbm").write_bytes(path.read_bytes())
        own = own_cls().load_model(str(tmp_path / "model.cbm"))
        s = cbf.summarize(path.read_bytes())
        loaded = cb_loader.load(tmp_path, _report(tmp_path, [("model.cbm", "catboost", s)]))
        assert loaded.info["kind"] == ("regressor" if which == "regressor" else "classifier")
        assert np.array_equal(loaded.predict(data), getattr(own, method)(data))
        if isinstance(data, pd.DataFrame):
            shuffled = data[list(reversed(data.columns))]
            assert np.array_equal(loaded.predict(shuffled), getattr(own, method)(data))
        assert loaded.info["feature_names"] == own.feature_names_
    with pytest.raises(ArtifactError, match="unknown option"):
        cb_loader.load(tmp_path, None, thread_count=1)
    (tmp_path / "model.cbm").write_bytes(path.read_bytes()[:500])
    with pytest.raises(CorruptArtifact):
        cb_loader.load(tmp_path, None)


# ============================================================================================ Triton

TRITON_CONFIG = r'''
# an ensemble-free classifier, as the docs write them
name: "resnet"
platform: "onnxruntime_onnx"
max_batch_size: 16
version_policy: { specific: { versions: [1, 3] } }
input [
  {
    name: "INPUT__0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape: { shape: [ 1, 3, 224, 224 ] }
  },
  { name: "mask", data_type: TYPE_BOOL, dims: [ -1 ], optional: true }
]
output [
  { name: "probs" data_type: TYPE_FP32 dims: [ 1000 ] label_filename: "labels.txt" }
]
instance_group [ { name: "cpu" kind: KIND_CPU count: 2 }, { kind: KIND_GPU count: 1 gpus: [ 0, 1 ] } ]
dynamic_batching { preferred_batch_size: [ 4, 8 ] max_queue_delay_microseconds: 100 }
parameters { key: "intra_op_thread_count" value: { string_value: "2" } }
parameters: { key: "label\"quoted\\" value: { string_value: "caf\303\251 \x41" } }
'''


def _triton_expected(cfg) -> dict:
    """The facts of a parsed ``inference.ModelConfig`` message (Triton's own proto, parsed by protobuf)."""
    from tritonclient.grpc import model_config_pb2 as mc

    def reshape(m):
        return list(m.reshape.shape) if m.HasField("reshape") else None

    policy = cfg.version_policy.WhichOneof("policy_choice") if cfg.HasField("version_policy") else None
    return {
        "name": cfg.name or None, "platform": cfg.platform or None, "backend": cfg.backend or None,
        "max_batch_size": cfg.max_batch_size,
        "inputs": [{"name": i.name or None, "data_type": mc.DataType.Name(i.data_type), "dims": list(i.dims),
                    "reshape": reshape(i), "optional": i.optional} for i in cfg.input],
        "outputs": [{"name": o.name or None, "data_type": mc.DataType.Name(o.data_type), "dims": list(o.dims),
                     "reshape": reshape(o), "label_filename": o.label_filename or None} for o in cfg.output],
        "instance_groups": [{"name": g.name or None, "kind": mc.ModelInstanceGroup.Kind.Name(g.kind),
                             "count": g.count, "gpus": list(g.gpus)} for g in cfg.instance_group],
        "version_policy": (
            {"latest": {"num_versions": 1}} if policy is None else
            {"specific": {"versions": list(cfg.version_policy.specific.versions)}} if policy == "specific" else
            {"all": {}} if policy == "all" else {"latest": {"num_versions": cfg.version_policy.latest.num_versions}}),
        "parameters": {k: v.string_value for k, v in cfg.parameters.items()},
        "ensemble_steps": [{"model_name": st_.model_name or None, "model_version": st_.model_version}
                           for st_ in cfg.ensemble_scheduling.step],
    }


def _triton_facts(summary: dict) -> dict:
    keys = ("name", "platform", "backend", "max_batch_size", "instance_groups", "version_policy", "parameters",
            "ensemble_steps")
    out = {k: summary[k] for k in keys}
    out["inputs"] = [{k: i[k] for k in ("name", "data_type", "dims", "reshape", "optional")} for i in summary["inputs"]]
    out["outputs"] = [{k: o[k] for k in ("name", "data_type", "dims", "reshape", "label_filename")}
                      for o in summary["outputs"]]
    return out


def test_triton_config_matches_protobuf_text_format():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    cfg = text_format.Parse(TRITON_CONFIG, mc.ModelConfig())
    s = triton.summarize(TRITON_CONFIG.encode(), "resnet/config.pbtxt")
    assert _triton_facts(s) == _triton_expected(cfg)
    assert s["dynamic_batching"] == {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": 100}
    assert s["model_filename"] == "model.onnx" and s["warnings"] == [] and not s["runs_python"]


def _random_config(rnd: random.Random):
    from tritonclient.grpc import model_config_pb2 as mc

    def text() -> str:
        return "".join(rnd.choice("abc XYZ_09\"'\\\n\té✓#{}[]:") for _ in range(rnd.randint(0, 12)))

    cfg = mc.ModelConfig(name=text(), max_batch_size=rnd.randint(0, 64))
    if rnd.random() < 0.5:
        cfg.platform = rnd.choice(["pytorch_libtorch", "tensorflow_savedmodel", "ensemble"])
    else:
        cfg.backend = rnd.choice(["python", "onnxruntime", "fil"])
    for _ in range(rnd.randint(0, 3)):
        i = cfg.input.add(name=text(), data_type=rnd.randint(1, 14), optional=rnd.random() < 0.3)
        i.dims.extend(rnd.randint(-1, 512) for _ in range(rnd.randint(0, 4)))
        if rnd.random() < 0.3:
            i.reshape.shape.extend(rnd.randint(1, 9) for _ in range(rnd.randint(0, 3)))
    for _ in range(rnd.randint(0, 3)):
        o = cfg.output.add(name=text(), data_type=rnd.randint(1, 14), label_filename=rnd.choice(["", text()]))
        o.dims.extend(rnd.randint(-1, 512) for _ in range(rnd.randint(0, 3)))
    for _ in range(rnd.randint(0, 2)):
        g = cfg.instance_group.add(kind=rnd.randint(0, 3), count=rnd.randint(1, 4), name=rnd.choice(["", text()]))
        g.gpus.extend(range(rnd.randint(0, 2)))
    choice = rnd.randint(0, 3)
    if choice == 1:
        cfg.version_policy.latest.num_versions = rnd.randint(1, 5)
    elif choice == 2:
        cfg.version_policy.all.SetInParent()
    elif choice == 3:
        cfg.version_policy.specific.versions.extend(rnd.randint(1, 99) for _ in range(rnd.randint(0, 3)))
    for _ in range(rnd.randint(0, 2)):
        cfg.parameters[text()].string_value = text()
    for _ in range(rnd.randint(0, 2)):
        cfg.ensemble_scheduling.step.add(model_name=text(), model_version=rnd.randint(-1, 3))
    return cfg


def test_triton_random_configs_match_protobuf():
    """Configs written by protobuf's own text format writer (one line and multi-line, escapes, UTF-8 or octal)
    read back as protobuf reads them."""
    from google.protobuf import text_format

    rnd = random.Random(3)
    for n in range(150):
        cfg = _random_config(rnd)
        text = text_format.MessageToString(cfg, as_one_line=n % 2 == 0, as_utf8=n % 3 == 0)
        assert _triton_facts(triton.summarize(text.encode())) == _triton_expected(cfg), text


def test_triton_repository_layout_and_real_corpus_config(tmp_path, corpus):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from helpers import tar_members

    files = tar_members(corpus / "triton-fvae" / "model.tar.gz")
    s = triton.summarize(files["fvae/config.pbtxt"], "fvae/config.pbtxt")
    assert (s["platform"], s["max_batch_size"], s["model_filename"]) == ("pytorch_libtorch", 1, "model.pt")
    assert [(i["name"], i["data_type"], i["dims"]) for i in s["inputs"]] == [("INPUT__0", "TYPE_INT32", [2])]
    assert [(o["name"], o["data_type"], o["dims"]) for o in s["outputs"]] == [("OUTPUT__0", "TYPE_FP32", [28, 28])]
    # its lists end with a comma; protobuf's parser refuses that, and the summary warns about it
    assert len(s["warnings"]) == 2
    with pytest.raises(text_format.ParseError):
        text_format.Parse(files["fvae/config.pbtxt"].decode(), mc.ModelConfig())
    layout = triton.repository_layout(list(files))
    assert layout == [{"model": "fvae", "dir": "fvae", "config": "fvae/config.pbtxt",
                       "versions": [{"version": 1, "dir": "fvae/1", "files": ["model.pt"]}],
                       "ignored_folders": [], "other_files": []}]
    names = ["repo/a/config.pbtxt", "repo/a/labels.txt", "repo/a/2/model.onnx", "repo/a/10/model.onnx",
             "repo/a/0/model.onnx", "repo/a/old/model.onnx", "repo/b/config.pbtxt",
             "repo/b/1/model.savedmodel/saved_model.pb",
             "config.pbtxt", "1/model.py"]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_text("x")
    found = {m["config"]: m for m in triton.repository_layout(
        [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()])}
    assert [v["version"] for v in found["repo/a/config.pbtxt"]["versions"]] == [2, 10]
    assert found["repo/a/config.pbtxt"]["ignored_folders"] == ["0", "old"]
    assert found["repo/a/config.pbtxt"]["other_files"] == ["labels.txt"]
    assert found["repo/b/config.pbtxt"]["versions"][0]["files"] == ["model.savedmodel/saved_model.pb"]
    assert found["config.pbtxt"]["model"] is None and found["config.pbtxt"]["versions"][0]["files"] == ["model.py"]


def test_triton_damage_is_corrupt_artifact():
    bad = [b"input { name: " * 5000, b"name: 'open", b"input [ { name: \"x\" }", b"\xff\xfe\x00", b"{ }",
           b"dims: [1, [2]]", b"name: -foo", b"a: \"\\q\"", RANDOM_4K, b"x" * (triton.MAX_BYTES + 1),
           b"dims: [" + b"1," * (triton.MAX_VALUES + 1) + b"1]", b"a " + b"{ a " * 100 + b"}" * 100]
    for data in bad:
        start = time.perf_counter()
        with pytest.raises(CorruptArtifact):
            triton.summarize(data)
        assert time.perf_counter() - start < 5
    with pytest.raises(NotAnArtifact):
        triton.summarize(b"")


# ============================================================================================ MLflow

def _mlmodel(flavor: str = "sklearn") -> dict:
    """An MLmodel as ``mlflow.models.Model.to_dict`` lays it out (mlflow/models/model.py, pyfunc add_to_model)."""
    files = {"sklearn": ("pickled_model", "model.pkl", {"serialization_format": "cloudpickle",
                                                        "sklearn_version": "1.3.2", "code": None}),
             "lightgbm": ("data", "model.lgb", {"lgb_version": "4.1.0", "model_class": "lightgbm.basic.Booster",
                                                "code": None})}
    key, path, extra = files[flavor]
    columns = [{"type": "double", "name": f"feature number {i} (cm)", "required": True} for i in range(14)]
    return {
        "artifact_path": "model",
        "flavors": {
            "python_function": {"env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                                "loader_module": f"mlflow.{flavor}", "model_path": path, "predict_fn": "predict",
                                "python_version": "3.10.12"},
            flavor: {key: path, **extra},
        },
        "mlflow_version": "2.9.2",
        "model_size_bytes": 12345,
        "model_uuid": "6b3c5e0f1a2b4c5d8e9f0a1b2c3d4e5f",
        "run_id": "0123456789abcdef0123456789abcdef",
        "saved_input_example_info": {"artifact_path": "input_example.json", "pandas_orient": "split",
                                     "type": "dataframe"},
        "signature": {"inputs": json.dumps(columns), "outputs": json.dumps([{"type": "long", "required": True}]),
                      "params": None},
        "utc_time_created": "2024-01-31 10:11:12.131415",
        "metadata": {"source": "it's \"quoted\" # not a comment", "tags": ["a", "b: c", "- d"]},
    }


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm"])
def test_mlmodel_summary_matches_pyyaml(flavor):
    import yaml

    text = yaml.safe_dump(_mlmodel(flavor), default_flow_style=False)  # exactly as Model.to_yaml writes it
    assert "'" in text and "\n    " in text  # PyYAML folded the long signature strings over several lines
    ref = yaml.safe_load(text)
    assert mlf.parse(text.encode()) == ref
    names = ["MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json"]
    s = mlf.summarize(text.encode(), names)
    assert s["flavors"] == ref["flavors"] and s["flavor_names"] == list(ref["flavors"])
    assert s["primary_flavor"] == flavor and s["model_file"] == ref["flavors"][flavor][
        "pickled_model" if flavor == "sklearn" else "data"]
    assert s["loader_module"] == f"mlflow.{flavor}" and s["python_version"] == "3.10.12"
    assert s["signature"] == {k: json.loads(v) if v else None for k, v in ref["signature"].items()}
    for key in ("run_id", "model_uuid", "utc_time_created", "artifact_path", "mlflow_version", "model_size_bytes",
                "saved_input_example_info", "metadata"):
        assert s[key] == ref[key]
    assert s["requirements_files"] == ["requirements.txt", "conda.yaml", "python_env.yaml"]
    assert s["missing_files"] == [s["model_file"]] and not s["custom_python_model"]
    assert mlf.summarize(text, [*names, s["model_file"]])["missing_files"] == []


def _yaml_node(rnd: random.Random, depth: int):
    alphabet = "abcXYZ 09:#-'\"\\{}[],&*!|>%@`?\t\né✓"
    text = lambda n: "".join(rnd.choice(alphabet) for _ in range(n))  # noqa: E731
    c = rnd.random()
    if depth > 3 or c < 0.45:
        return rnd.choice([text(rnd.choice([0, 3, 12, 90])), rnd.randint(-10**6, 10**6), 1.5, -0.25, 1e20, True,
                           None, "yes", "3.10", "1e5", "0x1F", "012", "- a", "a: b", "#x", " lead", "trail "])
    if c < 0.75:
        keys = ["".join(rnd.choice("ab_XY-09 .:#'\"&*!") for _ in range(rnd.choice([1, 4, 20])))
                for _ in range(rnd.randint(0, 4))]
        return {k: _yaml_node(rnd, depth + 1) for k in keys}
    return [_yaml_node(rnd, depth + 1) for _ in range(rnd.randint(0, 4))]


def test_yaml_subset_reads_what_pyyaml_writes():
    """Random documents of MLmodel shapes with awkward strings, dumped by PyYAML in block, mixed and flow style,
    read back exactly as PyYAML's SafeLoader reads them."""
    import yaml

    rnd = random.Random(1)
    styles = [dict(default_flow_style=False), dict(default_flow_style=None), dict(default_flow_style=False, width=20),
              dict(default_flow_style=False, indent=4), dict(default_flow_style=True, width=30)]
    for n in range(400):
        doc = {"flavors": _yaml_node(rnd, 0), "signature": _yaml_node(rnd, 0)}
        text = yaml.safe_dump(doc, **styles[n % len(styles)])
        assert mlf.parse(text) == yaml.safe_load(text), text


def test_yaml_block_scalars_and_comments_match_pyyaml():
    import yaml

    text = ("# written by hand\n---\nflavors:\n  python_function:   # the pyfunc flavor\n    loader_module: a.b\n"
            "    script: |\n      line one\n        indented\n\n      last\n"
            "    folded: >-\n      a\n      b\n\n      c\n"
            "    keep: |+\n      x\n\n    empty: {}\n    items: [1, 'two', \"th\\u00e9\"]\n  sk:\n  - one\n  - key: v\n"
            "    other: w\n  - - nested\n    - seq\nrun_id: ~\n...\n")
    assert mlf.parse(text) == yaml.safe_load(text)


def test_yaml_refuses_anchors_tags_and_bombs():
    laughs = "a: &a [\"lol\",\"lol\",\"lol\"]\n" + "".join(
        f"{c}: &{c} [*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    cases = [laughs, "flavors: !!python/object/apply:os.system ['true']\n", "flavors: !custom\n  a: 1\n",
             "a: &x\n  b: 1\nc: *x\n", "a:\n  <<: {b: 1}\n", "a: 1\n---\nb: 2\n", "%YAML 1.1\n---\na: 1\n",
             "? complex\n: key\n", "a:\n\tb: 1\n", "a: 'never closed\n", "a: [1, 2\n",
             "a:\n" + "".join("  " * i + "- \n" for i in range(1, 60)), "a: " + "[" * 100 + "]" * 100 + "\n",
             "a: [\n" + "1,\n" * (mlf.MAX_NODES + 5) + "1]\n", "a: b\u2028c\n", "a: \x07\n"]
    for text in cases:
        start = time.perf_counter()
        with pytest.raises(CorruptArtifact):
            mlf.parse(text.encode())
        assert time.perf_counter() - start < 5
    with pytest.raises(CorruptArtifact, match="not UTF-8"):
        mlf.parse(b"a: \xff\n")
    with pytest.raises(CorruptArtifact, match="no flavors"):
        mlf.summarize(b"run_id: 1\n")
    with pytest.raises(CorruptArtifact, match="signature"):
        mlf.summarize(b"flavors:\n  sklearn: {}\nsignature:\n  inputs: '[{broken'\n")


# ============================================================================================== PMML

@pytest.fixture(scope="module")
def pmml_docs(tmp_path_factory):
    """PMML written by nyoka (scikit-learn models) and by CatBoost's own exporter."""
    import catboost as cb
    from nyoka import skl_to_pmml
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier

    folder = tmp_path_factory.mktemp("pmml")
    X = pd.DataFrame(RNG.normal(size=(80, 3)), columns=["sepal", "petal", "stem"])
    y = (X["sepal"] > 0).astype(int)
    out = {}
    for name, est in (("linear", LinearRegression()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
                      ("forest", RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0))):
        pipe = Pipeline([("model", est)]).fit(X, y)
        skl_to_pmml(pipe, list(X.columns), "label", str(folder / f"{name}.pmml"))
        out[name] = ((folder / f"{name}.pmml").read_bytes(), est)
    model = cb.CatBoostClassifier(iterations=3, depth=2, verbose=0, allow_writing_files=False).fit(X, y)
    model.save_model(str(folder / "catboost.pmml"), format="pmml")
    out["catboost"] = ((folder / "catboost.pmml").read_bytes(), model)
    return out


@pytest.mark.parametrize("which", ["linear", "tree", "forest", "catboost"])
def test_pmml_summary_matches_elementtree(pmml_docs, which):
    data, est = pmml_docs[which]
    s = pmml.summarize(data)
    assert pmml.is_pmml(data[:300])
    root = ET.fromstring(data)
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    q = (lambda tag: f"{{{ns}}}{tag}") if ns else (lambda tag: tag)  # noqa: E731
    assert s["version"] == root.get("version") and s["namespace"] == (ns or None)
    fields = root.find(q("DataDictionary")).findall(q("DataField"))
    assert [(f["name"], f["optype"], f["data_type"], f["values"]) for f in s["data_fields"]] == [
        (f.get("name"), f.get("optype"), f.get("dataType"), len(f.findall(q("Value")))) for f in fields]
    models = [c for c in root if c.tag.split("}")[-1] in pmml.MODEL_TYPES]
    assert s["model_types"] == [m.tag.split("}")[-1] for m in models]
    top = models[0]
    schema = top.find(q("MiningSchema"))
    assert s["models"][0]["mining_fields"] == [{"name": f.get("name"), "usage": f.get("usageType", "active")}
                                               for f in schema.findall(q("MiningField"))]
    assert s["models"][0]["function"] == top.get("functionName")
    assert s["models"][0]["tree_nodes"] == len(list(top.iter(q("Node"))))
    nested = Counter(e.tag.split("}")[-1] for e in top.iter()
                     if e is not top and e.tag.split("}")[-1] in pmml.MODEL_TYPES)
    assert s["models"][0]["nested_models"] == dict(nested)
    expected_type = {"linear": "RegressionModel", "tree": "TreeModel", "forest": "MiningModel",
                     "catboost": "MiningModel"}[which]
    assert s["model_types"] == [expected_type]
    if which == "forest":
        assert s["models"][0]["segments"] == est.n_estimators
        assert s["models"][0]["nested_models"] == {"TreeModel": est.n_estimators}
    if which == "tree":
        assert s["models"][0]["tree_nodes"] == est.tree_.node_count
    if which == "catboost":
        assert s["application"]["name"] == "CatBoost"
        assert [f["name"] for f in s["data_fields"]][:3] == list(est.feature_names_)


def test_pmml_refuses_entities_and_damage(pmml_docs, monkeypatch):
    levels = "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE PMML [<!ENTITY l0 "lol">{levels}]><PMML version="4.4">&l9;</PMML>'
    external = '<?xml version="1.0"?><!DOCTYPE PMML [<!ENTITY x SYSTEM "file:///etc/passwd">]><PMML>&x;</PMML>'
    cases = [bomb.encode(), bomb.encode("utf-16"), external.encode(), bomb.replace("DOCTYPE", "doctype").encode()]
    for data in cases:
        start = time.perf_counter()
        with pytest.raises(CorruptArtifact, match="entities"):
            pmml.summarize(data)
        assert time.perf_counter() - start < 1
    # the parser refuses them too, when the check before parsing is taken away
    monkeypatch.setattr(pmml, "_FORBIDDEN", type("Never", (), {"search": staticmethod(lambda data: None)})())
    for data in cases[:3]:  # (a lower-case "doctype" is no declaration at all: expat calls it a syntax error)
        with pytest.raises(CorruptArtifact, match="entities"):
            pmml.summarize(data)
    monkeypatch.undo()
    good = pmml_docs["tree"][0]
    for data in (good[: len(good) // 2], RANDOM_4K, b'<?xml version="1.0" encoding="cp037"?><PMML/>',
                 b'<Other version="1"/>', good.replace(b"<PMML", b"<PMML <", 1)):
        with pytest.raises(CorruptArtifact):
            pmml.summarize(data)
    assert not pmml.is_pmml(RANDOM_4K) and not pmml.is_pmml(b"<?xml version='1.0'?><svg/>")


# ============================================================================================ Neuron

@pytest.fixture(scope="module")
def neuron_torchscript() -> tuple[bytes, bytes]:
    """TorchScript calling ``torch.ops.neuron.forward_v2`` (the op torch-neuron's traced models call), the op
    registered here through torch.library with a CPU stand-in, and an ordinary TorchScript for contrast."""
    import io

    import torch

    lib = torch.library.Library("neuron", "FRAGMENT")
    if not hasattr(torch.ops.neuron, "forward_v2"):
        lib.define("forward_v2(Tensor[] inputs) -> Tensor[]")
        lib.impl("forward_v2", lambda inputs: [t * 2 for t in inputs], "CompositeExplicitAutograd")

    class Compiled(torch.nn.Module):
        def forward(self, x):
            return torch.ops.neuron.forward_v2([x])[0]

    def saved(module) -> bytes:
        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(module, torch.ones(2)), buf)
        return buf.getvalue()

    return saved(Compiled()), saved(torch.nn.ReLU())


def test_neuron_and_neo_are_named_with_their_reason(neuron_torchscript):
    compiled, plain = neuron_torchscript
    found = neuron.identify(["code/inference.py", "model.pt"], {"model.pt": compiled, "code/inference.py": b""}.get)
    assert found["compiler"] == "neuron" and found["framework"] == "pytorch" and found["files"] == ["model.pt"]
    assert "Neuron" in found["reason"] and found["reason"].count(".") <= 2
    assert neuron.identify(["model.pt"], {"model.pt": plain}.get) is None
    assert neuron.identify(["model.pt"], lambda name: None) is None
    assert neuron.identify(["model.pt"], {}.__getitem__) is None  # KeyError: the bytes are not at hand

    symbol = {"nodes": [{"op": "null", "name": "data", "inputs": []},
                        {"op": "_neuron_subgraph_op", "name": "neuron_0", "inputs": [[0, 0, 0]], "subgraphs": []}]}
    found = neuron.identify(["resnet-symbol.json", "resnet-0000.params"],
                            {"resnet-symbol.json": json.dumps(symbol).encode()}.get)
    assert found["framework"] == "mxnet"
    symbol["nodes"][1]["op"] = "Convolution"
    assert neuron.identify(["resnet-symbol.json"], {"resnet-symbol.json": json.dumps(symbol).encode()}.get) is None
    assert neuron.identify(["compiled/graph.neff", "x.json"], lambda n: None)["files"] == ["compiled/graph.neff"]

    neo = ["model/compiled.so", "model/compiled_model.json", "model/compiled.params", "model/compiled.meta",
           "model/manifest", "model-shapes.json"]
    found = neuron.identify(neo, lambda n: None)
    assert found["compiler"] == "neo" and "model/compiled.so" in found["reason"]
    assert found["files"] == ["model/compiled.so", "model/compiled_model.json", "model/compiled.params",
                              "model/compiled.meta", "model/manifest"]
    assert neuron.identify(["model/compiled.so", "model/compiled_model.json"], lambda n: None) is None


def test_tensorflow_neuron_saved_model_is_named():
    """A SavedModel whose graph holds a NeuronOp node (tensorflow-neuron's compiled subgraph), written with
    TensorFlow's own protobuf classes; a SavedModel is never taken for ONNX, though both start with 08 01."""
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel(saved_model_schema_version=1)
    graph = model.meta_graphs.add()
    graph.meta_info_def.tags.append("serve")
    graph.graph_def.node.add(name="x", op="Placeholder")
    node = graph.graph_def.node.add(name="neuron_op_d6f098c01c780733", op="NeuronOp")
    data = model.SerializeToString()
    assert data[:2] == b"\x08\x01" and not onf.is_onnx(data)
    found = neuron.identify(["export/1/saved_model.pb"], {"export/1/saved_model.pb": data}.get)
    assert found["compiler"] == "neuron" and found["framework"] == "tensorflow"
    node.op = "MatMul"
    plain = model.SerializeToString()
    assert neuron.identify(["export/1/saved_model.pb"], {"export/1/saved_model.pb": plain}.get) is None
