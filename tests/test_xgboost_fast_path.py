"""The guard on a current UBJSON model of 2,000 trees: damage in the last tree is refused as in the first one.

The checks read all trees of an XGBoost-written UBJSON file at once (artifact_tools/formats/xgboost.py); these
tests damage tree 1,999 of 2,000 of a model trained by XGBoost itself. The node counts the expected sentences
name come from XGBoost's own JSON dump of the model (``Booster.save_raw("json")``, read with Python's json),
and every damaged file would make XGBoost 3.2 read or walk outside its arrays.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from artifact_tools.errors import CorruptArtifact, UnsafeArtifact
from artifact_tools.formats import xgboost as xgb_format
from loaders import xgboost as xgb_loader

xgb = pytest.importorskip("xgboost")

TREES, FEATURES = 2000, 5
LAST = TREES - 1
_MODEL: dict = {}


def _model() -> tuple[bytes, list[dict]]:
    """A UBJSON model of 2,000 trees as XGBoost writes it, and its trees as XGBoost's JSON dump gives them."""
    if not _MODEL:
        rng = np.random.default_rng(11)
        rows = rng.normal(size=(200, FEATURES)).astype(np.float32)
        labels = rows[:, 0] - rows[:, 1] * rows[:, 2] + 0.1 * rng.normal(size=len(rows))
        booster = xgb.train({"max_depth": 3, "tree_method": "hist", "eta": 0.01, "seed": 1, "nthread": 1},
                            xgb.DMatrix(rows, label=labels), TREES)
        trees = json.loads(bytes(booster.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]
        _MODEL.update(ubj=bytes(booster.save_raw("ubj")), trees=trees, rows=rows, booster=booster)
    return _MODEL["ubj"], _MODEL["trees"]


def _array_at(raw: bytes | bytearray, tree: int, key: bytes) -> tuple[int, np.dtype, int]:
    """Where the values of array ``key`` of tree ``tree`` start (found by plain search), their dtype and count."""
    at = -1
    for _ in range(tree + 1):
        at = raw.find(key + b"[$", at + 1)
    assert at > 0
    dtype = np.dtype({b"l": ">i4", b"U": "u1", b"L": ">i8", b"d": ">f4"}[bytes(raw[at + len(key) + 2:][:1])])
    start = at + len(key) + 5 + 8
    return start, dtype, int.from_bytes(raw[start - 8:start], "big")


def _with(raw: bytes, edits: list[tuple[int, bytes, int, int]]) -> bytes:
    out = bytearray(raw)
    for tree, key, index, value in edits:
        start, dtype, count = _array_at(out, tree, key)
        assert index < count
        at = start + dtype.itemsize * index
        out[at:at + dtype.itemsize] = np.array([value]).astype(dtype).tobytes()
    return bytes(out)


def _internal(tree: dict) -> list[int]:
    return [i for i, left in enumerate(tree["left_children"]) if left != -1]


def test_the_model_is_read_by_the_fast_walk():
    raw, trees = _model()
    doc = xgb_format._ubj_loads(raw, "the model")
    walked = doc["learner"]["gradient_booster"]["model"]["trees"]
    assert isinstance(walked, xgb_format._UBJTrees) and walked.count == TREES == len(trees)
    forest = xgb_format.read_model(raw).forest
    np.testing.assert_array_equal(forest.sizes, [len(t["left_children"]) for t in trees])
    for name in ("left_children", "right_children", "parents", "split_indices"):
        np.testing.assert_array_equal(forest.column(name), np.concatenate([t[name] for t in trees]), err_msg=name)
    loaded = xgb_loader.load(raw)
    matrix = xgb.DMatrix(_MODEL["rows"][:50])
    np.testing.assert_array_equal(loaded.model.predict(matrix), _MODEL["booster"].predict(matrix))


def test_a_child_index_outside_the_last_tree_is_refused():
    raw, trees = _model()
    size = len(trees[LAST]["left_children"])
    with pytest.raises(CorruptArtifact) as refused:
        xgb_loader.load(_with(raw, [(LAST, b"left_children", 0, 99999), (LAST, b"right_children", 0, 100000)]))
    assert str(refused.value) == f"the model is damaged: tree {LAST} has a child index outside 1..{size - 1}"


def test_a_node_reached_twice_in_the_last_tree_is_refused():
    raw, trees = _model()
    tree = trees[LAST]
    inner = _internal(tree)
    assert len(inner) >= 2
    # the second internal node gets the children of the first: both lie inside the tree, one after the other
    node, left = inner[1], tree["left_children"][inner[0]]
    damaged = _with(raw, [(LAST, b"left_children", node, left), (LAST, b"right_children", node, left + 1)])
    with pytest.raises(CorruptArtifact) as refused:
        xgb_loader.load(damaged)
    assert str(refused.value) == f"the model is damaged: tree {LAST} is not a tree: a node is reached twice or " \
                                 "is deleted"


def test_a_cycle_in_the_last_tree_is_refused():
    raw, trees = _model()
    tree = trees[LAST]
    inner = _internal(tree)
    # an internal node whose children are the root's own children: the walk could come back to it
    node = inner[-1]
    first = tree["left_children"][0]
    damaged = _with(raw, [(LAST, b"left_children", node, first), (LAST, b"right_children", node, first + 1)])
    with pytest.raises(CorruptArtifact, match=f"^the model is damaged: tree {LAST} is not a tree: a node is "
                                              "reached twice or is deleted$"):
        xgb_loader.load(damaged)


def test_a_split_on_a_feature_the_model_lacks_in_the_last_tree_is_refused():
    raw, trees = _model()
    node = _internal(trees[LAST])[0]
    with pytest.raises(CorruptArtifact) as refused:
        xgb_loader.load(_with(raw, [(LAST, b"split_indices", node, 40)]))
    assert str(refused.value) == f"the model is damaged: tree {LAST} splits on feature 40 of a model with " \
                                 f"{FEATURES} features"


def test_a_parent_index_outside_the_last_tree_is_refused_before_xgboost_reads_it():
    raw, trees = _model()
    size = len(trees[LAST]["parents"])
    with pytest.raises(CorruptArtifact) as refused:
        xgb_format.prepare(_with(raw, [(LAST, b"parents", size - 1, 1 << 20)]))  # the first stage refuses it
    assert str(refused.value) == f"the model is damaged: tree {LAST} has a parent index outside 0..{size - 1}"


def test_a_right_child_apart_from_its_left_one_in_the_last_tree_is_refused():
    raw, trees = _model()
    node = _internal(trees[LAST])[0]
    right = trees[LAST]["right_children"][node]
    with pytest.raises(CorruptArtifact) as refused:
        xgb_loader.load(_with(raw, [(LAST, b"right_children", node, right + 1)]))
    assert str(refused.value) in (
        f"the model is damaged: tree {LAST} has a right child that does not follow its left child, which "
        "XGBoost's predictor assumes",
        f"the model is damaged: tree {LAST} has a child index outside 1..{len(trees[LAST]['parents']) - 1}")


def test_a_count_of_the_last_tree_past_the_end_is_refused():
    """A typed array count of the last tree that points past the bytes: the fast walk gives up, and the general
    reader refuses the file (XGBoost's own reader would copy that many values from beyond the buffer)."""
    raw, _ = _model()
    start, _dtype, _count = _array_at(raw, LAST, b"split_conditions")
    damaged = bytearray(raw)
    damaged[start - 8:start] = (1 << 40).to_bytes(8, "big")
    with pytest.raises(CorruptArtifact, match="truncated or damaged"):
        xgb_format.prepare(bytes(damaged))


def test_a_node_count_that_is_not_a_number_in_the_last_tree_is_refused():
    """A ``num_nodes`` text the fast walk cannot read as digits: the general reader reads the trees and refuses."""
    raw, trees = _model()
    text = str(len(trees[LAST]["left_children"])).encode()
    key = b"num_nodesSL" + len(text).to_bytes(8, "big") + text
    at = raw.rfind(key)
    assert at > raw.rfind(b"base_weights")  # the last tree's
    damaged = raw[:at + len(key) - 1] + b"x" + raw[at + len(key):]
    with pytest.raises(CorruptArtifact, match="num_nodes"):
        xgb_format.prepare(damaged)


def test_the_bytes_given_to_xgboost_are_left_as_they_are():
    """XGBoost reads the file's own bytes (no copy): they are unchanged and the Booster is XGBoost's own reading."""
    raw, _ = _model()
    before = bytes(bytearray(raw))
    booster, info = xgb_loader.load_booster(raw)
    assert raw == before and not info["converted"]
    own = xgb.Booster()
    own.load_model(bytearray(raw))
    assert bytes(booster.save_raw("json")) == bytes(own.save_raw("json"))


@pytest.mark.parametrize("text", ["9223372036854775807", "0000000000000000002", "-1", "2 "])
def test_a_leaf_vector_size_the_fast_walk_cannot_read_in_the_last_tree_is_refused(text):
    """A ``size_leaf_vector`` text that is not plain digits of at most 18 (19 digits, a sign, a trailing space):
    the fast walk must not take the tree for a scalar-leaf one. XGBoost 3.2 reads these texts with ``std::stoul``
    as a vector-leaf size and segfaults on the tree's scalar arrays; the general reader refuses them."""
    raw, _ = _model()
    key = b"size_leaf_vectorSL" + (1).to_bytes(8, "big") + b"1"
    at = raw.rfind(key)
    assert at > raw.rfind(b"base_weights")  # the last tree's
    damaged = raw[:at] + b"size_leaf_vectorSL" + len(text).to_bytes(8, "big") + text.encode() + raw[at + len(key):]
    targets = json.loads(bytes(_MODEL["booster"].save_raw("json")))["learner"]["learner_model_param"]["num_target"]
    with pytest.raises(CorruptArtifact) as refused:
        xgb_format.prepare(damaged)  # before XGBoost reads the bytes
    assert str(refused.value) == f"tree {LAST}: size_leaf_vector is {int(text)} for {targets} targets"


def test_a_tree_feature_count_beyond_64_bits_in_the_last_tree_is_refused():
    """A tree's ``num_feature`` text of 20 digits: a clear refusal, not numpy's OverflowError."""
    raw, _ = _model()
    text = json.loads(bytes(_MODEL["booster"].save_raw("json")))["learner"]["gradient_booster"]["model"][
        "trees"][LAST]["tree_param"]["num_feature"].encode()
    key = b"num_featureSL" + len(text).to_bytes(8, "big") + text
    at = raw.find(key, raw.rfind(b"base_weights"))  # the last tree's (the learner's own comes later)
    assert at > 0 and raw.find(b"size_leaf_vector", at) > 0
    huge = b"9" * 20
    damaged = raw[:at] + b"num_featureSL" + len(huge).to_bytes(8, "big") + huge + raw[at + len(key):]
    with pytest.raises(CorruptArtifact) as refused:
        xgb_format.prepare(damaged)
    assert str(refused.value) == f"tree {LAST}: num_feature {huge.decode()} is out of range"


def test_a_linear_model_with_fewer_feature_names_than_features_is_refused():
    """gblinear models get the name-count check tree models get (XGBoost would load the file and fail at predict)."""
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(60, 3)).astype(np.float32)
    booster = xgb.train({"booster": "gblinear", "nthread": 1}, xgb.DMatrix(rows, label=rows[:, 0],
                                                                             feature_names=["a", "b", "c"]), 2)
    doc = json.loads(bytes(booster.save_raw("json")))
    features = int(doc["learner"]["learner_model_param"]["num_feature"])
    doc["learner"]["feature_names"] = doc["learner"]["feature_names"][:-1]
    with pytest.raises(CorruptArtifact) as refused:
        xgb_loader.load_booster(json.dumps(doc).encode())
    assert str(refused.value) == f"the model is damaged: {features - 1} feature_names for {features} features"


