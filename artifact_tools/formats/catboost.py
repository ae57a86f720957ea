"""CatBoost binary models (``.cbm``, ``CatBoost.save_model(format="cbm")``) read as data, with a small
bounds-checked FlatBuffers reader of the project's own (no ``flatbuffers`` package).

Facts used, with their sources (catboost/catboost):

- ``catboost/libs/model/model.cpp`` (``TFullModel::Save`` / ``TFullModel::Load``): the file is the 4-byte
  descriptor ``CBM1``, then the FlatBuffers core's size (``SaveSize`` of ``util/ysaveload.h``: a little-endian
  uint32, or ``0xFFFFFFFF`` followed by a uint64 for sizes that do not fit), the core itself, then one
  serialized *model part* per name in the core's ``ModelPartIds`` (static CTR tables, text and embedding
  processing), in that order. The loader refuses a core whose ``FormatVersion`` is not
  ``FlabuffersModel_v1`` (sic) and verifies the FlatBuffer with a depth limit of 64.
- ``catboost/libs/model/flatbuffers/model.fbs``: ``table TModelCore { FormatVersion:string;
  ModelTrees:TModelTrees; InfoMap:[TKeyValue]; ModelPartIds:[string]; }`` (field 1 was called
  ``ObliviousTrees`` before non-symmetric trees existed; same slot), ``table TKeyValue { Key:string;
  Value:string; }``, ``table TModelTrees { ApproxDimension:int; TreeSplits:[int]; TreeSizes:[int];
  TreeStartOffsets:[int]; CatFeatures:[TCatFeature]; FloatFeatures:[TFloatFeature];
  OneHotFeatures:[TOneHotFeature]; CtrFeatures:[TCtrFeature]; LeafValues:[double]; LeafWeights:[double];
  NonSymmetricStepNodes:[TNonSymmetricTreeStepNode]; NonSymmetricNodeIdToLeafId:[uint32];
  TextFeatures:[TTextFeature]; EstimatedFeatures:[TEstimatedFeature]; Scale:double = 1; Bias:double = 0;
  MultiBias:[double]; RepackedBins:[TRepackedBin]; EmbeddingFeatures:[TEmbeddingFeature]; }``.
- ``catboost/libs/model/flatbuffers/features.fbs``: ``TFloatFeature { HasNans:bool; Index:int = -1;
  FlatIndex:int = -1; Borders:[float]; FeatureId:string; NanValueTreatment:byte; }``, ``TCatFeature`` and
  ``TTextFeature { Index:int = -1; FlatIndex:int = -1; FeatureId:string; UsedInModel:bool = true; }``,
  ``TEmbeddingFeature { Index; FlatIndex; FeatureId; Dimension:int; UsedInModel; }``.
- ``model.cpp`` ``GetModelUsedFeaturesNames``: the features in ``FlatIndex`` order, a missing ``FeatureId``
  named by its flat index. For symmetric (oblivious) trees ``TreeSizes`` holds each tree's depth, its
  splits take ``TreeSizes[i]`` entries of ``TreeSplits`` and its leaves ``ApproxDimension * 2**depth`` entries
  of ``LeafValues``; non-symmetric trees (``grow_policy`` Depthwise/Lossguide) fill
  ``NonSymmetricStepNodes`` instead.
- ``InfoMap`` holds the metadata ``CatBoost.get_metadata()`` returns: ``params`` (training options JSON,
  with ``loss_function``), ``class_params`` (JSON: ``class_names``, ``class_label_type``...), ``model_guid``,
  ``train_finish_time``, ``catboost_version_info``, ``training``, ``output_options``.
- FlatBuffers binary format (google/flatbuffers ``docs/source/internals.md``): little-endian; the buffer
  starts with a uint32 offset to the root table; a table starts with an int32 ``soffset`` and its vtable
  sits at ``table - soffset``: uint16 vtable size, uint16 table size, then one uint16 offset per field
  (0 = absent, the default applies); a reference field holds a uint32 offset from the field's own position;
  a vector is a uint32 count then the elements (references again relative to each element's position);
  a string is a uint32 length, the bytes and a NUL.

Read reliably here: the format version, tree count and kind, depth of symmetric trees, every float /
categorical / text / embedding feature with its name and index, ``ApproxDimension`` (1, or the class count
of multiclass models), leaf count, scale and bias, the info map (loss function, class names, CatBoost
version) and the model part names. The CTR tables after the core are not decoded (only their presence is
checked): they are CatBoost's own serialization of hash maps, read by CatBoost when it loads the model.
Indexes CatBoost 1.2 follows unchecked (it segfaults) are checked: every ``TreeSplits`` entry names an
existing binary feature, and a non-symmetric tree's steps stay in the tree and end at existing leaves.
"""

