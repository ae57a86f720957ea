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
