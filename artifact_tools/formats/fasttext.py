"""fastText models (``.bin``, also SageMaker BlazingText's ``vectors.bin``/``model.bin``) and word-vector text files.

Binary layout, little-endian, from facebookresearch/fastText ``src/fasttext.cc`` (``signModel``, ``checkModel``,
``loadModel``), ``src/args.cc`` (``Args::save``), ``src/dictionary.cc`` (``Dictionary::save``) and
``src/densematrix.cc`` / ``src/quantmatrix.cc`` (``save``/``load``):

- ``int32 magic = 793712314``, ``int32 version`` (fastText reads up to 12; 11 is the previous release);
- Args: ``int32`` dim, ws, epoch, minCount, neg, wordNgrams, loss (1 hs, 2 ns, 3 softmax, 4 ova), model
  (1 cbow, 2 skipgram, 3 supervised; BlazingText also writes other codes), bucket, minn, maxn, lrUpdateRate,
  then ``float64 t``;
- Dictionary: ``int32 size``, ``int32 nwords``, ``int32 nlabels``, ``int64 ntokens``, ``int64 pruneidx_size``
  (-1 when not pruned), then ``size`` entries of (NUL-terminated word, ``int64 count``, ``int8 type`` 0 word /
  1 label), then ``pruneidx_size`` pairs of ``int32``;
- ``uint8 quant_input``; the input matrix: dense = ``int64 m``, ``int64 n`` then ``m * n`` float32;
  quantized = ``uint8 qnorm``, ``int64 m``, ``int64 n``, ``int32 codesize``, codes, product quantizer...;
- ``uint8 qout`` and the output matrix, in the same forms.

The input matrix holds ``nwords + bucket`` rows; a word's vector (``FastText::getWordVector``) is the mean of its
own row and the rows of its character n-grams (``Dictionary::computeSubwords``: the n-grams of ``"<" + word + ">"``
of ``minn..maxn`` whole UTF-8 characters, each hashed with 32-bit FNV-1a over *signed* chars
(``Dictionary::hash``) into row ``nwords + hash % bucket``), i.e. exactly its own row when ``maxn == 0``.

Text vectors (``FastText::saveVectors``, BlazingText ``vectors.txt``): a first line ``"<count> <dim>"``, then one
line per word: the word and ``dim`` numbers separated by spaces.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..errors import CorruptArtifact, NotLoadable

if TYPE_CHECKING:  # numpy is imported by the vector readers only: summaries need none of it
    import numpy as np

MAGIC = 793712314
MAX_VERSION = 12
_MODELS = {1: "cbow", 2: "skipgram", 3: "supervised"}
_LOSSES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
_ARGS = struct.Struct("<12id")
_ARG_NAMES = (
    "dim",
    "ws",
    "epoch",
    "minCount",
    "neg",
    "wordNgrams",
    "loss",
    "model",
    "bucket",
    "minn",
    "maxn",
    "lrUpdateRate",
    "t",
)
_DICT = struct.Struct("<iiiqq")
_ENTRY_TAIL = struct.Struct("<qb")
_MAX_WORD = 1 << 16  # no real word is this long; a missing NUL within it is corruption
_SAMPLE = 10
_MAX_LABELS = 1000
_KSUB = 256  # ProductQuantizer: nbits 8, ksub = 1 << nbits centroids per sub-quantizer


def is_model(head: bytes) -> bool:
    """True when ``head`` starts with the fastText magic number and a version fastText reads."""
    if len(head) < 8:
        return False
    magic, version = struct.unpack_from("<ii", head)
    return magic == MAGIC and 0 < version <= MAX_VERSION


def _matrix(data: bytes, pos: int, quantized: bool, what: str) -> tuple[int, int, int, int]:
    """Locate a matrix: ``(rows, cols, data offset, end offset)``; data offset is -1 for a quantized one."""

    def need(n: int) -> None:
        if n < 0 or pos + n > len(data):
            raise CorruptArtifact(f"fastText model is truncated inside its {what} matrix")

    if not quantized:
        need(16)
        rows, cols = struct.unpack_from("<qq", data, pos)
        if rows < 0 or cols < 0:
            raise CorruptArtifact(f"fastText model is corrupt: its {what} matrix is {rows} x {cols}")
        need(16 + rows * cols * 4)
        return rows, cols, pos + 16, pos + 16 + rows * cols * 4
    need(21)
    qnorm, rows, cols, codesize = struct.unpack_from("<Bqqi", data, pos)
    if rows < 0 or cols < 0 or codesize < 0 or qnorm > 1:
        raise CorruptArtifact(f"fastText model is corrupt: its quantized {what} matrix header is damaged")
    end = _skip_quantizer(data, pos + 21 + codesize, what)
    if qnorm:  # norm codes (one byte per row), then the norms' own quantizer
        end = _skip_quantizer(data, end + rows, what)
    return rows, cols, -1, end


def _skip_quantizer(data: bytes, pos: int, what: str) -> int:
    """Skip a ``ProductQuantizer``: ``int32`` dim, nsubq, dsub, lastdsub, then ``dim * 256`` float32 centroids."""
    if pos + 16 > len(data):
        raise CorruptArtifact(f"fastText model is truncated inside its {what} matrix quantizer")
    dim = struct.unpack_from("<i", data, pos)[0]
    end = pos + 16 + dim * _KSUB * 4
    if dim < 0 or end > len(data):
        raise CorruptArtifact(f"fastText model is truncated or corrupt inside its {what} matrix quantizer")
    return end


def _parse(data: bytes) -> tuple[dict, list[bytes], int]:
    if len(data) < 8 or struct.unpack_from("<i", data)[0] != MAGIC:
        raise CorruptArtifact("not a fastText model: the magic number 793712314 is missing")
    version = struct.unpack_from("<i", data, 4)[0]
    if not 0 < version <= MAX_VERSION:
        raise CorruptArtifact(f"fastText model has version {version}; fastText reads versions up to {MAX_VERSION}")
    pos = 8
    if len(data) < pos + _ARGS.size + _DICT.size:
        raise CorruptArtifact("fastText model is truncated inside its arguments")
    args = dict(zip(_ARG_NAMES, _ARGS.unpack_from(data, pos)))
    pos += _ARGS.size
    size, nwords, nlabels, ntokens, prune_size = _DICT.unpack_from(data, pos)
    pos += _DICT.size
    if not (0 <= nwords and 0 <= nlabels and size == nwords + nlabels and args["dim"] > 0 and args["bucket"] >= 0):
        raise CorruptArtifact(
            f"fastText model is corrupt: dictionary of {size} entries ({nwords} words, {nlabels} labels), "
            f"dim {args['dim']}, bucket {args['bucket']}"
        )
    if size > (len(data) - pos) // (_ENTRY_TAIL.size + 1):
        raise CorruptArtifact(f"fastText model is truncated: {size} dictionary entries do not fit in the file")
    words: list[bytes] = []
    labels: list[bytes] = []
    for i in range(size):
        end = data.find(b"\0", pos, pos + _MAX_WORD)
        if end < 0 or end + 1 + _ENTRY_TAIL.size > len(data):
            raise CorruptArtifact(f"fastText model is truncated or corrupt at dictionary entry {i}")
        _, kind = _ENTRY_TAIL.unpack_from(data, end + 1)
        if kind not in (0, 1):
            raise CorruptArtifact(f"fastText model is corrupt: dictionary entry {i} has type {kind}")
        (words if kind == 0 else labels).append(bytes(data[pos:end]))
        pos = end + 1 + _ENTRY_TAIL.size
    if len(words) != nwords:
        raise CorruptArtifact(f"fastText model is corrupt: {len(words)} words where the dictionary says {nwords}")
    if prune_size > 0:
        if prune_size > (len(data) - pos) // 8:
            raise CorruptArtifact("fastText model is truncated inside its pruned-index table")
        pos += 8 * prune_size
    if len(data) < pos + 1:
        raise CorruptArtifact("fastText model is truncated before its input matrix")
    quantized = data[pos] != 0
    rows, cols, input_pos, pos = _matrix(data, pos + 1, quantized, "input")
    if cols != args["dim"]:
        raise CorruptArtifact(f"fastText model is corrupt: input matrix {rows} x {cols} for dim {args['dim']}")
    if len(data) < pos + 1:
        raise CorruptArtifact("fastText model is truncated before its output matrix")
    qout = data[pos] != 0
    out_rows, out_cols, _, _ = _matrix(data, pos + 1, quantized and qout, "output")
    header = {
        "version": version,
        "model": _MODELS.get(args["model"]),
        "model_code": args["model"],
        "loss": _LOSSES.get(args["loss"]),
        "dim": args["dim"],
        "args": args,
        "vocab_size": nwords,
        "nlabels": nlabels,
        "ntokens": ntokens,
        "pruned": prune_size >= 0,
        "quantized": quantized,
        "input_matrix": {"rows": rows, "cols": cols},
        "output_matrix": {"rows": out_rows, "cols": out_cols},
        "words_sample": [w.decode("utf-8", errors="replace") for w in words[:_SAMPLE]],
        "labels": [w.decode("utf-8", errors="replace") for w in labels[:_MAX_LABELS]],
    }
    return header, words, input_pos


def read_header(data: bytes) -> dict:
    """Version, arguments, model kind, loss, dim, vocabulary size, labels, quantization and matrix shapes."""
    return _parse(data)[0]


def _fnv1a(ngram: bytes) -> int:
    h = 2166136261
    for c in ngram:
        h = ((h ^ (c if c < 0x80 else c | 0xFFFFFF00)) * 16777619) & 0xFFFFFFFF  # bytes are signed chars
    return h


def _subword_rows(word: bytes, minn: int, maxn: int, bucket: int, nwords: int) -> list[int]:
    """Rows of a word's character n-grams (``Dictionary::computeSubwords``), whole UTF-8 characters at a time."""
    w = b"<" + word + b">"
    rows = []
    for i in range(len(w)):
        if w[i] & 0xC0 == 0x80:
            continue
        j, n = i, 1
        while j < len(w) and n <= maxn:
            j += 1
            while j < len(w) and w[j] & 0xC0 == 0x80:
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == len(w))):
                rows.append(nwords + _fnv1a(w[i:j]) % bucket)
            n += 1
    return rows


