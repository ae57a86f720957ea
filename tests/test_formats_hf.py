"""Hugging Face folders and safetensors headers, checked against real transformers / torch / safetensors.

Tiny models are built offline from configs at test time (no Hub access) and saved with
``save_pretrained``; parameter counts and dtypes are compared with the live torch models, tasks with
transformers' own pipeline-to-architecture mappings, headers with files written by the safetensors
library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artifact_tools.errors import CorruptArtifact, NotAnArtifact
from artifact_tools.filetree import DirTree, MappingTree
from artifact_tools.formats import huggingface, safetensors

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here: fail fast instead of retrying the Hub
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SAFETENSORS_NAME = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _bert_config(**kwargs):
    return transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=24, **kwargs,
    )


def _tokenizer(directory: Path) -> tuple[object, list[str]]:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "plot"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )
    saved = tok.save_pretrained(str(directory))
    return tok, sorted(Path(p).name for p in saved if Path(p).is_file())


def _expected_counts(model) -> tuple[int, dict[str, int]]:
    dtypes: Counter = Counter()
    for p in model.parameters():  # shared (tied) parameters are yielded once, as save_pretrained stores them once
        dtypes[SAFETENSORS_NAME[p.dtype]] += p.numel()
    return sum(dtypes.values()), dict(dtypes)


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory) -> dict:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf_models")
    out: dict = {}

    labels = {0: "negative", 1: "neutral", 2: "positive"}
    config = _bert_config(id2label=labels, label2id={v: k for k, v in labels.items()})
    cls = transformers.BertForSequenceClassification(config)
    cls.save_pretrained(str(root / "bert_cls"), safe_serialization=True)
    tok, tok_files = _tokenizer(root / "bert_cls")
    out["bert_cls"] = {"model": cls, "tokenizer": tok, "tokenizer_files": tok_files}

    tokens = transformers.BertForTokenClassification(_bert_config(num_labels=5))
    tokens.save_pretrained(str(root / "sharded"), safe_serialization=True, max_shard_size="10KB")
    out["sharded"] = {"model": tokens}

    gpt2_config = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    gpt2 = transformers.GPT2LMHeadModel(gpt2_config).to(torch.bfloat16)
    gpt2.save_pretrained(str(root / "gpt2_bf16"), safe_serialization=True)
    gpt2.save_pretrained(str(root / "gpt2_bin"), safe_serialization=False)
    out["gpt2_bf16"] = out["gpt2_bin"] = {"model": gpt2}

    auto_map = {"AutoConfig": "configuration_tiny.TinyConfig", "AutoModel": "modeling_tiny.TinyModel"}
    remote = transformers.BertModel(_bert_config(auto_map=auto_map)).half()
    remote.save_pretrained(str(root / "remote"), safe_serialization=True)
    for module in ("configuration_tiny.py", "modeling_tiny.py"):
        (root / "remote" / module).write_text("raise SystemExit('artifact code must never run during inspection')\n")
    out["remote"] = {"model": remote, "auto_map": auto_map,
                     "python_files": ["configuration_tiny.py", "modeling_tiny.py"]}
    out["root"] = root
    return out


def _tasks_serving(architecture: str) -> set[str]:
    """Pipeline tasks whose auto classes list this architecture (transformers' own mappings)."""
    from transformers.pipelines import SUPPORTED_TASKS

    tasks = set()
    for task, spec in SUPPORTED_TASKS.items():
        for auto in spec["pt"]:
            for names in auto._model_mapping._model_mapping.values():
                if architecture in (names if isinstance(names, (list, tuple)) else [names]):
                    tasks.add(task)
    return tasks


# ---------------------------------------------------------------------------------------------
# folder summaries vs the live models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bert_cls", "sharded", "gpt2_bf16", "remote"])
def test_counts_dtypes_and_config_match_the_live_model(hf_models, name):
    model = hf_models[name]["model"]
    tree = DirTree(hf_models["root"] / name)
    assert huggingface.is_hf_model_dir(tree)
    summary = huggingface.summarize(tree)
    count, dtypes = _expected_counts(model)
    assert summary["parameter_count"] == count
    assert summary["dtypes"] == dtypes
    assert summary["model_type"] == model.config.model_type
    assert summary["architectures"] == [type(model).__name__]
    assert summary["task"] in _tasks_serving(type(model).__name__)
    # transformers saves id2label only when it differs from its default (two generic labels)
    labels = model.config.to_diff_dict().get("id2label")
    assert summary["id2label"] == ({str(k): v for k, v in labels.items()} if labels else None)
    assert summary["num_labels"] == (model.config.num_labels if labels else None)
    assert summary["torch_dtype"] == str(model.dtype).removeprefix("torch.")
    assert summary["transformers_version"] == transformers.__version__


def test_sequence_classification_labels_and_tokenizer(hf_models):
    entry = hf_models["bert_cls"]
    summary = huggingface.summarize(DirTree(hf_models["root"] / "bert_cls"))
    assert summary["task"] == "text-classification"
    assert summary["label2id"] == entry["model"].config.label2id
    assert sorted(summary["tokenizer_files"]) == entry["tokenizer_files"]
    assert summary["tokenizer_class"] == type(entry["tokenizer"]).__name__
    assert summary["remote_code"] is False and summary["python_files"] == []
    (weights,) = summary["weights"]
    assert weights["file"] == "model.safetensors" and weights["format"] == "safetensors"
    assert weights["tensor_count"] == len(entry["model"].state_dict())  # no tied weights in BERT classifiers


def test_sharded_index(hf_models):
    directory = hf_models["root"] / "sharded"
    shards = sorted(p.name for p in directory.glob("*.safetensors"))
    assert len(shards) > 1  # the premise: save_pretrained really sharded it
    summary = huggingface.summarize(DirTree(directory))
    index = summary["index"]
    assert index["file"] == "model.safetensors.index.json"
    assert index["shards"] == shards and index["missing_shards"] == []
    assert sum(w["tensor_count"] for w in summary["weights"]) == index["tensor_count"]
    written = json.loads((directory / "model.safetensors.index.json").read_text())
    assert index["total_size"] == written["metadata"]["total_size"]


def test_missing_shard_leaves_count_unknown(hf_models):
    directory = hf_models["root"] / "sharded"
    files = {p.name: p.read_bytes() for p in directory.iterdir()}
    dropped = sorted(n for n in files if n.endswith(".safetensors"))[0]
    del files[dropped]
    summary = huggingface.summarize(MappingTree(files))
    assert summary["index"]["missing_shards"] == [dropped]
    assert summary["parameter_count"] is None and summary["dtypes"] is None


def test_pytorch_pickle_weights_are_listed_not_read(hf_models):
    summary = huggingface.summarize(DirTree(hf_models["root"] / "gpt2_bin"))
    assert [(w["file"], w["format"]) for w in summary["weights"]] == [("pytorch_model.bin", "pytorch-pickle")]
    assert summary["parameter_count"] is None
    assert summary["task"] == "text-generation"


def test_remote_code_is_flagged(hf_models):
    entry = hf_models["remote"]
    summary = huggingface.summarize(DirTree(hf_models["root"] / "remote"))
    assert summary["remote_code"] is True
    assert summary["auto_map"] == entry["auto_map"]
    assert summary["python_files"] == entry["python_files"]
    assert summary["task"] == "feature-extraction"


def test_streaming_tree_with_header_prefix_only(hf_models):
    """An inspection that kept only ``header_length`` bytes of the weights gets the same counts."""
    directory = hf_models["root"] / "bert_cls"
    weights = (directory / "model.safetensors").read_bytes()
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "model.safetensors"}
    files["model.safetensors"] = weights[: safetensors.header_length(weights[:8])]
    tree = MappingTree(files, sizes={"model.safetensors": len(weights)})
    assert huggingface.summarize(tree)["parameter_count"] == _expected_counts(hf_models["bert_cls"]["model"])[0]
    sized_only = MappingTree({k: v for k, v in files.items() if k != "model.safetensors"},
                             sizes={"model.safetensors": len(weights)})
    summary = huggingface.summarize(sized_only)
    assert summary["parameter_count"] is None
    assert summary["weights"] == [{"file": "model.safetensors", "format": "safetensors", "size": len(weights)}]


