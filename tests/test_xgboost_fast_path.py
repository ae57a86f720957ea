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

from artifact_tools.errors import CorruptArtifact
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
