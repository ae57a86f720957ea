"""Every CLI command answers bad input with one sentence on stderr and exit status 2, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import pack_tar_gz, run_cli


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.tar.gz").write_bytes(b"")
    (d / "noise.bin").write_bytes(os.urandom(4096))
    (d / "cut.tar.gz").write_bytes(pack_tar_gz({"xgboost-model": os.urandom(100_000)})[:50_000])
    return {"empty": d / "empty.tar.gz", "noise": d / "noise.bin", "truncated": d / "cut.tar.gz",
            "missing": d / "nope.tar.gz"}


COMMANDS = {
    "inspect": lambda a, out: ["inspect", a],
    "load": lambda a, out: ["load", a],
    "convert-xgboost": lambda a, out: ["convert-xgboost", a, str(out / "m.json")],
    "export": lambda a, out: ["export", a, "--to", "sagemaker", str(out / "exported")],
}


# Random bytes are a valid (unknown) loose file for `inspect` (see below); every other command refuses them.
CASES = [(c, k) for c in sorted(COMMANDS) for k in ("empty", "noise", "truncated", "missing")
         if (c, k) != ("inspect", "noise")]


@pytest.mark.parametrize("command,case", CASES)
def test_bad_input(bad, tmp_path, command, case):
    res = run_cli(*COMMANDS[command](str(bad[case]), tmp_path), cwd=tmp_path)
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("artifact-tools: ") and "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_unknown_loose_file_is_refused_in_one_sentence(bad, tmp_path):
    """A loose file in which nothing is recognised is not an artifact (issue 11): exit 2, one sentence."""
    res = run_cli("inspect", "--json", str(bad["noise"]), cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "matches no archive or model format" in res.stderr


def test_bad_option_and_output_names(tmp_path, bad):
    res = run_cli("load", str(bad["noise"]), "-o", "novalue", cwd=tmp_path)
    assert res.returncode == 2 and "KEY=VALUE" in res.stderr
    res = run_cli("convert-xgboost", str(bad["noise"]), str(tmp_path / "out.txt"), cwd=tmp_path)
    assert res.returncode == 2 and ".json or .ubj" in res.stderr


@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_convert_xgboost_writes_a_file_current_xgboost_reads(corpus, tmp_path, suffix):
    import numpy as np
    import xgboost as xgb

    out = tmp_path / f"model{suffix}"
    res = run_cli("convert-xgboost", str(corpus / "cookbook-xgboost-1" / "model.tar.gz"), str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    booster = xgb.Booster(model_file=str(out))
    golden = corpus / "golden"
    rows = np.loadtxt(golden / "cookbook-xgboost-1.inputs.csv", delimiter=",", ndmin=2).astype(np.float32)
    margin = np.loadtxt(golden / "cookbook-xgboost-1.margin.csv", delimiter=",")
    np.testing.assert_allclose(booster.predict(xgb.DMatrix(rows, missing=np.nan), output_margin=True), margin,
                               rtol=0, atol=1e-5)
    again = run_cli("convert-xgboost", str(corpus / "cookbook-xgboost-1" / "model.tar.gz"), str(out), cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr  # never overwritten silently


# ------------------------------------------------------------------------------------------ load --predict / --sample

@pytest.fixture(scope="module")
def sklearn_artifact(tmp_path_factory):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import make_samples

    return make_samples.build_sklearn(tmp_path_factory.mktemp("sk"))


@pytest.fixture(scope="module")
def four_outputs(tmp_path_factory):
    """A Gluon network with 4 outputs of widths 1, 3, 2 and 5, exported with MXNet's own API into a model.tar.gz,
    its rows, and the outputs MXNet itself computes for them."""
    import numpy as np

    mx = pytest.importorskip("mxnet")
    from mxnet import gluon

    class Four(gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.heads = [gluon.nn.Dense(w) for w in (1, 3, 2, 5)]
                for i, h in enumerate(self.heads):
                    self.register_child(h, f"head{i}")

        def hybrid_forward(self, F, x):
            return tuple(h(x) for h in self.heads)

    net = Four()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    rows = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    want = [o.asnumpy() for o in net(mx.nd.array(rows))]
    d = tmp_path_factory.mktemp("four")
    net.export(str(d / "model"), epoch=0)
    (d / "model.tar.gz").write_bytes(pack_tar_gz({n: (d / n).read_bytes()
                                                  for n in ("model-symbol.json", "model-0000.params")}))
    (d / "rows.csv").write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows))
    return d / "model.tar.gz", d / "rows.csv", want


def test_predict_prints_every_output_of_a_multi_output_model(four_outputs, tmp_path):
    """Issue 11, item 5: a model answering with 4 outputs of different widths prints them in every format."""
    import io
    import json

    import numpy as np

    artifact, rows, want = four_outputs
    res = run_cli("load", str(artifact), "--predict", str(rows), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert len(got) == 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-5, atol=1e-6)
    res = run_cli("load", str(artifact), "--predict", str(rows), "--output-format", "csv", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.loadtxt(io.StringIO(res.stdout), delimiter=",", ndmin=2), np.hstack(want),
                               rtol=1e-5, atol=1e-6)
    res = run_cli("load", str(artifact), "--predict", str(rows), "--output-format", "jsonlines", cwd=tmp_path)
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert res.returncode == 0 and len(lines) == 3 and [len(part) for part in lines[0]] == [1, 3, 2, 5]


def test_predict_reads_a_csv_header_and_mlflow_json(sklearn_artifact, tmp_path):
    import json

    import pandas as pd

    from helpers import sklearn_reference

    reference = sklearn_reference(sklearn_artifact)
    (tmp_path / "rows.csv").write_text("a,b,c,d\n0.5,1.5,,2\n-1,0.25,3,1\n")
    frame = pd.read_csv(tmp_path / "rows.csv").fillna(0.0)
    (tmp_path / "rows.csv").write_text(frame.to_csv(index=False))
    res = run_cli("load", str(sklearn_artifact), "--predict", str(tmp_path / "rows.csv"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == reference.predict(frame.to_numpy()).tolist()
    split = {"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}
    (tmp_path / "rows.json").write_text(json.dumps(split))
    res = run_cli("load", str(sklearn_artifact), "--predict", str(tmp_path / "rows.json"), cwd=tmp_path)
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"predictions": reference.predict(frame.to_numpy()).tolist()}


def test_sample_builds_an_input_and_predicts_it(sklearn_artifact, tmp_path):
    import json

    import numpy as np

    from helpers import sklearn_reference

    res = run_cli("load", str(sklearn_artifact), "--sample", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shown = res.stderr.split("sample input built from the artifact's metadata:\n", 1)[1].strip()
    sample = np.asarray(json.loads(shown))
    assert sample.ndim == 2 and sample.shape[1] == 4
    assert json.loads(res.stdout) == sklearn_reference(sklearn_artifact).predict(sample).tolist()


def test_sample_member_and_predict_refusals_are_one_sentence(sklearn_artifact, tmp_path):
    (tmp_path / "rows.csv").write_text("1,2,3,4\n")
    for args in (["--sample", "--predict", str(tmp_path / "rows.csv")], ["--member", "nope.joblib"],
                 ["--member", "a.joblib", "-o", "member=b.joblib"], ["--predict", str(tmp_path / "missing.csv")]):
        res = run_cli("load", str(sklearn_artifact), *args, cwd=tmp_path)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and lines[-1].startswith("artifact-tools: ") and "Traceback" not in res.stderr, args
    res = run_cli("load", str(sklearn_artifact), "--member", "a.joblib", "-o", "member=b.joblib", cwd=tmp_path)
    assert "disagree" in res.stderr


def test_a_member_name_the_terminal_cannot_encode_is_printed_escaped(tmp_path):
    """A tar member named in Latin-1 (not UTF-8) under an ASCII-only stdout: the report prints the name with a
    backslash escape and exits 0, as Python's own stderr would, instead of an internal error."""
    import io
    import subprocess
    import sys
    import tarfile

    path = tmp_path / "latin1.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for args in ([], ["--json"]):
        res = subprocess.run([sys.executable, "-m", "artifact_tools", "inspect", *args, str(path)],
                             capture_output=True, text=True, env=env, errors="replace")
        assert res.returncode == 0, res.stderr
        assert "caf\\udce9.txt" in res.stdout or "caf\\\\udce9.txt" in res.stdout, res.stdout
        assert "internal error" not in res.stderr
