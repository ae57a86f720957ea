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
damaged numbers, child indexes out of range or a child reached twice raise :class:`CorruptArtifact`. So do,
because LightGBM 4.7 segfaults on them rather than raising (found by fuzzing): a NUL byte, a parameters line
without ``:``, an objective without a name or with a ``num_class:`` other than the header's,
``num_tree_per_iteration`` other than ``num_class``, categorical splits whose category-set indexes leave their
arrays, and linear-tree leaves on features the model lacks.
"""

from __future__ import annotations

import json
import re
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
    if "\x00" in text:  # LightGBM reads the model as a C string: it would stop there, in mid-line
        raise CorruptArtifact(f"the LightGBM model holds a NUL byte (at byte {text.index(chr(0))}), which no model "
                              "text has")
    _check_parameter_lines(text)
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
    if not header.get("objective", "").strip():  # LightGBM 4.x segfaults on an objective line without a name
        raise CorruptArtifact("the LightGBM model header has an objective line without an objective name")
    num_class = _int(header, "num_class")
    per_iteration = _int(header, "num_tree_per_iteration", 1)
    max_feature_idx = _int(header, "max_feature_idx")
    if per_iteration < 1 or num_class < 1 or max_feature_idx < -1:
        raise CorruptArtifact("the LightGBM model header has impossible counts "
                              f"(num_class {num_class}, num_tree_per_iteration {per_iteration}, "
                              f"max_feature_idx {max_feature_idx})")
    if per_iteration != num_class:  # Booster.predict writes num_tree_per_iteration values into num_class slots
        raise CorruptArtifact(f"the LightGBM model header says num_tree_per_iteration {per_iteration} but num_class "
                              f"{num_class}; LightGBM grows one tree per class and iteration")
    n_features = max_feature_idx + 1
    names = header.get("feature_names", "").split()
    if n_features and "feature_names" not in header:  # LightGBM refuses such a model too; the count is unbounded
        raise CorruptArtifact("the LightGBM model header has no feature_names")
    if names and len(names) != n_features:
        raise CorruptArtifact(f"the LightGBM model names {len(names)} features but max_feature_idx says {n_features}")
    names = names or [f"Column_{k}" for k in range(n_features)]
    infos = header.get("feature_infos", "").split()
    if infos and len(infos) != n_features:
        raise CorruptArtifact(f"the LightGBM model has {len(infos)} feature_infos for {n_features} features")
    objective, *objective_params = header.get("objective", "").split() or [""]
    for setting in objective_params:  # the objective's own class count sizes softmax's output (LightGBM 4.x
        key, _, value = setting.partition(":")  # MulticlassSoftmax::ConvertOutput): a larger one overruns it
        if key == "num_class" and not (value.strip().isdigit() and int(value) == num_class):
            raise CorruptArtifact(f"the LightGBM model's objective says num_class:{value[:20]} but its header "
                                  f"num_class {num_class}")

    trees, i = _trees(lines, i, n_features)
    if i >= len(lines):
        raise CorruptArtifact("the LightGBM model is truncated: 'end of trees' never comes")
    if num_class > max(len(trees), 1):
        raise CorruptArtifact(f"the LightGBM model declares {num_class} classes but holds {len(trees)} trees (one "
                              "per class and iteration)")
    sizes = header.get("tree_sizes", "").split()
    if sizes and len(sizes) != len(trees):
        raise CorruptArtifact(f"the LightGBM model header lists {len(sizes)} tree sizes but holds {len(trees)} trees")
    params, pandas = _tail(lines, i + 1)
    monotone = header.get("monotone_constraints")
    try:
        constraints = [int(x) for x in monotone.split()] if monotone else None
    except ValueError:
        raise CorruptArtifact("the LightGBM model has a non-integer monotone_constraints value") from None
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
        "monotone_constraints": constraints,
        "average_output": "average_output" in flags,
        "trees": len(trees),
        "iterations": len(trees) // per_iteration,
        "max_depth": max((t["depth"] for t in trees), default=0),
        "max_leaves": max((t["leaves"] for t in trees), default=0),
        "linear_trees": any(t["linear"] for t in trees),
        "parameters": params,
        "pandas_categorical": pandas,
    }


_PARAMETERS_START = re.compile(r"(?:^|[\r\n])parameters:(?=[\r\n]|$)")
_PARAMETERS_END = re.compile(r"[\r\n]end of parameters(?=[\r\n]|$)")
_LINE_BREAK = re.compile(r"[\r\n]")


def _check_parameter_lines(text: str) -> None:
    """Each non-empty line between ``parameters:`` and ``end of parameters`` (both whole lines; a line ends at
    ``\\n`` or ``\\r``; without the end line, to the end of the text) must hold a ``:`` between its first and
    last characters, as in ``[name: value]``: LightGBM 4.x (``GBDT::LoadModelFromString``) drops those two
    characters, splits the rest at ``:`` and crashes the process with a segmentation fault when there is none."""
    start = _PARAMETERS_START.search(text)
    if start is None:
        return
    end = _PARAMETERS_END.search(text, start.end())
    for line in _LINE_BREAK.split(text[start.end():end.start() if end else len(text)]):
        if line and ":" not in line[1:-1]:
            raise CorruptArtifact(f"the LightGBM model's parameters section has a line without ':' inside it "
                                  f"({line[:40]!r}), which is not a [name: value] line")


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
    _categorical_splits(block, internal, where)
    if linear:
        _linear_leaves(block, leaves, n_features, where)
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


def _categorical_splits(block: dict[str, str], internal: int, where: str) -> None:
    """A categorical split (``decision_type`` bit 0) names its category set by ``threshold`` (an index into
    ``cat_boundaries``); set ``k`` is words ``cat_boundaries[k] .. cat_boundaries[k+1]`` of ``cat_threshold``
    (LightGBM ``Tree::CategoricalDecision``, ``src/io/tree.cpp``). LightGBM 4.x reads those arrays without
    bounds checks at predict time, so every index must be in range: ``num_cat + 1`` boundaries rising from 0
    to the length of ``cat_threshold``, and each categorical threshold an integer below ``num_cat``."""
    try:
        num_cat = int(block.get("num_cat", "0"))
    except ValueError:
        raise CorruptArtifact(f"{where} has a non-integer num_cat") from None
    decisions = _ints(block, "decision_type", internal, where) if "decision_type" in block else [0] * internal
    categorical = [k for k, d in enumerate(decisions) if d & 1]
    if num_cat < 0 or (num_cat == 0 and categorical):
        raise CorruptArtifact(f"{where} has {len(categorical)} categorical splits but num_cat {num_cat}")
    if num_cat == 0:
        return
    if num_cat > internal:
        raise CorruptArtifact(f"{where} has num_cat {num_cat} for {internal} splits")
    bounds = _ints(block, "cat_boundaries", num_cat + 1, where)
    words = _ints(block, "cat_threshold", bounds[-1] if bounds[-1] >= 0 else 0, where)
    if bounds[0] != 0 or any(b > c for b, c in zip(bounds, bounds[1:])) or any(w < 0 or w >= 1 << 32 for w in words):
        raise CorruptArtifact(f"{where} has cat_boundaries that do not rise from 0 to its {len(words)} "
                              "cat_threshold words, or a word outside 32 bits")
    thresholds = block.get("threshold", "").split()
    for k in categorical:
        try:
            value = float(thresholds[k])
        except (IndexError, ValueError):
            raise CorruptArtifact(f"{where} has no valid threshold for categorical split {k}") from None
        if not (0 <= value < num_cat and value == int(value)):
            raise CorruptArtifact(f"{where} has categorical split {k} naming category set {thresholds[k][:30]}, "
                                  f"outside its {num_cat} sets")


def _linear_leaves(block: dict[str, str], leaves: int, n_features: int, where: str) -> None:
    """A linear tree's leaf ``i`` has ``num_features[i]`` features; ``leaf_features`` and ``leaf_coeff`` list
    them leaf after leaf (``Tree::ToString``), and each feature index must name a model feature."""
    counts = _ints(block, "num_features", leaves, where)
    if any(not 0 <= c <= n_features for c in counts):
        raise CorruptArtifact(f"{where} has a linear leaf with a feature count outside 0..{n_features}")
    total = sum(counts)
    features = _ints(block, "leaf_features", total, where) if total else []
    if any(not 0 <= f < n_features for f in features):
        raise CorruptArtifact(f"{where} has a linear leaf on a feature index outside 0..{n_features - 1}")
    _numbers(block, "leaf_coeff", total, where)
    _numbers(block, "leaf_const", leaves, where)


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
