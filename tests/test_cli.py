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