def test_not_hf_and_broken_folders(hf_models, tmp_path):
    assert not huggingface.is_hf_model_dir(MappingTree({}))
    assert not huggingface.is_hf_model_dir(MappingTree({"config.json": b'{"class_name": "Sequential", "config": {}}'}))
    assert not huggingface.is_hf_model_dir(MappingTree({"config.json": b'{"model_type": '}))
    with pytest.raises(NotAnArtifact):
        huggingface.summarize(MappingTree({"weights.bin": b"x"}))
    with pytest.raises(CorruptArtifact):
        huggingface.summarize(MappingTree({"config.json": b'{"model_type": '}))
    files = {p.name: p.read_bytes() for p in (hf_models["root"] / "bert_cls").iterdir()}
    files["model.safetensors"] = files["model.safetensors"][:-3]
    with pytest.raises(CorruptArtifact, match="model.safetensors"):
        huggingface.summarize(MappingTree(files))


# ---------------------------------------------------------------------------------------------
# task inference vs transformers' own mappings
# ---------------------------------------------------------------------------------------------


def _all_architectures() -> dict[str, set[str]]:
    from transformers.pipelines import SUPPORTED_TASKS

    found: dict[str, set[str]] = {}
    for task, spec in SUPPORTED_TASKS.items():
        for auto in spec["pt"]:
            for names in auto._model_mapping._model_mapping.values():
                for name in names if isinstance(names, (list, tuple)) else [names]:
                    found.setdefault(name, set()).add(task)
    return found


