"""Inspection: the real corpus classified as EXPECTED.tsv says, the JSON/HTML views, and no framework imported."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import artifact_tools
from artifact_tools.report import SCHEMA

from helpers import pack_tar_gz, run_cli

FRAMEWORK_MODULES = ["torch", "tensorflow", "mxnet", "xgboost", "sklearn", "pyspark", "transformers", "keras", "jax"]


def expected_rows(corpus: Path):
    with open(corpus / "EXPECTED.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def corpus_paths(corpus: Path, row: dict) -> list[Path]:
    folder = corpus / row["entry"]
    if row["file"] == "(directory)":
        return [folder]
    if row["file"] == "*.zip":
        return sorted(folder.glob("*.zip"))
    return [folder / f.strip() for f in row["file"].split(",")]


def test_every_corpus_entry_is_classified_as_expected(corpus):
    rows = expected_rows(corpus)
    assert len(rows) >= 25
    problems = []
    for row in rows:
        for path in corpus_paths(corpus, row):
            report = artifact_tools.inspect(path)
            if report.framework != row["framework"]:
                problems.append(f"{row['entry']}/{path.name}: {report.framework} != {row['framework']}")
            json.loads(report.to_json())  # always serialisable
    assert not problems, problems


@pytest.mark.parametrize("entry,algorithm", [
    ("cookbook-knn", "knn"), ("cookbook-ll", "linear-learner"), ("covid-ntm", "ntm"), ("ex-ll-adult", "linear-learner"),
    ("movies-kmeans-a", "kmeans"), ("plagiarism-pca", "pca"), ("tempe-graffiti-ic", "image-classification"),
    ("tweetsage-blazingtext", "blazingtext"),
])
def test_builtin_algorithms_named(corpus, entry, algorithm):
    folder = corpus / entry
    path = folder if entry == "tempe-graffiti-ic" else next(folder.iterdir())
    report = artifact_tools.inspect(path)
    assert report.algorithm == algorithm
    assert report.layout == "builtin-algorithm"


def test_reports_that_explain_why_not_loadable(corpus):
    r = artifact_tools.inspect(corpus / "cookbook-r.custom" / "model.tar.gz")
    assert not r.loadable and "R" in r.not_loadable_reason
    r = artifact_tools.inspect(corpus / "sdk-lmi-falcon" / "mymodel-7B.tar.gz")
    assert not r.loadable and "no weights inside" in r.not_loadable_reason
    r = artifact_tools.inspect(corpus / "tempe-graffiti-ic")
    assert not r.loadable and "image-classification-" in r.not_loadable_reason and ".params" in r.not_loadable_reason


def test_entry_points_and_layouts(corpus):
    r = artifact_tools.inspect(corpus / "sdk-sklearn-ir" / "sklearn-model.tar.gz")
    assert r.entry_point == "inference.py" and r.framework == "sklearn"
    assert r.trust["verdict"] == "code"
    r = artifact_tools.inspect(corpus / "sdk-tfs-model-with-inference")
    assert r.entry_point == "code/inference.py" and r.layout == "tf-serving"
    assert r.model("tensorflow-savedmodel").summary["version"] == 123
    r = artifact_tools.inspect(corpus / "sdk-tfs-test-model" / "tensorflow-serving-test-model.tar.gz")
    assert r.root_prefix == "tfs-test-model" and r.layout == "tf-serving"
    r = artifact_tools.inspect(corpus / "sdk-marketplace-iris" / "model-artifacts.joblib")
    assert r.container == "file" and r.layout == "loose-file" and r.trust["verdict"] == "safe"


def test_packed_pytorch_junk_and_duplicates(corpus):
    r = artifact_tools.inspect(corpus / "sdk-pytorch-mnist" / "packed_model.tar.gz")
    ignored = {f.path for f in r.files if f.ignored}
    assert {"._.DS_Store", ".DS_Store", "._model.pth", "code/._mnist.py"} <= ignored
    assert r.entry_point == "code/mnist.py"
    r = artifact_tools.inspect(corpus / "sdk-pytorch-mnist" / "model.tar.gz")
    [pth] = [f for f in r.files if f.path == "model.pth"]
    # The corpus says "listed twice, same bytes"; the two copies actually differ, so this is reported loudly.
    assert pth.duplicates + pth.conflicts == 1
    if pth.conflicts:
        assert any("different contents" in w for w in r.warnings)


def test_json_schema_and_views(corpus):
    r = artifact_tools.inspect(corpus / "cookbook-python.custom" / "model.tar.gz")
    d = json.loads(r.to_json())
    assert d["schema"] == SCHEMA
    for key in ("source", "container", "root_prefix", "framework", "layout", "algorithm", "loadable",
                "not_loadable_reason", "entry_point", "trust", "files", "models", "warnings"):
        assert key in d
    assert d["models"][0]["summary"]["globals"][0] == "sklearn.linear_model._base.LinearRegression"
    html = r._repr_html_()
    assert "<table>" in html and "sklearn" in html
    assert "LinearRegression" in str(r)


def test_inspection_imports_no_framework(corpus, tmp_path):
    paths = [str(p) for row in expected_rows(corpus) for p in corpus_paths(corpus, row)]
    code = (
        "import sys, json, artifact_tools\n"
        f"for p in {paths!r}:\n"
        "    artifact_tools.inspect(p)\n"
        f"print(json.dumps(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    import gzip
    import os
    import tarfile

    whole = pack_tar_gz({"model.bin": os.urandom(200_000)})
    files = {
        "empty": ("empty.tar.gz", b""),
        "truncated gzip": ("truncated.tar.gz", whole[: len(whole) // 2]),
        "corrupt gzip header": ("notgzip.tar.gz", b"\x1f\x8b\x08\x00garbage-garbage-garbage"),
        "corrupt json": ("badjson.tar.gz", pack_tar_gz({"model-symbol.json": b'{"nodes": [ {"op": "null", ',
                                                         "model-0000.params": b"\x12\x01" + b"\0" * 30})),
        # a protobuf length prefix far past the end
        "corrupt protobuf": ("badpb.tar.gz",
                             pack_tar_gz({"1/saved_model.pb": b"\x08\x01\x12\xff\xff\xff\xff\x0f" + b"\x00" * 10})),
        "path traversal": ("evil.tar.gz", pack_tar_gz({"../../../tmp/evil": b"x"})),
    }
    out = {}
    for label, (name, data) in files.items():
        (tmp_path / name).write_bytes(data)
        out[label] = tmp_path / name
    bomb = tmp_path / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as gz:
        ti = tarfile.TarInfo("zeros")
        ti.size = 256 << 20
        gz.write(ti.tobuf())
        for _ in range(256):
            gz.write(b"\0" * (1 << 20))
    out["gzip bomb"] = bomb
    out["missing"] = tmp_path / "does-not-exist.tar.gz"
    return out


def test_bad_inputs_one_sentence_exit_2(tmp_path):
    for label, path in _bad_inputs(tmp_path).items():
        before = sorted(p.name for p in tmp_path.iterdir())
        res = run_cli("inspect", str(path), cwd=tmp_path)
        assert res.returncode == 2, (label, res.returncode, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("artifact-tools: "), (label, res.stderr)
        assert "Traceback" not in res.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before, label


def test_cli_inspect_json_and_table(corpus):
    res = run_cli("inspect", "--json", str(corpus / "cookbook-ll" / "model.tar.gz"))
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["algorithm"] == "linear-learner"
    res = run_cli("inspect", str(corpus / "cookbook-ll" / "model.tar.gz"))
    assert res.returncode == 0 and "linear-learner" in res.stdout


def test_pickle_summary_names_the_sklearn_release(corpus, tmp_path):
    import warnings

    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    from helpers import untar

    archive = corpus / "cookbook-python.custom" / "model.tar.gz"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        joblib.load(untar(archive, tmp_path) / "model")  # a known corpus file: scikit-learn itself says its release
    [w] = [w.message for w in caught if isinstance(w.message, InconsistentVersionWarning)]
    summary = artifact_tools.inspect(archive).model("pickle").summary
    assert summary["sklearn_version"] == w.original_sklearn_version


# ------------------------------------------------------------------------------------------ which pickle is the model

@pytest.mark.parametrize("script,files", [
    (b"import os, joblib\ndef model_fn(model_dir):\n    return joblib.load(os.path.join(model_dir, 'model.joblib'))\n",
     ["model.joblib"]),
    (b"import joblib\ndef model_fn(d):\n    return joblib.load(f'{d}/sub/clf.pkl')\n", ["sub/clf.pkl"]),
    (b"import pickle\nFILE = 'm.pkl'\ndef model_fn(d):\n    with open(d + '/' + FILE, 'rb') as f:\n"
     b"        return pickle.load(f)\n", ["m.pkl", "rb"]),
    (b"from pathlib import Path\nimport joblib\ndef model_fn(d):\n    return joblib.load(Path(d) / './a.joblib')\n",
     ["a.joblib"]),
    (b"import joblib\ndef model_fn(d):\n    return joblib.load('/opt/ml/model/b.joblib')\n", ["b.joblib"]),
    (b"def model_fn(d):\n    return 'first.pkl'\ndef model_fn(d):\n    return 'second.pkl'\n", ["second.pkl"]),
    (b"def predict_fn(x, m):\n    return 'x.pkl'\n", []),
    (b"def model_fn(d):\n    return (\n", []),  # does not parse
    (b"x = " + b"(" * 200_000 + b")" * 200_000 + b"\ndef model_fn(d):\n    return 'a.pkl'\n", []),  # too large
])
def test_model_fn_files_are_read_as_text(script, files):
    from artifact_tools.inspection import model_fn_files

    assert model_fn_files(script) == files


def test_inspection_never_runs_the_entry_point(tmp_path):
    import joblib
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    marker = tmp_path / "ran"
    script = (f"open({str(marker)!r}, 'w').write('x')\nimport joblib, os\n\ndef model_fn(model_dir):\n"
              f"    open({str(marker)!r}, 'w').write('x')\n"
              "    return joblib.load(os.path.join(model_dir, 'reg.joblib'))\n").encode()
    members = {"code/inference.py": script}
    for name, obj in (("model.joblib", StandardScaler().fit([[0.0], [1.0]])),
                      ("reg.joblib", LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))):
        buf = io.BytesIO()
        joblib.dump(obj, buf)
        members[name] = buf.getvalue()
    art = tmp_path / "model.tar.gz"
    art.write_bytes(pack_tar_gz(members))
    report = artifact_tools.inspect(art)
    assert not marker.exists()
    model = report.model("pickle")
    assert model.path == "reg.joblib" and model.summary["chosen_because"] == "code/inference.py's model_fn loads it"
    assert [m.summary["role"] for m in report.models] == ["model", "other pickle"]
    assert any("member=" in w and "model.joblib" in w for w in report.warnings)
