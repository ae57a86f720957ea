"""Hugging Face ``transformers`` loader (extra ``huggingface``; TensorFlow weights also need ``tensorflow``).

Strictly offline: every ``from_pretrained`` gets ``local_files_only=True`` and the pipeline is built from the
loaded model and tokenizer objects, so nothing is fetched from the Hub. No environment variable is set: the
process's ``HF_HUB_OFFLINE`` and log settings are the application's own.

Weights (facts: huggingface/transformers ``src/transformers/modeling_utils.py`` and
``modeling_tf_utils.py``): ``model.safetensors`` (or its sharded index) is preferred, then ``pytorch_model.bin``,
which transformers reads with ``torch.load(weights_only=True)`` (passed explicitly here); a folder with only
``tf_model.h5`` loads into the ``TFAutoModel*`` class (Keras 2 via ``tf-keras``). Flax-only folders are refused.
Models whose code ships in the folder (``auto_map`` in ``config.json`` or ``tokenizer_config.json``) need
``trust=True``, which becomes ``trust_remote_code=True``; without it nothing from the folder is imported.

The task is the ``task=`` option, else the ``HF_TASK`` environment variable (the SageMaker Hugging Face
Inference Toolkit's setting, aws/sagemaker-huggingface-inference-toolkit ``README.md``), else the task of the
config's first architecture (``formats/huggingface.py``). The model class is the first auto class transformers'
pipeline registry (``src/transformers/pipelines/__init__.py``, ``SUPPORTED_TASKS``) lists for that task that
accepts the config, and ``predict`` runs the task's ``transformers.pipeline`` over model + tokenizer.

``predict`` takes a text, a list/array/Series of texts, a DataFrame (its ``inputs`` or ``text`` column, or its
only column) or the toolkit's JSON body ``{"inputs": ..., "parameters": {...}}`` (parameters go to the
pipeline). It returns:

- text-classification: a DataFrame with columns ``label`` and ``score`` (the top label of each text);
- feature-extraction: a numpy array (texts x hidden size), the mean of each text's token embeddings;
- tasks giving one list of dicts per input (token-classification, fill-mask, text-generation...): a DataFrame
  of those dicts with an ``input`` column holding the input's position;
- other tasks giving one dict per input: a DataFrame of those dicts; anything else: the pipeline's output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from artifact_tools.errors import ArtifactError, NotLoadable, TrustRequired
from artifact_tools.row_wise import ROW_WISE_TASKS

from .base import LoadedModel, newer_version_warning, parse_options, require

_TOOLKIT_TASK_VARIABLE = "HF_TASK"
_NO_LIMIT = 10**9
"""Tokenizers without a known maximum length report a huge ``model_max_length`` (transformers
``tokenization_utils_base.py``, ``VERY_LARGE_INTEGER``); at or above this there is nothing to truncate to."""


@dataclass(frozen=True)
class HuggingFaceOptions:
    """``task``: the pipeline task (default: ``$HF_TASK``, else the task of the config's architecture)."""

    task: str | None = None


OPTIONS = HuggingFaceOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the model folder the report names with its task's auto class; options: :class:`HuggingFaceOptions`."""
    task = parse_options(HuggingFaceOptions, options, "Hugging Face artifacts").task
    entry = report.model("huggingface")
    if entry is None:
        raise NotLoadable("the report names no Hugging Face model folder")
    summary = entry.summary
    folder = root / PurePosixPath(entry.path).parent
    remote = {k: summary[k] for k in ("auto_map", "tokenizer_auto_map") if summary.get(k)}
    if remote and not trust:
        raise TrustRequired(f"the model ships its own code (auto_map {remote}); pass trust=True (CLI: --trust) "
                            "to let transformers import it", [f"remote code: {remote}"])
    task = task or os.environ.get(_TOOLKIT_TASK_VARIABLE) or summary.get("task")
    if not task:
        raise NotLoadable("config.json names no architecture with a known task; pass task=... or set HF_TASK")
    framework = _weights_framework(summary)
    if framework == "pt":
        require("torch", "huggingface")
    else:
        require("tensorflow", "tensorflow")
        require("tf_keras", "tensorflow")
    transformers = require("transformers", "huggingface")
    from transformers.pipelines import PipelineException, check_task

    try:
        task, defaults, _ = check_task(task)
    except KeyError:
        raise ArtifactError(f"transformers {transformers.__version__} has no pipeline task {task!r}") from None
    warning = newer_version_warning("transformers", summary.get("transformers_version"), transformers.__version__)
    hub = {"local_files_only": True, "trust_remote_code": bool(trust)}
    try:
        model = _from_pretrained(defaults.get(framework) or (), folder, task, framework,
                                 {**hub, "weights_only": True} if framework == "pt" else hub)
    except NotLoadable as e:
        raise NotLoadable(f"{e}; {warning}" if warning else str(e)) from None
    tokenizer = None
    if summary.get("tokenizer_files"):
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), **hub)
        except (OSError, ValueError) as e:
            raise NotLoadable(f"the tokenizer files cannot be loaded: {_first_line(e)}") from None
    dropped = _fit_tokenizer_to_model(tokenizer, model, framework)
    info: dict[str, Any] = {"task": task, "framework": framework, "model_class": type(model).__name__,
                            "transformers_version_saved": summary.get("transformers_version"),
                            "transformers_version_installed": transformers.__version__}
    if warning:
        info["warning"] = warning
    if dropped:
        info["tokenizer_inputs_dropped"] = dropped
    # padded batches keep each text's answer only when the model is told where the padding is
    info["masked_padding"] = "attention_mask" in (getattr(tokenizer, "model_input_names", None) or ())
    try:
        pipe = transformers.pipeline(task, model=model, tokenizer=tokenizer, framework=framework)
    except (OSError, ValueError, KeyError, TypeError, PipelineException) as e:  # e.g. no tokenizer / processor
        reason = f"the {task} pipeline cannot be built from this folder: {_first_line(e)}"
        info["predict_unavailable"] = reason
        pipe = None
    return LoadedModel(model, "huggingface", _predictor(pipe, task, info.get("predict_unavailable")), info=info,
                       sample_fn=_sampler(task, model.config, tokenizer))


