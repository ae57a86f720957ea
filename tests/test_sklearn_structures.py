"""Native index structures in scikit-learn pickles (``loaders.sklearn.check_structures``): a pickle of allowlisted
types only, whose tree arrays point outside themselves, is refused in one sentence instead of crashing the process
when scikit-learn's compiled code follows them; every real fitted model still loads and predicts as joblib's does."""

from __future__ import annotations

import io
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.neighbors import BallTree, KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from artifact_tools.errors import CorruptArtifact
from loaders.sklearn import unpickle

X, Y = load_iris(return_X_y=True)


def _bytes(model) -> bytes:
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


@pytest.mark.parametrize("model", [
    DecisionTreeClassifier(max_depth=4, random_state=0),
    RandomForestClassifier(n_estimators=5, random_state=0),
    GradientBoostingClassifier(n_estimators=5, random_state=0),
    HistGradientBoostingClassifier(max_iter=5, random_state=0),
    KNeighborsClassifier(algorithm="kd_tree"),
    KNeighborsClassifier(algorithm="ball_tree"),
    make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0)),
], ids=lambda m: type(m).__name__ if not hasattr(m, "steps") else "pipeline")
def test_real_models_pass_the_structure_check(model):
    model.fit(X, Y)
    loaded = unpickle(_bytes(model), label="model.joblib")
    np.testing.assert_array_equal(loaded.predict(X), joblib.load(io.BytesIO(_bytes(model))).predict(X))


def test_neighbours_tree_alone_passes():
    tree = BallTree(X)
    loaded = unpickle(_bytes(tree), label="tree.joblib")
    np.testing.assert_array_equal(loaded.query(X[:5], k=2)[1], tree.query(X[:5], k=2)[1])


def _damaged_tree(field: str, value) -> bytes:
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][0] = value
    state["nodes"] = nodes
    model.tree_.__setstate__(state)
    return _bytes(model)


@pytest.mark.parametrize("field,value,words", [
    ("left_child", 2 ** 40, "child node outside"),
    ("right_child", 0, "child node outside"),  # a cycle back to the root
    ("feature", 99, "feature outside"),
    ("feature", -7, "feature outside"),
])
def test_tree_pointing_outside_itself_is_refused(field, value, words):
    with pytest.raises(CorruptArtifact, match=words):
        unpickle(_damaged_tree(field, value), label="model.joblib")


def test_hist_gradient_boosting_pointing_outside_itself_is_refused():
    model = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, Y)
    nodes = model._predictors[0][0].nodes
    inner = np.flatnonzero(~nodes["is_leaf"].astype(bool))[0]
    nodes["left"][inner] = 10 ** 6
    with pytest.raises(CorruptArtifact, match="child node outside"):
        unpickle(_bytes(model), label="model.joblib")


def test_neighbours_index_outside_the_data_is_refused():
    model = NearestNeighbors(algorithm="kd_tree").fit(X)
    state = list(model._tree.__getstate__())
    idx = np.asarray(state[1]).copy()
    idx[0] = 10 ** 7
    state[1] = idx
    model._tree.__setstate__(tuple(state))
    with pytest.raises(CorruptArtifact, match="permutation"):
        unpickle(_bytes(model), label="model.joblib")


def test_the_damaged_tree_really_crashes_scikit_learn():
    """The oracle: scikit-learn itself, in a child process, dies on the same bytes the loader refuses."""
    code = ("import io, sys, joblib, numpy as np\n"
            "m = joblib.load(io.BytesIO(sys.stdin.buffer.read()))\n"
            "m.predict(np.zeros((4, 4)))\n")
    r = subprocess.run([sys.executable, "-c", code], input=_damaged_tree("left_child", 2 ** 40), capture_output=True)
    assert r.returncode < 0 or r.returncode not in (0,), r
