"""Damaged LightGBM, CatBoost and ONNX models that a fuzz run found crashing the frameworks or our own code.

Each test builds a real model with the framework itself, damages it the way the fuzzer did and asserts the
refusal. Without the check under test, the LightGBM and CatBoost files here kill the process (LightGBM 4.7
aborts or segfaults, CatBoost 1.2 segfaults), so the loads that reach a framework run in a child process; the
ONNX ones raised onnxruntime's own exception classes or allocated terabytes for a sample input.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotLoadable
from artifact_tools.formats import catboost as catboost_format
from artifact_tools.formats import lightgbm as lightgbm_format

ROOT = Path(__file__).resolve().parent.parent


def _load_in_child(folder: Path) -> dict:
    """``loaders.load(folder)`` then a predict of the sample rows, in a child process: the outcome, or the
    signal that killed it."""
    code = ("import json, sys, loaders\n"
            "from artifact_tools.errors import ArtifactError\n"
            "try:\n"
            "    m = loaders.load(sys.argv[1])\n"
            "    out = {'loaded': True, 'predictions': m.predict(m.sample_input()).tolist()}\n"
            "except ArtifactError as e:\n"
            "    out = {'loaded': False, 'error': type(e).__name__, 'message': str(e)}\n"
            "print(json.dumps(out))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, f"the load died with status {done.returncode}: {done.stderr[-600:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- LightGBM

lgb = pytest.importorskip("lightgbm")


def _lgb_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 4))
    x[:, 2] = rng.integers(0, 12, len(x))
    y = (np.isin(x[:, 2], [1, 3, 5, 7]) ^ (x[:, 0] > 0)).astype(int)
    return x, y


@pytest.fixture(scope="module")
def lgb_model() -> tuple[str, object, np.ndarray]:
    """A binary LightGBM model with categorical splits (feature 2), as text, and its booster."""
    x, y = _lgb_rows()
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_per_group": 5,
                         "cat_smooth": 1, "max_cat_to_onehot": 2, "num_threads": 1},
                        lgb.Dataset(x, y, categorical_feature=[2]), 6)
    text = booster.model_to_string()
    assert "tree_sizes=" in text and re.search(r"^decision_type=.*\b[13]\b", text, re.M)
    return text, booster, x


def _tree_line(text: str, tree: int, key: str) -> tuple[int, int]:
    """(start, end) of line ``key=`` inside block ``Tree=<tree>``."""
    block = text.index(f"\nTree={tree}\n")
    start = text.index(f"\n{key}=", block) + 1
    return start, text.index("\n", start)


def _write(folder: Path, name: str, data: bytes | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def test_lightgbm_stale_tree_sizes_and_a_bad_array_is_refused_not_aborted(lgb_model, tmp_path):
    # tree_sizes (byte offsets) no longer match once a tree's threshold line loses a value: LightGBM 4.7 then
    # hit its array-count check inside an OpenMP loop and aborted ("terminate called without an active exception")
    text, _, _ = lgb_model
    start, end = _tree_line(text, 1, "threshold")
    damaged = text[:start] + text[start:end].rsplit(" ", 1)[0] + text[end:]
    out = _load_in_child(_write(tmp_path, "model.txt", damaged))
    assert out["loaded"] is False and out["error"] == "CorruptArtifact"
    assert "cannot read model.txt" in out["message"] and "Check failed" in out["message"]


def test_lightgbm_stale_tree_sizes_alone_still_loads(lgb_model, tmp_path):
    # "num_cat=00" is the same number one byte longer: every later offset of tree_sizes is off by one
    text, booster, _ = lgb_model
    start, end = _tree_line(text, 0, "num_cat")
    assert text[start:end] in ("num_cat=0", "num_cat=1", "num_cat=2")
    damaged = text[:start] + text[start:end].replace("=", "=0") + text[end:]
    out = _load_in_child(_write(tmp_path, "model.txt", damaged))
    assert out["loaded"] is True
    from loaders.lightgbm import sample_rows
    expected = booster.predict(sample_rows(booster, [2], None))
    np.testing.assert_allclose(out["predictions"], expected, rtol=1e-12)


@pytest.mark.parametrize("line", ["split_gain=1 2 3", "   ", "[bagging_fraction]", "[num_leaves:", ":x"])
def test_lightgbm_parameter_line_without_colon_is_refused(lgb_model, line):
    # LightGBM 4.7 segfaulted reading a line of the parameters section that has no ':'
    text, _, _ = lgb_model
    damaged = text.replace("\nparameters:\n", f"\nparameters:\n{line}\n", 1)
    with pytest.raises(CorruptArtifact, match="parameters section has a line without ':'"):
        lightgbm_format.summarize(damaged.encode())


def test_lightgbm_parameters_without_their_end_line_are_checked_to_the_end(lgb_model):
    text, _, _ = lgb_model
    damaged = text.replace("\nend of parameters\n", "\nend of parameters  \nx\n", 1)
    with pytest.raises(CorruptArtifact, match="without ':'"):
        lightgbm_format.summarize(damaged.encode())
    cut = text.index("[num_leaves:") + len("[num_leaves:")  # a file cut short in mid-parameter
    with pytest.raises(CorruptArtifact, match="without ':'"):
        lightgbm_format.summarize(text[:cut].encode())


def test_lightgbm_nul_byte_is_refused(lgb_model):
    # LightGBM reads the model as a C string: "[n\0m_threads: 2]" is the line "[n" to it, and it segfaulted
    text, _, _ = lgb_model
    damaged = text.replace("[num_threads:", "[n\x00m_threads:", 1)
    with pytest.raises(CorruptArtifact, match="NUL byte"):
        lightgbm_format.summarize(damaged.encode())


@pytest.mark.parametrize("line", ["objective=", "objective"])
def test_lightgbm_objective_without_name_is_refused(lgb_model, line):
    text, _, _ = lgb_model
    damaged = re.sub(r"^objective=.*$", line, text, count=1, flags=re.M)
    with pytest.raises(CorruptArtifact, match="objective line without an objective name"):
        lightgbm_format.summarize(damaged.encode())


@pytest.mark.parametrize("value", ["9223372036854775807", "3"])
def test_lightgbm_tree_per_iteration_other_than_class_count_is_refused(lgb_model, value):
    # Booster.predict wrote num_tree_per_iteration values per row into a num_class-sized buffer: segfault
    text, _, _ = lgb_model
    damaged = re.sub(r"^num_tree_per_iteration=.*$", f"num_tree_per_iteration={value}", text, count=1, flags=re.M)
    with pytest.raises(CorruptArtifact, match="num_tree_per_iteration"):
        lightgbm_format.summarize(damaged.encode())


def test_lightgbm_more_classes_than_trees_is_refused(lgb_model):
    text, booster, _ = lgb_model
    damaged = re.sub(r"^num_class=1$", "num_class=1000000000", text, count=1, flags=re.M)
    damaged = re.sub(r"^num_tree_per_iteration=1$", "num_tree_per_iteration=1000000000", damaged, count=1,
                     flags=re.M)
    with pytest.raises(CorruptArtifact, match=f"1000000000 classes but holds {booster.num_trees()} trees"):
        lightgbm_format.summarize(damaged.encode())


def test_lightgbm_objective_class_count_other_than_the_header_is_refused(lgb_model):
    # "multiclass num_class:1000000000" in a one-class model: LightGBM's softmax overran the output (segfault)
    text, _, _ = lgb_model
    damaged = re.sub(r"^objective=.*$", "objective=multiclass num_class:1000000000", text, count=1, flags=re.M)
    with pytest.raises(CorruptArtifact, match="objective says num_class:1000000000 but its header num_class 1"):
        lightgbm_format.summarize(damaged.encode())
    three = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 4, "num_threads": 1},
                      lgb.Dataset(*_lgb_rows()[:1], label=np.arange(600) % 3), 2).model_to_string()
    assert lightgbm_format.summarize(three.replace("num_class:3", "num_class:03").encode())["num_class"] == 3


def test_lightgbm_non_integer_monotone_constraint_is_refused(lgb_model):
    text, _, _ = lgb_model
    damaged = text.replace("\nfeature_infos=", "\nmonotone_constraints=0 x 0 0\nfeature_infos=", 1)
    with pytest.raises(CorruptArtifact, match="non-integer monotone_constraints"):
        lightgbm_format.summarize(damaged.encode())


def test_lightgbm_parameter_of_5000_digits_is_refused(lgb_model, tmp_path):
    # int() of more than 4,300 digits raises ValueError in Python 3.11 (in LightGBM's json.loads of its params)
    import loaders

    text, _, _ = lgb_model
    damaged = re.sub(r"^\[categorical_feature: .*\]$", f"[categorical_feature: 2,{'9' * 5000}]", text, count=1,
                     flags=re.M)
    assert damaged != text
    with pytest.raises(CorruptArtifact, match="cannot read the parameters of model.txt"):
        loaders.load(_write(tmp_path, "model.txt", damaged))


def _categorical_tree(text: str) -> int:
    for k in range(100):
        start, end = _tree_line(text, k, "num_cat")
        if text[start:end] != "num_cat=0":
            return k
    raise AssertionError("no tree with categorical splits")


@pytest.mark.parametrize("key, change", [
    ("num_cat", lambda v: "1000000"),                      # more sets than the tree has
    ("cat_boundaries", lambda v: v.rsplit(" ", 1)[0] + " inf"),
    ("cat_boundaries", lambda v: v.rsplit(" ", 1)[0] + " 1000000"),
])
def test_lightgbm_categorical_sets_out_of_range_are_refused(lgb_model, key, change):
    # LightGBM 4.7 read cat_boundaries / cat_threshold past their ends at predict time: segfault
    text, _, _ = lgb_model
    start, end = _tree_line(text, _categorical_tree(text), key)
    value = text[start:end].split("=", 1)[1]
    damaged = text[:start] + f"{key}={change(value)}" + text[end:]
    with pytest.raises(CorruptArtifact, match=r"num_cat|cat_boundaries|cat_threshold"):
        lightgbm_format.summarize(damaged.encode())


@pytest.mark.parametrize("bad", ["1000000", "2147483647", "-1", "1.5"])
def test_lightgbm_categorical_threshold_outside_its_sets_is_refused(lgb_model, bad):
    text, _, _ = lgb_model
    k = _categorical_tree(text)
    start, end = _tree_line(text, k, "decision_type")
    node = [int(d) & 1 for d in text[start:end].split("=")[1].split()].index(1)
    t_start, t_end = _tree_line(text, k, "threshold")
    values = text[t_start:t_end].split("=")[1].split()
    values[node] = bad
    damaged = text[:t_start] + "threshold=" + " ".join(values) + text[t_end:]
    with pytest.raises(CorruptArtifact, match=f"categorical split {node}"):
        lightgbm_format.summarize(damaged.encode())


def test_lightgbm_linear_leaf_on_missing_feature_is_refused():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 3))
    y = np.where(x[:, 0] > 0, 3 * x[:, 1], -2 * x[:, 2])
    text = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4, "linear_tree": True,
                      "num_threads": 1}, lgb.Dataset(x, y), 3).model_to_string()
    lines = text.split("\n")
    k = next(i for i, line in enumerate(lines) if line.startswith("leaf_features=") and line.split("=")[1].split())
    lines[k] = "leaf_features=" + lines[k].split("=")[1].replace(lines[k].split("=")[1].split()[0], "99", 1)
    with pytest.raises(CorruptArtifact, match="linear leaf on a feature index outside 0..2"):
        lightgbm_format.summarize("\n".join(lines).encode())


def test_lightgbm_parameter_lightgbm_cannot_echo_as_json_is_refused(lgb_model, tmp_path):
    # "[cat_smooth: nan]" loads in C++, but the Python package's json.loads of the echoed parameters failed
    import loaders

    text, _, _ = lgb_model
    damaged = re.sub(r"^\[cat_smooth: .*\]$", "[cat_smooth: nan]", text, count=1, flags=re.M)
    with pytest.raises(CorruptArtifact, match="cannot read the parameters of model.txt"):
        loaders.load(_write(tmp_path, "model.txt", damaged))


# ---------------------------------------------------------------------------------------------- CatBoost

cb = pytest.importorskip("catboost")


def _cbm(**params) -> bytes:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 4))
    model = cb.CatBoostRegressor(iterations=6, depth=3, verbose=0, thread_count=1, random_seed=0, **params)
    model.fit(x, x[:, 0] - x[:, 1])
    return bytes(model._serialize_model())


def _tree_vector(data: bytes, field: int, elem: int) -> tuple[int, int]:
    """(count, file offset of the first element) of vector ``field`` of the model's TModelTrees, located with
    the FlatBuffers layout (root offset, vtables) read straight from the bytes."""
    start = 8
    fb = catboost_format._FlatBuffer(memoryview(data)[start:], "core")
    core = fb.table(fb._target(0))
    trees = fb.table(fb.ref(core, 1))
    count, first = fb.vector(fb.ref(trees, field), elem)
    return count, start + first


def test_catboost_split_on_missing_binary_feature_is_refused(tmp_path):
    # CatBoost 1.2 segfaulted loading a symmetric tree whose TreeSplits entry is past the model's binary features
    data = bytearray(_cbm())
    count, first = _tree_vector(bytes(data), 1, 4)
    assert count > 0
    struct.pack_into("<i", data, first, 1 << 20)
    with pytest.raises(CorruptArtifact, match="split on binary feature 1048576"):
        catboost_format.summarize(bytes(data))


@pytest.mark.parametrize("what", ["step", "leaf"])
def test_catboost_non_symmetric_walk_out_of_bounds_is_refused(tmp_path, what):
    # CatBoost 1.2 loaded these and segfaulted at predict: a step past the tree, a leaf id past LeafValues
    data = bytearray(_cbm(grow_policy="Lossguide", max_leaves=6))
    steps, first = _tree_vector(bytes(data), 10, 4)
    ids, id_first = _tree_vector(bytes(data), 11, 4)
    nodes = np.frombuffer(bytes(data), "<u2", count=2 * steps, offset=first).reshape(-1, 2)
    leaf = int(np.flatnonzero((nodes == 0).all(axis=1))[0])
    if what == "step":
        struct.pack_into("<H", data, first + 4 * leaf, 0xFFFF)
        match = "stepping outside its tree"
    else:
        struct.pack_into("<I", data, id_first + 4 * leaf, 0x7FFFFFFF)
        match = "ending at a leaf beyond"
    with pytest.raises(CorruptArtifact, match=match):
        catboost_format.summarize(bytes(data))


def test_catboost_models_as_trained_pass_the_new_checks():
    for params in ({}, {"grow_policy": "Lossguide", "max_leaves": 6}, {"grow_policy": "Depthwise"}):
        data = _cbm(**params)
        model = cb.CatBoost().load_model(blob=data)
        assert catboost_format.summarize(data)["trees"] == model.tree_count_


# ---------------------------------------------------------------------------------------------- ONNX

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _onnx_model(dim: int | str = "N"):
    from onnx import TensorProto, helper

    weights = helper.make_tensor("W", TensorProto.FLOAT, [5, 3], np.arange(15, dtype=np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"]), helper.make_node("Relu", ["Y"], ["Z"])], "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [dim, 5])],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, [dim, 3])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_onnx_graph_onnxruntime_refuses_is_not_loadable(tmp_path):
    # onnxruntime raises its own Fail / InvalidGraph classes (not RuntimeError) for a graph output no node makes
    import loaders

    model = _onnx_model()
    del model.graph.node[1]
    _write(tmp_path, "model.onnx", model.SerializeToString())
    with pytest.raises(NotLoadable, match="onnxruntime .* cannot load model.onnx"):
        loaders.load(tmp_path)


def test_onnx_input_declaring_huge_dims_gets_no_sample(tmp_path):
    # the sample builder allocated the declared shape: 2**40 rows of 5 float64 = 40 TiB
    import loaders

    model = _onnx_model(1 << 40)
    _write(tmp_path, "model.onnx", model.SerializeToString())
    loaded = loaders.load(tmp_path)
    with pytest.raises(ArtifactError, match="no sample input can be built: input X declares shape"):
        loaded.sample_input()
    # onnxruntime holds rows to the declared dims and says so with InvalidArgument, its own exception class
    with pytest.raises(ArtifactError, match="onnxruntime refused the input: .*invalid dimensions"):
        loaded.predict({"X": np.ones((2, 5), np.float32)})
