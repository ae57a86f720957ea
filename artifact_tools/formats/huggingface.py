"""A Hugging Face ``transformers`` model folder, read as data (no transformers/torch import).

Facts used, with their sources (huggingface/transformers unless said otherwise):

- ``src/transformers/configuration_utils.py``: ``config.json`` holds ``model_type``, ``architectures``
  (model class names), ``id2label``/``label2id`` (JSON object keys are strings), ``torch_dtype``
  (renamed ``dtype`` by transformers 4.56+), ``transformers_version`` and, for models whose code is
  not in transformers, ``auto_map`` (``{"AutoModel...": "module.Class"}``; a value may be a list, or
  ``"repo--module.Class"`` pointing at another Hub repository). Loading such a model needs
  ``trust_remote_code=True``: it imports the ``*.py`` modules shipped in the folder
  (``src/transformers/dynamic_module_utils.py``). ``tokenizer_config.json`` may carry its own
  ``auto_map`` and names ``tokenizer_class``.
- ``src/transformers/utils/__init__.py``: weight file names ``model.safetensors``,
  ``model.safetensors.index.json`` (sharded; ``{"metadata": {"total_size"}, "weight_map":
  {tensor: shard file}}``), ``pytorch_model.bin`` (+ ``.index.json``, a torch pickle, never read
  here), ``tf_model.h5`` (+ ``.index.json``), ``flax_model.msgpack``.
- ``src/transformers/tokenization_utils_base.py`` and the per-model ``VOCAB_FILES_NAMES``: tokenizer
  files ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``,
  ``added_tokens.json``, ``vocab.txt``, ``vocab.json``, ``merges.txt``, ``spiece.model``,
  ``sentencepiece.bpe.model``, ``tokenizer.model``.
- Task from architecture: ``src/transformers/pipelines/__init__.py`` ``SUPPORTED_TASKS`` names, for each
  pipeline task, the auto classes whose mappings (``src/transformers/models/auto/modeling_auto.py``,
  ``MODEL_FOR_*_MAPPING_NAMES``) list the architectures it runs. Architecture names follow the
  ``<Model><Head>`` convention, so the head suffix gives the task; ``TF``/``Flax`` prefixes are
  dropped. Where one suffix serves several tasks the config decides: ``ForSequenceClassification`` on
  speech models (wav2vec2 family: their configs carry ``conv_dim``) is audio classification, and
  ``ForConditionalGeneration`` is speech recognition for speech models (``num_mel_bins``, ``conv_dim``
  or ``input_feat_per_channel`` in the config), text-to-audio with an ``audio_encoder`` config,
  image-text-to-text with a ``vision_config``, else text2text generation. Checked against
  transformers 4.57's own mappings, this names a task the architecture really serves for about
  95% of them; the rest are rarer heads (zero-shot detection, visual/table QA...).
- Parameter counts and dtypes come from the safetensors headers (:mod:`.safetensors`).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import CorruptArtifact, NotAnArtifact
from ..filetree import FileTree
from . import safetensors

CONFIG = "config.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
WEIGHT_FILES = {
    SAFE_WEIGHTS: "safetensors",
    "pytorch_model.bin": "pytorch-pickle",
    "tf_model.h5": "tf-h5",
    "flax_model.msgpack": "flax-msgpack",
}
INDEX_FILES = {
    SAFE_INDEX: "safetensors",
    "pytorch_model.bin.index.json": "pytorch-pickle",
    "tf_model.h5.index.json": "tf-h5",
}
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model",
)
MAX_JSON_BYTES = 64 * 1024 * 1024
"""Largest config / index JSON read (sharded indexes of very large models are a few MB)."""

# Head suffix -> pipeline task, first match wins (see module docstring for the source). A bare
# ``...Model`` is the base model, which the feature-extraction pipeline runs (AutoModel).
_TASK_BY_SUFFIX = (
    ("ForImageClassificationWithTeacher", "image-classification"),
    ("ForZeroShotImageClassification", "zero-shot-image-classification"),
    ("ForDocumentQuestionAnswering", "document-question-answering"),
    ("ForVisualQuestionAnswering", "visual-question-answering"),
    ("ForTableQuestionAnswering", "table-question-answering"),
    ("ForQuestionAnsweringSimple", "question-answering"),
    ("ForSequenceClassification", "text-classification"),
    ("ForUniversalSegmentation", "image-segmentation"),
    ("ForInstanceSegmentation", "image-segmentation"),
    ("ForSemanticSegmentation", "image-segmentation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForZeroShotObjectDetection", "zero-shot-object-detection"),
    ("ForImageClassification", "image-classification"),
    ("ForAudioClassification", "audio-classification"),
    ("ForVideoClassification", "video-classification"),
    ("ForImageSuperResolution", "image-to-image"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageTextToText", "image-text-to-text"),
    ("ForTextToText", "text2text-generation"),
    ("ForVisionText2Text", "image-text-to-text"),
    ("ForDepthEstimation", "depth-estimation"),
    ("ForKeypointMatching", "keypoint-matching"),
    ("ForObjectDetection", "object-detection"),
    ("ForMaskGeneration", "mask-generation"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("ForTextToWaveform", "text-to-audio"),
    ("ForTextToSpeech", "text-to-audio"),
    ("ForSpeechToText", "automatic-speech-recognition"),
    ("ForSegmentation", "image-segmentation"),
    ("ForVision2Seq", "image-to-text"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("ForCTC", "automatic-speech-recognition"),
    ("SpeechEncoderDecoderModel", "automatic-speech-recognition"),
    ("VisionEncoderDecoderModel", "image-to-text"),
    ("EncoderDecoderModel", "text2text-generation"),
    ("WithLMHeadModel", "fill-mask"),
    ("LMHeadModel", "text-generation"),
    ("ModelWithLMHead", "text-generation"),
    ("Model", "feature-extraction"),
)
_SPEECH_CONFIG_KEYS = ("conv_dim", "num_mel_bins", "input_feat_per_channel")


def is_hf_model_dir(tree: FileTree) -> bool:
    """Whether the tree's root ``config.json`` is a transformers config (has ``model_type`` or
    ``architectures``)."""
    try:
        config = _read_json(tree, CONFIG)
    except (KeyError, CorruptArtifact):
        return False
    return isinstance(config, dict) and ("model_type" in config or "architectures" in config)


def summarize(tree: FileTree) -> dict:
    """Describe a Hugging Face model folder (the root of ``tree``).

    Returns ``{"model_type", "architectures", "task", "num_labels", "id2label", "label2id",
    "torch_dtype", "transformers_version", "auto_map", "tokenizer_auto_map", "remote_code",
    "python_files", "tokenizer_files", "tokenizer_class", "weights": [{"file", "format", "size",
    ...safetensors counts}], "index": {...} | None, "parameter_count", "dtypes"}``.
    ``parameter_count``/``dtypes`` sum the safetensors headers of the model's weights (the shards of
    ``model.safetensors.index.json``, else ``model.safetensors``); they are ``None`` unless every one
    of those files is present with its header readable. A weights file whose content the tree does
    not hold (a ``MappingTree`` given its size only) is listed without counts; a ``MappingTree`` may
    hold just the first ``safetensors.header_length`` bytes of a safetensors file.
    """
    try:
        config = _read_json(tree, CONFIG)
    except KeyError:
        raise NotAnArtifact("the folder has no config.json, so it is not a Hugging Face model") from None
    if not (isinstance(config, dict) and ("model_type" in config or "architectures" in config)):
        raise NotAnArtifact("config.json has neither model_type nor architectures, so it is not a transformers config")
    names = tree.names()
    listed = config.get("architectures")
    architectures = [a for a in listed if isinstance(a, str)] if isinstance(listed, list) else []
    id2label = config.get("id2label") if isinstance(config.get("id2label"), dict) else None
    tokenizer_config = _optional_json(tree, names, "tokenizer_config.json")
    auto_map = config.get("auto_map") if isinstance(config.get("auto_map"), dict) else None
    tokenizer_auto_map = (tokenizer_config.get("auto_map") if isinstance(tokenizer_config.get("auto_map"), dict)
                          else None)

    weights, index = _weights(tree, names)
    primary = (index["shards"] if index and index["format"] == "safetensors"
               else [SAFE_WEIGHTS] if SAFE_WEIGHTS in names else [])
    counted = [w for w in weights if w["file"] in primary and "parameter_count" in w]
    complete = bool(primary) and len(counted) == len(primary)
    dtypes: dict[str, int] = {}
    for w in counted:
        for dtype, n in w["dtypes"].items():
            dtypes[dtype] = dtypes.get(dtype, 0) + n
    return {
        "model_type": config.get("model_type"),
        "architectures": architectures,
        "task": task_for(architectures[0], config) if architectures else None,
        "num_labels": len(id2label) if id2label is not None else None,
        "id2label": id2label,
        "label2id": config.get("label2id") if isinstance(config.get("label2id"), dict) else None,
        "torch_dtype": config.get("torch_dtype") or config.get("dtype"),
        "transformers_version": config.get("transformers_version"),
        "auto_map": auto_map,
        "tokenizer_auto_map": tokenizer_auto_map,
        "remote_code": bool(auto_map or tokenizer_auto_map),
        "python_files": [n for n in names if n.endswith(".py")],
        "tokenizer_files": [n for n in TOKENIZER_FILES if n in names],
        "tokenizer_class": tokenizer_config.get("tokenizer_class"),
        "weights": weights,
        "index": index,
        "parameter_count": sum(dtypes.values()) if complete else None,
        "dtypes": dict(sorted(dtypes.items())) if complete else None,
    }


def task_for(architecture: str, config: dict | None = None) -> str | None:
    """The pipeline task an architecture class name serves (``None`` when its suffix is unknown)."""
    name = architecture
    for prefix in ("TF", "Flax"):
        if name.startswith(prefix) and name[len(prefix) : len(prefix) + 1].isupper():
            name = name[len(prefix) :]
    config = config or {}
    speech = any(k in config for k in _SPEECH_CONFIG_KEYS)
    for suffix, task in _TASK_BY_SUFFIX:
        if name.endswith(suffix):
            if suffix == "ForSequenceClassification" and speech:
                return "audio-classification"
            if suffix == "ForConditionalGeneration":
                if speech:
                    return "automatic-speech-recognition"
                if isinstance(config.get("audio_encoder"), dict):
                    return "text-to-audio"
                if isinstance(config.get("vision_config"), dict):
                    return "image-text-to-text"
            return task
    return None


def _read_json(tree: FileTree, name: str) -> Any:
    size = tree.size(name)
    if size > MAX_JSON_BYTES:
        raise CorruptArtifact(f"{name} is {size} bytes, too large for a model config")
    try:
        return json.loads(tree.read(name))
    except (ValueError, RecursionError) as e:
        raise CorruptArtifact(f"{name} is not valid JSON ({str(e)[:80]})") from None


def _optional_json(tree: FileTree, names: list[str], name: str) -> dict:
    if name not in names:
        return {}
    try:
        value = _read_json(tree, name)
    except KeyError:  # listed with its size only (content not kept)
        return {}
    return value if isinstance(value, dict) else {}


def _weights(tree: FileTree, names: list[str]) -> tuple[list[dict], dict | None]:
    index = None
    shards: list[str] = []
    for index_name, fmt in INDEX_FILES.items():
        if index_name not in names:
            continue
        data = _optional_json(tree, names, index_name)
        weight_map = data.get("weight_map")
        if not isinstance(weight_map, dict):
            weight_map = {}
        files = sorted({f for f in weight_map.values() if isinstance(f, str)})
        if index is None:
            meta = data.get("metadata")
            if not isinstance(meta, dict):
                meta = {}
            index = {"file": index_name, "format": fmt, "shards": files,
                     "missing_shards": [f for f in files if f not in names],
                     "tensor_count": len(weight_map), "total_size": meta.get("total_size")}
        shards.extend(files)
    candidates = [n for n in names if n in WEIGHT_FILES or n in shards or (n.endswith(".safetensors") and "/" not in n)]
    return [_weight_file(tree, n) for n in dict.fromkeys(candidates)], index


def _weight_file(tree: FileTree, name: str) -> dict:
    size = tree.size(name)
    entry: dict[str, Any] = {"file": name, "format": WEIGHT_FILES.get(name), "size": size}
    try:
        head = tree.read_head(name, 16)
    except KeyError:  # listed with its size only
        return entry
    if safetensors.is_safetensors(head):
        entry["format"] = "safetensors"
        try:
            header = tree.read_head(name, safetensors.header_length(head))
            entry.update(safetensors.summarize(safetensors.read_header(header, size)))
        except CorruptArtifact as e:
            raise CorruptArtifact(f"{name}: {e}") from None
    elif name.endswith(".safetensors"):
        raise CorruptArtifact(f"{name} does not start with a safetensors header")
    elif head[:8] == b"\x89HDF\r\n\x1a\n":
        entry["format"] = "tf-h5"
    elif head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        entry["format"] = "pytorch-pickle"
    return entry


