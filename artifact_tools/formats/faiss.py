"""FAISS index files (``faiss.write_index``), read natively: the header of every float index, flat vectors.

Facts from facebookresearch/faiss ``faiss/impl/index_read.cpp`` (``read_index_up``, ``read_index_header``,
``read_ivf_header``, ``read_xb_vector``) and ``faiss/impl/io_macros.h``, all little-endian:

- a ``uint32`` fourcc naming the index class: ``IxFI`` IndexFlatIP, ``IxF2`` IndexFlatL2, ``IxFl`` IndexFlat,
  ``IwFl`` IndexIVFFlat, ``IwPQ`` IndexIVFPQ, ``IHNf`` IndexHNSWFlat, ``IxMp`` IndexIDMap... (binary indexes
  start with ``IB`` and have another header);
- ``read_index_header``: ``int32 d``, ``int64 ntotal``, two ``int64`` dummies (written as ``1 << 20``),
  ``uint8 is_trained`` (0 or 1), ``int32 metric_type`` (``faiss/MetricType.h``: 0 inner product, 1 L2, 2 L1,
  3 Linf, 4 Lp, 20 Canberra, 21 BrayCurtis, 22 JensenShannon, 23 Jaccard, 24 NaNEuclidean, 25 Gower) and, when
  ``metric_type > 1``, ``float metric_arg``;
- IVF indexes continue with ``uint64 nlist``, ``uint64 nprobe`` and the coarse quantizer (a nested index);
- flat indexes continue with the vectors: ``uint64 n`` (the float count, ``ntotal * d``) then ``n`` float32.

SageMaker's k-NN built-in writes ``model_algo-1`` as one of these (``IxF2``/``IxFI`` for ``index_type=faiss.Flat``,
``IwFl`` for IVFFlat, ``IwPQ`` for IVFPQ).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import CorruptArtifact

if TYPE_CHECKING:  # numpy is imported by read_flat_vectors only: summaries need none of it
    import numpy as np

INDEX_TYPES = {
    "IxFI": "IndexFlatIP",
    "IxF2": "IndexFlatL2",
    "IxFl": "IndexFlat",
    "IxPQ": "IndexPQ",
    "IxSQ": "IndexScalarQuantizer",
    "IxHE": "IndexLSH",
    "IxHe": "IndexLSH",
    "IwFl": "IndexIVFFlat",
    "IvFl": "IndexIVFFlat",
    "IwFd": "IndexIVFFlatDedup",
    "IwPQ": "IndexIVFPQ",
    "IvPQ": "IndexIVFPQ",
    "IwQR": "IndexIVFPQR",
    "IwSQ": "IndexIVFScalarQuantizer",
    "IwSq": "IndexIVFScalarQuantizer",
    "IHNf": "IndexHNSWFlat",
    "IHNp": "IndexHNSWPQ",
    "IHNs": "IndexHNSWSQ",
    "IxMp": "IndexIDMap",
    "IxM2": "IndexIDMap2",
    "IxPT": "IndexPreTransform",
    "IxRF": "IndexRefineFlat",
}
_FLAT = {"IxFI", "IxF2", "IxFl"}
_IVF = {"IwFl", "IvFl", "IwFd", "IwPQ", "IvPQ", "IwQR", "IwSQ", "IwSq"}
METRICS = {
    0: "INNER_PRODUCT",
    1: "L2",
    2: "L1",
    3: "Linf",
    4: "Lp",
    20: "Canberra",
    21: "BrayCurtis",
    22: "JensenShannon",
    23: "Jaccard",
    24: "NaNEuclidean",
    25: "Gower",
}
_HEADER = struct.Struct("<4siqqqBi")  # fourcc, d, ntotal, dummy, dummy, is_trained, metric_type
_MAX_D = (1 << 20) + 1  # FAISS_CHECK_RANGE(idx.d, 0, (1 << 20) + 1) in read_index_header


def is_index(head: bytes) -> bool:
    """True when ``head`` starts with the fourcc of a FAISS float index this module knows."""
    return head[:4].decode("latin-1") in INDEX_TYPES


def read_header(data: bytes) -> dict:
    """The index header: fourcc, index_type, d, ntotal, is_trained, metric_type (+ metric_arg, nlist, nprobe)."""
    if not is_index(data[:4]):
        raise CorruptArtifact(f"not a FAISS index this reader knows (starts with {bytes(data[:4])!r})")
    if len(data) < _HEADER.size:
        raise CorruptArtifact(f"FAISS index is truncated: {len(data)} bytes, the header needs {_HEADER.size}")
    fourcc, d, ntotal, _, _, is_trained, metric = _HEADER.unpack_from(data)
    fourcc = fourcc.decode("latin-1")
    if not 0 <= d < _MAX_D or ntotal < 0 or is_trained > 1 or metric not in METRICS:
        raise CorruptArtifact(
            f"FAISS index header is corrupt (d={d}, ntotal={ntotal}, is_trained={is_trained}, metric={metric})"
        )
    out = {
        "fourcc": fourcc,
        "index_type": INDEX_TYPES[fourcc],
        "d": d,
        "ntotal": ntotal,
        "is_trained": bool(is_trained),
        "metric_type": METRICS[metric],
    }
    pos = _HEADER.size
    if metric > 1:
        if len(data) < pos + 4:
            raise CorruptArtifact("FAISS index is truncated inside its metric argument")
        out["metric_arg"] = struct.unpack_from("<f", data, pos)[0]
        pos += 4
    if fourcc in _IVF:
        if len(data) < pos + 16:
            raise CorruptArtifact("FAISS index is truncated inside its IVF header")
        out["nlist"], out["nprobe"] = struct.unpack_from("<QQ", data, pos)
        pos += 16
    out["header_bytes"] = pos
    return out


def read_flat_vectors(data: bytes) -> np.ndarray:
    """The stored vectors of a flat index (``IxF2``/``IxFI``/``IxFl``) as a float32 array of shape (ntotal, d)."""
    header = read_header(data)
    if header["fourcc"] not in _FLAT:
        raise CorruptArtifact(f"FAISS {header['index_type']} does not store raw vectors; only flat indexes do")
    pos = header["header_bytes"]
    if len(data) < pos + 8:
        raise CorruptArtifact("FAISS index is truncated before its vector count")
    (count,) = struct.unpack_from("<Q", data, pos)
    n, d = header["ntotal"], header["d"]
    if count != n * d:
        raise CorruptArtifact(f"FAISS flat index is corrupt: {count} floats stored for {n} vectors of dimension {d}")
    if len(data) < pos + 8 + 4 * count:
        raise CorruptArtifact(f"FAISS flat index is truncated: {n} x {d} float32 vectors do not fit in the file")
    import numpy as np

    return np.frombuffer(data, dtype="<f4", count=count, offset=pos + 8).reshape(n, d).copy()
