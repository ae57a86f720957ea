"""Containers of very many tiny members (issue 10: bounded time on hostile input), checked for correctness only
(timing is in ``benchmarks/many_members.py``): what inspection lists and what extraction writes equal what Python's
own ``zipfile`` / ``tarfile`` (``extractall(filter="data")``) give for the same file; the string-only name
normalisation and folder listing of ``artifact_tools.filetree`` equal ``pathlib`` / ``os.walk`` on every name.

The containers are built by ``scripts/make_many_members.py`` (smaller counts than the benchmark's 99,990).
"""

from __future__ import annotations

import itertools
import os
import random
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest

import artifact_tools
import loaders
from artifact_tools import open_artifact
from artifact_tools.audit import audit_members
from artifact_tools.errors import ArtifactError
from artifact_tools.filetree import DirTree, MappingTree, _norm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_many_members  # noqa: E402

COUNT = 3000


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, dict[str, Path]]:
    out = tmp_path_factory.mktemp("many")
    return {case: make_many_members.build(out, case, COUNT) for case in ("flat", "byte", "deep", "model")}


def _oracle_listing(kind: str, path: Path) -> dict[str, int]:
    """{name: size} of the regular files, from Python's own readers (or os.walk for a folder)."""
    if kind == "zip":
        with zipfile.ZipFile(path) as z:
            return {i.filename: i.file_size for i in z.infolist() if not i.is_dir()}
    if kind == "directory":
        return {os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/"): os.path.getsize(os.path.join(d, f))
                for d, _, fs in os.walk(path) for f in fs}
    with tarfile.open(path) as t:
        return {m.name: m.size for m in t.getmembers() if m.isreg()}


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = Path(p).read_bytes()
    return out


@pytest.mark.parametrize("case", ["flat", "byte", "deep", "model"])
@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "directory"])
def test_listing_equals_python_readers(built, case, kind):
    path = built[case][kind]
    expected = _oracle_listing(kind, path)
    assert len(expected) == COUNT
    report = artifact_tools.inspect(path)
    assert {f.path: f.size for f in report.files} == expected
    with open_artifact(path) as art:
        files = {m.name: m.size for m in art.members() if m.is_file}
    assert files == expected


@pytest.mark.parametrize("case", ["flat", "deep"])
@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_extraction_equals_python_readers(built, case, kind, tmp_path):
    path = built[case][kind]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    with open_artifact(path) as art:
        art.extract(ours)
    if kind == "zip":
        with zipfile.ZipFile(path) as z:
            z.extractall(theirs)
    else:
        with tarfile.open(path) as t:
            t.extractall(theirs, filter="data")
    assert _tree(ours) == _tree(theirs)


def test_one_pass_extraction_equals_tarfile(built, tmp_path):
    """The extraction inspection does in its own pass (what ``loaders.load`` uses), with the digest."""
    path = built["byte"]["tar.gz"]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    with open_artifact(path) as art:
        artifact_tools.inspection.inspect_opened(art, extract_to=ours, digest=True)
        assert art.extract_error is None
        import hashlib

        assert art.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    with tarfile.open(path) as t:
        t.extractall(theirs, filter="data")
    assert _tree(ours) == _tree(theirs)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_load_among_many_members(built, kind):
    """The one model among thousands of empty files loads and predicts as joblib's own copy of it does."""
    import joblib
    import numpy as np

    path = built["model"][kind]
    with open_artifact(path) as art:
        model_bytes = art.extract() / "model.joblib"
        reference = joblib.load(model_bytes)
    loaded = loaders.load(path, member="model.joblib")
    x = np.array([[0.5, -1.0, 2.0], [-0.3, 0.1, 0.0]])
    np.testing.assert_array_equal(loaded.predict(x), reference.predict(x))


def test_digest_of_zip_equals_sha256(built):
    import hashlib

    path = built["flat"]["zip"]
    with open_artifact(path) as art:
        artifact_tools.inspection.inspect_opened(art, digest=True)
        assert art.digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_extraction_refuses_a_file_used_as_a_folder(tmp_path):
    path = tmp_path / "clash.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/b", b"file")
        z.writestr("a/b/c", b"under a file")
    with open_artifact(path) as art, pytest.raises(ArtifactError, match="both as a file and as a folder"):
        art.extract(tmp_path / "out")


def _old_norm(name: str) -> str:
    """The pathlib definition ``_norm`` replaces (the oracle)."""
    return str(PurePosixPath(name.replace("\\", "/"))).lstrip("/") if name not in ("", ".") else ""


def test_norm_equals_pathlib():
    alphabet = ["a", "b", ".", "..", "/", "\\", "//", "./", "x.y", ".a", "a."]
    for n in range(6):
        for parts in itertools.product(alphabet, repeat=n):
            name = "".join(parts)
            assert _norm(name) == _old_norm(name), name
    rnd = random.Random(10)
    for _ in range(20000):
        name = "".join(rnd.choice("ab./\\") for _ in range(rnd.randint(0, 16)))
        assert _norm(name) == _old_norm(name), name


def test_mapping_tree_names_dot_segments_and_backslashes():
    tree = MappingTree({"./a/./b": b"1", "c\\d": b"22", "/e": b"3"})
    assert tree.names() == ["a/b", "c/d", "e"]
    assert tree.read("a/b") == b"1" and tree.read("c/d") == b"22" and tree.size(".\\c\\d") == 2


def test_dir_tree_names_equal_os_walk(tmp_path):
    for name in ["a/b/c.txt", "a/d", "e", "f/g/h/i"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    os.symlink(tmp_path / "e", tmp_path / "link-to-file")
    os.symlink(tmp_path / "a", tmp_path / "link-to-folder")
    expected = sorted(
        Path(d, f).relative_to(tmp_path).as_posix() for d, _, fs in os.walk(tmp_path) for f in fs
        if Path(d, f).is_file() and not Path(d, f).is_symlink())
    assert DirTree(tmp_path).names() == expected == ["a/b/c.txt", "a/d", "e", "f/g/h/i"]


def test_old_torchscript_found_among_many_folders():
    """TorchScript of torch 1.0 (model.json beside code/ and tensors/) is still found, and only there."""
    names = [f"m{i}/model.json" for i in range(2000)] + [f"m{i}/code/x.py" for i in range(0, 2000, 2)]
    names += ["m4/tensors/0", "m5/tensors/0", "model.json", "code/a.py", "tensors/1", "n/model.json", "n/code/b"]
    found = {f.member for f in audit_members(names, {}, lambda n: None, 1 << 20)
             if "TorchScript" in f.what}
    assert found == {"m4/model.json", "model.json"}


def test_json_text_equals_json_dumps(tmp_path):
    """``Report.to_json`` writes the file list itself; the text is json.dumps's, for any indent and odd names."""
    import json

    from artifact_tools.report import _jsonable

    path = tmp_path / "odd.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in ["é/ü.txt", "quote\"d", "back\\slash", "tab\there", "ctrl\x01", "emoji\U0001f600", "._junk",
                     "a/b/c.json"]:
            z.writestr(name, b"{}" if name.endswith(".json") else b"data")
        z.writestr("a/b/c.json", b"{}")  # an identical duplicate
    report = artifact_tools.inspect(path)
    for indent in (None, 1, 2, 4):
        assert report.to_json(indent) == json.dumps(report.to_dict(), indent=indent, default=_jsonable)