def _fit_tokenizer_to_model(tokenizer: Any, model: Any, framework: str) -> list[str]:
    """Make ``tokenizer`` emit only the inputs the model's forward takes; returns the names it no longer emits.

    A tokenizer emits the names in its ``model_input_names`` (``token_type_ids`` and ``attention_mask`` are
    returned when listed there: transformers ``tokenization_utils_base.py`` ``_pad`` and
    ``tokenization_utils_fast.py`` ``_convert_encoding``), and the pipelines call ``model(**inputs)``. A BERT
    tokenizer paired with a model without segment embeddings (DistilBERT, RoBERTa-style heads) lists
    ``token_type_ids``, which that model's ``forward`` (``call`` for TensorFlow) rejects. A forward taking
    ``**kwargs`` accepts every name and nothing is dropped; neither is the first name (the main input).
    """
    import inspect

    names = list(getattr(tokenizer, "model_input_names", None) or [])
    forward = getattr(model, "call" if framework == "tf" else "forward", None)
    if not names or forward is None:
        return []
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) or names[0] not in params:
        return []
    kept = [n for n in names if n in params]
    if len(kept) < len(names):
        tokenizer.model_input_names = kept
    return [n for n in names if n not in params]


def _weights_framework(summary: dict) -> str:
    formats = {w.get("format") for w in summary.get("weights") or []}
    if summary.get("index"):
        formats.add(summary["index"].get("format"))
    if formats & {"safetensors", "pytorch-pickle"}:
        return "pt"
    if "tf-h5" in formats:
        return "tf"
    if "flax-msgpack" in formats:
        raise NotLoadable("the folder holds only Flax weights (flax_model.msgpack); artifact-tools loads "
                          "PyTorch or TensorFlow weights")
    raise NotLoadable("the folder holds no weights file (model.safetensors, pytorch_model.bin, tf_model.h5)")


def _from_pretrained(classes, folder: Path, task: str, framework: str, kwargs: dict):
    """The first auto class of the task that accepts the config (they raise ValueError for foreign configs)."""
    errors = []
    for cls in classes:
        try:
            return cls.from_pretrained(str(folder), **kwargs)
        except ValueError as e:
            errors.append(_first_line(e))
        except OSError as e:
            raise NotLoadable(f"the model cannot be loaded from the folder: {_first_line(e)}") from None
    which = "TensorFlow" if framework == "tf" else "PyTorch"
    raise NotLoadable(f"transformers has no {which} model class for the {task} task that accepts this config"
                      + (f" ({errors[0]})" if errors else ""))


