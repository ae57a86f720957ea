"""The pickle audit is linear: a 20-million-opcode pickle, audited, against ``pickletools.genops`` walking it.

Anchor: ``for _ in pickletools.genops(data): pass`` over the same bytes, the standard library's own opcode walk
(it decodes every argument and does nothing else). Measured interleaved in one process, median of 5.
Target (issue 9): audit time / genops time <= 1.5.

Also printed: the audit of a few-hundred-byte pickle whose value, shared through the memo, describes a tree of
2**60 nodes (a reader that copies or prints values would never finish).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from artifact_tools.audit import audit_pickle_bytes  # noqa: E402

TARGET_OPS = 20_000_000


def big_pickle() -> bytes:
    # Tuples of (small int, float, short str): BININT1/BININT2/BININT, BINFLOAT, SHORT_BINUNICODE, TUPLE3, MEMOIZE,
    # APPENDS - the opcode mix of real model pickles' Python parts. 6 opcodes a row.
    rows = TARGET_OPS // 6
    return pickle.dumps([(i, float(i), str(i % 1000)) for i in range(rows)], protocol=4)


def doubling_pickle(levels: int = 60) -> bytes:
    out = bytearray(b"\x80\x04]\x94")  # PROTO 4, EMPTY_LIST, MEMOIZE (memo 0)
    for i in range(levels):  # each level: a list holding the previous level twice
        out += b"(" + b"h" + bytes([i]) + b"h" + bytes([i]) + b"l\x94"
    return bytes(out + b".")


def main() -> None:
    data = big_pickle()
    ops = sum(1 for _ in pickletools.genops(io.BytesIO(data)))
    print(f"pickle: {len(data) / 2**20:.0f} MiB, {ops:,} opcodes")
    anchor, ours = [], []
    for _ in range(5):
        t = time.perf_counter()
        for _ in pickletools.genops(io.BytesIO(data)):
            pass
        anchor.append(time.perf_counter() - t)
        t = time.perf_counter()
        findings = audit_pickle_bytes("bench.pkl", data, len(data) + 1)
        ours.append(time.perf_counter() - t)
        assert findings == [], findings
    a, o = statistics.median(anchor), statistics.median(ours)
    print(f"pickletools.genops: {a:.2f} s   audit: {o:.2f} s   ratio {o / a:.2f} (target <= 1.5: "
          f"{'met' if o / a <= 1.5 else 'NOT met'})")
    small = doubling_pickle()
    t = time.perf_counter()
    audit_pickle_bytes("doubling.pkl", small, len(small) + 1)
    print(f"{len(small)}-byte pickle describing 2**60 list nodes: audited in {(time.perf_counter() - t) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