from __future__ import annotations

import json
import re
import struct
from typing import TYPE_CHECKING, Any

from ..errors import CorruptArtifact, NotAnArtifact

if TYPE_CHECKING:  # numpy is imported where trees are read: sniffing a file needs none of it
    import numpy as np

MAGIC = b"CBM1"
CORE_FORMAT = "FlabuffersModel_v1"
MAX_TABLES = 1_000_000
"""At most this many tables are read from one core (CatBoost's own verifier allows 256,000,000; the
features of a model are far fewer)."""

_MAX_STRINGS = 10_000
_MAX_DEPTH = 32  # CatBoost's own limit for symmetric trees is 16 (``depth`` option)
_INFO_SHOWN = ("model_guid", "train_finish_time")
_CLASSIFICATION_LOSSES = {"Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll", "MultiLogloss",
                          "MultiCrossEntropy"}
_RANKING_LOSSES = {"YetiRank", "YetiRankPairwise", "PairLogit", "PairLogitPairwise", "QueryRMSE", "QuerySoftMax",
                   "QueryCrossEntropy", "StochasticFilter", "StochasticRank", "LambdaMart"}


def is_catboost(head: bytes) -> bool:
    """Whether bytes start a CatBoost binary model: ``CBM1`` then a non-zero core size."""
    return len(head) >= 8 and head[:4] == MAGIC and struct.unpack_from("<I", head, 4)[0] > 0


def model_kind(loss_function: str | None) -> str:
    """``"classifier"``, ``"ranker"`` or ``"regressor"`` for a CatBoost loss function name (CatBoost's
    ``_catboost.pyx`` ``is_classification_objective`` / ranking objectives; anything else is a regressor)."""
    if loss_function in _CLASSIFICATION_LOSSES:
        return "classifier"
    if loss_function in _RANKING_LOSSES:
        return "ranker"
    return "regressor"