def word_vectors(data: bytes) -> tuple[list[str], np.ndarray]:
    """The vocabulary words and their vectors (nwords x dim float32), as ``FastText::getWordVector`` makes them."""
    import numpy as np

    header, words, pos = _parse(data)
    if header["quantized"]:
        raise NotLoadable("this fastText model is quantized (.ftz); its word vectors cannot be read without fastText")
    args, n, dim = header["args"], len(words), header["dim"]
    rows = header["input_matrix"]["rows"]
    matrix = np.frombuffer(data, dtype="<f4", count=rows * dim, offset=pos).reshape(rows, dim)
    if n > rows:
        raise CorruptArtifact(f"fastText model is corrupt: {n} words but only {rows} input rows")
    vectors = matrix[:n].copy()
    if args["maxn"] > 0 and args["bucket"] > 0 and header["pruned"] is False:
        if rows < n + args["bucket"]:
            raise CorruptArtifact(
                f"fastText model is corrupt: {rows} input rows for {n} words and {args['bucket']} buckets"
            )
        with np.errstate(over="ignore", invalid="ignore"):  # damaged weights stay damaged, silently
            for i, word in enumerate(words):
                if word == b"</s>":
                    continue
                extra = _subword_rows(word, args["minn"], args["maxn"], args["bucket"], n)
                if extra:
                    vectors[i] = (matrix[i] + matrix[extra].sum(axis=0)) / (1 + len(extra))
    return [w.decode("utf-8", errors="replace") for w in words], vectors