def test_task_from_suffix_agrees_with_transformers_mappings():
    config_dependent = ("ForConditionalGeneration", "ForSequenceClassification")
    checked = agreed = 0
    for architecture, tasks in _all_architectures().items():
        if architecture.endswith(config_dependent):
            continue
        task = huggingface.task_for(architecture)
        if task is None:
            continue
        checked += 1
        agreed += task in tasks
    assert checked > 500
    assert agreed / checked > 0.97, (agreed, checked)


@pytest.mark.parametrize(
    "config_class, architecture",
    [
        ("WhisperConfig", "WhisperForConditionalGeneration"),
        ("Speech2TextConfig", "Speech2TextForConditionalGeneration"),
        ("LlavaConfig", "LlavaForConditionalGeneration"),
        ("PaliGemmaConfig", "PaliGemmaForConditionalGeneration"),
        ("T5Config", "T5ForConditionalGeneration"),
        ("BartConfig", "BartForConditionalGeneration"),
        ("Wav2Vec2Config", "Wav2Vec2ForSequenceClassification"),
        ("HubertConfig", "HubertForSequenceClassification"),
        ("RobertaConfig", "RobertaForSequenceClassification"),
        ("ViTConfig", "TFViTForImageClassification"),
    ],
)
def test_task_uses_the_config_where_the_suffix_is_ambiguous(config_class, architecture):
    config = getattr(transformers, config_class)().to_dict()
    assert huggingface.task_for(architecture, config) in _tasks_serving(architecture.removeprefix("TF"))


# ---------------------------------------------------------------------------------------------
# safetensors headers vs the safetensors library
# ---------------------------------------------------------------------------------------------

_TORCH_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.uint8,
                 torch.int16, torch.int32, torch.int64, torch.bool]
