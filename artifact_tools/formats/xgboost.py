"""XGBoost model files of every era SageMaker produced, read as data, checked, and converted to the
document current XGBoost loads. Nothing here imports XGBoost or unpickles anything.

XGBoost 3.x refuses the files SageMaker's XGBoost containers wrote before 2024: pickles of
``xgboost.core.Booster`` from the 0.90 and 1.x containers, and the legacy binary ``save_model``
output. This module reads them as data and rewrites them as XGBoost's UBJSON (or JSON) model
document; it checks JSON/UBJSON model files too, and then lets XGBoost read the file itself.
The part that needs the ``xgboost`` package (building a Booster) is ``loaders/xgboost.py``.

Formats and eras (what :func:`detect_era` returns)
--------------------------------------------------
``py2-pickle``
    A protocol 0-2 pickle of ``xgboost.core.Booster`` (what Python 2 writes: ``copy_reg._reconstructor``
    or ``NEWOBJ``, ``__builtin__.bytearray(unicode, 'latin-1')``) whose ``handle`` is a legacy binary
    model. A Python 3 pickle forced to protocol <= 2 looks the same (``fix_imports``) and is reported so.
``py3-pickle-legacy-binary``
    A protocol >= 3 pickle (XGBoost 0.7x-0.90 under Python 3) whose ``handle`` is a legacy binary model.
``pickle-1.x-snapshot``
    A pickle from XGBoost 1.0-1.7 whose ``handle`` is a *memory snapshot* (or such a snapshot alone):
    ``CONFIG-offset:`` + int64 + binary model + JSON config (1.0-1.2, and later with
    ``enable_experimental_json_serialization=0``), a JSON ``{"Config": ..., "Model": ...}`` document
    (1.3-1.5) or the same in UBJSON (1.6-1.7). Source: ``src/learner.cc`` ``LearnerIO::Save``/``Load``
    at v1.0.0, v1.3.0, v1.5.0, v1.6.0, v1.7.6; the default of ``enable_experimental_json_serialization``
    flips to true in v1.3.0 (``include/xgboost/generic_parameters.h``).
``legacy-binary``
    ``Booster.save_model`` of XGBoost < 2.1 without a ``.json``/``.ubj`` name, or ``save_raw()``:
    optional ``binf`` magic (written since 1.1), then the learner (layout below).
``json`` / ``ubjson``
    XGBoost's own JSON/UBJSON model documents (1.0+). They are checked like the rest and then handed
    to XGBoost as they are (:func:`checked_bytes`): no re-encoding. Documents using what only XGBoost
    2.0+ writes (several targets, vector leaves, one intercept per output, category names) are checked
    as far as their trees go.

Legacy binary layout (little-endian; ``dmlc::Stream`` strings are uint64 length + bytes, vectors
uint64 count + items). Sources, dmlc/xgboost at v0.90 and v1.7.6:

* ``src/learner.cc`` ``LearnerModelParam`` (0.90) / ``LearnerModelParamLegacy`` (1.x), 136 bytes:
  float32 ``base_score``, uint32 ``num_feature``, int32 ``num_class``, int32 ``contain_extra_attrs``,
  int32 ``contain_eval_metrics``, uint32 ``major_version``, uint32 ``minor_version`` (both since
  1.0), uint32 ``num_target`` (since 1.6, else 0), int32 ``boost_from_average`` (since 1.7, else
  0), int32 reserved[25] (0.90: reserved[29] from ``major_version`` on, all zero).
  Then string ``objective`` (0.90 ``LoadModel``: a length >= 2**32-1 is followed by an int32 gap and
  shifted right by 32 bits -- files of very old writers), string ``booster`` (gbtree, gblinear, dart),
  the booster model, and when ``contain_extra_attrs`` the attributes as vector<pair<string,string>>.
  Writers before 1.0 (``major_version == 0``; ``Save`` in v0.90) then append, for ``count:poisson``,
  the string ``max_delta_step``, and when ``contain_eval_metrics`` a vector<string> of metric names.
  1.x writers store the objective's JSON configuration in the attribute ``objective`` and the metrics
  in ``metrics`` (``LearnerIO::SaveModel``).
* ``src/gbm/gbtree_model.h`` ``GBTreeModelParam``, 160 bytes: int32 ``num_trees``, int32
  ``num_parallel_tree`` (0.90: ``num_roots``, always 1), int32 ``num_feature``, int32 pad, int64
  ``num_pbuffer``, int32 ``num_output_group``, int32 ``size_leaf_vector``, int32 reserved[32]; then
  ``num_trees`` trees, then int32 ``tree_info[num_trees]`` (the output group of each tree).
  ``src/gbm/gbtree.cc`` ``Dart::Load``: dart follows with vector<float32> ``weight_drop`` (when it
  has trees).
* ``include/xgboost/tree_model.h`` ``TreeParam``, 148 bytes: int32 ``num_roots``, ``num_nodes``,
  ``num_deleted``, ``max_depth``, uint32 ``num_feature``, int32 ``size_leaf_vector``, reserved[31];
  then ``num_nodes`` ``Node`` (20 bytes: int32 ``parent`` whose bit 31 marks a left child, int32
  ``cleft`` (-1 for a leaf), int32 ``cright``, uint32 ``sindex`` = feature index | default-left in
  bit 31, 0xFFFFFFFF for a deleted node, float32 ``split_cond`` or leaf value) and ``num_nodes``
  ``RTreeNodeStat`` (16 bytes: float32 ``loss_chg``, ``sum_hess``, ``base_weight``, int32
  ``leaf_child_cnt``). ``src/tree/tree_model.cc`` ``RegTree::Load``. The binary format cannot hold
  categorical splits (``RegTree::Save`` refuses them in 1.7.6); they only occur in JSON/UBJSON.
* ``src/gbm/gblinear_model.h``: 136 bytes (uint32 ``num_feature``, int32 ``num_output_group``,
  reserved[32]) then vector<float32> ``weight``: ``(num_feature + 1) * groups``, bias last.

Base score: learners from 1.0 on keep ``base_score`` in probability space (as the JSON document
does); before 1.0 it was stored after ``ProbToMargin``. XGBoost 1.7's ``LearnerIO::LoadModel`` turns
such a value back with the objective's ``PredTransform`` (except for ``multi:`` objectives), and so do
we, in float32. The references in tests/data/xgboost_legacy and the corpus confirm it.

The document written here follows ``doc/model.schema`` of dmlc/xgboost v3.1.0 and the readers of
v3.2.0 (``src/learner.cc`` ``LearnerIO::LoadModel``, ``src/gbm/gbtree_model.cc``,
``src/tree/tree_model.cc`` ``RegTree::LoadModel``); the UBJSON encoding follows ``UBJWriter`` in
``src/common/json.cc`` (typed arrays ``[$T#L``, int64 big-endian lengths, object keys in sorted order).

The guard (why every file is checked before XGBoost sees it)
------------------------------------------------------------
XGBoost 3.2 trusts the model document. ``UBJReader`` (``src/common/json.cc``, ``include/xgboost/json_io.h``)
copies typed arrays and strings with the length the file states, without comparing it with the bytes
left; ``RegTree::LoadModel`` reads ``nodes[parent]`` for every node's parent index; the CPU predictor
walks to ``LeftChild(n) + 1`` for the right branch and to ``RightChild(n)`` for missing values
(``GetNextNode``, ``src/predictor/predict_fn.h``), indexes the row by each split's feature, the
output by ``tree_info`` and the trees by ``iteration_indptr``; ``LoadCategoricalSplit`` indexes the
category lists by each node's segment. XGBoost 3.2 segfaults on a JSON model with one bad child
index. So every structure is checked first -- the document's byte structure, child and parent
indices (the right child must follow the left one), feature indices, output groups, round offsets,
category lists, weight counts, repeated keys -- and a damaged file raises :class:`CorruptArtifact`.

Speed: the trees are held as one column per field for the whole model (:class:`Forest`), and every
check is a numpy operation over the nodes of a block of trees at once (:class:`_Block`: tens of
thousands of nodes, so that temporaries stay in cache; the parent check, a few operations, takes up to
262,144 at once). A UBJSON ``trees`` array is walked for all trees at once too: the layout of the first
tree is learnt, each tree's start is found (searched from the least length a tree of its node count can
have), and a vectorised walk over the trees confirms that every tree has that layout -- each run of
constant bytes compared as one numpy item per tree, all of a run compared in one ``memcmp`` -- and that
each begins where the previous one ends (anything else is read by the general reader, as XGBoost would
read it). The checks then gather a block's node values from the file sixteen at a time (numpy's
gathering costs about the same per item for one value as for 16), and a current file is given to
XGBoost as it is. The converted document is written column by column. The checks come in two stages
(:func:`prepare`): what XGBoost's *reading* of the document relies on (the byte structure, parent
indices, category lists) before it gets the bytes, and what its *use* relies on (``finish``), which a
caller may run while XGBoost reads -- ``loaders/xgboost.py`` does (in another thread, while XGBoost
reads in the calling one), and returns the Booster only after.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import CorruptArtifact, NotAnArtifact, NotLoadable, UnsafeArtifact
from .pickle_data import Call, read_pickle

__all__ = ["ERAS", "Forest", "LegacyModel", "Prepared", "Tree", "checked_bytes", "convert", "detect_era",
           "facts", "prepare", "read_model", "split_quartiles", "to_json_document"]

ERAS = ("py2-pickle", "py3-pickle-legacy-binary", "pickle-1.x-snapshot", "legacy-binary", "json",
        "ubjson")
_SNAPSHOT_HEADER = b"CONFIG-offset:"
_DOCUMENT_VERSION = (2, 1, 0)  # schema of the document we write: iteration_indptr, scalar base_score
_BOOSTERS = ("gbtree", "dart", "gblinear")

_LEARNER_PARAM = struct.Struct("<fIiiiIIIi100x")
_GBTREE_PARAM = struct.Struct("<iiiiqii128x")
_TREE_PARAM = struct.Struct("<iiiiIi124x")
_GBLINEAR_PARAM = struct.Struct("<Ii128x")
_NODE = np.dtype([("parent", "<i4"), ("left", "<i4"), ("right", "<i4"), ("sindex", "<u4"),
                  ("cond", "<f4")])
_STAT = np.dtype([("loss_chg", "<f4"), ("sum_hess", "<f4"), ("base_weight", "<f4"),
                  ("leaf_child_cnt", "<i4")])
_MAX_CATEGORY = 1 << 24  # bounds the bitfield XGBoost allocates per categorical split
# bounds the bitfields of all categorical splits together: RegTree::LoadCategoricalSplit gives each split a bitfield
# of (largest category + 1) bits in 32-bit words (2 MiB for category 2**24 - 1), whatever the list's length, so a
# file of a few kilobytes could otherwise make XGBoost allocate gigabytes while it reads
_MAX_CATEGORY_BITFIELDS = 1 << 30
_MAX_DEPTH = 64  # nesting limit for UBJSON documents
_MAX_TREE_FEATURES = 1 << 26
_DELETED = 0x7FFFFFFF  # split index of a deleted node (with default_left set): kDeletedNodeMarker
_OBJECTIVE_NAME = re.compile(r"[a-z]+:[a-z_]+\Z")
_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*\Z")  # what dmlc's parameter parser reads as an integer


# --------------------------------------------------------------------------------------------
# Model representation

# The per-node arrays of XGBoost's JSON tree object (RegTree::SaveModel), with the dtypes of its
# UBJSON typed arrays.
_NODE_COLUMNS = {
    "left_children": np.int32, "right_children": np.int32, "parents": np.int32,
    "split_indices": np.int32, "split_conditions": np.float32, "default_left": np.uint8,
    "loss_changes": np.float32, "sum_hessian": np.float32, "base_weights": np.float32,
    "split_type": np.uint8,
}
_CATEGORY_COLUMNS = {"categories": np.int32, "categories_nodes": np.int32,
                     "categories_segments": np.int64, "categories_sizes": np.int64}


@dataclass
class Tree:
    """One regression tree, as the arrays of XGBoost's JSON tree object (``RegTree::SaveModel``).

    ``parents`` holds ``Node::Parent()`` (bit 31 cleared, so the root's is 2**31-1),
    ``split_indices`` the feature index without the default-left bit, deleted nodes keep
    ``0x7FFFFFFF`` with ``default_left`` 1, as XGBoost writes them.
    """

    left_children: np.ndarray  # int32
    right_children: np.ndarray  # int32
    parents: np.ndarray  # int32
    split_indices: np.ndarray  # int32
    split_conditions: np.ndarray  # float32, leaf value on leaves
    default_left: np.ndarray  # uint8
    loss_changes: np.ndarray  # float32
    sum_hessian: np.ndarray  # float32
    base_weights: np.ndarray  # float32
    num_deleted: int
    num_feature: int
    split_type: np.ndarray  # uint8, 1 = categorical
    categories: np.ndarray  # int32, the category lists of all categorical nodes
    categories_nodes: np.ndarray  # int32, ascending node ids
    categories_segments: np.ndarray  # int64, start of each node's list in ``categories``
    categories_sizes: np.ndarray  # int64

    @property
    def num_nodes(self) -> int:
        return len(self.left_children)


_SLOT_RUN = 16  # node values gathered at once from a UBJSON file (see _Block)
_BLOCK_SLOTS = 24_000  # slots per block by default: an int32 column of a block stays below 128 KiB (see _Block)
# the checks' own block sizes, measured on 2,000 trees of depth 6 (benchmarks/xgboost_load.py): the parent check
# does a few operations per block and is fastest in one block; the structure checks do many more, and their
# temporaries should stay in cache
_READING_BLOCK_SLOTS = 1 << 18
_USE_BLOCK_SLOTS = 48_000


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts), np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=out[1:])
    return out


class Forest:
    """All trees of a model as columns: each node array of :class:`Tree` for every tree, end to end.

    ``sizes[t]`` nodes belong to tree ``t``; ``category_counts[t]`` entries of ``categories`` and
    ``category_node_counts[t]`` of ``categories_nodes``/``_segments``/``_sizes``. A column is read
    when first asked for (``source``). The checks read the trees block by block (:meth:`blocks`); for
    a UBJSON file (``typed``: its bytes, and where each typed array's values start in every tree) a
    block's columns are gathered straight from the file, so checking it never builds whole columns.
    """

    def __init__(self, sizes: Any, num_deleted: Any, num_feature: Any,
                 category_counts: Any = None, category_node_counts: Any = None,
                 columns: dict[str, Any] | None = None,
                 source: Callable[[str], np.ndarray | None] | None = None,
                 typed: tuple[bytes, Callable[[str], tuple[np.ndarray, np.dtype] | None]] | None = None):
        self.sizes = np.asarray(sizes, np.int64)
        self.num_deleted = np.asarray(num_deleted, np.int64)
        self.num_feature = np.asarray(num_feature, np.int64)
        zeros = np.zeros(len(self.sizes), np.int64)
        self.category_counts = zeros if category_counts is None else np.asarray(category_counts,
                                                                                 np.int64)
        self.category_node_counts = zeros if category_node_counts is None else np.asarray(
            category_node_counts, np.int64)
        self._columns = dict(columns or {})
        self._source = source
        self._starts: np.ndarray | None = None
        self._category_starts: tuple[np.ndarray, np.ndarray] | None = None
        # the checks read the node columns of a block of trees at a time (:meth:`blocks`); for a UBJSON
        # file, ``typed`` is its bytes and where a typed array's values start in each tree, with their dtype
        self._typed = typed
        self._views: dict[int, np.ndarray] = {}
        self._widths: np.ndarray | None = None

    @property
    def num_trees(self) -> int:
        return len(self.sizes)

    @property
    def num_nodes(self) -> int:
        return int(self.sizes.sum())

    @property
    def starts(self) -> np.ndarray:
        """The index of each tree's root in the node columns."""
        if self._starts is None:
            self._starts = _exclusive_cumsum(self.sizes)
        return self._starts

    @property
    def has_categories(self) -> bool:
        return bool(self.category_node_counts.any()) or bool(self.category_counts.any())

    def column(self, name: str) -> np.ndarray:
        found = self._columns.get(name)
        if found is None:
            found = self._source(name) if self._source is not None else None
            if found is None:  # absent from the file: XGBoost's defaults (numerical splits, no lists)
                length = self.num_nodes if name in _NODE_COLUMNS else (
                    int(self.category_counts.sum()) if name == "categories" else
                    int(self.category_node_counts.sum()))
                found = np.zeros(length, (_NODE_COLUMNS | _CATEGORY_COLUMNS)[name])
            self._columns[name] = found
        return found

    # ---- blocks of trees, as the checks read them

    @property
    def widths(self) -> np.ndarray:
        """Slots per tree in a block: its nodes, then padding (none when the columns are held end to end)."""
        if self._widths is None:
            self._widths = self.sizes if self._typed is None else \
                -(-self.sizes // _SLOT_RUN) * _SLOT_RUN
        return self._widths

    def blocks(self, slots: int = _BLOCK_SLOTS) -> Iterator["_Block"]:
        """The trees in blocks of about ``slots`` slots (at least one tree), in order."""
        ends = np.cumsum(self.widths)
        first = 0
        while first < self.num_trees:
            done = int(ends[first - 1]) if first else 0
            last = max(int(np.searchsorted(ends, done + slots, side="right")), first + 1)
            yield _Block(self, first, last)
            first = last

    def file_items(self, width: int) -> np.ndarray:
        """The bytes of a UBJSON file as items of ``width`` bytes starting at every offset."""
        view = self._views.get(width)
        if view is None:
            assert self._typed is not None
            view = self._views[width] = _strided(self._typed[0], f"V{width}")
        return view

    def tree(self, index: int) -> Tree:
        start, n = int(self.starts[index]), int(self.sizes[index])
        nodes = {k: self.column(k)[start:start + n] for k in _NODE_COLUMNS}
        if self._category_starts is None:
            self._category_starts = (_exclusive_cumsum(self.category_counts),
                                     _exclusive_cumsum(self.category_node_counts))
        c0, s0 = (int(a[index]) for a in self._category_starts)
        c = int(self.category_counts[index])
        s = int(self.category_node_counts[index])
        return Tree(num_deleted=int(self.num_deleted[index]),
                    num_feature=int(self.num_feature[index]),
                    categories=self.column("categories")[c0:c0 + c],
                    categories_nodes=self.column("categories_nodes")[s0:s0 + s],
                    categories_segments=self.column("categories_segments")[s0:s0 + s],
                    categories_sizes=self.column("categories_sizes")[s0:s0 + s], **nodes)

    @classmethod
    def from_trees(cls, trees: list[Tree]) -> "Forest":
        def joined(name: str, dtype: Any) -> np.ndarray:
            parts = [getattr(t, name) for t in trees]
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        columns = {k: joined(k, d) for k, d in (_NODE_COLUMNS | _CATEGORY_COLUMNS).items()}
        return cls(sizes=[t.num_nodes for t in trees], num_deleted=[t.num_deleted for t in trees],
                   num_feature=[t.num_feature for t in trees],
                   category_counts=[len(t.categories) for t in trees],
                   category_node_counts=[len(t.categories_nodes) for t in trees], columns=columns)


class _Block:
    """Trees ``first .. last - 1`` of a forest, laid out in slots for the checks: tree ``first + i``
    at slots ``starts[i]`` .. ``starts[i] + widths[i] - 1``, its nodes first. A UBJSON file's columns
    are gathered :data:`_SLOT_RUN` values at a time (numpy's gathering costs about the same per item
    for one value as for sixteen), so its trees are padded to whole runs; padding slots hold leaves.
    Blocks keep the checks' temporary arrays small (below malloc's mmap threshold: no page faults)
    and in cache."""

    def __init__(self, forest: Forest, first: int, last: int):
        self.forest = forest
        self.first, self.last = first, last
        self.sizes = forest.sizes[first:last]
        self.widths = forest.widths[first:last]
        self.starts = _exclusive_cumsum(self.widths)
        self.num_deleted = forest.num_deleted[first:last]
        # runs of each tree, the index of every run within its tree, the padding slots
        self._runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def column(self, name: str) -> np.ndarray:
        """A node column of the block's trees; padding slots (UBJSON files only) are set to a leaf
        (children -1) with parent 0, feature 0, a numerical split and no default direction. It may be a
        view of the forest's column: the checks never write into one."""
        forest = self.forest
        if forest._typed is None:
            begin = int(forest.starts[self.first])
            return forest.column(name)[begin:begin + int(self.sizes.sum())]
        located = forest._typed[1](name)
        if located is None:  # absent from the file: XGBoost's default (numerical splits)
            return np.zeros(int(self.widths.sum()), _NODE_COLUMNS[name])
        offsets, dtype = located
        if self._runs is None:
            runs = self.widths // _SLOT_RUN
            steps = np.arange(int(runs.sum()), dtype=np.int64) - np.repeat(_exclusive_cumsum(runs), runs)
            pads = self.widths - self.sizes
            padding = np.repeat(self.starts + self.sizes - _exclusive_cumsum(pads), pads)
            padding += np.arange(len(padding), dtype=np.int64)
            self._runs = (runs, steps, padding)
        runs, steps, padding = self._runs
        run = _SLOT_RUN * dtype.itemsize
        at = np.repeat(offsets[self.first:self.last], runs)
        at += run * steps
        data = forest._typed[0]
        if int(offsets[self.last - 1]) + run * int(runs[-1]) <= len(data):
            raw = forest.file_items(run)[at]
        else:  # the padding of the file's last tree would run past its end
            raw = _strided(bytes(data) + bytes(run), f"V{run}")[at]
        values = raw.view(dtype.newbyteorder("="))
        if not dtype.isnative:
            values.byteswap(inplace=True)
        values[padding] = -1 if name in ("left_children", "right_children") else 0
        return _narrowed(name, values)

    @property
    def slot_sizes(self) -> np.ndarray:
        """For every slot, the number of nodes of its tree (int32)."""
        return np.repeat(self.sizes.astype(np.int32), self.widths)

    def tree(self, slots: np.ndarray) -> int:
        """The forest's index of the tree of the first slot flagged in ``slots``."""
        slot = int(np.flatnonzero(slots)[0])
        return self.first + int(np.searchsorted(self.starts, slot, side="right") - 1)


def _empty_forest() -> Forest:
    return Forest(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass
class LegacyModel:
    """Everything read from an XGBoost model file, independent of the format it came in."""

    era: str
    version_hint: str  # e.g. "before 1.0", "1.2", "1.7.6"
    objective: dict  # the objective's JSON configuration: {"name": ..., "<param group>": {...}}
    base_score: float  # probability space, as in XGBoost's JSON document
    num_feature: int
    num_class: int
    booster: str  # gbtree, dart or gblinear
    num_target: int = 1
    forest: Forest = field(default_factory=_empty_forest)
    tree_info: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    num_parallel_tree: int = 1
    weight_drop: np.ndarray | None = None  # dart
    linear_weights: np.ndarray | None = None  # gblinear, (num_feature + 1) * groups, bias last
    boosted_rounds: int = 0  # gblinear
    attributes: dict[str, str] = field(default_factory=dict)
    feature_names: list[str] | None = None
    feature_types: list[str] | None = None
    learner_params: dict[str, Any] = field(default_factory=dict)  # as stored in the file
    python_state: dict[str, Any] = field(default_factory=dict)  # scalars of a pickled Booster

    @property
    def objective_name(self) -> str:
        return self.objective["name"]

    @property
    def output_groups(self) -> int:
        return max(self.num_class, self.num_target, 1)

    @property
    def num_trees(self) -> int:
        return self.forest.num_trees

    @property
    def trees(self) -> list[Tree]:
        """Each tree on its own (views into :attr:`forest`)."""
        return [self.forest.tree(i) for i in range(self.forest.num_trees)]


# --------------------------------------------------------------------------------------------
# Bounded byte reading


class _Cursor:
    """Reads fixed-size fields from a byte range; running short raises CorruptArtifact."""

    def __init__(self, data: bytes, what: str, start: int = 0, end: int | None = None):
        self.data = data
        self.what = what
        self.pos = start
        self.end = len(data) if end is None else end

    @property
    def left(self) -> int:
        return self.end - self.pos

    def _need(self, n: int, field_name: str) -> None:
        if n < 0 or n > self.left:
            raise CorruptArtifact(
                f"{self.what} is truncated or damaged: {field_name} needs {n} bytes at offset "
                f"{self.pos}, only {self.left} remain")

    def take(self, n: int, field_name: str) -> bytes:
        self._need(n, field_name)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: struct.Struct, field_name: str) -> tuple:
        self._need(fmt.size, field_name)
        out = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return out

    def u64(self, field_name: str) -> int:
        return self.unpack(_U64, field_name)[0]

    def array(self, dtype: np.dtype, count: int, field_name: str) -> np.ndarray:
        if count < 0 or count > self.left // max(dtype.itemsize, 1):
            raise CorruptArtifact(
                f"{self.what} is truncated or damaged: {field_name} claims {count} items of "
                f"{dtype.itemsize} bytes at offset {self.pos}, only {self.left} bytes remain")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += count * dtype.itemsize
        return out

    def string(self, field_name: str) -> str:
        raw = self.take(self.u64(f"the length of {field_name}"), field_name)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptArtifact(f"{self.what}: {field_name} is not UTF-8 text") from None

    def count(self, field_name: str, min_item_size: int) -> int:
        n = self.u64(f"the length of {field_name}")
        if n > self.left // min_item_size:
            raise CorruptArtifact(
                f"{self.what} is truncated or damaged: {field_name} claims {n} items, more than "
                f"the {self.left} remaining bytes can hold")
        return n


_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_Q = struct.Struct(">q")


def _strided(data: bytes, dtype: Any) -> np.ndarray:
    """``data`` as values of ``dtype`` starting at every byte: ``view[i]`` is the value at offset ``i``.

    Gathering with offsets computed for all trees at once reads fields that sit at unaligned offsets.
    """
    dt = np.dtype(dtype)
    return np.ndarray((max(len(data) - dt.itemsize + 1, 0),), dt, buffer=data, strides=(1,))


def _gather(data: bytes, dtype: Any, starts: np.ndarray, counts: np.ndarray,
            steps: np.ndarray | None = None) -> np.ndarray:
    """The runs of ``counts[i]`` values of ``dtype`` at byte offsets ``starts[i]``, end to end, in native
    byte order. ``steps``, when given, is ``itemsize * arange(counts.sum())`` (shared by several gathers)."""
    dt = np.dtype(dtype)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dt.newbyteorder("="))
    offsets = np.repeat(starts - dt.itemsize * _exclusive_cumsum(counts), counts)
    offsets += dt.itemsize * np.arange(total, dtype=np.int64) if steps is None else steps
    if dt.itemsize == 1:
        return np.frombuffer(data, np.uint8)[offsets].view(dt.newbyteorder("="))
    native = dt.newbyteorder("=")
    values = _strided(data, native)[offsets]
    if not dt.isnative:
        values.byteswap(inplace=True)
    return values


# --------------------------------------------------------------------------------------------
# Pickles of xgboost.core.Booster, read without unpickling


# The only globals a pickled Booster names (``__getstate__`` in python-package/xgboost/core.py at v0.90 and
# v1.7.6 returns ``__dict__`` with ``handle`` replaced by a bytearray): the class, the protocol-0/1 object
# reconstructor, and bytearray / _codecs.encode carrying the model bytes as a latin-1 string.
_BOOSTER = "xgboost.core.Booster"
_RECONSTRUCTORS = {"copy_reg._reconstructor", "copyreg._reconstructor"}
_OBJECTS = {"__builtin__.object", "builtins.object"}
_BYTES_MAKERS = {"__builtin__.bytearray", "builtins.bytearray", "_codecs.encode"}
_ALLOWED_GLOBALS = {_BOOSTER} | _RECONSTRUCTORS | _OBJECTS | _BYTES_MAKERS
_LATIN1 = ("latin-1", "latin1", "iso-8859-1")


@dataclass
class _PickledBooster:
    protocol: int
    state: dict


def _read_booster_pickle(data: bytes) -> _PickledBooster:
    """Read a pickled ``xgboost.core.Booster`` as data (:mod:`.pickle_data`), never unpickling.

    Any global besides the few a Booster pickle needs, and any persistent id or extension code, is refused.
    """
    pk = read_pickle(data)
    for g in pk.globals:
        if str(g) not in _ALLOWED_GLOBALS:
            raise UnsafeArtifact(
                f"the pickle refers to {g}, which is not part of a pickled xgboost.core.Booster; "
                "it is refused instead of unpickled")
    if pk.persistent_ids or pk.extensions:
        raise UnsafeArtifact("the pickle uses persistent ids or extension codes, which a pickled "
                             "xgboost.core.Booster never needs; it is refused instead of unpickled")
    obj = pk.value
    if not (isinstance(obj, Call) and _is_booster_instance(obj)):
        raise NotAnArtifact("the pickle does not hold an xgboost.core.Booster")
    state = obj.state
    if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
        state = state[0]
    if not isinstance(state, dict) or not all(isinstance(k, (str, bytes, int)) for k in state):
        raise CorruptArtifact("the pickle is damaged: the Booster state is not a dict")
    return _PickledBooster(pk.protocol, {k: _state_value(v) for k, v in state.items()})


def _is_booster_instance(obj: Call) -> bool:
    """NEWOBJ of the class (protocol 2+) or copy_reg._reconstructor(Booster, object, None) (protocol 0/1)."""
    if str(obj.func) == _BOOSTER:
        return obj.args == ()
    if str(obj.func) in _RECONSTRUCTORS and len(obj.args) == 3:
        cls, base, extra = obj.args
        return str(cls) == _BOOSTER and str(base) in _OBJECTS and extra is None
    return False


def _state_value(value: Any, depth: int = 0) -> Any:
    """A state value with the bytes-making calls of the model handle evaluated (they are pure)."""
    if isinstance(value, bytearray):
        return bytes(value)
    if not isinstance(value, Call):
        return value
    if depth > 4:
        raise CorruptArtifact("the pickle is damaged: the model bytes are nested too deeply")
    args = tuple(_state_value(a, depth + 1) for a in value.args)  # e.g. bytearray(_codecs.encode(s, "latin1"))
    if str(value.func) in _BYTES_MAKERS:
        if args == ():
            return b""
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
            return bytes(args[0])
        if len(args) == 2 and isinstance(args[0], str) and str(args[1]).lower() in _LATIN1:
            return _latin1(args[0])
    raise CorruptArtifact(f"the pickle is damaged: an unexpected call of {value.func}")


def _latin1(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise CorruptArtifact("the pickle is damaged: the model bytes are not latin-1") from None


def _python_state(state: dict) -> dict[str, Any]:
    """The scalar attributes of the pickled Booster, plus feature names/types when well formed."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if not isinstance(key, str) or key == "handle":
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
    return out


# --------------------------------------------------------------------------------------------
# JSON and UBJSON documents


def _json_loads(text: bytes, what: str) -> Any:
    """Parse JSON; a repeated key is damage (XGBoost never writes one, and its reader keeps the
    first value where Python keeps the last)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as e:
        reason = " ".join(str(e).split())[:120]
        raise CorruptArtifact(f"{what} is not valid JSON ({reason})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key is repeated")
    return out


_UBJ_SCALARS = {
    b"i"[0]: struct.Struct(">b"), b"U"[0]: struct.Struct(">B"), b"I"[0]: struct.Struct(">h"),
    b"l"[0]: struct.Struct(">i"), b"L"[0]: struct.Struct(">q"), b"d"[0]: struct.Struct(">f"),
    b"D"[0]: struct.Struct(">d"),
}
_UBJ_TYPED = {b"i"[0]: ">i1", b"U"[0]: ">u1", b"I"[0]: ">i2", b"l"[0]: ">i4", b"L"[0]: ">i8",
              b"d"[0]: ">f4", b"D"[0]: ">f8"}
_UBJ_INTEGERS = {m: np.dtype(_UBJ_TYPED[m]) for m in b"iUIlL"}
_SMALL_ARRAY = 64  # integer arrays shorter than this stay Python lists


class _UBJReader:
    """A UBJSON (Draft 12) reader, as XGBoost's ``UBJReader`` (src/common/json.cc) expects it.

    Typed numeric arrays become native numpy arrays, long arrays of integers too; every count is
    checked against the bytes left. A ``trees`` array is read by :func:`_scan_ubj_trees` when every
    tree has the same layout (XGBoost's writer), else item by item.
    """

    def __init__(self, data: bytes, what: str):
        self.cur = _Cursor(data, what)

    def load(self) -> Any:
        return self.value(self.marker(), 0)

    def marker(self) -> int:
        while True:
            m = self.cur.take(1, "a UBJSON marker")[0]
            if m != b"N"[0]:  # no-op
                return m

    def integer(self, marker: int) -> int:
        if marker not in _UBJ_SCALARS or marker in (b"d"[0], b"D"[0]):
            raise CorruptArtifact(f"{self.cur.what} is damaged: expected a UBJSON integer marker")
        return self.cur.unpack(_UBJ_SCALARS[marker], "a UBJSON integer")[0]

    def text(self) -> str:
        n = self.integer(self.marker())
        try:
            return self.cur.take(n, "a UBJSON string").decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptArtifact(f"{self.cur.what} is damaged: a UBJSON string is not UTF-8") \
                from None

    def value(self, m: int, depth: int) -> Any:
        if m in _UBJ_SCALARS:
            return self.cur.unpack(_UBJ_SCALARS[m], "a UBJSON number")[0]
        if m == b"S"[0]:
            return self.text()
        if m == b"Z"[0]:
            return None
        if m == b"T"[0]:
            return True
        if m == b"F"[0]:
            return False
        if m == b"C"[0]:
            return self.cur.take(1, "a UBJSON char").decode("latin-1")
        if m == b"H"[0]:
            digits = self.text()
            try:
                return float(digits)
            except ValueError:
                raise CorruptArtifact(f"{self.cur.what} is damaged: {digits[:40]!r} is not a "
                                      "number") from None
        if m in (b"["[0], b"{"[0]):
            if depth >= _MAX_DEPTH:
                raise CorruptArtifact(f"{self.cur.what} nests deeper than {_MAX_DEPTH} levels")
            return self.container(m == b"{"[0], depth + 1)
        raise CorruptArtifact(f"{self.cur.what} is damaged: unknown UBJSON marker {m!r}")

    def container(self, is_object: bool, depth: int) -> Any:
        item_type = count = None
        m: int | None = self.marker()
        if m == b"$"[0]:
            item_type = self.marker()
            if item_type in (b"Z"[0], b"T"[0], b"F"[0]):
                raise CorruptArtifact(f"{self.cur.what}: zero-size typed UBJSON containers are "
                                      "not supported")
            m = self.marker()
            if m != b"#"[0]:
                raise CorruptArtifact(f"{self.cur.what} is damaged: a typed UBJSON container "
                                      "has no count")
        if m == b"#"[0]:
            count = self.integer(self.marker())
            if count < 0 or count > self.cur.left:
                raise CorruptArtifact(f"{self.cur.what} is truncated or damaged: a UBJSON "
                                      f"container claims {count} items")
            if not is_object and item_type in _UBJ_TYPED:
                dtype = np.dtype(_UBJ_TYPED[item_type])
                arr = self.cur.array(dtype, count, "a typed UBJSON array")
                return arr.astype(dtype.newbyteorder("="))
            if not is_object and item_type is None and count >= _SMALL_ARRAY:
                ints = self._integers(count)
                if ints is not None:
                    return ints
            m = None
        close = b"}"[0] if is_object else b"]"[0]
        out_obj: dict[str, Any] = {}
        out_list: list[Any] = []
        done = 0
        while True:
            if count is not None:
                if done == count:
                    break
                if is_object or item_type is None:
                    m = self.marker()
            else:
                m = self.marker() if m is None else m
                if m == close:
                    break
            if is_object:
                assert m is not None
                key = self._key(m)
                if key in out_obj:
                    raise CorruptArtifact(f"{self.cur.what} is damaged: the key {key[:40]!r} "
                                          "is repeated")
                if key == "trees" and item_type is None:
                    trees = _scan_ubj_trees(self.cur.data, self.cur.pos, self.cur.end)
                    if trees is not None:
                        out_obj[key] = trees
                        self.cur.pos = trees.end
                        done += 1
                        m = None
                        continue
                out_obj[key] = self.value(self.marker() if item_type is None else item_type, depth)
            else:
                marker = m if item_type is None else item_type
                assert marker is not None
                out_list.append(self.value(marker, depth))
            done += 1
            m = None
        return out_obj if is_object else out_list

    def _integers(self, count: int) -> np.ndarray | None:
        """``count`` untyped UBJSON integers as one array, read run by run of equal markers
        (``tree_info``, ``iteration_indptr``); None when the items are not all integers."""
        data, pos, end = self.cur.data, self.cur.pos, self.cur.end
        out: np.ndarray = np.empty(count, np.int64)
        done = short_runs = 0
        while done < count:
            if pos >= end:
                return None
            dtype = _UBJ_INTEGERS.get(data[pos])
            if dtype is None:
                return None
            stride = dtype.itemsize + 1
            room = min(count - done, (end - pos) // stride)
            if room < 1:
                return None
            markers: np.ndarray = np.ndarray((room,), np.uint8, buffer=data, offset=pos, strides=(stride,))
            same = markers == data[pos]
            run = room if same.all() else int(same.argmin())
            out[done:done + run] = np.ndarray((run,), dtype, buffer=data, offset=pos + 1,
                                              strides=(stride,))
            done += run
            pos += run * stride
            short_runs += run < 16
            if short_runs > 64:  # markers that keep changing: item by item is as fast
                return None
        self.cur.pos = pos
        return out

    def _key(self, m: int) -> str:
        n = self.integer(m)
        try:
            return self.cur.take(n, "a UBJSON key").decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptArtifact(f"{self.cur.what} is damaged: a UBJSON key is not UTF-8") \
                from None


def _ubj_loads(data: bytes, what: str) -> Any:
    return _UBJReader(data, what).load()


# ---- the ``trees`` array of a UBJSON document, all trees at once

_INT_SIZE = np.full(256, -1, np.int64)
for _m, _dt in _UBJ_INTEGERS.items():
    _INT_SIZE[_m] = _dt.itemsize
_TYPED_SIZE = {m: np.dtype(t).itemsize for m, t in _UBJ_TYPED.items()}
_MAX_TEXT = 32  # longest tree_param value the fast walk reads (XGBoost writes a few digits)


@dataclass
class _Step:
    key: str
    kind: str  # "typed" (a typed array), "int" (an integer), "texts" (an object of strings)
    const: bytes  # the bytes every tree has here: key, and the array header up to its count
    item: int = 0  # typed: the element marker
    subkeys: tuple[bytes, ...] = ()  # texts: each sub key with its header and the string marker


class _UBJTrees:
    """The ``trees`` array of a UBJSON model document whose trees all share one layout, walked once.

    ``typed[key]`` gives each tree's payload offset and item count of a typed array, ``ints[key]``
    each tree's integer, ``texts[(key, subkey)]`` each tree's string offset and length. Columns are
    gathered on demand (:meth:`column`); :meth:`tree` reads one tree item by item.
    """

    def __init__(self, data: bytes, starts: np.ndarray, end: int):
        self.data = data
        self.starts = starts
        self.end = end
        self.typed: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        self.ints: dict[str, np.ndarray] = {}
        self.texts: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._steps: dict[int, np.ndarray] = {}  # itemsize * arange(nodes), shared by the node columns

    @property
    def count(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return self.count

    def column(self, key: str) -> np.ndarray:
        offsets, counts, item = self.typed[key]
        size = _TYPED_SIZE[item]
        total = int(counts.sum())
        steps = self._steps.get(size)
        if steps is None or len(steps) != total:
            steps = self._steps[size] = size * np.arange(total, dtype=np.int64)
        return _gather(self.data, _UBJ_TYPED[item], offsets, counts, steps)

    def locate(self, key: str) -> tuple[np.ndarray, np.dtype] | None:
        """Where the values of the typed array ``key`` start in each tree, and their dtype."""
        found = self.typed.get(key)
        return None if found is None else (found[0], np.dtype(_UBJ_TYPED[found[2]]))

    def number(self, key: str, subkey: str) -> np.ndarray | None:
        """A tree_param value of every tree as integers, when all are plain decimal digits."""
        found = self.texts.get((key, subkey))
        if found is None:
            return None
        offsets, lengths = found
        width = int(lengths.max()) if len(lengths) else 0
        if width < 1 or width > 18 or int(lengths.min()) < 1:
            return None
        if int(lengths.min()) == width:  # as XGBoost writes most values: one width, often one text
            texts = _strided(self.data, f"S{width}")[offsets]
            if (texts == texts[0]).all():
                first = bytes(self.data[int(offsets[0]):int(offsets[0]) + width])
                return np.full(len(offsets), int(first), np.int64) if first.isdigit() and first.isascii() \
                    else None
            digits = texts.view(np.uint8).reshape(len(offsets), width).astype(np.int64) - 48
            if ((digits < 0) | (digits > 9)).any():
                return None
            return digits @ (10 ** np.arange(width - 1, -1, -1, dtype=np.int64))
        # texts of several widths, right-aligned: the last ``width`` bytes up to each text's end (the bytes before
        # a shorter text, its length field among them, count as leading zeros)
        begins = offsets + lengths - width
        if int(begins.min()) < 0:
            return None
        window = _strided(self.data, f"V{width}")[begins]
        digits = window.view(np.uint8).reshape(len(offsets), width) - np.uint8(48)  # other bytes wrap past 9
        digits[np.arange(width) < (width - lengths)[:, None]] = 0
        if (digits > 9).any():
            return None
        return digits.astype(np.int64) @ (10 ** np.arange(width - 1, -1, -1, dtype=np.int64))

    def tree(self, index: int) -> Any:
        reader = _UBJReader(self.data, "the UBJSON model")
        reader.cur.pos = int(self.starts[index])
        return reader.value(reader.marker(), 3)


def _ubj_key_at(data: bytes, pos: int, end: int) -> tuple[bytes, int] | None:
    """A key as XGBoost writes it (``L`` + int64 length + bytes): its bytes and the position after."""
    if pos + 9 > end or data[pos] != b"L"[0]:
        return None
    n = int.from_bytes(data[pos + 1:pos + 9], "big", signed=True)
    if n < 1 or n > 64 or pos + 9 + n > end:
        return None
    return data[pos:pos + 9 + n], pos + 9 + n


def _tree_layout(data: bytes, pos: int, end: int) -> list[_Step] | None:
    """The layout of the tree object at ``pos``: keys in order and the kind of each value."""
    if data[pos:pos + 1] != b"{":
        return None
    pos += 1
    steps: list[_Step] = []
    seen = set()
    while pos < end and data[pos] != b"}"[0]:
        found = _ubj_key_at(data, pos, end)
        if found is None:
            return None
        key_bytes, pos = found
        key = key_bytes[9:].decode("utf-8", "replace")
        if key in seen:
            return None
        seen.add(key)
        head = data[pos:pos + 5]
        if head[:2] == b"[$" and head[3:5] == b"#L" and head[2] in _UBJ_TYPED:
            n = int.from_bytes(data[pos + 5:pos + 13], "big", signed=True)
            size = _TYPED_SIZE[head[2]]
            if n < 0 or pos + 13 + n * size > end:
                return None
            steps.append(_Step(key, "typed", key_bytes + head, item=head[2]))
            pos += 13 + n * size
        elif head[:1] and int(_INT_SIZE[head[0]]) > 0:
            steps.append(_Step(key, "int", key_bytes))
            pos += 1 + int(_INT_SIZE[head[0]])
        elif head[:1] == b"{":
            pos += 1
            subkeys = []
            while pos < end and data[pos] != b"}"[0]:
                found = _ubj_key_at(data, pos, end)
                if found is None or data[found[1]:found[1] + 2] != b"SL":
                    return None
                sub, pos = found
                n = int.from_bytes(data[pos + 2:pos + 10], "big", signed=True)
                if n < 0 or n > _MAX_TEXT:
                    return None
                subkeys.append(sub + b"SL")
                pos += 10 + n
            steps.append(_Step(key, "texts", key_bytes + b"{", subkeys=tuple(subkeys)))
            pos += 1
        else:
            return None
    return steps if pos < end else None


def _scan_ubj_trees(data: bytes, pos: int, end: int) -> _UBJTrees | None:
    """Walk the array ``[#L<count>`` of tree objects at ``pos`` for all trees at once, or None.

    The first tree gives the layout (:func:`_tree_layout`); every tree's start is found by searching
    for its first bytes (from the least length a tree with as many nodes as its first array has
    values can have, see :func:`_least_tree_length`); then each step of the layout is checked and
    read for all trees together, and each tree must end exactly where the next one was found. A tree
    that differs -- another key order, another type, a string XGBoost would not write, a damaged
    count, arrays of different lengths -- makes this return None, and the general reader reads the
    array (and reports what is wrong).
    """
    if data[pos:pos + 3] != b"[#L":
        return None
    count = int.from_bytes(data[pos + 3:pos + 11], "big", signed=True)
    first = pos + 11
    if count < 2 or count > (end - first) // 2:
        return None
    steps = _tree_layout(data, first, end)
    if not steps:
        return None
    prefix = b"{" + steps[0].const
    fixed, per_value = _least_tree_length(steps)
    found = [0] * count
    at, search, unpack, width, last = first, data.find, _Q.unpack_from, len(prefix), end - len(prefix) - 8
    for i in range(count):
        at = search(prefix, at, end)
        if at < 0 or at > last:
            return None
        found[i] = at
        values = unpack(data, at + width)[0]  # of the first array (when it is one)
        at += fixed + per_value * values if 0 <= values <= end else 1
    starts = np.array(found, np.int64)
    if starts[0] != first:
        return None
    try:
        return _walk_trees(data, starts, steps, end)
    except IndexError:  # a count or length pointing past the end
        return None


def _least_tree_length(steps: list[_Step]) -> tuple[int, int]:
    """``(fixed, per_value)``: a tree of this layout whose node arrays all have as many values as its
    first typed array (XGBoost's trees: every node array has ``num_nodes`` values) spans at least
    ``fixed + per_value * values`` bytes; the next tree is searched from there. Other trees make
    the search miss, and the general reader takes over."""
    fixed, per_value = 1 + 1, 0  # the braces
    for step in steps:
        fixed += len(step.const)
        if step.kind == "typed":
            fixed += 8
            if step.key in _NODE_COLUMNS:
                per_value += _TYPED_SIZE[step.item]
        elif step.kind == "int":
            fixed += 2
        else:
            fixed += sum(len(sub) + 8 for sub in step.subkeys) + 1
    if steps[0].kind != "typed" or steps[0].key not in _NODE_COLUMNS:
        return 1, 0
    return fixed, per_value


class _Expected:
    """Bytes every tree must have at given offsets, collected during a walk and compared at once: each
    run of constant bytes is read for all trees as one numpy item (``V<n>``) and the items, end to end,
    are compared with the run repeated once per tree (one ``memcmp``)."""

    def __init__(self, data: bytes):
        self.data = data
        self.runs: list[tuple[np.ndarray, bytes]] = []

    def add(self, at: np.ndarray, expected: bytes) -> None:
        if expected:
            self.runs.append((at, expected))

    def hold(self) -> bool:
        """Whether every run is found; the offsets must lie inside the bytes (the walk ensures it before it
        asks: each run lies between the start of its tree and its end)."""
        size = len(self.data)
        for at, expected in self.runs:
            n = len(expected)
            found = np.ndarray((size - n + 1,), f"V{n}", buffer=self.data, strides=(1,))[at]
            if found.tobytes() != expected * len(at):
                return False
        return True


def _bounded(values: np.ndarray, high: int) -> np.ndarray:
    """``values`` limited to -1..high in place (``np.clip`` without its Python wrapper)."""
    np.minimum(values, high, out=values)
    return np.maximum(values, -1, out=values)


def _walk_trees(data: bytes, starts: np.ndarray, steps: list[_Step], end: int) -> _UBJTrees | None:
    """Each step of the layout for all trees at once; every byte that is not a value (keys, markers,
    lengths, types, braces) must be the first tree's, and each tree must end where the next begins.
    Counts and text lengths are read bounded (a wild one must not wrap the offsets around); only when
    all are in range, so that every tree's offsets run forward from its start to its end, are the
    constant bytes compared."""
    octets = np.frombuffer(data, np.uint8)
    int64s = _strided(data, ">i8")
    table = _UBJTrees(data, starts, end)
    expected = _Expected(data)
    counts_read: list[np.ndarray] = []  # every count, in -1..end
    texts_read: list[np.ndarray] = []  # every text length, in -1.._MAX_TEXT + 1
    pos = starts + 1
    const = b"{"  # constant bytes not yet given to ``expected``, from ``const_at`` on
    const_at = starts
    for step in steps:
        const += step.const
        pos = pos + len(step.const)
        if step.kind == "typed":
            expected.add(const_at, const)
            counts = _bounded(int64s[pos].astype(np.int64), end)
            counts_read.append(counts)
            pos += 8
            table.typed[step.key] = (pos, counts, step.item)
            pos = pos + counts * _TYPED_SIZE[step.item]
            const, const_at = b"", pos
        elif step.kind == "int":
            expected.add(const_at, const)
            markers = octets[pos]
            first = int(markers[0])
            if (markers == first).all():  # as XGBoost writes them: every tree's with one marker
                size = int(_INT_SIZE[first])
                if size < 0:
                    return None
                table.ints[step.key] = _strided(data, _UBJ_INTEGERS[first])[pos + 1].astype(np.int64)
                pos = pos + (1 + size)
            else:
                sizes = _INT_SIZE[markers]
                if sizes.min() < 0:
                    return None
                values = np.zeros(len(pos), np.int64)
                for marker in np.flatnonzero(np.bincount(markers, minlength=256)).tolist():
                    chosen = markers == marker
                    values[chosen] = _strided(data, _UBJ_INTEGERS[marker])[pos[chosen] + 1]
                table.ints[step.key] = values
                pos = pos + 1 + sizes
            const, const_at = b"", pos
        else:
            for sub in step.subkeys:
                const += sub
                expected.add(const_at, const)
                pos = pos + (len(sub) + 8)
                lengths = _bounded(int64s[pos - 8].astype(np.int64), _MAX_TEXT + 1)
                texts_read.append(lengths)
                name = sub[9:-2].decode("utf-8", "replace")
                table.texts[(step.key, name)] = (pos, lengths)
                pos = pos + lengths
                const, const_at = b"", pos
            const += b"}"
            pos = pos + 1
    expected.add(const_at, const + b"}")
    ends = pos + 1
    if counts_read and int(np.concatenate(counts_read).min()) < 0:
        return None
    if texts_read:
        texts = np.concatenate(texts_read)
        if int(texts.min()) < 0 or int(texts.max()) > _MAX_TEXT:
            return None
    if not np.array_equal(ends[:-1], starts[1:]) or int(ends[-1]) > end or not expected.hold():
        return None
    table.end = int(ends[-1])
    return table


# ---- writing

_UBJ_DTYPE_MARKERS = {np.dtype(np.float32): b"d", np.dtype(np.float64): b"D",
                      np.dtype(np.int8): b"i", np.dtype(np.uint8): b"U", np.dtype(np.int16): b"I",
                      np.dtype(np.int32): b"l", np.dtype(np.int64): b"L"}


class _EncodedTrees:
    """The ``trees`` of a document we write: a :class:`Forest`, encoded as a whole when written."""

    def __init__(self, forest: Forest):
        self.forest = forest


class _Integers:
    """An array XGBoost wants as a plain (untyped) array of integers (``tree_info``,
    ``iteration_indptr``: ``get<Array const>`` in ``GBTreeModel::LoadModel``), written at once."""

    def __init__(self, values: Any):
        self.values = np.asarray(values, np.int64)


def _ubj_dumps(doc: Any) -> bytearray:
    """Encode a document as XGBoost's UBJSON dialect; numpy arrays become typed arrays."""
    out = bytearray()

    def put(v: Any) -> None:
        if isinstance(v, dict):
            out.extend(b"{")
            for k, x in v.items():
                key = k.encode("utf-8")
                out.extend(b"L" + _Q.pack(len(key)) + key)
                put(x)
            out.extend(b"}")
        elif isinstance(v, _EncodedTrees):
            _forest_ubj(v.forest, out)
        elif isinstance(v, _Integers):
            items = np.empty((len(v.values), 9), np.uint8)
            items[:, 0] = ord("L")
            items[:, 1:] = v.values.astype(">i8").view(np.uint8).reshape(-1, 8)
            out.extend(b"[#L" + _Q.pack(len(v.values)))
            out.extend(items.tobytes())
        elif isinstance(v, np.ndarray):
            out.extend(b"[$" + _UBJ_DTYPE_MARKERS[v.dtype] + b"#L" + _Q.pack(v.size))
            out.extend(v.astype(v.dtype.newbyteorder(">"), copy=False).tobytes())
        elif isinstance(v, (list, tuple)):
            out.extend(b"[#L" + _Q.pack(len(v)))
            for x in v:
                put(x)
        elif isinstance(v, str):
            raw = v.encode("utf-8")
            out.extend(b"SL" + _Q.pack(len(raw)) + raw)
        elif v is None:
            out.extend(b"Z")
        elif isinstance(v, (bool, np.bool_)):
            out.extend(b"T" if v else b"F")
        elif isinstance(v, (int, np.integer)):
            v = int(v)
            for marker, fmt in ((b"i", ">b"), (b"I", ">h"), (b"l", ">i"), (b"L", ">q")):
                try:
                    out.extend(marker + struct.pack(fmt, v))
                    break
                except struct.error:
                    continue
            else:
                raise ValueError(f"{v} does not fit a UBJSON integer")
        elif isinstance(v, (float, np.floating)):
            f32 = np.float32(v)
            if float(f32) == float(v) or math.isnan(v):
                out.extend(b"d" + struct.pack(">f", f32))
            else:
                out.extend(b"D" + struct.pack(">d", float(v)))
        else:
            raise TypeError(f"cannot encode {type(v).__name__} as UBJSON")

    put(doc)
    return out


def _plain(doc: Any) -> Any:
    """The document with numpy arrays turned into lists (for JSON text)."""
    if isinstance(doc, dict):
        return {k: _plain(v) for k, v in doc.items()}
    if isinstance(doc, _EncodedTrees):
        return [_plain(_tree_document(i, doc.forest.tree(i))) for i in range(doc.forest.num_trees)]
    if isinstance(doc, _Integers):
        return doc.values.tolist()
    if isinstance(doc, (list, tuple)):
        return [_plain(v) for v in doc]
    if isinstance(doc, np.ndarray):
        return doc.tolist()
    return doc


def _ubj_key(name: str) -> bytes:
    raw = name.encode()
    return b"L" + _Q.pack(len(raw)) + raw


# The tree object as XGBoost's UBJWriter lays it out (keys sorted): each typed array is its key,
# ``[$<type>#L``, an int64 count and the values; ``id`` an int64; ``tree_param`` an object of strings.
_TREE_ARRAYS: tuple[tuple[str, bytes | None, str], ...] = (
    ("base_weights", b"d", "n"), ("categories", b"l", "c"), ("categories_nodes", b"l", "s"),
    ("categories_segments", b"L", "s"), ("categories_sizes", b"L", "s"), ("default_left", b"U", "n"),
    ("id", None, ""), ("left_children", b"l", "n"), ("loss_changes", b"d", "n"),
    ("parents", b"l", "n"), ("right_children", b"l", "n"), ("split_conditions", b"d", "n"),
    ("split_indices", b"l", "n"), ("split_type", b"U", "n"), ("sum_hessian", b"d", "n"),
)
_TREE_PARAMS = ("num_deleted", "num_feature", "num_nodes")


def _digits(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimal digits of non-negative integers: (lengths, a row of ASCII digits per value)."""
    values = values.astype(np.int64)
    lengths = np.ones(len(values), np.int64)
    for power in range(1, 19):
        lengths += values >= 10 ** power
    width = int(lengths.max()) if len(values) else 1
    places = lengths[:, None] - 1 - np.arange(width)
    chars = (values[:, None] // 10 ** np.clip(places, 0, 18)) % 10 + 48
    return lengths, chars.astype(np.uint8)


def _forest_ubj(forest: Forest, out: bytearray) -> None:
    """Append the ``trees`` array of a UBJSON document to ``out`` -- ``[#L<count>`` then each tree
    object -- written for all trees at once: the offset of every piece of every tree is computed
    from the counts, then each piece (key bytes, counts, one column's values) is written into its
    place for all trees."""
    t = forest.num_trees
    out.extend(b"[#L" + _Q.pack(t))
    if t == 0:
        return
    counts = {"n": forest.sizes, "c": forest.category_counts, "s": forest.category_node_counts}
    if (forest.num_deleted < 0).any() or (forest.num_feature < 0).any():
        raise CorruptArtifact("the model is damaged: a tree records a negative count")
    # one tree, piece by piece: (kind, what, the size of the piece in each tree)
    pieces: list[tuple[str, Any, np.ndarray]] = []

    def const(raw: bytes) -> None:
        pieces.append(("const", raw, np.full(t, len(raw), np.int64)))

    const(b"{")
    for key, item, count in _TREE_ARRAYS:
        if item is None:
            const(_ubj_key(key) + b"L")
            pieces.append(("int64", np.arange(t, dtype=np.int64), np.full(t, 8, np.int64)))
            continue
        const(_ubj_key(key) + b"[$" + item + b"#L")
        pieces.append(("int64", counts[count], np.full(t, 8, np.int64)))
        pieces.append(("column", (key, item, counts[count]), counts[count] * _TYPED_SIZE[item[0]]))
    const(_ubj_key("tree_param") + b"{")
    for name, values in zip(_TREE_PARAMS, (forest.num_deleted, forest.num_feature, forest.sizes)):
        lengths, chars = _digits(values)
        const(_ubj_key(name) + b"SL")
        pieces.append(("int64", lengths, np.full(t, 8, np.int64)))
        pieces.append(("text", chars, lengths))
    const(_ubj_key("size_leaf_vector") + b"SL" + _Q.pack(1) + b"1}}")

    tree_sizes = np.sum([size for _, _, size in pieces], axis=0)
    begin = len(out)
    out.extend(bytes(int(tree_sizes.sum())))
    region = np.frombuffer(out, np.uint8, offset=begin)
    words: np.ndarray = np.ndarray((len(region) - 7,), "<u8", buffer=region, strides=(1,))
    int64s: np.ndarray = np.ndarray((len(region) - 7,), ">i8", buffer=region, strides=(1,))
    pos = _exclusive_cumsum(tree_sizes)
    for kind, what, size in pieces:
        if kind == "const":
            if len(what) >= 8:
                for o in sorted(set(range(0, len(what) - 7, 8)) | {len(what) - 8}):
                    words[pos + o] = int.from_bytes(what[o:o + 8], "little")
            else:
                for i, byte in enumerate(what):
                    region[pos + i] = byte
        elif kind == "int64":
            int64s[pos] = what
        elif kind == "text":
            inside = np.arange(what.shape[1]) < size[:, None]
            region[(pos[:, None] + np.arange(what.shape[1]))[inside]] = what[inside]
        else:
            key, item, n = what
            assert item is not None
            total = int(n.sum())
            if total:
                dtype = np.dtype(_UBJ_TYPED[item[0]])
                offsets = np.repeat(pos - dtype.itemsize * _exclusive_cumsum(n), n)
                offsets += dtype.itemsize * np.arange(total, dtype=np.int64)
                if dtype.itemsize == 1:
                    region[offsets] = forest.column(key)
                else:  # swapped once, then copied as plain words
                    plain = np.dtype(f"<u{dtype.itemsize}")
                    target: np.ndarray = np.ndarray((len(region) - dtype.itemsize + 1,), plain,
                                                    buffer=region, strides=(1,))
                    target[offsets] = forest.column(key).astype(dtype).view(plain)
        pos = pos + size


# --------------------------------------------------------------------------------------------
# Objectives


def _default_objective(name: str, num_class: int, max_delta_step: str | None) -> dict:
    """The objective configuration XGBoost 1.x would write for an objective read from a pre-1.0
    binary, which stores only the name (``ObjFunction::SaveConfig`` of each objective in
    src/objective/*.cu at v1.7.6; defaults from their parameter declarations)."""
    if name == "reg:linear":  # deprecated alias; 1.x saves it under its loss name
        name = "reg:squarederror"
    config: dict[str, Any] = {"name": name}
    if name in ("reg:squarederror", "reg:squaredlogerror", "reg:logistic", "binary:logistic",
                "binary:logitraw"):
        config["reg_loss_param"] = {"scale_pos_weight": "1"}
    elif name == "reg:pseudohubererror":
        config["pseudo_huber_param"] = {"huber_slope": "1"}
    elif name == "count:poisson":
        config["poisson_regression_param"] = {"max_delta_step": max_delta_step or "0.7"}
    elif name == "reg:tweedie":
        config["tweedie_regression_param"] = {"tweedie_variance_power": "1.5"}
    elif name == "survival:aft":
        config["aft_loss_param"] = {"aft_loss_distribution": "normal",
                                    "aft_loss_distribution_scale": "1"}
    elif name.startswith("multi:"):
        config["softmax_multiclass_param"] = {"num_class": str(num_class)}
    return config


def _pred_transform(name: str, margin: float) -> float:
    """``PredTransform`` of the objective on one float32 value (src/objective/*.cu, v1.7.6)."""
    x = np.float32(margin)
    with np.errstate(over="ignore", invalid="ignore"):
        if name in ("reg:logistic", "binary:logistic"):  # common::Sigmoid, src/common/math.h
            denominator = np.exp(np.minimum(-x, np.float32(88.7))) + np.float32(1)
            return float(np.float32(1) / denominator)
        if name in ("count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"):
            return float(np.exp(x))
        if name == "binary:hinge":
            return 1.0 if x > 0 else 0.0
    return float(x)


# --------------------------------------------------------------------------------------------
# Legacy binary


@dataclass
class _LearnerHeader:
    base_score: float
    num_feature: int
    num_class: int
    contain_extra_attrs: int
    contain_eval_metrics: int
    major_version: int
    minor_version: int
    num_target: int
    boost_from_average: int


def _looks_like_legacy_binary(data: bytes) -> bool:
    """``binf`` or a learner header followed by an objective and a booster name."""
    if data[:4] == b"binf":
        return True
    cur = _Cursor(data, "head")
    try:
        _header(cur)
        objective = _objective_name(cur)
        booster = cur.string("booster")
    except CorruptArtifact:
        return False
    return bool(_OBJECTIVE_NAME.match(objective)) and booster in _BOOSTERS


def _header(cur: _Cursor) -> _LearnerHeader:
    fields = cur.unpack(_LEARNER_PARAM, "the learner parameters")
    return _LearnerHeader(*fields)


def _objective_name(cur: _Cursor) -> str:
    length = cur.u64("the length of the objective name")
    if length >= 0xFFFFFFFF:  # v0.90 LearnerImpl::Load: old writers put an int gap here
        cur.take(4, "the objective name gap")
        length >>= 32
    if length > 256:
        raise CorruptArtifact(f"{cur.what} is damaged: the objective name claims {length} bytes")
    raw = cur.take(length, "the objective name")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise CorruptArtifact(f"{cur.what} is damaged: the objective name is not text") from None


_TREE_HEAD = struct.Struct("<iiiiIi")  # the fields of TreeParam read here (the rest is reserved)
_TREE_BYTES = _TREE_PARAM.size + _NODE.itemsize + _STAT.itemsize  # a tree of one node


def _read_binary_trees(cur: _Cursor, num_trees: int) -> Forest:
    """``num_trees`` binary trees (TreeParam, nodes, node statistics): the headers one by one, then
    the nodes and statistics of all trees with one gather each."""
    data, pos, end = cur.data, cur.pos, cur.end
    head = _TREE_HEAD.unpack_from
    param_size, node_size, stat_size = _TREE_PARAM.size, _NODE.itemsize, _STAT.itemsize
    record = node_size + stat_size
    view = memoryview(data)
    node_parts, stat_parts, sizes, deleted, features = [], [], [], [], []
    for index in range(num_trees):
        if end - pos < param_size:
            cur.pos = pos
            cur.unpack(_TREE_PARAM, f"the parameters of tree {index}")  # raises, naming the offset
        num_roots, num_nodes, num_deleted, _depth, num_feature, _leaf = head(data, pos)
        if num_nodes < 1:
            raise CorruptArtifact(f"{cur.what} is damaged: tree {index} has {num_nodes} nodes")
        if num_roots != 1:
            if 1 < num_roots <= num_nodes:
                raise NotLoadable(f"tree {index} has {num_roots} roots; multi-root trees of "
                                  "XGBoost before 0.7 cannot be converted")
            raise CorruptArtifact(f"{cur.what} is damaged: tree {index} has {num_roots} roots")
        body = pos + param_size
        if num_nodes > (end - body) // record:
            raise CorruptArtifact(
                f"{cur.what} is truncated or damaged: the nodes of tree {index} claim {num_nodes} "
                f"items of {record} bytes at offset {body}, only {end - body} bytes remain")
        stats = body + num_nodes * node_size
        node_parts.append(view[body:stats])
        pos = stats + num_nodes * stat_size
        stat_parts.append(view[stats:pos])
        sizes.append(num_nodes)
        deleted.append(num_deleted)
        features.append(num_feature)
    cur.pos = pos
    n = np.array(sizes, np.int64)
    nodes = np.frombuffer(b"".join(node_parts), _NODE)
    stats = np.frombuffer(b"".join(stat_parts), _STAT)
    sindex = nodes["sindex"]
    columns = {
        "left_children": nodes["left"].astype(np.int32),
        "right_children": nodes["right"].astype(np.int32),
        "parents": (nodes["parent"].view(np.uint32) & 0x7FFFFFFF).astype(np.int32),
        "split_indices": (sindex & 0x7FFFFFFF).astype(np.int32),
        "split_conditions": nodes["cond"].astype(np.float32),
        "default_left": (sindex >> 31).astype(np.uint8),
        "loss_changes": stats["loss_chg"].astype(np.float32),
        "sum_hessian": stats["sum_hess"].astype(np.float32),
        "base_weights": stats["base_weight"].astype(np.float32),
    }
    return Forest(sizes=n, num_deleted=deleted, num_feature=features, columns=columns)


def _read_legacy_binary(data: bytes, era: str, start: int = 0, end: int | None = None,
                        what: str = "the legacy binary model") -> LegacyModel:
    cur = _Cursor(data, what, start, end)
    if cur.left >= 4 and data[cur.pos:cur.pos + 4] == b"binf":
        cur.pos += 4
    head = _header(cur)
    objective_name = _objective_name(cur)
    if not _OBJECTIVE_NAME.match(objective_name):
        raise CorruptArtifact(f"{what} is damaged: {objective_name!r} is not an objective name")
    booster = cur.string("the booster name")
    if booster not in _BOOSTERS:
        raise CorruptArtifact(f"{what} is damaged: unknown booster {booster[:40]!r}")
    if head.num_class < 0:
        raise CorruptArtifact(f"{what} is damaged: num_class is {head.num_class}")
    old = head.major_version == 0
    model = LegacyModel(era=era, version_hint="before 1.0" if old else
                        f"{head.major_version}.{head.minor_version}", objective={},
                        base_score=head.base_score, num_feature=head.num_feature,
                        num_class=head.num_class, booster=booster,
                        learner_params=asdict(head))
    if booster == "gblinear":
        _read_binary_gblinear(cur, model)
    else:
        _read_binary_gbtree(cur, model, booster == "dart")
    if head.contain_extra_attrs:
        n = cur.count("the attributes", 16)
        for _ in range(n):
            key = cur.string("an attribute name")
            model.attributes[key] = cur.string(f"the attribute {key[:40]!r}")
    max_delta_step = model.attributes.pop("count_poisson_max_delta_step", None)
    if old:
        if objective_name == "count:poisson":  # LearnerImpl::Save, v0.7 to v0.90
            max_delta_step = cur.string("the max_delta_step of count:poisson")
        if head.contain_eval_metrics:
            for _ in range(cur.count("the metric names", 8)):
                cur.string("a metric name")
    if cur.left:
        raise CorruptArtifact(f"{what} is damaged: {cur.left} unexpected bytes follow the model")
    objective_json = model.attributes.pop("objective", None)
    model.attributes.pop("metrics", None)
    model.objective = _default_objective(objective_name, head.num_class, max_delta_step)
    if objective_json is not None:
        config = _json_loads(objective_json.encode("utf-8"), "the objective attribute")
        if not isinstance(config, dict) or config.get("name") != model.objective_name:
            raise CorruptArtifact(f"{what} is damaged: the objective attribute does not describe "
                                  f"{model.objective_name}")
        model.objective = config
    if old and not objective_name.startswith("multi:"):
        model.base_score = _pred_transform(model.objective_name, head.base_score)
    return model


def _read_binary_gbtree(cur: _Cursor, model: LegacyModel, dart: bool) -> None:
    num_trees, num_parallel_tree, *_ = cur.unpack(_GBTREE_PARAM, "the gbtree parameters")
    if num_trees < 0 or num_trees > cur.left // _TREE_BYTES:
        raise CorruptArtifact(f"{cur.what} is truncated or damaged: it claims {num_trees} trees")
    model.num_parallel_tree = max(num_parallel_tree, 1)
    model.forest = _read_binary_trees(cur, num_trees)
    model.tree_info = cur.array(np.dtype("<i4"), num_trees, "the tree groups").astype(np.int32)
    if dart:
        model.weight_drop = np.zeros(0, np.float32)
        if num_trees:
            count = cur.count("the dart weights", 4)
            model.weight_drop = cur.array(np.dtype("<f4"), count, "the dart weights").astype(
                np.float32)


def _read_binary_gblinear(cur: _Cursor, model: LegacyModel) -> None:
    cur.unpack(_GBLINEAR_PARAM, "the gblinear parameters")
    count = cur.count("the linear weights", 4)
    model.linear_weights = cur.array(np.dtype("<f4"), count, "the linear weights").astype(
        np.float32)


# --------------------------------------------------------------------------------------------
# JSON model documents (1.x memory snapshots, JSON/UBJSON model files)


def _get(obj: Any, key: str, kind: type | tuple, what: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise CorruptArtifact(f"{what} has no {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise CorruptArtifact(f"{what}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _int_text(value: Any, what: str) -> int:
    """An integer XGBoost stores as text (``"12"``), read the way its parameter parser reads it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_TEXT.match(value):
        return int(value)
    raise CorruptArtifact(f"{what} is not an integer ({str(value)[:40]!r})")


def _base_scores(text: Any, what: str) -> list[float]:
    """``base_score`` is "5E-1" up to 3.0 and a JSON array such as "[5E-1]" from 3.1."""
    if not isinstance(text, str):
        raise CorruptArtifact(f"{what}: base_score is not a string")
    value = _json_loads(text.strip().encode(), "base_score")
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                             for v in values):
        raise CorruptArtifact(f"{what}: base_score {text[:40]!r} is not a number")
    return [float(v) for v in values]


_TREE_ARRAY_TYPES = tuple((k, _NODE_COLUMNS[k]) for k in (
    "left_children", "right_children", "parents", "split_indices", "split_conditions",
    "default_left", "loss_changes", "sum_hessian", "base_weights"))
_CATEGORY_ARRAYS = (("split_type", np.uint8),) + tuple(_CATEGORY_COLUMNS.items())


def _array(obj: dict, key: str, dtype: type, what: str, length: int | None = None) -> np.ndarray:
    value = _get(obj, key, (list, np.ndarray), what)
    try:
        arr = np.asarray(value)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iufb"):
            raise ValueError
        with np.errstate(invalid="ignore", over="ignore"):
            out: np.ndarray = arr.astype(dtype)
        if arr.size and out.dtype.kind in "iu" and not np.array_equal(out, arr):
            raise ValueError
    except (ValueError, TypeError, OverflowError):
        raise CorruptArtifact(f"{what}: {key!r} is not an array of numbers") from None
    if length is not None and len(out) != length:
        raise CorruptArtifact(f"{what}: {key!r} has {len(out)} items, expected {length}")
    return out


def _tree_from_json(obj: Any, index: int, num_target: int) -> tuple[Tree, bool]:
    """The tree, and whether it has vector leaves (XGBoost 2.0+ multi-target trees, whose node
    structure is checked here but whose leaf weights are not modelled)."""
    what = f"tree {index}"
    if not isinstance(obj, dict):
        raise CorruptArtifact(f"{what} is not a JSON object")
    params = obj
    tree_param = _get(params, "tree_param", dict, what)
    n = _int_text(_get(tree_param, "num_nodes", str, what), f"{what}: num_nodes")
    size_leaf = _int_text(tree_param.get("size_leaf_vector", "0"), f"{what}: size_leaf_vector")
    vector = size_leaf > 1
    if size_leaf < 0 or (vector and size_leaf != num_target):
        raise CorruptArtifact(f"{what}: size_leaf_vector is {size_leaf} for {num_target} targets")
    if n < 1:
        raise CorruptArtifact(f"{what} has {n} nodes")
    fields = _TREE_ARRAY_TYPES[:6] if vector else _TREE_ARRAY_TYPES  # vector trees keep other statistics
    arrays = {key: _array(params, key, dtype, what, n) for key, dtype in fields}
    if vector:
        _check_vector_leaves(params, arrays, size_leaf, what)
    for key, dtype in _TREE_ARRAY_TYPES[6:]:
        arrays.setdefault(key, np.zeros(n, dtype))
    if vector and "split_type" not in params:
        # XGBoost 2.0+ writes it in every tree; 3.2 aborts the process (std::terminate) on pred_leaf without it
        raise CorruptArtifact(f"{what} has vector leaves but no split_type")
    if "split_type" in params:
        cats = {key: _array(params, key, dtype, what) for key, dtype in _CATEGORY_ARRAYS}
        if len(cats["split_type"]) != n:
            raise CorruptArtifact(f"{what}: split_type has {len(cats['split_type'])} items, "
                                  f"expected {n}")
        if not len(cats["categories_nodes"]) == len(cats["categories_segments"]) == \
                len(cats["categories_sizes"]):
            raise CorruptArtifact(f"{what} has category lists of different lengths")
    else:
        cats = {"split_type": np.zeros(n, np.uint8), "categories": np.zeros(0, np.int32),
                "categories_nodes": np.zeros(0, np.int32),
                "categories_segments": np.zeros(0, np.int64),
                "categories_sizes": np.zeros(0, np.int64)}
    deleted = (arrays["split_indices"][1:] == _DELETED) & (arrays["default_left"][1:] == 1)
    num_deleted = tree_param.get("num_deleted")  # absent in 1.0 documents
    num_deleted = int(deleted.sum()) if num_deleted is None else _int_text(num_deleted, what)
    num_feature = _int_text(tree_param.get("num_feature", "0"), f"{what}: num_feature")
    for name, value in (("num_deleted", num_deleted), ("num_feature", num_feature)):
        if not -1 << 63 <= value < 1 << 63:  # the forest's int64 columns (XGBoost itself reads 32-bit ones)
            raise CorruptArtifact(f"{what}: {name} {value} is out of range")
    return Tree(num_deleted=num_deleted, num_feature=num_feature, **arrays, **cats), vector


def _check_vector_leaves(params: dict, arrays: dict, size_leaf: int, what: str) -> None:
    """A multi-target tree's leaves keep, in ``right_children``, an index into ``leaf_weights``
    (``MultiTargetTree``, include/xgboost/multi_target_tree_model.h, v3.2.0)."""
    for key in ("base_weights", "loss_changes", "sum_hessian"):
        _array(params, key, np.float32, what)
    weights = _array(params, "leaf_weights", np.float32, what)
    leaves = arrays["right_children"][arrays["left_children"] == -1]
    if len(weights) % size_leaf or (leaves.size and (
            leaves.min() < 0 or leaves.max() >= len(weights) // size_leaf)):
        raise CorruptArtifact(f"{what}: its leaves point outside its leaf weights")


# What each array of a tree must be in XGBoost's typed reading (RegTree::LoadModel,
# LoadCategoricalSplit in src/tree/tree_model.cc, v3.2.0): the UBJSON element marker.
_TYPED_ITEMS = {"left_children": b"l", "right_children": b"l", "parents": b"l",
                "split_indices": b"lL", "split_conditions": b"d", "default_left": b"U",
                "loss_changes": b"d", "sum_hessian": b"d", "base_weights": b"d", "split_type": b"U",
                "categories": b"l", "categories_nodes": b"l", "categories_segments": b"L",
                "categories_sizes": b"L"}


def _forest_from_ubj(table: _UBJTrees) -> Forest | None:
    """The forest of a walked UBJSON ``trees`` array, or None when something needs the general
    reading (vector leaves, ids out of order, a missing or unusual array, text that is not plain
    digits): that reading then gives the same trees, or names what is wrong."""
    t = table.count
    sizes = table.number("tree_param", "num_nodes")
    leaf = table.number("tree_param", "size_leaf_vector")
    if sizes is None or (sizes < 1).any() or (leaf is not None and (leaf > 1).any()):
        return None
    if leaf is None and ("tree_param", "size_leaf_vector") in table.texts:
        return None  # not plain digits of at most 18 (XGBoost's stoul reads "-1", "2 " or 19 digits as vector leaves)
    ids = table.ints.get("id")
    if ids is None or not np.array_equal(ids, np.arange(t)):
        return None
    node_keys = [k for k, _ in _TREE_ARRAY_TYPES]
    wanted = node_keys + (list(_TYPED_ITEMS)[9:] if "split_type" in table.typed else [])
    if set(table.typed) - set(_TYPED_ITEMS) - {"leaf_weights"} or "leaf_weights" in table.typed:
        return None
    for key in wanted:
        found = table.typed.get(key)
        if found is None or found[2] not in _TYPED_ITEMS[key]:
            return None
        if key in _NODE_COLUMNS and not np.array_equal(found[1], sizes):
            return None
    deleted = table.number("tree_param", "num_deleted")
    features = table.number("tree_param", "num_feature")
    if ("tree_param", "num_deleted") in table.texts and deleted is None:
        return None
    if ("tree_param", "num_feature") in table.texts and features is None:
        return None
    cat_counts = cat_node_counts = None
    if "split_type" in table.typed:
        cat_counts = table.typed["categories"][1]
        cat_node_counts = table.typed["categories_nodes"][1]
        if not (np.array_equal(table.typed["categories_segments"][1], cat_node_counts)
                and np.array_equal(table.typed["categories_sizes"][1], cat_node_counts)):
            return None

    def column(name: str) -> np.ndarray | None:
        return _narrowed(name, table.column(name)) if name in table.typed else None

    forest = Forest(sizes=sizes, num_deleted=np.zeros(t, np.int64) if deleted is None else deleted,
                    num_feature=np.zeros(t, np.int64) if features is None else features,
                    category_counts=cat_counts, category_node_counts=cat_node_counts,
                    source=column, typed=(table.data, table.locate))
    if deleted is None:  # 1.0 documents leave it out: whatever the nodes say
        marked = _deleted_nodes(forest)
        forest.num_deleted = np.add.reduceat(marked, forest.starts, dtype=np.int64)
    return forest


def _narrowed(name: str, values: np.ndarray) -> np.ndarray:
    """A column read from a file in the dtype of :data:`_NODE_COLUMNS` / :data:`_CATEGORY_COLUMNS`
    (XGBoost may write split indices as int64)."""
    dtype = np.dtype((_NODE_COLUMNS | _CATEGORY_COLUMNS)[name])
    if values.dtype.itemsize > dtype.itemsize:
        limits = np.iinfo(dtype)  # type: ignore[type-var]
        if values.size and (values.min() < limits.min or values.max() > limits.max):
            raise CorruptArtifact(f"the model is damaged: {name} holds a value outside {dtype.name}")
    return values.astype(dtype, copy=False)


def _model_from_document(doc: Any, era: str, what: str) -> tuple[LegacyModel, list[str]]:
    """The model of an XGBoost JSON document (1.0 to 3.x), not yet checked, and what in it only
    XGBoost 2.0+ writes and the model here does not hold -- several targets, vector leaves, one
    intercept per output, the category names of 3.1 -- (checked as far as it touches the trees;
    such documents can only go to XGBoost as they are)."""
    if not isinstance(doc, dict):
        raise CorruptArtifact(f"{what} is not a JSON object")
    learner = _get(doc, "learner", dict, what)
    params = _get(learner, "learner_model_param", dict, f"{what}: learner")
    scores = _base_scores(params.get("base_score"), what)
    modern = []
    if len(set(scores)) > 1:
        modern.append("one intercept per output")
    objective = _get(learner, "objective", dict, f"{what}: learner")
    _get(objective, "name", str, f"{what}: objective")
    gb = _get(learner, "gradient_booster", dict, f"{what}: learner")
    booster = _get(gb, "name", str, f"{what}: gradient_booster")
    if booster not in _BOOSTERS:
        raise CorruptArtifact(f"{what}: unknown booster {booster[:40]!r}")
    version = doc.get("version")
    version_hint = ".".join(str(v) for v in version) if isinstance(version, list) else "1.x"
    model = LegacyModel(
        era=era, version_hint=version_hint, objective=objective, base_score=scores[0],
        booster=booster,
        num_feature=_int_text(params.get("num_feature"), f"{what}: num_feature"),
        num_class=_int_text(params.get("num_class", "0"), f"{what}: num_class"),
        num_target=_int_text(params.get("num_target", "1"), f"{what}: num_target"),
        learner_params=dict(params))
    if model.num_target != 1:
        if model.num_target < 1 or model.num_target > 1 << 16:
            raise CorruptArtifact(f"{what}: num_target is {model.num_target}")
        modern.append("several targets")
    if booster == "gblinear":
        linear = _get(gb, "model", dict, f"{what}: gblinear")
        model.linear_weights = _array(linear, "weights", np.float32, f"{what}: gblinear")
        model.boosted_rounds = _int_text(linear.get("boosted_rounds", 0), f"{what}: rounds")
        if model.boosted_rounds < 0:
            raise CorruptArtifact(f"{what}: gblinear has {model.boosted_rounds} rounds")
    else:
        gbtree = _get(gb, "gbtree", dict, f"{what}: dart") if booster == "dart" else gb
        trees_obj = _get(gbtree, "model", dict, f"{what}: gbtree")
        tree_param = _get(trees_obj, "gbtree_model_param", dict, f"{what}: gbtree")
        model.num_parallel_tree = _int_text(tree_param.get("num_parallel_tree", "1"),
                                            f"{what}: num_parallel_tree")
        encodings = trees_obj["cats"].get("enc") if isinstance(trees_obj.get("cats"), dict) else None
        if isinstance(encodings, (list, np.ndarray)) and len(encodings):
            modern.append("the category names of its training data")
        trees = _get(trees_obj, "trees", (list, _UBJTrees), f"{what}: gbtree")
        forest = _forest_from_ubj(trees) if isinstance(trees, _UBJTrees) else None
        if forest is None:
            if isinstance(trees, _UBJTrees):
                trees = [trees.tree(i) for i in range(trees.count)]
            forest, vector = _forest_from_json(trees, model.num_target, what)
            if vector:
                modern.append("vector leaves")
        model.forest = forest
        model.tree_info = _array(trees_obj, "tree_info", np.int32, f"{what}: gbtree",
                                 forest.num_trees)
        if booster == "dart":
            model.weight_drop = _array(gb, "weight_drop", np.float32, f"{what}: dart")
        _check_rounds(trees_obj, tree_param, model, what)
    attributes = learner.get("attributes", {})
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise CorruptArtifact(f"{what}: the attributes are not strings")
    model.attributes = dict(attributes)
    for key in ("feature_names", "feature_types"):
        value = learner.get(key)
        if isinstance(value, np.ndarray) or value:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise CorruptArtifact(f"{what}: {key} is not a list of strings")
            setattr(model, key, list(value))
    return model, modern


def _forest_from_json(trees: list, num_target: int, what: str) -> tuple[Forest, bool]:
    """Trees given as JSON objects (a JSON file, or a UBJSON one read item by item)."""
    ordered: list[Tree | None] = [None] * len(trees)
    vector = False
    for i, tree in enumerate(trees):
        tree_id = _get(tree, "id", int, f"{what}: tree {i}") if isinstance(tree, dict) else i
        if not 0 <= tree_id < len(trees) or ordered[tree_id] is not None:
            raise CorruptArtifact(f"{what}: tree ids are not 0..{len(trees) - 1}")
        ordered[tree_id], is_vector = _tree_from_json(tree, tree_id, num_target)
        vector = vector or is_vector
    return Forest.from_trees(ordered), vector  # type: ignore[arg-type]


def _check_rounds(trees_obj: dict, tree_param: dict, model: LegacyModel, what: str) -> None:
    """The round bookkeeping XGBoost trusts (``GBTreeModel::LoadModel``, ``MakeIndptr``,
    src/gbm/gbtree_model.cc v3.2.0): ``num_trees`` counts the trees, ``num_parallel_tree`` is
    positive, and ``iteration_indptr`` -- the first tree of each round, which prediction uses to pick
    the trees -- starts at 0, never decreases and ends at the number of trees."""
    n = model.num_trees
    declared = _int_text(tree_param.get("num_trees", str(n)), f"{what}: num_trees")
    if declared != n:
        raise CorruptArtifact(f"{what} is damaged: it declares {declared} trees and holds {n}")
    if model.num_parallel_tree < 1:
        raise CorruptArtifact(f"{what} is damaged: num_parallel_tree is {model.num_parallel_tree}")
    if "iteration_indptr" in trees_obj:
        indptr = _array(trees_obj, "iteration_indptr", np.int64, f"{what}: gbtree")
        if not len(indptr) or indptr[0] != 0 or indptr[-1] != n or (np.diff(indptr) < 0).any():
            raise CorruptArtifact(f"{what} is damaged: iteration_indptr does not run from 0 to "
                                  f"the {n} trees")


# --------------------------------------------------------------------------------------------
# Validation: what XGBoost would otherwise index without bounds checks


def _check_model(model: LegacyModel) -> None:
    """Every check: what XGBoost's reading of the model relies on, then what its use relies on."""
    _check_reading(model)
    _check_use(model)


def _check_reading(model: LegacyModel) -> None:
    """What ``Learner::LoadModel`` indexes without bounds checks while it reads a document (see the
    module notes): each tree has nodes, its parent indices stay inside it, its category lists are
    consistent. The other checks (:func:`_check_use`) may run while XGBoost reads the file, as long
    as the Booster is not used before they pass."""
    if model.booster == "gblinear":
        return
    forest = model.forest
    if forest.num_trees == 0:
        return
    sizes = forest.sizes
    if (sizes < 1).any():
        index = int(np.flatnonzero(sizes < 1)[0])
        raise CorruptArtifact(f"the model is damaged: tree {index} has {int(sizes[index])} nodes")
    for block in forest.blocks(_READING_BLOCK_SLOTS):
        parents = block.column("parents")
        bad = parents.view(np.uint32) >= block.slot_sizes.view(np.uint32)  # negative ones too
        bad[block.starts] = False  # a root's parent is never read
        if bad.any():
            index = block.tree(bad)
            raise CorruptArtifact(f"the model is damaged: tree {index} has a parent index outside "
                                  f"0..{int(sizes[index]) - 1}")
    if forest.has_categories:
        _check_category_lists(forest)


def _check_use(model: LegacyModel) -> None:
    """What prediction relies on: tree structure (children, features, deleted nodes), output
    groups, round offsets, counts of names and weights. Tree models: num_feature < 2**26
    (prediction allocates a dense row of num_feature floats per thread) and
    num_class <= max(trees, 65536)."""
    groups = model.output_groups
    if model.num_class < 0:
        raise CorruptArtifact(f"the model is damaged: num_class is {model.num_class}")
    if model.objective_name.startswith("multi:"):
        declared = model.objective.get("softmax_multiclass_param", {})
        declared = declared.get("num_class") if isinstance(declared, dict) else None
        if declared is not None and _int_text(declared, "the objective's num_class") != \
                model.num_class:
            raise CorruptArtifact(f"the model is damaged: its objective has {declared} classes, "
                                  f"the learner {model.num_class}")
    for key in ("feature_names", "feature_types"):
        names = getattr(model, key)
        if names and len(names) != model.num_feature:
            raise CorruptArtifact(f"the model is damaged: {len(names)} {key} for "
                                  f"{model.num_feature} features")
    if model.booster == "gblinear":
        expected = (model.num_feature + 1) * groups
        if model.linear_weights is None or len(model.linear_weights) != expected:
            got = 0 if model.linear_weights is None else len(model.linear_weights)
            raise CorruptArtifact(f"the linear model is damaged: {got} weights for "
                                  f"{model.num_feature} features and {groups} groups "
                                  f"(expected {expected})")
        return
    if model.num_feature < 0 or model.num_feature >= _MAX_TREE_FEATURES:
        raise CorruptArtifact(f"the model is damaged: num_feature is {model.num_feature}")
    if model.num_class > max(model.num_trees, 1 << 16):
        raise CorruptArtifact(f"the model is damaged: {model.num_class} classes for "
                              f"{model.num_trees} trees")
    _check_trees(model.forest, model.num_feature)
    info = model.tree_info
    if len(info) != model.num_trees or (len(info) and (info.min() < 0 or info.max() >= groups)):
        raise CorruptArtifact(f"the model is damaged: tree groups must lie in 0..{groups - 1}")
    if model.weight_drop is not None and model.num_trees and \
            len(model.weight_drop) != model.num_trees:
        raise CorruptArtifact(f"the dart model is damaged: {len(model.weight_drop)} weights for "
                              f"{model.num_trees} trees")


def _deleted_nodes(forest: Forest) -> np.ndarray:
    """Deleted nodes (``Node::IsDeleted``: split index 0x7FFFFFFF with the default-left bit); a
    root never counts (``RegTree::LoadModel`` looks from node 1 on)."""
    deleted = (forest.column("split_indices") == _DELETED) & (forest.column("default_left") == 1)
    deleted[forest.starts] = False
    return deleted


def _first_tree(forest: Forest, bad_nodes: np.ndarray) -> int:
    """The tree of the first node flagged in ``bad_nodes`` (a mask over the node columns end to end)."""
    node = int(np.flatnonzero(bad_nodes)[0])
    return int(np.searchsorted(forest.starts, node, side="right") - 1)


def _check_trees(forest: Forest, num_feature: int) -> None:
    """The structure of every tree, checked for a block of trees at once (after
    :func:`_check_reading`): feature indices and default directions, deleted-node counts, and that
    the internal nodes' children make a tree XGBoost's predictor can walk -- inside the tree, the
    right child right after the left one, no node reached twice or deleted, splits on the model's
    features."""
    category_starts = _exclusive_cumsum(forest.category_node_counts)
    for block in forest.blocks(_USE_BLOCK_SLOTS):
        _check_block(forest, block, num_feature, category_starts)


def _check_block(forest: Forest, block: _Block, num_feature: int, category_starts: np.ndarray) -> None:
    """:func:`_check_trees` for the trees of ``block`` (whose padding slots are leaves)."""
    where = "the model is damaged: tree {}"
    if not forest.has_categories:
        split_type = block.column("split_type")
        if split_type.size and split_type.max() != 0:
            _check_category_lists(forest)  # categorical nodes without category lists: it says which
    split_index, default_left = block.column("split_indices"), block.column("default_left")
    if split_index.min() < 0 or default_left.max() > 1:
        bad = (split_index < 0) | (default_left > 1)
        raise CorruptArtifact(f"{where.format(block.tree(bad))} has a negative feature "
                              "index or a default direction other than 0/1")
    deleted = split_index == _DELETED
    deleted &= default_left.view(bool)  # 0/1, checked above
    deleted[block.starts] = False  # a root never counts (RegTree::LoadModel looks from node 1 on)
    any_deleted = bool(block.num_deleted.any())
    if any_deleted or deleted.any():
        marked = np.add.reduceat(deleted, block.starts, dtype=np.int64)
        if not np.array_equal(marked, block.num_deleted):
            index = int(np.flatnonzero(marked != block.num_deleted)[0])
            raise CorruptArtifact(f"{where.format(block.first + index)} marks {int(marked[index])} "
                                  f"nodes deleted but records {int(block.num_deleted[index])}")
    left = block.column("left_children")
    internal = left != -1
    if any_deleted:
        internal &= ~deleted
    right = block.column("right_children")
    limit = block.slot_sizes
    apart = right - left != 1
    apart &= internal
    outside = left < 1
    outside |= right >= limit
    outside &= internal  # with right = left + 1, this is every child outside 1..size-1
    if apart.any() or outside.any():
        outside = (left < 1) | (left >= limit) | (right < 1) | (right >= limit)
        outside &= internal
        index = block.tree(outside if outside.any() else apart)
        if outside.any():
            raise CorruptArtifact(f"{where.format(index)} has a child index outside "
                                  f"1..{int(forest.sizes[index]) - 1}")
        raise CorruptArtifact(f"{where.format(index)} has a right child that does not follow "
                              "its left child, which XGBoost's predictor assumes")
    if internal.any():
        # each internal node's children are the slots first and first + 1 (checked above)
        first = np.repeat(block.starts.astype(np.int32 if len(left) < 1 << 31 else np.int64), block.widths)
        np.add(first, left, out=first)  # in place, keeping first's dtype (as +=)
        first = first[internal]
        reached = np.zeros(len(left), bool)
        reached[first] = True
        once = np.count_nonzero(reached) == len(first) and not reached[first + 1].any()
        if not once or (any_deleted and (deleted[first].any() or deleted[first + 1].any())):
            hits = np.bincount(np.concatenate([first, first + 1]), minlength=len(left))
            bad = hits > 1
            if any_deleted:
                bad |= deleted & (hits > 0)
            raise CorruptArtifact(f"{where.format(block.tree(bad))} is not a tree: a node is "
                                  "reached twice or is deleted")
        beyond = split_index >= num_feature
        beyond &= internal
        if beyond.any():
            raise CorruptArtifact(f"{where.format(block.tree(beyond))} splits on feature "
                                  f"{int(split_index[beyond].max())} of a model with {num_feature} "
                                  "features")
    counts = forest.category_node_counts[block.first:block.last]
    if counts.any():
        begin = int(category_starts[block.first])
        nodes = forest.column("categories_nodes")[begin:begin + int(counts.sum())]
        if not internal[nodes + np.repeat(block.starts, counts)].all():
            raise CorruptArtifact("the model is damaged: a tree has a categorical split on a leaf")


def _check_category_lists(forest: Forest) -> None:
    """Categorical splits (``RegTree::LoadCategoricalSplit``): ``categories_nodes`` lists exactly
    the nodes whose ``split_type`` is 1 (ascending, each tree's own), each with a list that lies
    inside the tree's ``categories``, which hold categories below 2**24."""
    split_type = forest.column("split_type")
    nodes = forest.column("categories_nodes").astype(np.int64)
    segments = forest.column("categories_segments")
    lengths = forest.column("categories_sizes")
    per_tree = forest.category_node_counts
    if not len(nodes) == len(segments) == len(lengths) == int(per_tree.sum()):
        raise CorruptArtifact("the model is damaged: a tree has category lists of different lengths")
    if split_type.size and split_type.max() > 1:
        index = _first_tree(forest, split_type > 1)
        raise CorruptArtifact(f"the model is damaged: tree {index} has an unknown split type")
    local_ok = (nodes >= 0) & (nodes < np.repeat(forest.sizes, per_tree))
    listed = np.where(local_ok, nodes + np.repeat(forest.starts, per_tree), -1)
    if not np.array_equal(np.flatnonzero(split_type == 1), listed):
        raise CorruptArtifact("the model is damaged: its categorical nodes and category lists "
                              "disagree")
    if not len(listed):
        return
    total = np.repeat(forest.category_counts, per_tree)
    if segments.min() < 0 or lengths.min() < 1 or (segments > total).any() or \
            (lengths > total).any() or (segments + lengths > total).any():
        raise CorruptArtifact("the model is damaged: a tree has category lists outside its "
                              "categories")
    cats = forest.column("categories")
    if len(cats) != int(forest.category_counts.sum()) or (
            cats.size and (cats.min() < 0 or cats.max() >= _MAX_CATEGORY)):
        raise CorruptArtifact(f"the model is damaged: a tree has a category outside "
                              f"0..{_MAX_CATEGORY - 1}")
    # each list's largest category, by reduceat over (begin, end) pairs (every list has an item, checked above)
    begins = np.repeat(_exclusive_cumsum(forest.category_counts), per_tree) + segments
    bounds = np.stack([begins, begins + lengths], axis=1).ravel()
    largest = np.maximum.reduceat(np.append(cats, 0).astype(np.int64), bounds)[::2]
    allocated = 4 * int(((largest + 32) // 32).sum())  # uint32 words of (largest + 1) bits per split
    if allocated > _MAX_CATEGORY_BITFIELDS:
        raise UnsafeArtifact(f"the model's categorical splits would make XGBoost allocate {allocated >> 20} MiB of "
                             f"category sets (more than {_MAX_CATEGORY_BITFIELDS >> 20} MiB): a memory bomb?")


# --------------------------------------------------------------------------------------------
# Memory snapshots (the handle of 1.x pickles)


def _snapshot_kind(data: bytes) -> str | None:
    """'binary+config', 'json', 'ubjson' for a memory snapshot, else None."""
    if data.startswith(_SNAPSHOT_HEADER):
        return "binary+config"
    doc_kind = _document_kind(data)
    if doc_kind == "json":
        key = re.match(rb'\{\s*"(Config|Model)"\s*:', data[:64])
        return "json" if key else None
    if doc_kind == "ubjson":
        return "ubjson" if re.match(rb"\{[iUIlL].{0,8}?(Config|Model)\{", data[:32], re.S) else None
    return None


def _document_kind(data: bytes) -> str | None:
    """'json' for ``{"``, 'ubjson' for ``{`` and a UBJSON length marker (LearnerIO::LoadModel)."""
    if data[:1] != b"{":
        return None
    rest = data[1:65].lstrip()
    if rest[:1] == b'"':
        return "json"
    if data[1:2] in (b"L", b"i", b"U", b"I", b"l"):
        return "ubjson"
    return None


def _parse_document(data: bytes, kind: str, what: str) -> Any:
    return _json_loads(data, what) if kind == "json" else _ubj_loads(data, what)


def _read_snapshot(data: bytes, era: str) -> tuple[LegacyModel, list[str], str]:
    """The model of a memory snapshot, unchecked, with what only XGBoost 2.0+ writes in it."""
    kind = _snapshot_kind(data)
    if kind == "binary+config":
        cur = _Cursor(data, "the memory snapshot", len(_SNAPSHOT_HEADER))
        offset = cur.unpack(_I64, "the snapshot's JSON offset")[0]
        if offset <= 0 or offset > cur.left:
            raise CorruptArtifact(f"the memory snapshot is truncated or damaged: its binary part "
                                  f"claims {offset} bytes, {cur.left} remain")
        binary_start = cur.pos
        config = _json_loads(data[binary_start + offset:], "the snapshot's configuration")
        if not isinstance(config, dict):
            raise CorruptArtifact("the snapshot's configuration is not a JSON object")
        what = "the model inside the memory snapshot"
        model = _read_legacy_binary(data, era, binary_start, binary_start + offset, what)
        version = config.get("version")
        if isinstance(version, list):
            model.version_hint = ".".join(str(v) for v in version)
        return model, [], what
    if kind is None:
        raise CorruptArtifact("the pickled handle is neither a legacy binary model nor a memory "
                              "snapshot")
    doc = _parse_document(data, kind, "the memory snapshot")
    if not isinstance(doc, dict):
        raise CorruptArtifact("the memory snapshot is not a JSON object")
    if "Model" not in doc:  # R's xgb.load writes the model alone (LearnerIO::Load, v1.6.0)
        return (*_model_from_document(doc, era, "the memory snapshot"), "the memory snapshot")
    what = "the model inside the memory snapshot"
    return (*_model_from_document(doc["Model"], era, what), what)


def _representable(model: LegacyModel, modern: list[str], what: str) -> LegacyModel:
    if modern:
        raise NotLoadable(f"{what} has {' and '.join(modern)} (XGBoost 2.0+), which only XGBoost "
                          "itself reads; it is not converted")
    return model


# --------------------------------------------------------------------------------------------
# Era detection and the public API


_PICKLE_START = re.compile(rb"\x80[\x02-\x05]|c[A-Za-z_][\w.]*\n\w+\n|\(c[A-Za-z_]")
_SNAPSHOT_IN_PICKLE = re.compile(
    rb'CONFIG-offset:|\{"(?:Config|Model)":|\{L\x00{7}[\x05\x06](?:Config|Model)')


def _is_pickle(data: bytes) -> bool:
    return bool(_PICKLE_START.match(data[:64]))


def _pickle_protocol(data: bytes) -> int:
    return data[1] if data[:1] == b"\x80" else 0


def detect_era(data: bytes) -> str | None:
    """The era of an XGBoost model file from its first 64 KiB, or None when it is not one.

    Cheap and heuristic for pickles (a pickle naming ``xgboost.core.Booster`` near its start;
    a snapshot signature right after ``handle``); :func:`read_model` gives the authoritative era.
    """
    head = bytes(data[:65536])
    if _is_pickle(head):
        if b"xgboost.core" not in head[:256]:
            return None
        at = head.find(b"handle")
        if at >= 0 and _SNAPSHOT_IN_PICKLE.search(head, at, at + 200):
            return "pickle-1.x-snapshot"
        return "py2-pickle" if _pickle_protocol(head) <= 2 else "py3-pickle-legacy-binary"
    if _snapshot_kind(head):
        return "pickle-1.x-snapshot"
    kind = _document_kind(head)
    if kind is not None:
        return kind if b"learner" in head else None
    if _looks_like_legacy_binary(head):
        return "legacy-binary"
    return None


def read_model(data: bytes) -> LegacyModel:
    """Read any XGBoost model file SageMaker produced (see the module docstring) as data, checked.

    Documents with what only XGBoost 2.0+ writes raise NotLoadable (they cannot be represented here).
    """
    model, modern, what = _read_unchecked(bytes(data))
    _check_model(model)
    return _representable(model, modern, what)


def _read_unchecked(data: bytes) -> tuple[LegacyModel, list[str], str]:
    """The model of any era, not yet checked; what in it only XGBoost 2.0+ writes; what to call it."""
    if not data:
        raise NotAnArtifact("the XGBoost model file is empty")
    if _is_pickle(data):
        pickled = _read_booster_pickle(data)
        handle = pickled.state.get("handle")
        if handle is None:
            raise NotLoadable("the pickled Booster holds no model (its handle is None)")
        if not isinstance(handle, bytes):
            raise CorruptArtifact("the pickled Booster's handle is not bytes")
        if _snapshot_kind(handle):
            model, modern, what = _read_snapshot(handle, "pickle-1.x-snapshot")
        else:
            era = "py2-pickle" if pickled.protocol <= 2 else "py3-pickle-legacy-binary"
            what = "the model inside the pickle"
            model, modern = _read_legacy_binary(handle, era, what=what), []
        _adopt_python_state(model, _python_state(pickled.state))
        return model, modern, what
    if _snapshot_kind(data):
        return _read_snapshot(data, "pickle-1.x-snapshot")
    kind = _document_kind(data)
    if kind is not None:
        what = f"the {kind.upper()} model"
        return (*_model_from_document(_parse_document(data, kind, what), kind, what), what)
    if _looks_like_legacy_binary(data[:4096]):
        return _read_legacy_binary(data, "legacy-binary"), [], "the legacy binary model"
    raise NotAnArtifact("the bytes are not an XGBoost model: no Booster pickle, legacy binary, "
                        "JSON or UBJSON model header")


def _adopt_python_state(model: LegacyModel, state: dict[str, Any]) -> None:
    """Feature names/types and ``best_*`` of the pickled Python Booster: before 1.4 they were
    attributes of the Python object (``Booster`` in python-package/xgboost/core.py, v1.3.0), from
    1.4 on the learner keeps the names and types (``LearnerIO::SaveModel``).

    The names ``f0 .. f{n-1}`` that those versions gave every numpy DMatrix are dropped: they say
    nothing, and current XGBoost would demand them from every numpy input.
    """
    model.python_state = state
    names = state.get("feature_names")
    if model.feature_names is None and isinstance(names, list) and \
            len(names) == model.num_feature and names != [f"f{i}" for i in range(len(names))]:
        model.feature_names = names
    types = state.get("feature_types")
    if model.feature_types is None and isinstance(types, list) and len(types) == model.num_feature:
        model.feature_types = types
    for key in ("best_iteration", "best_score"):
        value = state.get(key)
        if key not in model.attributes and isinstance(value, (int, float)) and \
                not isinstance(value, bool):
            model.attributes[key] = str(value)


def _float_text(value: float) -> str:
    """A float32 as the shortest decimal that reads back to the same float32."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-") \
        if math.isfinite(value) else str(value)


def _document(model: LegacyModel) -> dict:
    """XGBoost's JSON model document for the model; tree arrays stay numpy (typed in UBJSON)."""
    if model.booster == "gblinear":
        gradient_booster: dict = {"model": {"boosted_rounds": model.boosted_rounds,
                                            "weights": model.linear_weights},
                                  "name": "gblinear"}
    else:
        num_parallel_tree, indptr = _rounds(model)
        gbtree = {"model": {
            "gbtree_model_param": {"num_parallel_tree": str(num_parallel_tree),
                                   "num_trees": str(model.num_trees)},
            "iteration_indptr": _Integers(indptr),
            "tree_info": _Integers(model.tree_info),
            "trees": _EncodedTrees(model.forest),
        }, "name": "gbtree"}
        if model.booster == "dart":
            weights = model.weight_drop if model.weight_drop is not None else np.zeros(0)
            gradient_booster = {"gbtree": gbtree, "name": "dart", "weight_drop": weights.tolist()}
        else:
            gradient_booster = gbtree
    learner = {
        "attributes": dict(model.attributes),
        "feature_names": list(model.feature_names or []),
        "feature_types": list(model.feature_types or []),
        "gradient_booster": gradient_booster,
        "learner_model_param": {
            "base_score": _float_text(model.base_score),
            # The model is fitted: never let XGBoost re-estimate the intercept (gblinear keeps no
            # round count in the binary format, which would otherwise look "not fitted").
            "boost_from_average": "0",
            "num_class": str(model.num_class),
            "num_feature": str(model.num_feature),
            "num_target": str(model.num_target),
        },
        "objective": model.objective,
    }
    return {"learner": learner, "version": list(_DOCUMENT_VERSION)}


def _rounds(model: LegacyModel) -> tuple[int, list[int]]:
    """``num_parallel_tree`` and the tree offset of each boosting round (``iteration_indptr``,
    ``MakeIndptr`` in src/gbm/gbtree_model.cc, v3.2.0). Pre-1.0 files do not record
    ``num_parallel_tree``; when the recorded one does not divide the trees, rounds of one tree per
    output group (or of single trees) are assumed."""
    n, groups = model.num_trees, model.output_groups
    if n % (model.num_parallel_tree * groups) == 0:
        return model.num_parallel_tree, list(range(0, n + 1, model.num_parallel_tree * groups))
    layer = groups if n % groups == 0 else 1
    return 1, list(range(0, n + 1, layer))


def _tree_document(index: int, tree: Tree) -> dict:
    return {
        "base_weights": tree.base_weights,
        "categories": tree.categories,
        "categories_nodes": tree.categories_nodes,
        "categories_segments": tree.categories_segments,
        "categories_sizes": tree.categories_sizes,
        "default_left": tree.default_left,
        "id": index,
        "left_children": tree.left_children,
        "loss_changes": tree.loss_changes,
        "parents": tree.parents,
        "right_children": tree.right_children,
        "split_conditions": tree.split_conditions,
        "split_indices": tree.split_indices,
        "split_type": tree.split_type,
        "sum_hessian": tree.sum_hessian,
        "tree_param": {"num_deleted": str(tree.num_deleted), "num_feature": str(tree.num_feature),
                       "num_nodes": str(tree.num_nodes), "size_leaf_vector": "1"},
    }


def to_json_document(model: LegacyModel) -> dict:
    """XGBoost's JSON model document (plain dicts/lists/str/int/float) for a model read here."""
    return _plain(_document(model))


def facts(data: bytes) -> dict:
    """What the inspection report shows about an XGBoost model file; never imports XGBoost.

    For JSON/UBJSON documents the facts come from the document as it is (its trees unchecked), for
    every other era from the checked model.
    """
    data = bytes(data)
    era = _document_era(data)
    if era in ("json", "ubjson"):
        what = f"the {era.upper()} model"
        return _document_facts(_parse_document(data, era, what), era, what)
    return _facts_of(read_model(data))


def split_quartiles(data: bytes) -> np.ndarray:
    """For each feature of a model file, three values its trees look at: the lower quartile, the median
    and the upper quartile of the thresholds of its numerical splits (XGBoost sends a value below the
    threshold to the left child, ``GetNextNode`` in src/predictor/predict_fn.h). 0 for a feature no
    numerical split uses (for a categorical feature: category code 0). Shape ``(3, num_feature)``,
    float32; built from the model alone, e.g. for a sample input."""
    model, _modern, _what = _read_unchecked(bytes(data))
    _check_model(model)
    out = np.zeros((3, max(model.num_feature, 0)), np.float32)
    forest = model.forest
    if model.booster == "gblinear" or forest.num_trees == 0:
        return out
    numerical = forest.column("left_children") != -1
    numerical &= forest.column("split_type") == 0
    numerical &= ~_deleted_nodes(forest)
    features = forest.column("split_indices")[numerical].astype(np.int64)
    thresholds = forest.column("split_conditions")[numerical]
    finite = np.isfinite(thresholds)
    features, thresholds = features[finite], thresholds[finite]
    order = np.lexsort((thresholds, features))
    features, thresholds = features[order], thresholds[order]
    used, first, counts = np.unique(features, return_index=True, return_counts=True)
    for row, quantile in enumerate((0.25, 0.5, 0.75)):
        out[row, used] = thresholds[first + ((counts - 1) * quantile).astype(np.int64)]
    return out


def _facts_of(model: LegacyModel) -> dict:
    return {
        "era": model.era,
        "version_hint": model.version_hint,
        "objective": model.objective_name,
        "base_score": model.base_score,
        "num_feature": model.num_feature,
        "num_class": model.num_class,
        "num_trees": model.num_trees,
        "booster": model.booster,
        "feature_names": model.feature_names,
    }


def _document_era(data: bytes) -> str | None:
    """'json' or 'ubjson' for an XGBoost model document (not a snapshot, not a pickle)."""
    if _is_pickle(data) or _snapshot_kind(data):
        return None
    kind = _document_kind(data)
    return "ubjson" if kind == "ubjson" else kind


def _document_facts(doc: Any, era: str, what: str) -> dict:
    """Facts of a JSON/UBJSON model document of any XGBoost version (without reading its trees)."""
    if not isinstance(doc, dict):
        raise CorruptArtifact(f"{what} is not a JSON object")
    learner = _get(doc, "learner", dict, what)
    params = _get(learner, "learner_model_param", dict, what)
    gb = _get(learner, "gradient_booster", dict, what)
    booster = _get(gb, "name", str, what)
    tree_param = _dig(gb, "gbtree", "model", "gbtree_model_param") if booster == "dart" else \
        _dig(gb, "model", "gbtree_model_param")
    scores = _base_scores(params.get("base_score"), what)
    version = doc.get("version")
    names = learner.get("feature_names")
    names = list(names) if isinstance(names, list) and names else None
    return {
        "era": era,
        "version_hint": ".".join(str(v) for v in version) if isinstance(version, list) else None,
        "objective": _get(_get(learner, "objective", dict, what), "name", str, what),
        "base_score": scores[0] if len(scores) == 1 else scores,
        "num_feature": _int_text(params.get("num_feature"), f"{what}: num_feature"),
        "num_class": _int_text(params.get("num_class", "0"), f"{what}: num_class"),
        "num_trees": _int_text((tree_param or {}).get("num_trees", "0"), f"{what}: num_trees"),
        "booster": booster,
        "feature_names": names,
    }


def _dig(obj: Any, *keys: str) -> dict | None:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj if isinstance(obj, dict) else None


# Objectives whose base_score is a probability (RegLossObj<LogisticRegression/LogisticRaw> in
# src/objective/regression_loss.h); XGBoost refuses base_score outside (0, 1) for them.
_PROBABILITY_BASE = {"binary:logistic", "reg:logistic", "binary:logitraw"}


def _check_learner(model: LegacyModel) -> None:
    """What current XGBoost validates lazily (on first use), checked before a file is written or loaded."""
    if not math.isfinite(model.base_score):
        raise CorruptArtifact(f"the model's base_score {model.base_score} is not a finite number")
    if model.objective_name in _PROBABILITY_BASE and not 0.0 < model.base_score < 1.0:
        raise CorruptArtifact(f"the model's base_score {model.base_score:g} is outside (0, 1), which the "
                              f"{model.objective_name} objective cannot have")


@dataclass
class Prepared:
    """What to give XGBoost's ``Booster.load_model`` for a model file (:func:`prepare`).

    ``payload``: the file itself when it is a JSON/UBJSON model document, else the converted UBJSON
    document. The checks XGBoost's reading relies on are done; ``finish()`` does the rest (what its
    use relies on) and raises CorruptArtifact when the model is damaged. It may run while XGBoost
    reads ``payload``; the Booster must not be used before it returned.
    """

    payload: bytes | bytearray
    facts: dict
    finish: Callable[[], None]


def prepare(data: bytes) -> Prepared:
    """Read and check a model file for XGBoost in two stages, see :class:`Prepared`."""
    data = bytes(data)
    era = _document_era(data)
    if era in ("json", "ubjson"):
        what = f"the {era.upper()} model"
        doc = _parse_document(data, era, what)
        model, _modern = _model_from_document(doc, era, what)  # XGBoost itself reads what is modern
        found = dict(_document_facts(doc, era, what), converted=False)
        payload: bytes | bytearray = data
    else:
        model, modern, what = _read_unchecked(data)
        _representable(model, modern, what)
        found = dict(_facts_of(model), converted=True)
    _check_reading(model)
    if era not in ("json", "ubjson"):
        payload = _ubj_dumps(_document(model))

    def finish() -> None:
        _check_use(model)
        _check_learner(model)

    return Prepared(payload, found, finish)


def checked_bytes(data: bytes) -> tuple[bytes | bytearray, dict]:
    """The bytes to give XGBoost's ``Booster.load_model`` for any model file, and its facts.

    A JSON/UBJSON model document is checked whole (its byte structure and every structure XGBoost
    trusts, see the module notes) and then given as it is -- XGBoost reads the same file this module
    checked. Every other era is read, checked and converted to a UBJSON document. The facts say
    which (``converted``).
    """
    prepared = prepare(data)
    prepared.finish()
    return prepared.payload, prepared.facts


def convert(data: bytes, fmt: str = "ubj") -> tuple[bytes, dict]:
    """Any XGBoost model file as a current model document: ``fmt`` ``"ubj"`` (UBJSON) or ``"json"``;
    returns the bytes and the model's facts. Documents only XGBoost 2.0+ can represent are refused."""
    if fmt not in ("ubj", "json"):
        raise NotLoadable(f"the output format must be ubj or json, not {fmt!r}")
    model = read_model(data)
    _check_learner(model)
    doc = _document(model)
    payload = bytes(_ubj_dumps(doc)) if fmt == "ubj" else \
        json.dumps(_plain(doc), separators=(",", ":")).encode("utf-8")
    return payload, _facts_of(model)
