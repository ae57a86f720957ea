"""Build containers of very many tiny members (issue 10, "time bounded on hostile input"): a red-team input is a
zip of 99,990 empty entries (11 MB), just under the default cap of 100,000 entries.

    python scripts/make_many_members.py OUT_DIR [--count N] [--only NAME ...]

Cases (``NAME.zip``, ``NAME.tar``, ``NAME.tar.gz`` and a folder ``NAME.d`` each):
- ``flat``: N empty members ``f/000000`` ...;
- ``byte``: N one-byte members;
- ``deep``: N empty members, each in its own folder 12 levels deep (``d/0/1/.../000123/f``);
- ``model``: N - 1 empty members plus ``model.joblib``, a fitted scikit-learn ``LogisticRegression`` written by
  joblib itself, so that loading has something to load.
Written with Python's own ``zipfile`` and ``tarfile``.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import zipfile
from pathlib import Path

CASES = ("flat", "byte", "deep", "model")
COUNT = 99_990


def sklearn_joblib() -> bytes:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    buf = io.BytesIO()
    joblib.dump(model, buf)
    return buf.getvalue()


def members(case: str, count: int) -> list[tuple[str, bytes]]:
    if case == "flat":
        return [(f"f/{i:06d}", b"") for i in range(count)]
    if case == "byte":
        return [(f"f/{i:06d}", b"x") for i in range(count)]
    if case == "deep":
        return [("d/" + "/".join("abcdefghijk") + f"/{i:06d}/f", b"") for i in range(count)]
    if case == "model":
        return [("model.joblib", sklearn_joblib())] + [(f"f/{i:06d}", b"") for i in range(count - 1)]
    raise ValueError(case)


def write_zip(path: Path, items: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in items:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data,
                       compress_type=zipfile.ZIP_DEFLATED if data else zipfile.ZIP_STORED)


def write_tar(path: Path, items: list[tuple[str, bytes]], mode: str) -> None:
    with tarfile.open(path, mode) as t:
        for name, data in items:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1577836800, 0o644
            t.addfile(ti, io.BytesIO(data))


def write_dir(path: Path, items: list[tuple[str, bytes]]) -> None:
    made: set[str] = set()
    for name, data in items:
        parent = os.path.dirname(name)
        if parent not in made:
            os.makedirs(path / parent, exist_ok=True)
            made.add(parent)
        with open(path / name, "wb") as f:
            f.write(data)


def build(out: Path, case: str, count: int = COUNT) -> dict[str, Path]:
    """Every container of one case under ``out`` (built once); returns {container: path}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"zip": out / f"{case}.zip", "tar": out / f"{case}.tar", "tar.gz": out / f"{case}.tar.gz",
             "directory": out / f"{case}.d"}
    if all(p.exists() for p in paths.values()):
        return paths
    items = members(case, count)
    for kind, p in paths.items():
        if p.exists():
            continue
        tmp = p.with_name(p.name + ".part")
        if kind == "zip":
            write_zip(tmp, items)
        elif kind == "directory":
            write_dir(tmp, items)
        else:
            write_tar(tmp, items, "w" if kind == "tar" else "w:gz")
        os.replace(tmp, p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=COUNT)
    ap.add_argument("--only", nargs="*", choices=CASES, default=list(CASES))
    args = ap.parse_args()
    for case in args.only:
        for kind, p in build(args.out, case, args.count).items():
            print(case, kind, p)


if __name__ == "__main__":
    main()