class _FlatBuffer:
    """Bounds-checked reads from one FlatBuffers buffer; every failure is a CorruptArtifact."""

    def __init__(self, buf: memoryview, what: str):
        self.buf = buf
        self.n = len(buf)
        self.what = what
        self.tables = 0

    def _bad(self, why: str) -> CorruptArtifact:
        return CorruptArtifact(f"{self.what} is damaged: {why}")

    def _u(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise self._bad(f"a read at byte {pos} runs past its {self.n} bytes")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def table(self, pos: int) -> tuple[int, list[int]]:
        """``(table position, field offsets)`` of the table at ``pos``."""
        self.tables += 1
        if self.tables > MAX_TABLES:
            raise self._bad(f"it holds more than {MAX_TABLES} tables")
        vtable = pos - self._u("<i", pos)
        vsize = self._u("<H", vtable)
        tsize = self._u("<H", vtable + 2)
        if vsize < 4 or vsize % 2 or vtable + vsize > self.n or pos + tsize > self.n:
            raise self._bad(f"the table at byte {pos} has an impossible vtable")
        offsets = [self._u("<H", vtable + 4 + 2 * k) for k in range((vsize - 4) // 2)]
        if any(o and (o < 4 or o >= max(tsize, 4)) for o in offsets):
            raise self._bad(f"the table at byte {pos} has a field outside its {tsize} bytes")
        return pos, offsets

    def _field(self, table: tuple[int, list[int]], index: int) -> int | None:
        pos, offsets = table
        return pos + offsets[index] if index < len(offsets) and offsets[index] else None

    def scalar(self, table, index: int, fmt: str, default):
        at = self._field(table, index)
        return default if at is None else self._u(fmt, at)

    def ref(self, table, index: int) -> int | None:
        at = self._field(table, index)
        return None if at is None else self._target(at)

    def _target(self, at: int) -> int:
        target = at + self._u("<I", at)
        if target >= self.n:
            raise self._bad(f"the reference at byte {at} points past the end")
        return target

    def string(self, pos: int | None) -> str | None:
        if pos is None:
            return None
        length = self._u("<I", pos)
        if pos + 4 + length > self.n:
            raise self._bad(f"the string at byte {pos} runs past the end")
        try:
            return str(self.buf[pos + 4:pos + 4 + length], "utf-8")
        except UnicodeDecodeError:
            raise self._bad(f"the string at byte {pos} is not UTF-8") from None

    def vector(self, pos: int | None, elem: int) -> tuple[int, int]:
        """``(count, first element position)`` of a vector whose elements take ``elem`` bytes each."""
        if pos is None:
            return 0, 0
        count = self._u("<I", pos)
        if pos + 4 + count * elem > self.n:
            raise self._bad(f"the vector at byte {pos} ({count} elements) runs past the end")
        return count, pos + 4

    def int32s(self, pos: int | None) -> np.ndarray:
        """A vector of little-endian int32 as a numpy array over the buffer (no per-element objects)."""
        import numpy as np

        count, start = self.vector(pos, 4)
        return np.frombuffer(self.buf, dtype="<i4", count=count, offset=start) if count else np.zeros(0, "<i4")

    def tables_of(self, pos: int | None) -> list[tuple[int, list[int]]]:
        count, start = self.vector(pos, 4)
        return [self.table(self._target(start + 4 * k)) for k in range(count)]

    def strings_of(self, pos: int | None) -> list[str]:
        count, start = self.vector(pos, 4)
        if count > _MAX_STRINGS:
            raise self._bad(f"a list of {count} strings is far longer than any model writes")
        return [self.string(self._target(start + 4 * k)) or "" for k in range(count)]


def summarize(data: bytes) -> dict:
    """Describe a CatBoost ``.cbm`` model.

    Returns ``{"format_version", "core_size", "trees", "symmetric_trees", "max_depth", "approx_dimension",
    "leaf_count", "scale", "bias", "feature_count", "feature_names", "float_features": [{"name", "index",
    "flat_index", "borders", "has_nans"}], "cat_features": [{"name", "index", "flat_index", "used"}],
    "text_features": [...], "embedding_features": [...], "cat_feature_indices": [flat index],
    "one_hot_features", "ctr_features", "loss_function", "model_kind", "class_names", "class_params",
    "catboost_version", "info_keys": [...], "model_guid", "train_finish_time", "model_parts": [...],
    "trailing_bytes"}``. ``max_depth`` is None for non-symmetric trees.
    """
    if not data:
        raise NotAnArtifact("the CatBoost model file is empty")
    buf = memoryview(data)
    if bytes(buf[:4]) != MAGIC:
        raise CorruptArtifact("the CatBoost model does not start with its descriptor CBM1")
    if len(buf) < 8:
        raise CorruptArtifact("the CatBoost model is truncated after its descriptor")
    size = struct.unpack_from("<I", buf, 4)[0]
    start = 8
    if size == 0xFFFFFFFF:
        if len(buf) < 16:
            raise CorruptArtifact("the CatBoost model is truncated inside its core size")
        size = struct.unpack_from("<Q", buf, 8)[0]
        start = 16
    if size < 8 or start + size > len(buf):
        raise CorruptArtifact(f"the CatBoost model is truncated: its core needs {size} bytes, "
                              f"{max(len(buf) - start, 0)} remain")
    fb = _FlatBuffer(buf[start:start + size], "the CatBoost model core")
    core = fb.table(fb._target(0))
    version = fb.string(fb.ref(core, 0))
    if version != CORE_FORMAT:
        raise CorruptArtifact(f"the CatBoost model core has format {version!r}, not {CORE_FORMAT!r}")
    info = {}
    for kv in fb.tables_of(fb.ref(core, 2)):
        key = fb.string(fb.ref(kv, 0))
        if key is None:
            raise CorruptArtifact("the CatBoost model's info map has an entry without a key")
        info[key] = fb.string(fb.ref(kv, 1)) or ""
    parts = [p.rstrip("\x00") for p in fb.strings_of(fb.ref(core, 3))]  # CatBoost counts a NUL in some ids
    trailing = len(buf) - start - size
    if parts and trailing == 0:
        raise CorruptArtifact(f"the CatBoost model is truncated: its model parts ({', '.join(parts)}) are missing")

    trees_ref = fb.ref(core, 1)
    out: dict[str, Any] = {"format_version": version, "core_size": size}
    out.update(_trees(fb, fb.table(trees_ref)) if trees_ref is not None else _trees(fb, None))

    params = _json(info.get("params"), "params")
    loss = params.get("loss_function", {}).get("type") if isinstance(params.get("loss_function"), dict) else None
    if loss is None and "loss_function" in info:
        loss = _json(info["loss_function"], "loss_function").get("type")
    class_params = _json(info.get("class_params") or info.get("multiclass_params"), "class_params")
    version_info = info.get("catboost_version_info", "")
    match = re.search(r"tags/v(\d+(?:\.\d+)+)", version_info)
    out.update({
        "loss_function": loss,
        "model_kind": model_kind(loss),
        "class_names": class_params.get("class_names") or None,
        "class_params": class_params or None,
        "catboost_version": match.group(1) if match else None,
        "info_keys": sorted(info),
        **{k: info.get(k) for k in _INFO_SHOWN},
        "model_parts": parts,
        "trailing_bytes": trailing,
    })
    return out


def _json(text: str | None, key: str) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise CorruptArtifact(f"the CatBoost model's info entry {key} is not valid JSON") from None
    return value if isinstance(value, dict) else {}


def _trees(fb: _FlatBuffer, t) -> dict:
    import numpy as np

    if t is None:
        sizes, splits, leaves, steps, dim, scale, bias = np.zeros(0, "<i4"), 0, 0, 0, 0, 1.0, 0.0
        floats = cats = texts = embeddings = []
        one_hot = ctrs = 0
    else:
        dim = fb.scalar(t, 0, "<i", 0)
        splits = fb.vector(fb.ref(t, 1), 4)[0]
        sizes = fb.int32s(fb.ref(t, 2))
        cats = [_feature(fb, x, 0, 1, 2) | {"used": bool(fb.scalar(x, 3, "<B", 1))} for x in fb.tables_of(fb.ref(t, 4))]
        floats = [_feature(fb, x, 1, 2, 4) | {"borders": fb.vector(fb.ref(x, 3), 4)[0],
                                            "has_nans": bool(fb.scalar(x, 0, "<B", 0))}
                  for x in fb.tables_of(fb.ref(t, 5))]
        one_hot_tables = fb.tables_of(fb.ref(t, 6))
        ctr_tables = fb.tables_of(fb.ref(t, 7))
        one_hot, ctrs = len(one_hot_tables), len(ctr_tables)
        leaves = fb.vector(fb.ref(t, 8), 8)[0]
        steps = fb.vector(fb.ref(t, 10), 4)[0]
        # TreeSplits index the model's binary features: float borders, one-hot values, CTR and estimated
        # feature borders, in that order (``TModelTrees`` in ``model_trees.cpp``).
        bin_features = (sum(f["borders"] for f in floats)
                        + sum(fb.vector(fb.ref(x, 1), 4)[0] for x in one_hot_tables)
                        + sum(fb.vector(fb.ref(x, 1), 4)[0] for x in ctr_tables)
                        + sum(fb.vector(fb.ref(x, 3), 4)[0] for x in fb.tables_of(fb.ref(t, 13))))
        _check_splits(fb.int32s(fb.ref(t, 1)), bin_features)
        if steps:
            _check_non_symmetric(fb, t, steps, leaves // max(dim, 1))
        texts = [_feature(fb, x, 0, 1, 2) | {"used": bool(fb.scalar(x, 3, "<B", 1))}
                 for x in fb.tables_of(fb.ref(t, 12))]
        scale = fb.scalar(t, 14, "<d", 1.0)
        bias = fb.scalar(t, 15, "<d", 0.0)
        embeddings = [_feature(fb, x, 0, 1, 2) | {"dimension": fb.scalar(x, 3, "<i", 0),
                                                  "used": bool(fb.scalar(x, 4, "<B", 1))}
                      for x in fb.tables_of(fb.ref(t, 18))]
    symmetric = steps == 0
    if len(sizes) and int(sizes.min()) < 0:
        raise CorruptArtifact("the CatBoost model has a tree of negative size")
    if symmetric and len(sizes):
        if int(sizes.max()) > _MAX_DEPTH:
            raise CorruptArtifact(f"the CatBoost model has a symmetric tree of depth {int(sizes.max())}")
        needed = int(sizes.sum(dtype=np.int64))
        if needed != splits:
            raise CorruptArtifact(f"the CatBoost model's trees need {needed} splits but {splits} are stored")
        expected = max(dim, 1) * int(np.left_shift(np.int64(1), sizes.astype(np.int64)).sum())
        if leaves != expected:
            raise CorruptArtifact(f"the CatBoost model's trees need {expected} leaf values but {leaves} are stored")
    features = sorted([*floats, *cats, *texts, *embeddings], key=lambda f: f["flat_index"])
    return {
        "trees": len(sizes),
        "symmetric_trees": symmetric,
        "max_depth": (int(sizes.max()) if len(sizes) else 0) if symmetric else None,
        "approx_dimension": dim,
        "leaf_count": leaves,
        "scale": scale,
        "bias": bias,
        "feature_count": len(features),
        "feature_names": [f["name"] for f in features],
        "float_features": floats,
        "cat_features": cats,
        "text_features": texts,
        "embedding_features": embeddings,
        "cat_feature_indices": sorted(f["flat_index"] for f in cats),
        "one_hot_features": one_hot,
        "ctr_features": ctrs,
    }


def _check_splits(splits: np.ndarray, bin_features: int) -> None:
    """Every ``TreeSplits`` entry must name one of the model's binary features: CatBoost 1.2 indexes its
    feature arrays with them unchecked and segfaults on one out of range."""
    if len(splits) and (int(splits.min()) < 0 or int(splits.max()) >= bin_features):
        bad = int(splits.min()) if int(splits.min()) < 0 else int(splits.max())
        raise CorruptArtifact(f"the CatBoost model has a tree split on binary feature {bad}, but the model has "
                              f"{bin_features} binary features")


def _check_non_symmetric(fb: _FlatBuffer, t, steps: int, leaf_count: int) -> None:
    """Non-symmetric trees (``model.fbs``, ``TNonSymmetricTreeStepNode`` and ``model_trees.cpp``): tree ``i``
    is nodes ``TreeStartOffsets[i] ..`` ``+ TreeSizes[i]``; a node's ``LeftSubtreeDiff`` / ``RightSubtreeDiff``
    (uint16) step forward to a child, 0 meaning the walk ends there, and where it ends
    ``NonSymmetricNodeIdToLeafId[node]`` names the leaf (its values at ``leaf * ApproxDimension`` of
    ``LeafValues``). CatBoost 1.2 follows both unchecked at predict time, so each step must stay in its tree and
    each node a walk can end at must name an existing leaf."""
    import numpy as np

    sizes = fb.int32s(fb.ref(t, 2)).astype(np.int64)
    starts = fb.int32s(fb.ref(t, 3)).astype(np.int64)
    count, first = fb.vector(fb.ref(t, 10), 4)
    nodes = np.frombuffer(fb.buf, dtype="<u2", count=2 * count, offset=first).reshape(-1, 2).astype(np.int64)
    n_ids, id_first = fb.vector(fb.ref(t, 11), 4)
    ids = np.frombuffer(fb.buf, dtype="<u4", count=n_ids, offset=id_first) if n_ids else np.zeros(0, "<u4")
    expected_starts = np.concatenate(([0], np.cumsum(sizes)[:-1])) if len(sizes) else sizes
    if (len(starts) != len(sizes) or not np.array_equal(starts, expected_starts) or int(sizes.sum()) != steps
            or n_ids != steps):
        raise CorruptArtifact(f"the CatBoost model's non-symmetric trees do not add up: {len(sizes)} tree sizes "
                              f"summing to {int(sizes.sum())}, {len(starts)} start offsets, {steps} step nodes, "
                              f"{n_ids} leaf ids")
    tree_end = np.repeat(starts + sizes, sizes)
    index = np.arange(steps, dtype=np.int64)
    if np.any(index + nodes.max(axis=1, initial=0) >= tree_end):
        raise CorruptArtifact("the CatBoost model has a non-symmetric tree node stepping outside its tree")
    ends = (nodes == 0).any(axis=1)
    if np.any(ids[ends] >= leaf_count):
        raise CorruptArtifact(f"the CatBoost model has a non-symmetric tree ending at a leaf beyond its "
                              f"{leaf_count} leaves")


def _feature(fb: _FlatBuffer, table, index_field: int, flat_field: int, id_field: int) -> dict:
    flat = fb.scalar(table, flat_field, "<i", -1)
    name = fb.string(fb.ref(table, id_field))
    return {"name": name or str(flat), "index": fb.scalar(table, index_field, "<i", -1), "flat_index": flat}
