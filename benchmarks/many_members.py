"""``inspect`` and ``load`` of containers of 99,990 tiny members (issue 10: bounded time on hostile input) against
Python's own listing / the system's extraction of the same file, measured side by side in this run.

Rows, one per container (``zip``, ``tar``, ``tar.gz``, folder) of the ``flat`` case (99,990 empty members) and
of the ``deep`` case (each in its own folder 12 levels down) of ``scripts/make_many_members.py``:

- ``inspect``: ``python -m artifact_tools inspect --json FILE`` against ``python -m zipfile -l FILE`` /
  ``python -m tarfile -l FILE`` (for a folder: ``find FOLDER -type f``); both fresh interpreters.
- ``load`` (``model`` case: 99,989 empty members and one scikit-learn joblib model):
  ``python -m artifact_tools load FILE --member model.joblib --sample`` with an empty extraction cache, against
  ``unzip -q`` / ``tar -xf`` of the same file into an empty folder (extraction alone: the file system's cost of
  creating 100,000 files, shared by both, is most of it).

CPU time (user + system of the child, ``os.wait4``) is the headline on a shared machine; wall time and peak RSS
are shown beside it. Median of ``--runs`` runs, the two commands alternating.

Usage: python benchmarks/many_members.py [--runs N] [--count N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "scripts"))
import make_many_members  # noqa: E402

from _util import CACHE  # noqa: E402

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")


REFUSED: list[str] = []  # commands that ended with exit status 2 (a refusal: one sentence on stderr)


def run(cmd: list[str], cwd: str | None = None, env: dict | None = None) -> tuple[float, float, int]:
    """(CPU seconds user+system, wall seconds, peak RSS bytes) of one child; raises on an exit status other than
    0 and 2 (a refusal, noted in REFUSED: a hostile input refused is measured like one accepted)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env or ENV)
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code == 2 and cmd[1:3] == ["-m", "artifact_tools"]:
        REFUSED.append(err.decode(errors="replace").strip()[-200:])
    elif code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.decode(errors='replace')[-400:]}")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss * 1024


def lister(kind: str, path: Path) -> list[str]:
    if kind == "zip":
        return [sys.executable, "-m", "zipfile", "-l", str(path)]
    if kind == "directory":
        return ["find", str(path), "-type", "f"]
    return [sys.executable, "-m", "tarfile", "-l", str(path)]


def extractor(kind: str, path: Path) -> list[str]:
    return ["unzip", "-q", str(path)] if kind == "zip" else ["tar", "-xf", str(path)]


def median_pair(runs: int, ours, theirs) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    a, b = [], []
    for _ in range(runs):
        a.append(ours())
        b.append(theirs())

    def med(xs):
        return statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs), max(x[2] for x in xs)

    return med(a), med(b)


def row(what: str, ours, theirs, anchor: str) -> None:
    print(f"{what:<26} cpu {ours[0]:6.2f} s  wall {ours[1]:6.2f} s  rss {ours[2] >> 20:4d} MiB | {anchor:<16} "
          f"cpu {theirs[0]:6.2f} s  wall {theirs[1]:6.2f} s | ratio cpu {ours[0] / max(theirs[0], 1e-3):5.2f} "
          f"wall {ours[1] / max(theirs[1], 1e-3):5.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=make_many_members.COUNT)
    ap.add_argument("--no-load", action="store_true")
    args = ap.parse_args()
    out = CACHE / f"many-members-{args.count}"
    py = sys.executable
    for case in ("flat", "deep"):
        for kind, path in make_many_members.build(out, case, args.count).items():
            ours, theirs = median_pair(args.runs,
                                       lambda p=path: run([py, "-m", "artifact_tools", "inspect", "--json", str(p)]),
                                       lambda k=kind, p=path: run(lister(k, p)))
            row(f"inspect {case} {kind}", ours, theirs, "find" if kind == "directory" else f"{kind} listing")
            if REFUSED:
                print(f"  (refused: {REFUSED[-1]})")
                REFUSED.clear()
    if args.no_load:
        return
    for kind, path in make_many_members.build(out, "model", args.count).items():
        if kind == "directory":
            continue

        def ours(p=path):
            with tempfile.TemporaryDirectory(dir=CACHE) as cache:
                return run([py, "-m", "artifact_tools", "load", str(p), "--member", "model.joblib", "--sample"],
                           env={**ENV, "ARTIFACT_TOOLS_CACHE": cache})

        def theirs(k=kind, p=path):
            with tempfile.TemporaryDirectory(dir=CACHE) as folder:
                return run(extractor(k, p), cwd=folder)

        if shutil.which("unzip" if kind == "zip" else "tar") is None:
            print(f"load model {kind}: skipped (no {'unzip' if kind == 'zip' else 'tar'})")
            continue
        a, b = median_pair(args.runs, ours, theirs)
        row(f"load model {kind}", a, b, "unzip -q" if kind == "zip" else "tar -xf")


if __name__ == "__main__":
    main()
