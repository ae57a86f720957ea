"""numpy ``.npy`` files read as data: the header checked before anything is allocated.

Format (numpy ``numpy/lib/format.py``): magic ``\\x93NUMPY``, major/minor version bytes, a little-endian header
length (uint16 in 1.0, uint32 in 2.0/3.0), then a Python-literal dict ``{'descr': ..., 'fortran_order': ...,
'shape': ...}`` padded with spaces and a newline; the raw array data follows. numpy parses the dict with
``ast.literal_eval``, which raises SyntaxError, tokenize.TokenError, ValueError or MemoryError on damage; all of
them become one CorruptArtifact here. Object arrays (pickled data) are refused.
"""

from __future__ import annotations

import io
import math
import tokenize
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import CorruptArtifact

if TYPE_CHECKING:  # numpy is imported by the readers, so that importing this module costs nothing
    import numpy as np

MAX_HEADER = 10_000


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    data_offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_header(data: bytes, label: str = "the .npy data") -> NpyHeader:
    """Parse and check the header; CorruptArtifact when damaged, when it holds objects, or when the data length
    does not match the header."""
    import numpy.lib.format as fmt

    f = io.BytesIO(data)
    try:
        major, minor = fmt.read_magic(f)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(  # type: ignore[call-arg]  # not in numpy's stubs
                f, max_header_size=MAX_HEADER)  # (a parameter since numpy 1.24)
        elif (major, minor) in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(  # type: ignore[call-arg]  # not in numpy's stubs
                f, max_header_size=MAX_HEADER)  # (a parameter since numpy 1.24)
        else:
            raise ValueError(f"version {major}.{minor} is not supported")
    except (ValueError, TypeError, SyntaxError, tokenize.TokenError, EOFError, MemoryError, RecursionError) as e:
        detail = " ".join(str(e).split())[:120] or type(e).__name__
        raise CorruptArtifact(f"{label} is not a readable .npy array ({detail})") from None
    if dtype.hasobject:
        raise CorruptArtifact(f"{label} holds Python objects (a pickle), which are refused")
    header = NpyHeader(tuple(shape), bool(fortran), dtype, f.tell())
    have = len(data) - header.data_offset
    if header.nbytes != have:
        raise CorruptArtifact(f"{label}: the header announces {header.nbytes} bytes of data but {have} follow it")
    return header


def load(data: bytes, label: str = "the .npy data") -> np.ndarray:
    """The array, read only after its header was checked."""
    import numpy as np

    h = read_header(data, label)
    try:
        arr = np.frombuffer(data, dtype=h.dtype, count=math.prod(h.shape), offset=h.data_offset)
    except ValueError as e:  # zero-sized item types and the like
        raise CorruptArtifact(f"{label} cannot be read ({e})") from None
    return arr.reshape(h.shape, order="F" if h.fortran_order else "C").copy()