def test_categorical_splits_whose_category_sets_would_take_gigabytes_are_refused_before_xgboost_reads_them():
    """Every split of the first 100 trees made categorical with the one category 2**24 - 1: a list of one item each,
    but XGBoost's reading gives every such split a bitfield of 2**24 bits (2 MiB), over 1 GiB in all."""
    _model()
    doc = json.loads(bytes(_MODEL["booster"].save_raw("json")))
    splits = 0
    for tree in doc["learner"]["gradient_booster"]["model"]["trees"][:100]:
        inner = _internal(tree)
        tree["split_type"] = [int(left != -1) for left in tree["left_children"]]
        tree["categories_nodes"] = inner
        tree["categories_segments"] = list(range(len(inner)))
        tree["categories_sizes"] = [1] * len(inner)
        tree["categories"] = [(1 << 24) - 1] * len(inner)
        splits += len(inner)
    mib = splits * ((1 << 24) // 32) * 4 >> 20
    assert mib > 1024
    with pytest.raises(UnsafeArtifact) as refused:
        xgb_format.prepare(json.dumps(doc).encode())
    assert str(refused.value) == f"the model's categorical splits would make XGBoost allocate {mib} MiB of " \
                                 "category sets (more than 1024 MiB): a memory bomb?"


def test_a_vector_leaf_tree_without_split_type_is_refused():
    """A multi-output tree (``multi_strategy="multi_output_tree"``) whose ``split_type`` is gone: XGBoost 3.2 loads it
    and then aborts the process (std::terminate) on ``predict(pred_leaf=True)``."""
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(200, 4)).astype(np.float32)
    labels = np.stack([rows[:, 0] + rows[:, 1], rows[:, 2] * rows[:, 3]], axis=1)
    booster = xgb.train({"tree_method": "hist", "multi_strategy": "multi_output_tree", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(rows, label=labels), 3)
    doc = json.loads(bytes(booster.save_raw("json")))
    tree = doc["learner"]["gradient_booster"]["model"]["trees"][0]
    assert int(tree["tree_param"]["size_leaf_vector"]) == 2
    del tree["split_type"]
    with pytest.raises(CorruptArtifact) as refused:
        xgb_format.prepare(json.dumps(doc).encode())
    assert str(refused.value) == "tree 0 has vector leaves but no split_type"
