"""Classes of real artifacts that broke inspection (issue 11): text that starts with a bracket, damaged or
unrecognised loose files, a ``code/`` folder alone, TorchScript of torch 1.0, new formats recognised by content."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import artifact_tools
from artifact_tools.errors import ArtifactError, CorruptArtifact, NotAnArtifact

from helpers import pack_tar_gz, run_cli


def _bert_folder() -> dict[str, bytes]:
    from safetensors.numpy import save

    config = {"model_type": "bert", "architectures": ["BertForSequenceClassification"], "vocab_size": 6,
              "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 8}
    weights = save({"bert.embeddings.word_embeddings.weight": np.zeros((6, 4), dtype=np.float32)})
    return {"config.json": json.dumps(config).encode(), "vocab.txt": b"[PAD]\n[unused0]\n[UNK]\n[CLS]\n[SEP]\nhi\n",
            "special_tokens_map.json": b'{"unk_token": "[UNK]"}', "model.safetensors": weights}


def test_bert_vocab_starting_with_a_bracket_is_text_not_broken_json(tmp_path):
    art = tmp_path / "model.tar.gz"
    art.write_bytes(pack_tar_gz(_bert_folder()))
    report = artifact_tools.inspect(art)
    kinds = {f.path: f.kind for f in report.files}
    assert kinds["vocab.txt"] == "text"
    assert report.framework == "huggingface"
    assert run_cli("inspect", str(art)).returncode == 0


def test_damaged_json_is_still_a_damaged_artifact(tmp_path):
    members = _bert_folder()
    members["config.json"] = members["config.json"][:-5]  # starts like JSON, ends broken
    art = tmp_path / "model.tar.gz"
    art.write_bytes(pack_tar_gz(members))
    with pytest.raises(CorruptArtifact, match="config.json"):
        artifact_tools.inspect(art)


@pytest.mark.parametrize("cut", [200, 900])
def test_truncated_tar_gz_is_a_damaged_archive(tmp_path, cut):
    whole = pack_tar_gz({"model.bin": np.random.default_rng(0).bytes(4000), "config.json": b"{}"})
    art = tmp_path / "model.tar.gz"
    art.write_bytes(whole[:cut])
    with pytest.raises(ArtifactError):
        artifact_tools.inspect(art)
    r = run_cli("inspect", str(art))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_random_bytes_named_like_an_archive_are_refused_in_one_sentence(tmp_path):
    art = tmp_path / "model.tar.gz"
    art.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(NotAnArtifact, match="matches no archive or model format"):
        artifact_tools.inspect(art)
    r = run_cli("inspect", str(art))
    assert r.returncode == 2 and "matches no archive or model format" in r.stderr


def test_folder_of_unknown_files_says_why_it_is_not_loadable(tmp_path):
    art = tmp_path / "model.tar.gz"
    art.write_bytes(pack_tar_gz({"notes.txt": b"hello\n", "data.bin": b"\x00\x01\x02"}))
    report = artifact_tools.inspect(art)
    assert report.loadable is False and "no model format" in report.not_loadable_reason


def test_code_folder_alone_is_never_the_root_prefix(tmp_path):
    art = tmp_path / "model.tar.gz"
    art.write_bytes(pack_tar_gz({"code/inference.py": b"import os\ndef model_fn(d):\n    return None\n",
                                 "code/requirements.txt": b"numpy\n"}))
    report = artifact_tools.inspect(art)
    assert report.root_prefix == ""
    assert report.entry_point == "code/inference.py"


def test_torchscript_of_torch_1_0_is_reported_and_refused_in_one_sentence(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # the layout torch 1.0's torch.jit.save wrote (torch/csrc/jit/export.cpp)
        z.writestr("net/version", "1\n")
        z.writestr("net/model.json", json.dumps({
            "protoVersion": "1", "producerName": "pytorch", "producerVersion": "1.0",
            "mainModule": {"name": "net"},
            "tensors": [{"dims": ["2", "3"], "dataType": "FLOAT", "data": {"key": "tensors/0"}}]}))
        z.writestr("net/code/net.py", "op_version_set = 0\ndef forward(self, x):\n  return x\n")
        z.writestr("net/tensors/0", b"\x00" * 24)
    art = tmp_path / "model.tar.gz"
    art.write_bytes(pack_tar_gz({"net.pth": buf.getvalue()}))
    report = artifact_tools.inspect(art)
    entry = next(m for m in report.models if m.format == "pytorch")
    assert entry.summary["format"] == "torchscript-1.0"
    assert entry.summary["tensors"][0]["shape"] == [2, 3]
    assert report.loadable is False and "torch 1.0" in report.not_loadable_reason
    r = run_cli("load", str(art))
    assert r.returncode == 2 and "torch 1.0" in r.stderr


# ---------------------------------------------------------------- artifacts made as real users and containers make them
# scripts/make_wild_fixtures.py builds each with the real framework and records the framework's own predictions.

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_wild_fixtures  # noqa: E402

_NEEDS = {"xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost", "onnx": "onnxruntime",
          "pytorch": "torch", "tensorflow": "tensorflow", "huggingface": "transformers", "sklearn": "sklearn"}


@pytest.fixture(scope="module")
def wild_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACT_TOOLS_CACHE", str(tmp_path_factory.mktemp("extracted")))
        yield


@pytest.fixture(scope="module")
def wild(tmp_path_factory):
    out = tmp_path_factory.mktemp("wild")
    built: dict[str, make_wild_fixtures.Case] = {}

    def get(name: str) -> make_wild_fixtures.Case:
        if name not in built:
            (out / name).mkdir()
            built[name] = make_wild_fixtures.BUILDERS[name](out / name)
        return built[name]

    return get


def _compare(case, pred) -> None:
    if case.kind == "labels":
        assert list(pred["label"]) == list(case.expected)
    else:
        np.testing.assert_allclose(np.asarray(pred), np.asarray(case.expected), rtol=case.rtol, atol=1e-6)


# Known gaps outside inspection, fixed where they live; strict, so that the fix turns these into failures to unmark.
_KNOWN: dict[str, str] = {}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=_KNOWN[n], strict=True))
                                  if n in _KNOWN else n for n in make_wild_fixtures.BUILDERS])
def test_wild_artifact_inspects_loads_and_predicts_like_its_framework(wild, wild_cache, name):
    import loaders

    case = wild(name)
    if case.framework in _NEEDS:
        pytest.importorskip(_NEEDS[case.framework])
    report = artifact_tools.inspect(case.path)
    assert (report.framework, report.layout, report.loadable) == (case.framework, case.layout, case.loadable), \
        report.not_loadable_reason
    assert report.loadable or report.not_loadable_reason
    r = run_cli("inspect", str(case.path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["loadable"] is case.loadable
    trust = ["--trust"] if case.trust else []
    sample = run_cli("load", str(case.path), "--sample", "-q", *trust)
    if not case.loadable:
        # the refusal of load is the report's reason, in one sentence
        assert sample.returncode == 2 and len(sample.stderr.strip().splitlines()) == 1
        assert case.reason in report.not_loadable_reason and case.reason in sample.stderr
        with pytest.raises(ArtifactError, match="no model file|another archive|download"):
            loaders.load(case.path, trust=case.trust)
        return
    model = loaders.load(case.path, trust=case.trust)
    if case.X is None:  # loads, but predicting needs what the artifact lacks: said in one sentence
        assert sample.returncode == 2 and case.reason in sample.stderr
        with pytest.raises(ArtifactError, match=case.reason):
            model.predict(np.zeros((1, 4), dtype=np.float32))
        return
    assert sample.returncode == 0, sample.stderr
    _compare(case, model.predict(case.X))


def test_code_only_artifact_names_what_it_downloads_and_its_requirements(wild):
    case = wild("code-only-hub")
    report = artifact_tools.inspect(case.path)
    entry = report.models[0]
    assert entry.format == "inference-code" and report.entry_point == "code/inference.py"
    assert any("distilbert/distilbert-base-uncased-finetuned-sst-2-english" in d for d in entry.summary["downloads"])
    assert any("$HF_MODEL_ID" in d for d in entry.summary["downloads"])
    warning = next(w for w in report.warnings if w.startswith("code/requirements.txt"))
    assert "2 package(s)" in warning and "transformers" in warning and "installs none" in warning


def test_requirements_are_reported_for_a_loadable_artifact_too(wild):
    report = artifact_tools.inspect(wild("torchscript-code").path)
    assert any(w.startswith("code/requirements.txt lists 1 package(s) (torchvision==0.15.2)") for w in report.warnings)


def test_downloads_read_from_literals_constants_and_boto3_calls():
    from artifact_tools.formats import python_script

    src = b'''
import boto3, os
from huggingface_hub import hf_hub_download, snapshot_download
BUCKET = "models-bucket"
URL = "https://example.com/weights.bin"
def model_fn(model_dir):
    snapshot_download(repo_id="org/repo")
    hf_hub_download("org/other", filename="w.safetensors")
    boto3.resource("s3").Bucket(BUCKET).download_file("k/model.pt", "/tmp/m.pt")
    boto3.client("s3").download_file(Bucket=BUCKET, Key=f"{os.environ['PREFIX']}/m.pt", Filename="/tmp/x")
    return URL
'''
    got = python_script.downloads(src)
    assert "snapshot_download('org/repo')" in got
    assert "hf_hub_download('org/other', 'w.safetensors')" in got
    assert "S3 key 'k/model.pt'" in got
    assert "s3://models-bucket/$PREFIX/m.pt" in got
    assert "https://example.com/weights.bin" in got
    assert python_script.downloads(b"def broken(:\n") == []
    reqs = python_script.requirements(b"# c\n-r other.txt\nnumpy==1.26  # pinned\n\ntorch\n")
    assert reqs == ["numpy==1.26", "torch"]