_tensors = st.dictionaries(
    st.text(alphabet="abcdefghij._0123456789", min_size=1, max_size=12),
    st.tuples(st.sampled_from(_TORCH_DTYPES), st.lists(st.integers(0, 4), max_size=3)),
    min_size=1,  # safetensors 0.8 writes invalid JSON for no tensors with empty metadata
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(spec=_tensors, metadata=st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
def test_header_summary_matches_the_tensors_written(spec, metadata):
    from safetensors.torch import save

    tensors = {name: torch.zeros(shape, dtype=dtype) for name, (dtype, shape) in spec.items()}
    data = save(tensors, metadata=metadata)
    header = safetensors.read_header(data)
    summary = safetensors.summarize(header)
    assert summary["tensor_count"] == len(tensors)
    assert summary["parameter_count"] == sum(t.numel() for t in tensors.values())
    expected_dtypes: Counter = Counter()
    for t in tensors.values():
        expected_dtypes[str(t.dtype).removeprefix("torch.")] += t.numel()
    ours = {_TORCH_NAME[k]: v for k, v in summary["dtypes"].items()}
    assert {k: v for k, v in ours.items() if v} == {k: v for k, v in expected_dtypes.items() if v}
    assert summary["metadata"] == metadata
    assert safetensors.header_length(data[:8]) <= len(data)
    assert safetensors.is_safetensors(data[:16])


_TORCH_NAME = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I8": "int8", "U8": "uint8",
               "I16": "int16", "I32": "int32", "I64": "int64", "BOOL": "bool"}


@pytest.fixture(scope="session")
def small_safetensors() -> bytes:
    from safetensors.torch import save

    torch.manual_seed(1)
    return save({"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.float16), "ids": torch.arange(5)},
                metadata={"format": "pt"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_safetensors_always_raise(small_safetensors, data):
    cut = data.draw(st.integers(0, len(small_safetensors) - 1))
    with pytest.raises(CorruptArtifact):
        safetensors.read_header(small_safetensors[:cut])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_safetensors_header_never_escapes_corrupt_artifact(small_safetensors, data):
    blob = bytearray(small_safetensors)
    end = safetensors.header_length(small_safetensors[:8])
    for _ in range(data.draw(st.integers(1, 3))):
        blob[data.draw(st.integers(0, end - 1))] ^= data.draw(st.integers(1, 255))
    try:
        header = safetensors.read_header(bytes(blob))
    except CorruptArtifact:
        return
    assert isinstance(safetensors.summarize(header)["parameter_count"], int)


def test_header_validation_rules(small_safetensors):
    def build(header: dict, buffer: int) -> bytes:
        raw = json.dumps(header).encode()
        return len(raw).to_bytes(8, "little") + raw + b"\0" * buffer

    good = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    assert safetensors.read_header(build(good, 8)) == good
    bad = {
        "gap": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12),
        "overlap": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                     "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}, 8),
        "size mismatch": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8),
        "buffer longer": (good, 9),
        "negative dim": ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8),
        "bool offset": ({"a": {"dtype": "U8", "shape": [1], "data_offsets": [False, True]}}, 1),
        "overflow": ({"a": {"dtype": "U8", "shape": [2**40, 2**40], "data_offsets": [0, 1]}}, 1),
        "not object": ([1, 2], 0),
        "metadata not strings": ({"__metadata__": {"k": 1}}, 0),
    }
    for label, (header, buffer) in bad.items():
        try:
            safetensors.read_header(build(header, buffer))
        except CorruptArtifact:
            continue
        pytest.fail(f"{label}: accepted")
    with pytest.raises(CorruptArtifact):
        safetensors.header_length((200_000_000).to_bytes(8, "little"))
    with pytest.raises(CorruptArtifact):
        safetensors.header_length(b"\x01\x00")
    header_bytes = safetensors.header_length(small_safetensors[:8])
    # a caller holding only the header prefix passes the real file size
    prefix_only = safetensors.read_header(small_safetensors[:header_bytes], len(small_safetensors))
    assert prefix_only == safetensors.read_header(small_safetensors)
    with pytest.raises(CorruptArtifact):
        safetensors.read_header(small_safetensors[:header_bytes], len(small_safetensors) + 1)


# ---------------------------------------------------------------------------------------------
# no framework is imported by the readers
# ---------------------------------------------------------------------------------------------


def test_readers_import_no_framework(hf_models):
    script = f"""
import json, sys
from artifact_tools.filetree import DirTree
from artifact_tools.formats import huggingface
for name in ("bert_cls", "sharded", "gpt2_bin", "remote"):
    tree = DirTree({str(hf_models["root"])!r} + "/" + name)
    assert huggingface.is_hf_model_dir(tree)
    huggingface.summarize(tree)
heavy = {{"tensorflow", "torch", "transformers", "safetensors", "tokenizers", "jax", "keras"}}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