# ------------------------------------------------------------------------------------------------ samples

_TEXT_TASKS = {"text-classification", "token-classification", "fill-mask", "question-answering", "feature-extraction",
               "text-generation", "text2text-generation", "summarization", "translation",
               "zero-shot-classification"}
_GENERATING_TASKS = {"text-generation", "text2text-generation", "summarization", "translation"}
_IMAGE_TASKS = {"image-classification", "image-segmentation", "object-detection", "image-feature-extraction",
                "depth-estimation", "image-to-text", "zero-shot-image-classification", "zero-shot-object-detection",
                "mask-generation", "image-to-image"}
_AUDIO_TASKS = {"audio-classification", "automatic-speech-recognition", "zero-shot-audio-classification"}
_SAMPLE_WORDS = 9
_DEFAULT_SAMPLING_RATE = 16000  # Hz: the Wav2Vec2/Whisper feature extractors' default (transformers)
_DEFAULT_IMAGE_SIZE = 224  # pixels: ViT/ResNet configs' default ``image_size`` (transformers ``configuration_vit.py``)


def _sampler(task: str, config: Any, tokenizer: Any):
    """The ``sample_fn`` for the task: short texts made of the tokenizer's own vocabulary words for text tasks (in
    the form the task's pipeline takes), an image of the config's ``image_size`` and ``num_channels``, or one
    second of audio; None when the task takes other inputs or a text task has no tokenizer."""
    if task in _TEXT_TASKS and tokenizer is not None:
        return lambda: _text_sample(task, tokenizer)
    if task in _IMAGE_TASKS:
        return lambda: [_image_sample(config)]
    if task in _AUDIO_TASKS:
        return lambda: [_audio_sample()]
    return None


def vocabulary_words(tokenizer: Any, count: int = _SAMPLE_WORDS) -> list[str]:
    """Up to ``count`` whole words of the tokenizer's vocabulary, in token-id order: tokens that decode (through
    ``convert_tokens_to_string``, which removes WordPiece ``##`` and byte-level ``Ġ`` markers) to two or more
    letters and are not special tokens."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    words: list[str] = []
    for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1]):
        if token in special or token.startswith("##"):
            continue
        try:
            text = tokenizer.convert_tokens_to_string([token]).strip()
        except Exception:  # a tokenizer-specific failure on one token: skip it
            continue
        if len(text) >= 2 and text.isalpha() and text not in words:
            words.append(text)
            if len(words) >= count:
                break
    return words


def _text_sample(task: str, tokenizer: Any) -> Any:
    words = vocabulary_words(tokenizer)
    if not words:
        raise ArtifactError("no sample input can be built: the tokenizer's vocabulary holds no whole words")
    cycled = [words[i % len(words)] for i in range(_SAMPLE_WORDS)]
    texts = [" ".join(cycled[0:2]), " ".join(cycled[2:5]), " ".join(cycled[5:9])]
    if task == "fill-mask":
        if not getattr(tokenizer, "mask_token", None):
            raise ArtifactError("no fill-mask sample can be built: the tokenizer has no mask token")
        return [f"{t} {tokenizer.mask_token}" for t in texts]
    if task == "question-answering":
        return {"question": texts[0], "context": f"{texts[1]} {texts[2]}"}
    if task == "zero-shot-classification":
        return {"inputs": texts, "parameters": {"candidate_labels": cycled[:2]}}
    if task in _GENERATING_TASKS:
        return {"inputs": texts, "parameters": {"max_new_tokens": 2}}
    return texts


def _image_sample(config: Any) -> Any:
    """A gradient image of the size the config names (``image_size``: an int or [height, width]; in the
    ``vision_config``/``encoder`` of composite models), as a PIL image when Pillow is installed."""
    import numpy as np

    source = next((c for c in (getattr(config, "vision_config", None), getattr(config, "encoder", None), config)
                   if c is not None and getattr(c, "image_size", None) is not None), config)
    size = getattr(source, "image_size", None) or _DEFAULT_IMAGE_SIZE
    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))
    channels = int(getattr(source, "num_channels", 3) or 3)
    ramp = np.linspace(0, 255, height * width * channels, dtype=np.float64).reshape(height, width, channels)
    pixels = ramp.astype(np.uint8)
    try:
        from PIL import Image
    except ImportError:
        return pixels
    return Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels[:, :, :3])


def _audio_sample() -> Any:
    """One second of a 440 Hz tone at 16 kHz (float32), the rate speech models' feature extractors expect."""
    import numpy as np

    t = np.arange(_DEFAULT_SAMPLING_RATE, dtype=np.float64) / _DEFAULT_SAMPLING_RATE
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _first_line(e: Exception) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)[:300]


