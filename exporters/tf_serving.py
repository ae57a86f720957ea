"""TensorFlow Serving export: a model repository the official ``tensorflow/serving`` image serves as it is.

Output folder ``<out>/`` (facts: tensorflow/serving ``tensorflow_serving/g3doc/serving_config.md``,
``tensorflow_serving/config/model_server_config.proto``, ``tensorflow_serving/g3doc/api_rest.md``):

- ``<name>/<version>/saved_model.pb`` + ``variables/`` + ``assets/``: the server watches ``<name>/`` and loads
  numeric version folders;
- ``models.config``: a ``ModelServerConfig`` text proto with one ``config`` per model (``base_path`` as mounted
  in the container, ``/models/<name>``, ``model_platform: "tensorflow"``) and a ``model_version_policy``
  ``specific`` listing every version present, so several models and versions are served at once;
- ``<name>.predict.json``: a REST ``predict`` request body (``{"signature_name": ..., "instances": [...]}``, the
  row format) built from the sample inputs, for ``POST /v1/models/<name>:predict`` on port 8501;
- ``docker-run.sh``: the ``docker run`` command line for the official image; ``verification.json``.

Another model or version is added to an existing repository with ``add=True`` (the repository is rebuilt in a
temp sibling and swapped in, see :mod:`exporters._atomic`); an existing name/version is replaced only with
``force=True``.

Keras models (Keras 3 and tf-keras) and Hugging Face TensorFlow models are saved with an explicit
``serving_default`` signature (:mod:`exporters._savedmodel`); SavedModels from an artifact are copied as they are
(streamed from the archive, :mod:`exporters._tar`).

Verification: ``models.config`` is parsed with tensorflow-serving-api's ``ModelServerConfig`` and
``google.protobuf.text_format``; every folder it names must exist; the SavedModel is loaded into a TensorFlow
session with its ``serve`` tag, as the server's C++ loader does (``tf.compat.v1.saved_model.loader.load``), and
``serving_default`` is run on the inputs decoded from the REST body example, exactly as the server decodes the
row format; the outputs must equal the source model's predictions.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from artifact_tools.errors import ArtifactError
from loaders.base import LoadedModel

from ._atomic import refuse_existing, staged
from ._common import (
    Check,
    ExportOptions,
    ExportResult,
    check,
    require_sample_for_build,
    signature_sample,
    target_options,
    verification_sample,
)
from ._savedmodel import SERVING_SIGNATURE, run_signature, save_with_signature, signature_inputs
from ._tar import Contents, write_contents

__all__ = ["OPTIONS", "SERVING_SIGNATURE", "TFServingOptions", "docker_command", "export", "models_config",
           "parse_models_config", "run_signature", "save_with_signature"]

CONFIG = "models.config"
MOUNT = "/models"
DEFAULT_IMAGE = "tensorflow/serving:latest"


@dataclass(frozen=True)
class TFServingOptions(ExportOptions):
    """``name`` (the model's folder, default the artifact's top folder or ``model``), ``version`` (default the
    source's version folder, else 1), ``add`` (add to an existing repository), ``image`` (the docker image)."""

    name: str | None = None
    version: int | None = None
    add: bool = False
    image: str = DEFAULT_IMAGE


OPTIONS = TFServingOptions


def request_body(samples: Any, names: list[str], signature: str) -> dict:
    """The REST predict body in the row format: one instance per row (a dict per row for several inputs); binary
    strings (serialized ``tf.Example`` protos...) as ``{"b64": base64 text}``, as the REST API requires."""
    def plain(v):
        return _json_safe(np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v).tolist())

    if isinstance(samples, dict):
        columns = {k: plain(v) for k, v in samples.items()}
        rows = [dict(zip(columns, values)) for values in zip(*columns.values())]
    else:
        rows = plain(samples)
        if len(names) == 1 and isinstance(samples, (list, tuple)) and rows and isinstance(rows[0], str):
            rows = list(samples)
    return {"signature_name": signature, "instances": rows}


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _decoded(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _array(values: list) -> np.ndarray:
    decoded = _decoded(values)
    flat = np.asarray(decoded, dtype=object)
    return flat if any(isinstance(v, bytes) for v in flat.ravel()) else np.asarray(decoded)


def decode_request(body: dict, names: list[str]) -> Any:
    """Inputs as TensorFlow Serving decodes a row-format body: instances stacked along a new batch axis,
    ``{"b64": ...}`` objects decoded to bytes."""
    rows = body["instances"]
    if rows and isinstance(rows[0], dict) and not set(rows[0]) == {"b64"}:
        return {k: _array([r[k] for r in rows]) for k in names}
    return _array(rows)


# ---------------------------------------------------------------------------------------------- config

def models_config(repository: Path) -> str:
    """``models.config`` text for every ``<name>/<version>/saved_model.pb`` in ``repository``."""
    models = _scan(repository)
    if not models:
        raise ArtifactError(f"{repository} holds no <name>/<version>/saved_model.pb")
    parts = ["model_config_list {"]
    for name, versions in models.items():
        parts += ["  config {", f'    name: "{name}"', f'    base_path: "{MOUNT}/{name}"',
                  '    model_platform: "tensorflow"', "    model_version_policy {", "      specific {"]
        parts += [f"        versions: {v}" for v in versions]
        parts += ["      }", "    }", "  }"]
    parts.append("}")
    return "\n".join(parts) + "\n"


def _scan(repository: Path) -> dict[str, list[int]]:
    models: dict[str, list[int]] = {}
    for model_dir in sorted(p for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")):
        versions = sorted(int(v.name) for v in model_dir.iterdir()
                          if v.is_dir() and v.name.isdigit() and (v / "saved_model.pb").is_file())
        if versions:
            models[model_dir.name] = versions
    return models


def parse_models_config(text: str):
    """The ``ModelServerConfig`` message of a models.config text (tensorflow-serving-api)."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def docker_command(repository: Path, image: str = DEFAULT_IMAGE) -> str:
    return (f'docker run --rm -p 8500:8500 -p 8501:8501 -v "{repository.absolute()}:{MOUNT}" {image} '
            f"--model_config_file={MOUNT}/{CONFIG} --model_config_file_poll_wait_seconds=60")


# ---------------------------------------------------------------------------------------------- export

def _model_name(loaded: LoadedModel, name: str | None) -> str:
    if name is None:
        prefix = loaded.report.root_prefix if loaded.report is not None else ""
        name = prefix or "model"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ArtifactError(f"model name {name!r} must be letters, digits, '_', '.' or '-'")
    return name


def export(loaded: LoadedModel, out: Path, *, force: bool = False, **options: Any) -> ExportResult:
    """Write ``loaded`` into the TF Serving repository ``out`` and verify it (options: :class:`TFServingOptions`)."""
    opts = target_options(TFServingOptions, options, "tf-serving")
    out = Path(out)
    rtol, atol, version, add, image = opts.rtol, opts.atol, opts.version, opts.add, opts.image
    name = _model_name(loaded, opts.name)
    if loaded.framework not in ("tensorflow", "huggingface"):
        raise ArtifactError(f"TensorFlow Serving serves TensorFlow models, not {loaded.framework} models")
    samples, missing = verification_sample(loaded, opts.sample)
    if samples is None:
        require_sample_for_build(loaded, "tf-serving", missing)
    samples = signature_sample(loaded, samples)
    expected = loaded.predict(samples) if samples is not None else None
    existing = out.is_dir() and (out / CONFIG).is_file()
    if add and not existing:
        raise ArtifactError(f"add=True needs an existing TensorFlow Serving repository at {out}")
    if not add:
        refuse_existing(out, force)
    result = ExportResult("tf-serving", loaded.framework, out, samples=_count(samples))
    if samples is None:
        result.unverified = (f"{missing}, so no {name}.predict.json was written and the SavedModel's answers were "
                             "not compared with the source model's predictions")
    with staged(out, force=force or add) as tmp:
        if add:
            shutil.copytree(out, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
        hf = _hf_parts(loaded) if loaded.framework == "huggingface" else None
        layout, number, signature = _layout(loaded, samples, tmp, name, version, hf)
        target = tmp / name / number
        if target.exists():
            if not force:
                raise ArtifactError(f"{name}/{number} already exists in {out}; pass force=True to replace it")
            shutil.rmtree(target)
        write_contents(layout, tmp, archive=False)
        for folder in ("variables", "assets"):  # the layout TF Serving documents, even when empty
            (target / folder).mkdir(exist_ok=True)
        shutil.rmtree(tmp / ".work", ignore_errors=True)
        config = models_config(tmp)
        (tmp / CONFIG).write_text(config)
        names = signature_inputs(target, signature)
        body = None
        if samples is not None:
            body = request_body(_hf_tokens(hf[1], samples) if hf else samples, names, signature)
            (tmp / f"{name}.predict.json").write_text(json.dumps(body) + "\n")
        command = docker_command(out, image)
        (tmp / "docker-run.sh").write_text("#!/bin/sh\n# Serve this repository with the official image.\n"
                                           f"exec {command}\n")
        (tmp / "docker-run.sh").chmod(0o755)
        labels = hf[0].config.id2label if hf else None
        result.checks = _verify(tmp, name, number, signature, body, names, expected, labels, rtol, atol)
        result.files = [CONFIG, f"{name}/{number}/", "docker-run.sh"] + ([f"{name}.predict.json"] if body else [])
        result.facts.update({"docker": command, "rest": f"curl -d @{name}.predict.json "
                             f"http://localhost:8501/v1/models/{name}:predict", "models": _scan(tmp)})
        result.require_passed()
        result.write(tmp)
    return result


def _layout(loaded: LoadedModel, samples: Any, tmp: Path, name: str, version: Any, hf: tuple | None):
    info, report = loaded.info, loaded.report
    model_dir = info.get("model_dir")
    layout = Contents(loaded.framework)
    if report is not None and model_dir is not None and loaded.framework == "tensorflow":
        last = PurePosixPath(model_dir).name
        number = str(int(version)) if version is not None else last if last.isdigit() else "1"
        rel = model_dir if model_dir not in ("", ".") else ""
        prefix = "/".join(p for p in (report.root_prefix, rel) if p)

        def rename(member: str) -> str | None:
            if prefix and not member.startswith(prefix + "/"):
                return None
            return f"{name}/{number}/{member[len(prefix) + 1:] if prefix else member}"

        layout.source, layout.rename = report.source, rename
        return layout, number, info.get("signature") or SERVING_SIGNATURE
    number = str(int(version)) if version is not None else "1"
    work = tmp / ".work"
    work.mkdir(exist_ok=True)
    model = _tf_hf_model(hf[0], work) if hf else loaded.model
    save_with_signature(model, work / "savedmodel", samples)
    layout.local = {f"{name}/{number}/{p.relative_to(work / 'savedmodel').as_posix()}": p
                    for p in sorted((work / "savedmodel").rglob("*")) if p.is_file()}
    return layout, number, SERVING_SIGNATURE


def _hf_parts(loaded: LoadedModel) -> tuple[Any, Any]:
    """(model, tokenizer) of a Hugging Face source: a live pipeline's, or re-read from the artifact's folder."""
    if hasattr(loaded.model, "tokenizer") and hasattr(loaded.model, "model"):
        return loaded.model.model, loaded.model.tokenizer
    from transformers import AutoTokenizer

    from artifact_tools.archive import open_artifact
    from loaders.cache import materialize

    entry = loaded.report.model("huggingface") if loaded.report is not None else None
    if entry is None:
        raise ArtifactError("the Hugging Face model has no tokenizer files to build requests with")
    with open_artifact(loaded.report.source) as art:
        root = materialize(art)
    folder = root / (loaded.report.root_prefix or "") / PurePosixPath(entry.path).parent
    return loaded.model, AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def _tf_hf_model(model: Any, work: Path):
    """The TensorFlow class of a Hugging Face model (converted from PyTorch weights when needed)."""
    roots = {c.__module__.split(".")[0] for c in type(model).__mro__}
    if "torch" not in roots:
        return model
    import transformers

    folder = work / "hf-pt"
    model.save_pretrained(folder)
    cls = getattr(transformers, "TF" + type(model).__name__, None)
    if cls is None:
        raise ArtifactError(f"transformers has no TensorFlow class for {type(model).__name__}")
    return cls.from_pretrained(str(folder), from_pt=True)


def _hf_tokens(tokenizer: Any, texts: Any) -> dict:
    enc = tokenizer(list(texts), padding=True, return_tensors="np")
    return {"input_ids": enc["input_ids"].astype(np.int32), "attention_mask": enc["attention_mask"].astype(np.int32)}


def _count(samples: Any) -> int:
    if samples is None:
        return 0
    return len(next(iter(samples.values()))) if isinstance(samples, dict) else len(samples)


def _verify(repo: Path, name: str, number: str, signature: str, body: dict | None, names: list[str], expected: Any,
            labels: dict | None, rtol: float, atol: float) -> list:
    config = parse_models_config((repo / CONFIG).read_text())
    listed = {c.name: c for c in config.model_config_list.config}
    ok = name in listed and int(number) in listed[name].model_version_policy.specific.versions
    missing = [c.name for c in listed.values() if not (repo / c.name).is_dir()]
    checks = [Check("models.config", ok and not missing,
                    f"parsed as ModelServerConfig with {len(listed)} model(s)"
                    + (f"; folders missing for {', '.join(missing)}" if missing else "")
                    + ("" if ok else f"; {name} version {number} is not listed"))]
    if body is None:
        return checks
    got = run_signature(repo / name / number, signature, decode_request(body, names))
    if labels is not None:
        got = _hf_rows(labels, got)
    checks.append(check(f"{name}/{number} {signature}", expected, got, rtol, atol,
                        "the REST body example decoded as TF Serving does and run through the SavedModel in a session"))
    return checks


def _hf_rows(labels: dict, logits: Any):
    """Top label and score per text, as the text-classification pipeline reports them."""
    import pandas as pd

    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top = probs.argmax(axis=1)
    return pd.DataFrame({"label": [labels[int(i)] for i in top], "score": probs.max(axis=1)})
