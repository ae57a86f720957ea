"""What an artifact's Python inference code says about its model, read as data with :mod:`ast` (never run).

Facts used, with their sources:

- SageMaker framework containers import the entry point (``code/inference.py``) and call ``model_fn(model_dir)``
  (SageMaker Python SDK, "Deploy Models", "Load a Model"); the Hugging Face container loads a model from the Hub
  at start-up when no model files are given (``HF_MODEL_ID``, aws/sagemaker-huggingface-inference-toolkit
  README, "Deploy a model from the Hub"). An artifact holding only such code gets its model at run time.
- Where it comes from is named by the string literals passed to the calls that fetch models: Hugging Face's
  ``<Class>.from_pretrained(name_or_path)``, ``pipeline(task, model=...)``, ``SentenceTransformer(name)``,
  ``huggingface_hub.hf_hub_download(repo_id, filename)`` / ``snapshot_download(repo_id)``; boto3's
  ``client.download_file(Bucket, Key, Filename)`` and ``Bucket(b).download_file(Key, Filename)``;
  ``torch.hub.load(repo, model)`` / ``load_state_dict_from_url(url)``; ``urllib.request.urlretrieve(url)``;
  and any ``s3://`` / ``http(s)://`` literal. Module-level string constants are followed by name, and
  ``os.environ.get("VAR", "default")`` is read as "the VAR environment variable, else default".
- ``requirements.txt`` (pip's requirements file format): one requirement per line, ``#`` comments, lines starting
  with ``-`` are pip options (``-r``, ``--extra-index-url``), not packages. The SageMaker containers install
  ``code/requirements.txt`` at start-up; artifact-tools only reports it.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..report import Framework

MAX_SCRIPT_BYTES = 1 << 20  # a script larger than this is not parsed
_HF_CALLS = ("from_pretrained", "pipeline", "SentenceTransformer", "snapshot_download", "hf_hub_download",
             "AutoPipelineForText2Image", "load_state_dict_from_url", "urlretrieve", "download_file",
             "download_fileobj", "get_object")
_URL = re.compile(r"^(s3|https?|gs)://\S+$")
# import name -> framework, most specific first (a Hugging Face script also imports torch)
_FRAMEWORK_IMPORTS: tuple[tuple[str, Framework], ...] = (
    ("transformers", "huggingface"), ("sentence_transformers", "huggingface"), ("diffusers", "huggingface"),
    ("huggingface_hub", "huggingface"), ("xgboost", "xgboost"), ("lightgbm", "lightgbm"), ("catboost", "catboost"),
    ("onnxruntime", "onnx"), ("mxnet", "mxnet"), ("gluoncv", "mxnet"), ("tensorflow", "tensorflow"),
    ("keras", "tensorflow"), ("torch", "pytorch"), ("torchvision", "pytorch"), ("sklearn", "sklearn"))


def parse(source: bytes) -> ast.Module | None:
    """The module's syntax tree, or None when it is too large or is not Python."""
    if len(source) > MAX_SCRIPT_BYTES:
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _constants(tree: ast.Module) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            text = _literal(node.value, {})
            if text is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    out[t.id] = text
    return out


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _literal(node: ast.expr, constants: dict[str, str]) -> str | None:
    """A string the expression evaluates to without running anything: a literal, a module constant, an f-string
    of literals, or ``os.environ.get / os.getenv("VAR", default)`` described in words."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value)
            elif isinstance(v, ast.FormattedValue):
                inner = _literal(v.value, constants)
                parts.append(inner if inner is not None else "{...}")
        return "".join(parts)
    if isinstance(node, ast.Call) and _call_name(node.func) in ("get", "getenv") and node.args:
        var = node.args[0]
        if isinstance(var, ast.Constant) and isinstance(var.value, str) and var.value.isupper():
            default = _literal(node.args[1], constants) if len(node.args) > 1 else None
            return f"${var.value}" + (f" or {default!r}" if default else "")
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
            and isinstance(node.slice.value, str) and node.slice.value.isupper() \
            and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
        return f"${node.slice.value}"
    return None


def downloads(source: bytes) -> list[str]:
    """What the script fetches at run time, as written: ``from_pretrained('org/name')``, ``s3://bucket/key``..."""
    tree = parse(source)
    if tree is None:
        return []
    constants = _constants(tree)
    found: list[tuple[int, int, str]] = []
    try:
        nodes = list(ast.walk(tree))
    except RecursionError:
        return []
    for node in nodes:
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if name not in _HF_CALLS:
                continue
            args = {kw.arg: kw.value for kw in node.keywords if kw.arg}
            text = _describe(name, node.args, args, constants)
            if text:
                found.append((node.lineno, node.col_offset, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _URL.match(node.value.strip()) \
                and len(node.value) < 2048:
            found.append((node.lineno, node.col_offset, node.value.strip()))
    out: list[str] = []
    for _, _, text in sorted(found):
        if not any(text == o or text in o for o in out):
            out = [o for o in out if o not in text] + [text]
    return out[:20]


def _describe(name: str, args: list[ast.expr], kwargs: dict[str, ast.expr], constants: dict[str, str]) -> str | None:
    def arg(i: int, *keys: str) -> str | None:
        for k in keys:
            if k in kwargs:
                return _literal(kwargs[k], constants)
        return _literal(args[i], constants) if len(args) > i else None

    if name == "from_pretrained" or name == "SentenceTransformer" or name == "AutoPipelineForText2Image":
        what = arg(0, "pretrained_model_name_or_path", "model_name_or_path")
        return f"{name}({_show(what)})" if what else None
    if name == "pipeline":
        what = _literal(kwargs["model"], constants) if "model" in kwargs else \
            (_literal(args[1], constants) if len(args) > 1 else None)
        return f"pipeline(model={_show(what)})" if what else None
    if name in ("snapshot_download", "hf_hub_download"):
        repo = arg(0, "repo_id")
        if not repo:
            return None
        file = arg(1, "filename") if name == "hf_hub_download" else None
        return f"{name}({_show(repo)}" + (f", {_show(file)})" if file else ")")
    if name in ("download_file", "download_fileobj", "get_object"):
        if name == "get_object":
            bucket, key = _literal(kwargs["Bucket"], constants) if "Bucket" in kwargs else None, \
                _literal(kwargs["Key"], constants) if "Key" in kwargs else None
        elif len(args) >= 3 or "Bucket" in kwargs:
            bucket, key = arg(0, "Bucket"), arg(1, "Key")
        else:
            bucket, key = None, arg(0, "Key")
        if key is None:
            return None
        return f"s3://{bucket}/{key}" if bucket else f"S3 key {_show(key)}"
    what = arg(0, "url")
    return f"{name}({_show(what)})" if what else None


def _show(text: str) -> str:
    """A literal as Python writes it; an environment variable (``$VAR or 'default'``) as is."""
    return text if text.startswith("$") else repr(text)


def imported_framework(sources: list[bytes]) -> Framework | None:
    """The framework the scripts import (``import transformers`` -> huggingface), most specific first."""
    modules: set[str] = set()
    for source in sources:
        tree = parse(source)
        if tree is None:
            continue
        try:
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    modules.add(node.module.split(".")[0])
        except RecursionError:
            continue
    return next((fw for mod, fw in _FRAMEWORK_IMPORTS if mod in modules), None)


def requirements(data: bytes) -> list[str]:
    """The package requirements a pip requirements file lists (options and comments left out)."""
    text = data[:256 * 1024].decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        out.append(line[:200])
    return out
