"""The artifact's own SageMaker inference code, run the way the framework container runs it (only with ``trust=True``).

SageMaker's framework containers (PyTorch, scikit-learn, MXNet... all built on aws/sagemaker-inference-toolkit)
serve a ``model.tar.gz`` through a user module, the entry point (``SAGEMAKER_PROGRAM``, ``inference.py`` by
default, looked up in ``<model_dir>/code``, which the handler service puts on ``PYTHONPATH`` so the script's
sibling modules import): ``src/sagemaker_inference/transformer.py`` imports it, calls ``model_fn(model_dir)`` once,
then per request ``transform_fn(model, body, content_type, accept)``, whose default is ``input_fn(body,
content_type)`` -> ``predict_fn(data, model)`` -> ``output_fn(prediction, accept)``. A function the module does not
define is the container's default handler; defining ``transform_fn`` together with any of the three others is an
error. Each function may take one more argument, the request context. JSON and CSV bodies reach the handlers as
text, other bodies as bytes; an ``Accept`` of ``*/*`` (or none) means ``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``,
``application/json`` by default (``environment.py``). An ``output_fn`` result is ``(body, content_type)`` or a
bare body, whose content type is then the ``Accept`` value.

Default handlers (read from the containers' sources, reimplemented here):

- every container (``default_inference_handler.py``, ``decoder.py``, ``encoder.py``): ``input_fn`` decodes JSON
  (``numpy.array(json.loads(body))``), CSV (``numpy.genfromtxt``, comma-separated), NPY and NPZ (a scipy sparse
  matrix); ``output_fn`` encodes to the first type of the ``Accept`` list it knows (JSON via ``tolist``, CSV via
  ``numpy.savetxt(fmt="%s")``, NPY); there is no default ``model_fn`` or ``predict_fn``.
- PyTorch (aws/sagemaker-pytorch-inference-toolkit ``default_pytorch_inference_handler.py``): ``input_fn`` makes a
  float32 tensor of a JSON/CSV body (``torch.from_numpy`` of an NPY one), ``predict_fn`` calls ``model.eval()`` and
  ``model(data)`` under ``torch.no_grad()``, ``output_fn`` turns a tensor into lists first and answers CSV as bytes.
- scikit-learn (aws/sagemaker-scikit-learn-container ``handler_service.py``): ``input_fn`` reshapes a 1-D array to
  one row and casts JSON/CSV input to float32, ``predict_fn`` is ``model.predict(data)``.
- other frameworks: the toolkit's generic handlers, and ``predict_fn`` calls ``model.predict`` (the MXNet and
  XGBoost containers' defaults end in the framework's own predict too); a model without one needs the script's.

Deliberate differences: an NPY request body is read with ``allow_pickle=False`` (the toolkit allows pickles, which
lets any client run code in the server); a content type's parameters (``; charset=utf-8``) are ignored when
choosing a default decoder; nothing is installed (``code/requirements.txt`` is reported in ``info`` and named when
an import fails); no environment variable, working directory or log level is changed. The script's folder is on
``sys.path`` and its sibling modules in ``sys.modules`` only while its functions run (one at a time); afterwards
both are as before, and a module of the process that a sibling module's name would shadow is hidden meanwhile
(never a standard-library or installed one: the container imports those before the script, so they win there too).

When ``loaders.load`` takes this path (the rule, decided from the report and the script read as text with
:mod:`ast`, before anything of the artifact is imported):

1. only with ``trust=True`` (or ``"all"``): running the script is running the artifact's code. Without trust the
   framework's own loader loads what it can as data; when the script was needed (below) its ``predict`` refuses,
   naming the script and the functions it would run, and otherwise ``info["warning"]`` says the script's request
   handling was not used;
2. the script defines ``input_fn``, ``predict_fn``, ``output_fn`` or ``transform_fn``: the artifact decides what a
   request means and what a prediction is, so its code is needed whatever the model file is;
3. the script defines ``model_fn`` and the model file holds weights only (a PyTorch state dict or a checkpoint of
   tensors: no TorchScript, every pickled global an allowlisted tensor type): only the script knows the network;
4. otherwise the native loader: a model file that loads as data, with at most a ``model_fn`` that loads it (the
   common ``joblib.load(os.path.join(model_dir, "model.joblib"))``), predicts the same without the script;
5. loader options for the native loader (``module=``, ``file=``, ``member=``...) mean the caller steers the
   native loader; the option ``entry_point=`` (this module's) asks for this path with a script of the caller's
   choice.

``predict(data)`` takes Python values: with the script's ``input_fn`` (or ``transform_fn``) the data is encoded as
a request body in a content type that function names in its source (JSON when it names none of JSON, CSV and NPY)
and decoded by it; with the default ``input_fn`` it is converted as that function converts a decoded body. The
result is ``predict_fn``'s (tensors as numpy); ``output_fn`` runs only in ``invoke_fn`` (raw requests: ``(body,
content_type, accept) -> (body, content_type)``), as it does in the container.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import sys
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from artifact_tools.errors import ArtifactError, NotLoadable, TrustRequired

from .base import LoadedModel, parse_options, require

log = logging.getLogger(__name__)

__all__ = ["OPTIONS", "InferenceCodeOptions", "HandlerError", "Plan", "plan", "route", "load", "refusal"]

JSON, CSV, NPY, NPZ, ANY = "application/json", "text/csv", "application/x-npy", "application/x-npz", "*/*"
TEXT_TYPES = (JSON, CSV)  # bodies the container hands to the handlers as text (sagemaker_inference.content_types)
ENCODABLE = (JSON, CSV, NPY)
REQUEST_HANDLERS = ("input_fn", "predict_fn", "output_fn", "transform_fn")
HANDLERS = ("model_fn", *REQUEST_HANDLERS)
HOOKS = ("pre_model_fn", "model_warmup_fn")  # toolkit >= 1.10: before model_fn, and after it with the model
TFS_HANDLERS = ("input_handler", "output_handler", "handler")  # the TF Serving container's own pre/post-processing
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
_MEDIA = re.compile(r"^[a-z]+/[a-z0-9.+*-]+$")
_LOCK = threading.RLock()  # sys.path and sys.modules are process-wide: one artifact function runs at a time


@dataclass(frozen=True)
class InferenceCodeOptions:
    """``entry_point``: the script to serve through (a ``.py`` file of the artifact), instead of the one the report
    names (``code/inference.py``, the only ``code/*.py``, or a top-level ``inference.py``)."""

    entry_point: str | None = None


OPTIONS = InferenceCodeOptions


class HandlerError(ArtifactError):
    """A handler failed. ``status`` is what the container answers: 415 (a content type the default ``input_fn``
    cannot decode), 406 (an ``Accept`` the default ``output_fn`` cannot encode), 500 (the artifact's code raised)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Plan:
    """What the entry point would run, read from its text (nothing imported)."""

    entry_point: str  # path inside the artifact
    path: Path
    defined: tuple[str, ...]  # SageMaker handler names bound at the module's top level, in HANDLERS order
    hooks: tuple[str, ...]
    tfs_handlers: tuple[str, ...]
    content_types: dict  # handler name -> media types its source names, in order
    requirements_file: str | None
    requirements: tuple[str, ...]
    error: str | None = None  # why the script cannot be run here (not Python 3, unreadable)

    @property
    def custom(self) -> tuple[str, ...]:
        return tuple(n for n in self.defined if n in REQUEST_HANDLERS)

    def functions(self) -> str:
        names = list(self.defined) + list(self.hooks)
        return ", ".join(names) if names else "its module-level code"


# ---------------------------------------------------------------------------------------------------- planning

def plan(report, root: Path, entry_point: str | None = None) -> Plan | None:
    """The entry point's plan, or None when the artifact has none. Reads text only."""
    name = entry_point or getattr(report, "entry_point", None)
    if not name:
        return None
    path = _inside(root, name)
    if path is None:
        if entry_point:
            raise ArtifactError(f"entry_point {entry_point} is not a .py file of the artifact")
        return None
    req = next((p for p in (path.parent / "requirements.txt", root / "code" / "requirements.txt",
                            root / "requirements.txt") if p.is_file()), None)
    req_name = req.relative_to(root).as_posix() if req is not None else None
    requirements = _requirements(req) if req is not None else ()
    try:
        size = path.stat().st_size
        if size > MAX_SCRIPT_BYTES:
            raise ValueError(f"it is {size} bytes, more than a script of {MAX_SCRIPT_BYTES} bytes")
        tree = ast.parse(path.read_bytes(), filename=name)
    except SyntaxError as e:
        return Plan(name, path, (), (), (), {}, req_name, requirements,
                    error=f"{name} is not valid Python 3 (line {e.lineno}: {e.msg})")
    except (OSError, ValueError) as e:
        return Plan(name, path, (), (), (), {}, req_name, requirements, error=f"{name} cannot be read ({e})")
    bound = _top_level_names(tree.body)
    types = {n: _media_types(node) for n, node in _functions(tree.body).items() if n in ("input_fn", "transform_fn")}
    return Plan(name, path, tuple(n for n in HANDLERS if n in bound), tuple(n for n in HOOKS if n in bound),
                tuple(n for n in TFS_HANDLERS if n in bound), types, req_name, requirements)


def _inside(root: Path, name: str) -> Path | None:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or rel.suffix != ".py":
        return None
    path = root.joinpath(*rel.parts)
    try:
        resolved = path.resolve()
        resolved.relative_to(root.resolve())
    except (OSError, ValueError):
        return None
    return path if resolved.is_file() else None


def _requirements(path: Path) -> tuple[str, ...]:
    try:
        text = path.read_bytes()[:256 * 1024].decode("utf-8", "replace")
    except OSError:
        return ()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line[:200] for line in lines if line)[:200]


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    """Names a module binds when imported: defs, classes, assignments, imports, also inside top-level if/try/with."""
    out: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                out.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
        elif isinstance(node, ast.If) and not _is_main_guard(node):
            out |= _top_level_names(node.body) | _top_level_names(node.orelse)
        elif isinstance(node, ast.Try):
            out |= _top_level_names(node.body + node.orelse + node.finalbody)
            for h in node.handlers:
                out |= _top_level_names(h.body)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            out |= _top_level_names(node.body)
    return out


def _is_main_guard(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Compare) and isinstance(t.left, ast.Name) and t.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in t.comparators))


def _functions(body: list[ast.stmt]) -> dict[str, ast.AST]:
    return {n.name: n for n in ast.walk(ast.Module(body=body, type_ignores=[]))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _media_types(node: ast.AST) -> tuple[str, ...]:
    texts = (n.value.split(";")[0].strip().lower() for n in ast.walk(node)
             if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return tuple(dict.fromkeys(t for t in texts if _MEDIA.match(t)))


def weights_only(report) -> bool:
    """Every PyTorch file of the report holds tensors only (state dict or checkpoint): nothing to predict with
    without the code that defines the network. Decided from the report's pickle globals, never by unpickling."""
    from artifact_tools.trust import classify_global

    models = [m for m in getattr(report, "models", []) if m.format == "pytorch"]
    if getattr(report, "framework", None) != "pytorch" or not models:
        return False
    for m in models:
        s = m.summary
        if s.get("torchscript") or not isinstance(s.get("globals"), list) or not s["globals"]:
            return False
        if any(classify_global(str(g)) != "allowed" for g in s["globals"]):
            return False
    return True


def route(report, the_plan: Plan | None, trust: bool | str, native_options: dict) -> str | None:
    """Why ``loaders.load`` takes the inference-code path (a sentence), or None for the native loader (module rule)."""
    if the_plan is None or the_plan.error or not trust or native_options:
        return None
    if the_plan.custom:
        return f"{the_plan.entry_point} defines its own request handling ({', '.join(the_plan.custom)})"
    if "model_fn" in the_plan.defined and weights_only(report):
        return f"the model file holds weights only and {the_plan.entry_point}'s model_fn builds the network"
    return None


def unused_code_warning(the_plan: Plan | None) -> str | None:
    """The sentence for a natively loaded model whose script defines handlers that were not run."""
    if the_plan is None or the_plan.error:
        return None
    if the_plan.custom:
        return (f"{the_plan.entry_point} defines {', '.join(the_plan.custom)}, which a SageMaker container runs for "
                "each request; they were not run (load with trust=True, CLI --trust, to predict through them)")
    if the_plan.tfs_handlers:
        return (f"{the_plan.entry_point} defines {', '.join(the_plan.tfs_handlers)}, the TF Serving container's "
                "request pre- and post-processing; artifact-tools does not run them")
    return None


def refusal(the_plan: Plan, why: str = "") -> TrustRequired:
    """The one-sentence refusal without trust: the file and the functions loading would run."""
    lead = f"{why}: " if why else ""
    return TrustRequired(f"{lead}loading through {the_plan.entry_point} runs its {the_plan.functions()}; pass "
                         "trust=True (CLI: --trust) if you trust the artifact's author",
                         [f"{the_plan.entry_point}: {the_plan.functions()}"])


# ---------------------------------------------------------------------------------------------------- loading

def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Import the entry point, run ``model_fn(model_dir)`` and return a LoadedModel serving through the handlers."""
    opts = parse_options(InferenceCodeOptions, options, "artifacts loaded through their inference code")
    the_plan = plan(report, root, opts.entry_point)
    if the_plan is None:
        raise NotLoadable("the artifact has no inference script (code/inference.py) to load it through")
    if not trust:
        raise refusal(the_plan)
    if the_plan.error:
        raise NotLoadable(f"{the_plan.error}; it cannot be run here")
    framework = getattr(report, "framework", None) or "unknown"
    scope = _Scope(the_plan.path.parent)
    module = scope.import_entry(the_plan)
    found = {n: getattr(module, n) for n in HANDLERS + HOOKS if callable(getattr(module, n, None))}
    if "transform_fn" in found and any(n in found for n in ("input_fn", "predict_fn", "output_fn")):
        raise NotLoadable(f"{the_plan.entry_point} defines transform_fn together with "
                          f"{', '.join(n for n in ('input_fn', 'predict_fn', 'output_fn') if n in found)}, which the "
                          "SageMaker containers refuse")
    if "model_fn" not in found:
        raise NotLoadable(f"{the_plan.entry_point} defines no model_fn, and the {framework} container has no "
                          "default one that loads this artifact")
    defaults = _defaults(framework)
    runner = _Runner(the_plan, scope, found, defaults, str(root))
    if "pre_model_fn" in found:
        runner.call("pre_model_fn", str(root))
    model = runner.call("model_fn", str(root))
    if "model_warmup_fn" in found:
        runner.call("model_warmup_fn", str(root), model)
    runner.model = model
    info = {"kind": "inference-code", "entry_point": the_plan.entry_point,
            "handlers": {n: ("artifact" if n in found else f"default ({defaults.name})")
                         for n in (("model_fn", "transform_fn") if "transform_fn" in found else HANDLERS[:4])},
            "model_type": f"{type(model).__module__}.{type(model).__qualname__}"}
    if the_plan.requirements_file:
        info["requirements_file"] = the_plan.requirements_file
        info["requirements"] = list(the_plan.requirements)
        log.info("%s lists %d requirement(s); artifact-tools installs none: %s", the_plan.requirements_file,
                 len(the_plan.requirements), ", ".join(the_plan.requirements[:10]))
    log.info("loaded %s through %s (%s)", report.source if hasattr(report, "source") else root,
             the_plan.entry_point, the_plan.functions())
    return LoadedModel(model, framework, runner.predict, info=info, invoke_fn=runner.invoke)


class _Scope:
    """The script's folder on ``sys.path`` and its own modules in ``sys.modules``, only while its code runs."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        names = set()
        try:
            for p in self.folder.iterdir():
                stem = p.stem if p.suffix == ".py" else p.name
                if (p.suffix == ".py" or p.is_dir()) and stem.isidentifier():
                    names.add(stem)
        except OSError:
            pass
        self.names = names
        self.own: dict[str, Any] = {}  # the artifact's modules, kept here between calls

    @contextlib.contextmanager
    def active(self):
        with _LOCK:
            kept, hidden = set(), {}
            for n in self.names:
                current = sys.modules.get(n)
                if current is None:
                    continue
                if n not in self.own and _belongs_to_the_process(n, current):
                    kept.add(n)
                    continue
                for k in [k for k in sys.modules if k == n or k.startswith(n + ".")]:
                    hidden[k] = sys.modules.pop(k)
            sys.modules.update(self.own)
            saved_path = list(sys.path)
            sys.path.insert(0, str(self.folder))
            count = len(sys.modules)
            try:
                yield
            finally:
                if len(sys.modules) == count and all(sys.modules.get(k) is v for k, v in self.own.items()):
                    keys = list(self.own)  # nothing imported meanwhile
                else:
                    keys = [k for k in sys.modules if k.split(".", 1)[0] in self.names - kept]
                for k in keys:
                    if k in sys.modules:
                        self.own[k] = sys.modules.pop(k)
                sys.modules.update(hidden)
                sys.path[:] = saved_path

    def import_entry(self, the_plan: Plan):
        """Execute the entry point as a module (its own name, or a private one when the process has that name)."""
        stem = the_plan.path.stem
        with self.active():
            name = stem if stem.isidentifier() and stem not in sys.modules else f"_artifact_entry_{id(self):x}_{stem}"
            spec = importlib.util.spec_from_file_location(name, the_plan.path)
            if spec is None or spec.loader is None:
                raise NotLoadable(f"{the_plan.entry_point} cannot be imported as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except ModuleNotFoundError as e:
                sys.modules.pop(name, None)
                missing = e.name or str(e)
                listed = (f" ({the_plan.requirements_file} lists {', '.join(the_plan.requirements[:8])}"
                          f"{' ...' if len(the_plan.requirements) > 8 else ''}; artifact-tools installs nothing)"
                          if the_plan.requirements_file else "")
                raise NotLoadable(f"{the_plan.entry_point} cannot be imported: it needs the module {missing}, which "
                                  f"is not installed here{listed}") from None
            except (Exception, SystemExit) as e:  # the artifact's own code failed at import
                sys.modules.pop(name, None)
                raise HandlerError(f"{the_plan.entry_point} failed when imported: {_describe(e)}") from None
            if name != stem:
                sys.modules.pop(name, None)
        return module


def _belongs_to_the_process(name: str, module: Any) -> bool:
    """A standard-library or installed module: the container imports those before the script, so they win."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return True
    file = getattr(module, "__file__", None)
    places = [file] if file else [str(p) for p in (getattr(module, "__path__", None) or [])]
    roots = [os.path.abspath(p) + os.sep for p in {sysconfig.get_paths().get(k) for k in
                                                   ("purelib", "platlib", "stdlib", "platstdlib")} if p]
    return any(os.path.abspath(f).startswith(tuple(roots)) or {"site-packages", "dist-packages"} & set(Path(f).parts)
               for f in places)


def _describe(e: BaseException) -> str:
    text = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


class _Context:
    """The little of the model server's request context handlers read (``context.system_properties``)."""

    def __init__(self, model_dir: str):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}


class _Runner:
    """Calls the handlers as ``sagemaker_inference.transformer.Transformer`` does."""

    def __init__(self, the_plan: Plan, scope: _Scope, found: dict, defaults: "_Defaults", model_dir: str):
        self.plan, self.scope, self.found, self.defaults = the_plan, scope, found, defaults
        self.context = _Context(model_dir)
        self.model: Any = None

    def call(self, name: str, *args: Any) -> Any:
        """The artifact's function ``name`` (with the context when it takes one more argument)."""
        func = self.found[name]
        try:
            count = len(inspect.signature(func).parameters)
        except (TypeError, ValueError):
            count = len(args)
        if count == len(args) + 1:
            args = (*args, self.context)
        elif count != len(args):
            raise HandlerError(f"{self.plan.entry_point}: {name} takes {count} argument(s), but the container "
                               f"passes {len(args)}")
        with self.scope.active():
            try:
                return func(*args)
            except HandlerError:
                raise
            except (Exception, SystemExit) as e:
                raise HandlerError(f"{self.plan.entry_point}: {name} raised {_describe(e)}") from None

    # ------------------------------------------------------------------------------- raw requests (serve)

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        accept = (accept or "").strip()
        if not accept or accept == ANY:
            accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)
        content_type = (content_type or "").strip()
        raw = bytes(body)
        data: bytes | str = raw
        if _media(content_type) in TEXT_TYPES:
            try:
                data = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise HandlerError(f"the {_media(content_type)} body is not UTF-8 (byte {e.start})", 400) from None
        if "transform_fn" in self.found:
            result = self.call("transform_fn", self.model, data, content_type, accept)
        else:
            result = self._output(self._predict(self._input(data, content_type)), accept)
        out, out_type = (result[0], result[1]) if isinstance(result, tuple) and len(result) == 2 else (result, accept)
        if isinstance(out, str):
            out = out.encode("utf-8")
        elif isinstance(out, (bytearray, memoryview)):
            out = bytes(out)
        if not isinstance(out, bytes):
            raise HandlerError(f"{self.plan.entry_point}: the response is a {type(out).__name__}, not bytes or text")
        return out, str(out_type)

    def _input(self, data: bytes | str, content_type: str) -> Any:
        if "input_fn" in self.found:
            return self.call("input_fn", data, content_type)
        return self.defaults.input_fn(data, content_type)

    def _predict(self, data: Any) -> Any:
        if "predict_fn" in self.found:
            return self.call("predict_fn", data, self.model)
        with self.scope.active():
            return self.defaults.predict_fn(data, self.model)

    def _output(self, prediction: Any, accept: str) -> Any:
        if "output_fn" in self.found:
            return self.call("output_fn", prediction, accept)
        return self.defaults.output_fn(prediction, accept)

    # ------------------------------------------------------------------------------- Python values

    def predict(self, data: Any) -> Any:
        if "transform_fn" in self.found:
            ctype = self._body_type("transform_fn")
            result = self.call("transform_fn", self.model, _encode_request(data, ctype), ctype, JSON)
            out, out_type = (result[0], result[1]) if isinstance(result, tuple) and len(result) == 2 else (result, JSON)
            return _decode_response(out, str(out_type))
        if "input_fn" in self.found:
            ctype = self._body_type("input_fn")
            x = self.call("input_fn", _encode_request(data, ctype), ctype)
        else:
            x = self.defaults.from_python(data)
        return _to_numpy(self._predict(x))

    def _body_type(self, name: str) -> str:
        named = self.plan.content_types.get(name, ())
        return next((t for t in named if t in ENCODABLE), JSON)


# ---------------------------------------------------------------------------------------------------- codecs

def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _decode(body: bytes | str, content_type: str) -> Any:
    """sagemaker_inference.decoder.decode (NPY without pickles)."""
    import numpy as np

    media = _media(content_type)
    try:
        if media == JSON:
            return np.array(json.loads(body))
        if media == CSV:
            return np.genfromtxt(io.StringIO(body if isinstance(body, str) else body.decode("utf-8")), delimiter=",")
        if media == NPY:
            return np.load(io.BytesIO(body if isinstance(body, bytes) else body.encode()), allow_pickle=False)
        if media == NPZ:
            sparse = require("scipy.sparse", "sklearn")
            return sparse.load_npz(io.BytesIO(body if isinstance(body, bytes) else body.encode()))
    except (ValueError, TypeError, OSError, RecursionError, UnicodeDecodeError) as e:
        raise HandlerError(f"the {media} body cannot be decoded: {_describe(e)}", 400) from None
    raise HandlerError(f"the default input_fn cannot decode content type {content_type!r}; it reads "
                       f"{', '.join((JSON, CSV, NPY, NPZ))}", 415)


def _encode(value: Any, media: str) -> bytes | str:
    """sagemaker_inference.encoder.encode."""
    import numpy as np

    if media == JSON:
        return json.dumps(value, default=_json_default)
    if media == CSV:
        text = io.StringIO()
        np.savetxt(text, value, delimiter=",", fmt="%s")
        return text.getvalue()
    stream = io.BytesIO()
    np.save(stream, value)
    return stream.getvalue()


def _encode_default(prediction: Any, accept: str, csv_bytes: bool) -> tuple[bytes | str, str]:
    for media in (a.strip().split(";")[0] for a in accept.split(",")):
        if media in ENCODABLE:
            try:
                out = _encode(prediction, media)
            except (TypeError, ValueError) as e:
                raise HandlerError(f"the default output_fn cannot encode a {type(prediction).__name__} as {media}: "
                                   f"{_describe(e)}") from None
            return (out.encode("utf-8") if csv_bytes and isinstance(out, str) and media == CSV else out), media
    raise HandlerError(f"the default output_fn cannot answer Accept {accept!r}; it writes {', '.join(ENCODABLE)}", 406)


def _encode_request(data: Any, media: str) -> bytes | str:
    """Python data as the request body a client would send (text for JSON and CSV, as the handlers receive it)."""
    import numpy as np

    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
        return raw.decode("utf-8") if media in TEXT_TYPES else raw
    if isinstance(data, str):
        return data if media in TEXT_TYPES else data.encode("utf-8")
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a DataFrame
        if media == CSV:
            return data.to_csv(index=False, header=False)
        if media == JSON:
            return json.dumps(data.to_dict(orient="records"), default=_json_default)
        data = data.to_numpy()
    if media == JSON:
        return json.dumps(data, default=_json_default)
    if media == CSV:
        text = io.StringIO()
        arr = np.asarray(data)
        np.savetxt(text, arr.reshape(1, -1) if arr.ndim < 2 else arr, delimiter=",",
                   fmt="%.17g" if arr.dtype.kind in "biuf" else "%s")
        return text.getvalue()
    stream = io.BytesIO()
    np.save(stream, np.asarray(data), allow_pickle=False)
    return stream.getvalue()


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"a {type(o).__name__} cannot be written as JSON")


def _decode_response(out: Any, content_type: str) -> Any:
    import numpy as np

    if isinstance(out, (bytes, bytearray, str)):
        media = _media(content_type)
        raw = out.encode("utf-8") if isinstance(out, str) else bytes(out)
        try:
            if media == JSON:
                return json.loads(raw)
            if media == CSV:
                return np.genfromtxt(io.StringIO(raw.decode("utf-8")), delimiter=",", ndmin=2)
            if media == NPY:
                return np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, UnicodeDecodeError) as e:
            raise HandlerError(f"the response ({media}) cannot be read back: {_describe(e)}") from None
        return raw
    return _to_numpy(out)


def _to_numpy(out: Any) -> Any:
    """Tensors (torch, or anything with ``detach``/``numpy``) as numpy, inside tuples, lists and dicts too."""
    if hasattr(out, "detach") and hasattr(out, "numpy"):
        return out.detach().cpu().numpy()
    if isinstance(out, dict):
        return {k: _to_numpy(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return tuple(_to_numpy(v) for v in out)
    if isinstance(out, list) and any(hasattr(v, "detach") for v in out):
        return [_to_numpy(v) for v in out]
    return out


# ---------------------------------------------------------------------------------------------------- defaults

@dataclass(frozen=True)
class _Defaults:
    name: str
    input_fn: Callable[[Any, str], Any]
    predict_fn: Callable[[Any, Any], Any]
    output_fn: Callable[[Any, str], Any]
    from_python: Callable[[Any], Any]  # what input_fn makes of a decoded body, for Python values


def _defaults(framework: str) -> _Defaults:
    if framework == "pytorch":
        return _Defaults("PyTorch container", _torch_input, _torch_predict, _torch_output, _torch_from_python)
    if framework in ("sklearn", "pickle"):
        return _Defaults("scikit-learn container", _sklearn_input, _sklearn_predict,
                         lambda p, a: _encode_default(p, a, False), _sklearn_from_python)
    return _Defaults("inference toolkit", _decode, _generic_predict, lambda p, a: _encode_default(p, a, False),
                     _generic_from_python)


def _torch_input(body: Any, content_type: str):
    torch = require("torch", "pytorch")
    import numpy as np

    arr = _decode(body, content_type)
    try:
        if _media(content_type) in TEXT_TYPES:
            return torch.FloatTensor(np.asarray(arr))
        return torch.from_numpy(np.asarray(arr))
    except (TypeError, ValueError, RuntimeError) as e:
        raise HandlerError(f"the default input_fn cannot make a tensor of the body: {_describe(e)}", 400) from None


def _torch_from_python(data: Any):
    torch = require("torch", "pytorch")
    import numpy as np

    if isinstance(data, torch.Tensor):
        return data
    if hasattr(data, "to_numpy"):
        data = data.to_numpy()
    try:
        return torch.as_tensor(np.asarray(data, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise HandlerError(f"the input cannot be made a float32 tensor: {_describe(e)}", 400) from None


def _torch_predict(data: Any, model: Any):
    torch = require("torch", "pytorch")
    try:
        with torch.no_grad():
            if hasattr(model, "eval"):
                model.eval()
            return model(data)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        raise HandlerError(f"the network rejected the input: {_describe(e)}", 400) from None


def _torch_output(prediction: Any, accept: str):
    torch = require("torch", "pytorch")
    if type(prediction) is torch.Tensor:
        prediction = prediction.detach().cpu().numpy().tolist()
    return _encode_default(prediction, accept, True)


def _sklearn_input(body: Any, content_type: str):
    import numpy as np

    arr = _decode(body, content_type)
    if getattr(arr, "ndim", None) == 1:
        arr = arr.reshape(1, -1)
    if _media(content_type) in TEXT_TYPES:
        try:
            return arr.astype(np.float32)
        except (TypeError, ValueError) as e:
            raise HandlerError(f"the body is not numeric: {_describe(e)}", 400) from None
    return arr


def _sklearn_from_python(data: Any):
    import numpy as np

    if hasattr(data, "columns") or hasattr(data, "tocsr"):  # DataFrames and sparse matrices as they are
        return data
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    return arr.astype(np.float32) if arr.dtype.kind in "biuf" else arr


def _generic_from_python(data: Any):
    import numpy as np

    return data if hasattr(data, "columns") else np.asarray(data)


def _sklearn_predict(data: Any, model: Any):
    try:
        return model.predict(data)
    except AttributeError:
        raise HandlerError(f"the model ({type(model).__name__}) has no predict method and the script defines no "
                           "predict_fn") from None
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise HandlerError(f"the model rejected the input: {_describe(e)}", 400) from None


def _generic_predict(data: Any, model: Any):
    return _sklearn_predict(data, model)
