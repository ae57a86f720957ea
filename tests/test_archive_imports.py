"""What opening an artifact imports (issue 10): inspection's start-up cost is part of ``inspect``'s time, so the
format readers that need numpy (or are large) are imported only for files that may be in their format.

- Sniffing every member of a Hugging Face folder (config, tokenizer, safetensors and a ``torch.save`` file)
  imports neither numpy nor the XGBoost, CatBoost, ONNX, LightGBM or PMML readers.
- The cheap pre-check that spares the XGBoost reader never turns away a file the reader's own ``detect_era``
  recognises: checked on every model file old XGBoost builds wrote (tests/data/xgboost_legacy, whose manifest
  names the era each build wrote), on models the installed XGBoost writes (JSON, UBJSON, a pickled Booster), and
  on every member of the real corpus.
- ``import artifact_tools`` + ``inspect`` of that folder as a ``.tar`` imports no numpy.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from artifact_tools import sniff
from artifact_tools.formats.xgboost import detect_era

from helpers import write_tar

DATA = Path(__file__).parent / "data" / "xgboost_legacy"
HEAD = 64 << 10
HEAVY = ("numpy", "artifact_tools.formats.xgboost", "artifact_tools.formats.catboost", "artifact_tools.formats.onnx",
         "artifact_tools.formats.lightgbm", "artifact_tools.formats.pmml")


def _hf_members() -> list[tuple[str, bytes]]:
    """A small BERT-style folder: config and tokenizer JSON, a vocabulary, safetensors weights and the same
    weights written by ``torch.save`` (a zip whose entries sit under ``<name>/``)."""
    torch = pytest.importorskip("torch")
    config = json.dumps({"architectures": ["BertForSequenceClassification"], "model_type": "bert",
                         "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 5}).encode()
    tokenizer = json.dumps({"version": "1.0", "model": {"type": "WordLevel",
                                                        "vocab": {w: i for i, w in enumerate("abcde")}}}).encode()
    header = json.dumps({"bert.embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [5, 8],
                                                                    "data_offsets": [0, 160]}}).encode()
    header += b" " * (-len(header) % 8)
    safetensors = struct.pack("<Q", len(header)) + header + bytes(160)
    buf = io.BytesIO()
    torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(5, 8)}, buf)
    return [("config.json", config), ("tokenizer.json", tokenizer), ("vocab.txt", b"[PAD]\n[UNK]\na\nb\nc\n"),
            ("model.safetensors", safetensors), ("pytorch_model.bin", buf.getvalue())]


def _child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


SNIFF_CHILD = r"""
import json, sys, tarfile
from artifact_tools.sniff import sniff
heavy = sys.argv[2].split(",")
before = [m for m in heavy if m in sys.modules]
with tarfile.open(sys.argv[1]) as tf:
    kinds = {m.name: sniff(m.name, tf.extractfile(m).read(65536), m.size) for m in tf.getmembers()}
print(json.dumps({"kinds": kinds, "before": before, "after": [m for m in heavy if m in sys.modules]}))
"""


def test_sniffing_a_hugging_face_folder_imports_no_heavy_reader(tmp_path):
    path = write_tar(tmp_path / "hf.tar", _hf_members())
    out = _child(SNIFF_CHILD, str(path), ",".join(HEAVY))
    assert out["kinds"] == {"config.json": "json", "tokenizer.json": "json", "vocab.txt": "text",
                            "model.safetensors": "safetensors", "pytorch_model.bin": "torch-zip"}
    assert out["before"] == [] and out["after"] == []


def _heads_of_xgboost_files() -> list[tuple[str, str, bytes]]:
    """(name, era the writer used, head) of every model file in the legacy fixtures, and of models the installed
    XGBoost writes now."""
    out = []
    for entry in json.loads((DATA / "manifest.json").read_text()):
        out.append((entry["file"], entry["era"], (DATA / entry["file"]).read_bytes()[:HEAD]))
    xgb = pytest.importorskip("xgboost")
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)), rng.integers(0, 2, 64)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=y), 3)
    out.append(("current.json", "json", bytes(booster.save_raw("json"))[:HEAD]))
    out.append(("current.ubj", "ubjson", bytes(booster.save_raw("ubj"))[:HEAD]))
    out.append(("current.pkl", "pickle-1.x-snapshot", pickle.dumps(booster)[:HEAD]))
    return out


def test_xgboost_precheck_keeps_every_model_file():
    heads = _heads_of_xgboost_files()
    assert {era for _, era, _ in heads} >= {"json", "ubjson", "legacy-binary", "pickle-1.x-snapshot", "py2-pickle",
                                            "py3-pickle-legacy-binary"}
    for name, era, head in heads:
        assert detect_era(head) is not None, name  # the reader's own verdict, which the pre-check must not veto
        assert sniff._may_be_xgboost(head), (name, era)
        assert sniff.sniff(name, head, len(head)) == "xgboost", (name, era)


def test_xgboost_precheck_keeps_every_corpus_member_the_reader_recognises(corpus):
    seen = 0
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.parent != corpus
                       and p.parent.name != "golden"):
        try:
            tf = tarfile.open(path)
        except tarfile.TarError:
            heads = [(path.name, path.read_bytes()[:HEAD])]
        else:
            with tf:
                heads = [(m.name, tf.extractfile(m).read(HEAD)) for m in tf.getmembers() if m.isfile()]
        for name, head in heads:
            if detect_era(head) is not None:
                seen += 1
                assert sniff._may_be_xgboost(head), f"{path.parent.name}: {name}"
    assert seen >= 6  # the corpus' six XGBoost artifacts


INSPECT_CHILD = r"""
import json, sys
import artifact_tools
report = artifact_tools.inspect(sys.argv[1])
print(json.dumps({"framework": report.framework, "loaded": [m for m in sys.argv[2].split(",") if m in sys.modules]}))
"""


def test_inspecting_a_hugging_face_tar_imports_no_numpy(tmp_path):
    path = write_tar(tmp_path / "hf.tar", _hf_members())
    out = _child(INSPECT_CHILD, str(path), "numpy,artifact_tools.formats.xgboost")
    assert out == {"framework": "huggingface", "loaded": []}
