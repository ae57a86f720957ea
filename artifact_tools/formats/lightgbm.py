"""LightGBM text model files (``Booster.save_model``, ``model.txt``) read as data.

Facts used, from microsoft/LightGBM ``src/boosting/gbdt_model_text.cpp`` (``GBDT::SaveModelToString``,
``GBDT::LoadModelFromString``), ``src/io/tree.cpp`` (``Tree::ToString``, ``Tree::Tree(const char*, ...)``) and
``python-package/lightgbm/basic.py`` (``_dump_pandas_categorical``):

- The file is text, one ``key=value`` per line. It starts with the model type line ``tree``, then the
  header: ``version=v2|v3|v4``, ``num_class``, ``num_tree_per_iteration``, ``label_index``,
  ``max_feature_idx`` (feature count - 1), ``objective`` (the objective name, then its own ``key:value``
  settings separated by spaces: ``binary sigmoid:1``, ``multiclass num_class:3``), an ``average_output``
  line alone for random forests, ``feature_names`` (space separated), optional ``monotone_constraints``,
  ``feature_infos`` (per feature: ``[min:max]`` for numbers, the category values joined by ``:`` for
  categorical features, ``none`` for a feature the trees never use) and, since v3, ``tree_sizes`` (the byte
  length of each tree block).
- One block per tree: ``Tree=<i>``, then ``num_leaves``, ``num_cat``, ``split_feature``, ``split_gain``,
  ``threshold``, ``decision_type``, ``left_child``, ``right_child``, ``leaf_value``, ... ``is_linear``,
  ``shrinkage``. Internal nodes are numbered ``0 .. num_leaves - 2`` (node 0 is the root); a child index
  ``>= 0`` is an internal node and ``< 0`` is leaf ``~index``. A tree with one leaf has no split lines.
- After the trees: ``end of trees``, then ``feature_importances:`` (``name=count`` lines), then
  ``parameters:`` with one ``[name: value]`` line each, ``end of parameters``, and the Python package
  appends ``pandas_categorical:<json>``. LightGBM's loader stops reading trees at ``end of trees``; a file
  without it was cut short.

Depth is the number of splits from the root to the deepest leaf (one split = depth 1), as ``max_depth``
counts it. Everything is parsed with bounds (line lengths and node counts come from the file's own size);
damaged numbers, child indexes out of range or a child reached twice raise :class:`CorruptArtifact`.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import CorruptArtifact, NotAnArtifact

_MAX_PARAMETERS = 500


def is_lightgbm(head: bytes) -> bool:
    """Whether bytes (the first KiB of a file suffices) start a LightGBM text model: the model type line
    ``tree`` then header lines among which ``version=`` or ``num_class=`` appears before the first blank line."""
    head = bytes(head[:4096])
    if not (head.startswith(b"tree\n") or head.startswith(b"tree\r\n")):
        return False
    for line in head.splitlines()[1:]:
        line = line.strip()
        if not line:
            return False
        if line.startswith((b"version=", b"num_class=")):
            return True
    return False


def summarize(data: bytes) -> dict:
    """Describe a LightGBM text model.

    Returns ``{"version", "objective", "objective_params": [...], "num_class", "num_tree_per_iteration",
    "label_index", "max_feature_idx", "feature_count", "feature_names", "categorical_features": [name],
    "unused_features": [name], "monotone_constraints", "average_output", "trees", "iterations", "max_depth",
    "max_leaves", "linear_trees", "parameters": {name: text}, "pandas_categorical": list | None}``.
    ``trees`` is what ``Booster.num_trees()`` counts; ``iterations`` is ``trees / num_tree_per_iteration``.
    """
    if not data:
        raise NotAnArtifact("the LightGBM model file is empty")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptArtifact(f"the LightGBM model is not UTF-8 text (byte {e.start})") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "tree":
        raise CorruptArtifact("the LightGBM model does not start with its model type line 'tree'")
    header: dict[str, str] = {}
    flags: set[str] = set()
    i = 1
    while i < len(lines) and not lines[i].startswith("Tree=") and lines[i].strip() != "end of trees":
        line = lines[i].strip()
        if line:
            key, sep, value = line.partition("=")
            if sep:
                header[key] = value
            else:
                flags.add(key)
        i += 1
    for key in ("num_class", "max_feature_idx", "objective"):
        if key not in header and not (key == "objective" and "objective" in flags):
            raise CorruptArtifact(f"the LightGBM model header has no {key}")
    num_class = _int(header, "num_class")
    per_iteration = _int(header, "num_tree_per_iteration", 1)
    max_feature_idx = _int(header, "max_feature_idx")
    if per_iteration < 1 or num_class < 1 or max_feature_idx < -1:
        raise CorruptArtifact("the LightGBM model header has impossible counts "
                              f"(num_class {num_class}, num_tree_per_iteration {per_iteration}, "
                              f"max_feature_idx {max_feature_idx})")
    n_features = max_feature_idx + 1
    names = header.get("feature_names", "").split()
    if names and len(names) != n_features:
        raise CorruptArtifact(f"the LightGBM model names {len(names)} features but max_feature_idx says {n_features}")
    names = names or [f"Column_{k}" for k in range(n_features)]
    infos = header.get("feature_infos", "").split()
    if infos and len(infos) != n_features:
        raise CorruptArtifact(f"the LightGBM model has {len(infos)} feature_infos for {n_features} features")
    objective, *objective_params = header.get("objective", "").split()

    trees, i = _trees(lines, i, n_features)
    if i >= len(lines):
        raise CorruptArtifact("the LightGBM model is truncated: 'end of trees' never comes")
    sizes = header.get("tree_sizes", "").split()
    if sizes and len(sizes) != len(trees):
        raise CorruptArtifact(f"the LightGBM model header lists {len(sizes)} tree sizes but holds {len(trees)} trees")
    params, pandas = _tail(lines, i + 1)
    monotone = header.get("monotone_constraints")
    return {
        "version": header.get("version"),
        "objective": objective or None,
        "objective_params": objective_params,
        "num_class": num_class,
        "num_tree_per_iteration": per_iteration,
        "label_index": _int(header, "label_index", 0),
        "max_feature_idx": max_feature_idx,
        "feature_count": n_features,
        "feature_names": names,
        "categorical_features": [n for n, info in zip(names, infos) if not info.startswith("[") and info != "none"],
        "unused_features": [n for n, info in zip(names, infos) if info == "none"],
        "monotone_constraints": [int(x) for x in monotone.split()] if monotone else None,
        "average_output": "average_output" in flags,
        "trees": len(trees),
        "iterations": len(trees) // per_iteration,
        "max_depth": max((t["depth"] for t in trees), default=0),
        "max_leaves": max((t["leaves"] for t in trees), default=0),
        "linear_trees": any(t["linear"] for t in trees),
        "parameters": params,
        "pandas_categorical": pandas,
    }


def _int(header: dict[str, str], key: str, default: int | None = None) -> int:
    if key not in header:
        if default is None:
            raise CorruptArtifact(f"the LightGBM model header has no {key}")
        return default
    try:
        return int(header[key])
    except ValueError:
        raise CorruptArtifact(f"the LightGBM model header has a non-integer {key}: {header[key][:40]!r}") from None


def _trees(lines: list[str], i: int, n_features: int) -> tuple[list[dict], int]:
    """Parse every ``Tree=`` block from line ``i``; returns the trees and the index of ``end of trees``."""
    trees: list[dict] = []
    while i < len(lines):
        line = lines[i].strip()
        if line == "end of trees":
            return trees, i
        if not line:
            i += 1
            continue
        if not line.startswith("Tree="):
            raise CorruptArtifact(f"the LightGBM model has an unexpected line before 'end of trees': {line[:60]!r}")
        if line[5:] != str(len(trees)):
            raise CorruptArtifact(f"the LightGBM model numbers tree {len(trees)} as {line[:40]!r}")
        block: dict[str, str] = {}
        i += 1
        while i < len(lines) and lines[i].strip() and not lines[i].startswith("Tree="):
            key, _, value = lines[i].strip().partition("=")
            block[key] = value
            i += 1
        trees.append(_tree(block, len(trees), n_features))
    return trees, i


def _tree(block: dict[str, str], index: int, n_features: int) -> dict:
    where = f"tree {index} of the LightGBM model"
    try:
        leaves = int(block["num_leaves"])
    except (KeyError, ValueError):
        raise CorruptArtifact(f"{where} has no valid num_leaves") from None
    if leaves < 1:
        raise CorruptArtifact(f"{where} has {leaves} leaves")
    linear = block.get("is_linear", "0").strip() == "1"
    if leaves == 1:
        return {"leaves": 1, "depth": 0, "linear": linear}
    internal = leaves - 1
    left = _ints(block, "left_child", internal, where)
    right = _ints(block, "right_child", internal, where)
    features = _ints(block, "split_feature", internal, where)
    if any(not 0 <= f < n_features for f in features):
        raise CorruptArtifact(f"{where} splits on a feature index outside 0..{n_features - 1}")
    _numbers(block, "leaf_value", leaves, where)
    # Walk from the root, each node once: depth of a leaf = number of splits above it.
    seen_nodes = [False] * internal
    seen_leaves = [False] * leaves
    depth = 0
    stack = [(0, 0)]
    while stack:
        node, d = stack.pop()
        if seen_nodes[node]:
            raise CorruptArtifact(f"{where} reaches node {node} twice, so it is not a tree")
        seen_nodes[node] = True
        for child in (left[node], right[node]):
            if child >= 0:
                if child >= internal:
                    raise CorruptArtifact(f"{where} has a child index {child} beyond its {internal} nodes")
                stack.append((child, d + 1))
            else:
                leaf = ~child
                if leaf >= leaves or seen_leaves[leaf]:
                    raise CorruptArtifact(f"{where} has a bad or repeated leaf index {leaf}")
                seen_leaves[leaf] = True
                depth = max(depth, d + 1)
    return {"leaves": leaves, "depth": depth, "linear": linear}


def _ints(block: dict[str, str], key: str, count: int, where: str) -> list[int]:
    try:
        values = [int(x) for x in block[key].split()]
    except (KeyError, ValueError):
        raise CorruptArtifact(f"{where} has no valid {key}") from None
    if len(values) != count:
        raise CorruptArtifact(f"{where} has {len(values)} {key} values, {count} expected")
    return values


def _numbers(block: dict[str, str], key: str, count: int, where: str) -> None:
    values = block.get(key, "").split()
    if len(values) != count:
        raise CorruptArtifact(f"{where} has {len(values)} {key} values, {count} expected")
    try:
        [float(x) for x in values]
    except ValueError:
        raise CorruptArtifact(f"{where} has a non-numeric {key}") from None


def _tail(lines: list[str], i: int) -> tuple[dict[str, str], Any]:
    """The ``parameters:`` section and the ``pandas_categorical`` line after ``end of trees``."""
    params: dict[str, str] = {}
    pandas: Any = None
    in_params = False
    for line in lines[i:]:
        s = line.strip()
        if s == "parameters:":
            in_params = True
        elif s == "end of parameters":
            in_params = False
        elif in_params and s.startswith("[") and s.endswith("]") and ":" in s:
            if len(params) < _MAX_PARAMETERS:
                key, _, value = s[1:-1].partition(":")
                params[key.strip()] = value.strip()
        elif s.startswith("pandas_categorical:"):
            try:
                pandas = json.loads(s[len("pandas_categorical:"):])
            except (ValueError, RecursionError):
                raise CorruptArtifact("the LightGBM model's pandas_categorical line is not valid JSON") from None
    return params, pandas
