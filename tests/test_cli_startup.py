"""What ``artifact-tools inspect`` loads and builds before it answers (issue 10): on a 1 GiB ``.zip`` or ``.tar`` the
listing takes a millisecond, so the command's time is Python's start-up plus what it imports.

- ``inspect --json`` of a Hugging Face folder (as a zip) imports no ``dataclasses`` (which imports ``inspect``,
  ``ast``, ``dis``), no numpy or rich, and none of the format readers of the formats it does not hold (the
  SageMaker built-ins and the MXNet, NumPy, Triton, LightGBM and inference-script readers); the report is the
  same as the in-process :func:`artifact_tools.inspect`.
- The parser built for a command holds that command alone; ``--help`` (no command) lists them all.
- The small value classes written out instead of dataclasses (``artifact_tools._value``) behave as dataclasses:
  equality by class and fields, ``replace`` through ``__init__`` (so its checks run), frozen ones hashable.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import artifact_tools
from artifact_tools import cli
from artifact_tools.archive import Limits
from artifact_tools.errors import ArtifactError
from artifact_tools.formats.pickle_data import Global
from artifact_tools.report import FileInfo, Report

NOT_IMPORTED = ("dataclasses", "inspect", "numpy", "rich", "artifact_tools.formats.sagemaker_builtins",
                "artifact_tools.formats.mxnet", "artifact_tools.formats.npy", "artifact_tools.formats.triton",
                "artifact_tools.formats.lightgbm", "artifact_tools.formats.python_script", "loaders", "exporters")

PROBE = """
import contextlib, io, json, sys
from artifact_tools import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = cli.main(["inspect", "--json", sys.argv[1]])
print(json.dumps({"status": status, "report": json.loads(out.getvalue()),
                  "loaded": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""


def _hf_zip(path: Path) -> Path:
    """A small BERT-style folder as a deflated zip: config, tokenizer, vocabulary and safetensors weights."""
    config = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "hidden_size": 8,
              "num_hidden_layers": 1, "vocab_size": 5}
    tokenizer = {"version": "1.0", "model": {"type": "WordLevel", "vocab": {w: i for i, w in enumerate("abcde")}}}
    header = json.dumps({"bert.embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [5, 8],
                                                                    "data_offsets": [0, 160]}}).encode()
    header += b" " * (-len(header) % 8)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("tokenizer.json", json.dumps(tokenizer))
        zf.writestr("vocab.txt", "[PAD]\n[UNK]\na\nb\nc\n")
        zf.writestr("model.safetensors", struct.pack("<Q", len(header)) + header + bytes(160))
    return path


def test_inspect_imports_only_what_the_artifact_needs(tmp_path):
    art = _hf_zip(tmp_path / "hf.zip")
    res = subprocess.run([sys.executable, "-c", PROBE, str(art), json.dumps(NOT_IMPORTED)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == 0
    assert out["report"]["framework"] == "huggingface"
    assert out["report"] == artifact_tools.inspect(art).to_dict()
    assert out["loaded"] == []


def test_parser_of_one_command():
    def commands(parser) -> set[str]:
        return set(parser._subparsers._group_actions[0].choices)

    everything = {"inspect", "convert-xgboost", "load", *cli._APP_COMMANDS}
    assert commands(cli.build_parser("inspect")) == {"inspect"}
    assert commands(cli.build_parser("load")) == {"load"}
    assert commands(cli.build_parser("")) == commands(cli.build_parser()) == everything
    assert cli._command_in(["-v", "inspect", "x"]) == "inspect"
    assert cli._command_in(["x", "inspect"]) == ""  # not a command where one is expected: the full parser says so
    args = cli.build_parser("inspect").parse_args(["-q", "inspect", "a.zip", "--max-ratio", "0", "-v"])
    assert (args.artifact, args.max_ratio, args.quiet, args.verbose_sub) == ("a.zip", 0, True, 1)


def test_value_classes_behave_as_dataclasses():
    lim = Limits(max_members=10)
    copy = lim.replace(max_ratio=0)
    assert (copy.max_members, copy.max_ratio, lim.max_ratio) == (10, 0, 250.0)
    assert copy != lim and copy.replace(max_ratio=250.0) == lim
    assert copy._spent is None
    with pytest.raises(ArtifactError):  # __init__'s checks run on a replaced copy too
        lim.replace(max_members=-1)
    with pytest.raises(TypeError):
        lim.replace(max_member=1)
    with pytest.raises(TypeError):
        hash(lim)
    a, b = FileInfo("a", 1, "json"), FileInfo("a", 1, "json")
    assert a == b and a != FileInfo("a", 1, "text") and repr(a) == (
        "FileInfo(path='a', size=1, kind='json', ignored=False, duplicates=0, conflicts=0)")
    r = Report("src", "zip")
    assert r.files == [] and r.files is not Report("src", "zip").files  # fresh lists per report
    assert r.trust == {"verdict": "safe", "findings": [], "members": []}
    d = r.to_dict()
    d["warnings"].append("changed")
    assert r.warnings == []  # to_dict is a copy
    g = Global("os", "system")
    assert {g, Global("os", "system")} == {g} and g.replace(name="path") == Global("os", "path")
    with pytest.raises(AttributeError):
        g.name = "path"  # type: ignore[misc]