def read_text_header(data: bytes) -> tuple[int, int]:
    """``(count, dim)`` from the first line of a word-vector text file."""
    head = bytes(data[:256])
    parts = head.split(b"\n", 1)[0].split() if b"\n" in head else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise CorruptArtifact("not a word-vector text file: the first line is not '<count> <dim>'")
    return int(parts[0]), int(parts[1])


def read_text_vectors(data: bytes) -> tuple[list[str], np.ndarray]:
    """The words and vectors (count x dim float32) of a word-vector text file."""
    import numpy as np

    count, dim = read_text_header(data)
    lines = bytes(data).split(b"\n")[1:]
    if lines and lines[-1].strip() == b"":
        lines.pop()
    if len(lines) != count:
        raise CorruptArtifact(f"word-vector text file announces {count} words but has {len(lines)} lines")
    words: list[str] = []
    matrix = np.empty((count, dim), dtype=np.float32)
    for i, line in enumerate(lines):
        parts = line.rstrip().split(b" ")
        if len(parts) != dim + 1:
            raise CorruptArtifact(f"word-vector text file line {i + 2} has {len(parts) - 1} numbers, not {dim}")
        words.append(parts[0].decode("utf-8", errors="replace"))
        try:
            matrix[i] = [float(x) for x in parts[1:]]
        except ValueError:
            raise CorruptArtifact(f"word-vector text file line {i + 2} has a value that is not a number") from None
    return words, matrix