def _texts(data: Any) -> tuple[Any, dict]:
    """The pipeline's inputs (a list for many texts) and call parameters from what the caller passed."""
    params: dict = {}
    if isinstance(data, dict) and "inputs" in data:
        params = dict(data.get("parameters") or {})
        data = data["inputs"]
    if hasattr(data, "columns"):
        named = [c for c in ("inputs", "text") if c in data.columns]
        if not named and len(data.columns) != 1:
            raise ArtifactError(f"the DataFrame has {len(data.columns)} columns; "
                                "name the text column 'inputs' or 'text'")
        data = data[(named or list(data.columns))[0]]
    if isinstance(data, str):
        return [data], params
    if hasattr(data, "tolist"):
        return data.tolist(), params
    return (list(data) if isinstance(data, tuple) else data), params


def _predictor(pipe, task: str, unavailable: str | None):
    def predict(data: Any):
        if pipe is None:
            raise NotLoadable(unavailable)
        inputs, params = _texts(data)
        tokenizer = pipe.tokenizer
        if task == "text-classification" and tokenizer is not None:  # long texts would overflow the positions
            if tokenizer.model_max_length < _NO_LIMIT:
                params.setdefault("truncation", True)
            else:  # a tokenizer that names no length: the model's position embeddings bound it
                positions = getattr(getattr(pipe.model, "config", None), "max_position_embeddings", None)
                if isinstance(positions, int) and positions > 0 and "max_length" not in params:
                    params.setdefault("truncation", True)
                    params["max_length"] = positions
        order = _by_length(task, inputs, params)
        try:
            out = pipe([inputs[i] for i in order] if order else inputs, **params)
        except (ValueError, TypeError, KeyError, IndexError) as e:  # IndexError: a token id past the embeddings
            raise ArtifactError(f"the {task} pipeline rejected the input: {_first_line(e)}") from None
        if order and isinstance(out, list) and len(out) == len(order):
            back: list = [None] * len(order)
            for position, i in enumerate(order):
                back[i] = out[position]
            out = back
        return _tabulate(task, out)

    return predict


def _by_length(task: str, inputs: Any, params: dict) -> list[int] | None:
    """The order, shortest text first, in which a text classifier runs a list of texts in padded batches (a
    ``batch_size`` above 1), or None to keep theirs. The pipeline pads each batch to its longest text
    (``transformers/pipelines/base.py``, ``pad_collate_fn``), so neighbours of like length waste less of the model's
    work on padding: 100 texts of 60 to 190 characters, batches of 16, 125 ms one by one, 116 ms in their own order,
    87 ms sorted. Each text's scores move by float32 rounding only (measured at most 6e-8, labels equal: the
    attention mask keeps the padding out), as with any padded batch; the answers come back in the texts' order."""
    size = params.get("batch_size")
    if task not in ROW_WISE_TASKS or not isinstance(size, int) or size < 2 \
            or not isinstance(inputs, list) or len(inputs) <= size or not all(type(t) is str for t in inputs):
        return None
    return sorted(range(len(inputs)), key=lambda i: len(inputs[i]))


def _tabulate(task: str, out: Any):
    import numpy as np

    pd = require("pandas", "huggingface")
    if task == "feature-extraction":
        return np.stack([np.asarray(x, dtype=np.float32).reshape(-1, np.shape(x)[-1]).mean(axis=0) for x in out])
    if isinstance(out, dict):
        out = [out]
    if isinstance(out, list) and out and all(isinstance(x, dict) for x in out):
        return pd.DataFrame(out)
    if isinstance(out, list) and out and all(isinstance(x, list) and all(isinstance(y, dict) for y in x) for x in out):
        return pd.DataFrame([{"input": i, **row} for i, rows in enumerate(out) for row in rows])
    return out
