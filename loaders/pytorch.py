"""PyTorch loader (extra ``pytorch``): ``torch.save`` state dicts and TorchScript archives.

What a file holds is read from the report (``formats/torch_zip.py`` reads both the zip format of PyTorch >= 1.6
and the older legacy format as data): a TorchScript archive has ``code/`` and ``constants.pkl`` records
(pytorch/pytorch ``torch/jit/_serialization.py``, ``torch/csrc/jit/serialization/export_module.cpp``).

- A ``torch.save`` file loads with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler that
  rebuilds only tensors and plain containers (``torch/_weights_only_unpickler.py``). A state dict carries no
  architecture. When the artifact's entry point (``code/inference.py``...) defines ``model_fn``, the network is
  built by that script: with ``trust=True`` the artifact is loaded through it as the SageMaker PyTorch container
  would (:mod:`loaders.inference_code`: ``model_fn``, then ``input_fn``/``predict_fn``/``output_fn`` or the
  container's defaults); without trust ``LoadedModel.model`` is the ``OrderedDict`` of tensors and ``predict``
  refuses, naming the script and the functions loading through it would run. The caller may instead pass
  ``module=`` (a ``torch.nn.Module`` instance built from that code): the state dict is then loaded into it with
  ``load_state_dict(strict=True)`` and ``predict`` runs it. Keys saved from a ``torch.nn.DataParallel`` wrapper
  (all prefixed ``module.``, torch ``nn/parallel/data_parallel.py`` keeps the wrapped net as ``self.module``)
  are matched to an unwrapped module. A checkpoint dict holding exactly one state dict
  (``{"model_state_dict": ..., "epoch": ...}``) is handled the same way.
- A file pickling more than tensors (a whole ``nn.Module``) is refused unless ``trust=True``: unpickling it
  imports and calls what it names.
- TorchScript archives run their own serialized code, so they load with ``torch.jit.load`` only with
  ``trust=True``; ``predict`` calls the scripted module.

``predict`` feeds a float32 tensor built from numpy, lists or a DataFrame and returns numpy (a tuple or dict
of arrays when the network returns several tensors).
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artifact_tools.errors import ArtifactError, CorruptArtifact, NotLoadable, TrustRequired

from .base import LoadedModel, parse_options, require

_DATA_PARALLEL_PREFIX = "module."


@dataclass(frozen=True)
class PyTorchOptions:
    """``file``: which PyTorch file of the artifact, when it holds several; ``module``: a ``torch.nn.Module``
    built from the training code, to load a state dict into (Python API only)."""

    file: str | None = None
    module: Any = field(default=None, metadata={"describe": "a torch.nn.Module, from Python only"})


OPTIONS = PyTorchOptions


def load(root: Path, report, *, trust: bool | str = False, **options: Any) -> LoadedModel:
    """Load the ``torch.save`` / TorchScript file the report names; options: :class:`PyTorchOptions`."""
    opts = parse_options(PyTorchOptions, options, "PyTorch artifacts")
    module = opts.module
    entry = _choose([m for m in report.models if m.format == "pytorch"], opts.file)
    torch = require("torch", "pytorch")
    path = root / entry.path
    info: dict[str, Any] = {"file": entry.path, "format": entry.summary.get("format"),
                            "torch_version_installed": torch.__version__}
    if _is_torchscript(path, entry.summary):
        if module is not None:
            raise ArtifactError(f"module= takes a network to load a state dict into; {entry.path} is a TorchScript "
                                "archive, which brings its own")
        if not trust:
            raise TrustRequired(f"{entry.path} is a TorchScript archive, which runs its own serialized code; "
                                "pass trust=True (CLI: --trust) to load it", [f"TorchScript code in {entry.path}"])
        try:
            scripted = torch.jit.load(str(path), map_location="cpu").eval()
        except RuntimeError as e:
            raise CorruptArtifact(f"{entry.path} cannot be loaded as TorchScript: {_first_line(e)}") from None
        return LoadedModel(scripted, "pytorch", _runner(torch, scripted), info={**info, "kind": "torchscript"},
                           sample_fn=_sampler(torch, scripted))
    try:
        obj = _torch_load(torch, path, entry, trust, report.entry_point)
    except NotLoadable:
        # a whole pickled network whose classes live in the artifact's code/ (not importable from here): the
        # container imports them through the entry point's model_fn, with code/ on sys.path
        from . import inference_code

        code = inference_code.plan(report, root)
        if not (trust and module is None and opts.file is None and code is not None and not code.error
                and "model_fn" in code.defined):
            raise
        return inference_code.load(root, report, trust=trust)
    if isinstance(obj, torch.nn.Module):
        if module is not None:
            raise ArtifactError(f"module= takes a network to load a state dict into; {entry.path} holds a whole "
                                f"{type(obj).__name__}, not a state dict")
        obj.eval()
        return LoadedModel(obj, "pytorch", _runner(torch, obj), info={**info, "kind": "module"},
                           sample_fn=_sampler(torch, obj))
    state = _state_dict(torch, obj)
    if module is None:
        from . import inference_code

        code = inference_code.plan(report, root)  # the entry point read as text; nothing of it imported
        if code is not None and not code.error and "model_fn" in code.defined:
            if trust and opts.file is None:  # the script's model_fn builds the network: load the way the container does
                return inference_code.load(root, report, trust=trust)
            how = (f"the network is built by {code.entry_point}, and loading through it runs its {code.functions()}: "
                   "pass trust=True (CLI: --trust) if you trust the artifact's author, or")
        elif report.entry_point:
            how = f"the network is defined in {report.entry_point}:"
        elif code is None and _code_files(root):
            how = (f"the network is defined in the artifact's code ({', '.join(_code_files(root)[:3])}), which "
                   "defines no model_fn:")
        else:
            how = "the artifact does not include the code that defines the network:"

        def refuse(data: Any):
            raise NotLoadable(f"{entry.path} holds weights only; {how} pass module=<torch.nn.Module built from that "
                              "code> to predict")

        kind = "state_dict" if state is obj else "checkpoint"
        return LoadedModel(obj, "pytorch", refuse, info={**info, "kind": kind}, sample_fn=lambda: refuse(None))
    if not isinstance(module, torch.nn.Module):
        raise ArtifactError(f"module must be a torch.nn.Module instance, not {type(module).__name__}")
    if state is None:
        raise NotLoadable(f"{entry.path} holds no state dict to load into the module")
    try:
        module.load_state_dict(_unwrap_data_parallel(state, module), strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"the module does not match the weights in {entry.path}: {_first_line(e)}") from None
    module.eval()
    return LoadedModel(module, "pytorch", _runner(torch, module), info={**info, "kind": "state_dict"},
                       sample_fn=_sampler(torch, module))


def _code_files(root: Path) -> list[str]:
    folder = root / "code"
    return sorted(f"code/{p.name}" for p in folder.glob("*.py")) if folder.is_dir() else []


def _choose(entries: list, file: str | None):
    if file is not None:
        chosen = [e for e in entries if e.path == file]
        if not chosen:
            raise ArtifactError(f"{file} is not a PyTorch file of the artifact ({', '.join(e.path for e in entries)})")
        return chosen[0]
    if not entries:
        raise NotLoadable("the report names no PyTorch file to load")
    if len(entries) > 1:
        raise ArtifactError(f"the artifact holds {len(entries)} PyTorch files ({', '.join(e.path for e in entries)}); "
                            "pass file=<path> to choose one")
    return entries[0]


def _is_torchscript(path: Path, summary: dict) -> bool:
    """From the report, or (a file too large to read during inspection) from the zip's record names."""
    if "torchscript" in summary:
        return bool(summary["torchscript"])
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist())


def _torch_load(torch, path: Path, entry, trust: bool | str, entry_point: str | None):
    """``torch.load`` with ``weights_only=True`` at every level but ``trust="all"``.

    The audit already refused what ``trust`` does not cover. At ``trust=True`` the classes outside the allowlist
    that the pickle names are resolved exactly as the scikit-learn loader resolves them (classes only, defined where
    the pickle says, never standard-library or strictly judged internals) and admitted through torch's own
    ``torch.serialization.safe_globals``; ``weights_only=False`` (torch's unrestricted unpickler) only under
    ``trust="all"``.
    """
    from artifact_tools.trust import classify

    from .sklearn import resolve_class

    if trust == "all":
        return _load_file(torch, path, entry, entry_point, weights_only=False)
    admitted = []
    if trust:
        for full in entry.summary.get("globals", []):
            module, _, name = str(full).rpartition(".")
            if classify(module, name) == "unknown":
                try:
                    admitted.append(resolve_class(module, name, trust))
                except (ImportError, AttributeError) as e:
                    where = f" ({entry_point})" if entry_point else ""
                    raise NotLoadable(f"{entry.path} pickles {full[:120]} from the training code{where}, which is "
                                      f"not importable here: {_first_line(e)}") from None
    try:
        with torch.serialization.safe_globals(admitted):
            return _load_file(torch, path, entry, entry_point, weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust:
            names = [g for g in entry.summary.get("globals", []) if classify(*str(g).rpartition(".")[::2]) != "allowed"]
            raise TrustRequired(f"{entry.path} pickles more than tensors ({', '.join(names[:5]) or 'unknown types'}); "
                                "pass trust=True (CLI: --trust) to unpickle it", names) from None
        raise TrustRequired(f"{entry.path}: torch's restricted unpickler refused it even with trust=True "
                            f"({_first_line(e)[:200]}); only trust='all' unpickles it without restriction") from None


def _load_file(torch, path: Path, entry, entry_point: str | None, *, weights_only: bool):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError:
        raise
    except (ModuleNotFoundError, AttributeError) as e:
        where = f" ({entry_point})" if entry_point else ""
        raise NotLoadable(f"{entry.path} pickles a class from the training code{where} that is not importable here: "
                          f"{_first_line(e)}") from None
    except (RuntimeError, EOFError, ValueError, TypeError) as e:
        raise CorruptArtifact(f"{entry.path} cannot be read by torch.load: {_first_line(e)}") from None


def _state_dict(torch, obj: Any):
    """``obj`` itself when it maps names to tensors, else its only value that does, else None."""
    def is_state(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, torch.Tensor) for v in d.values())

    if is_state(obj):
        return obj
    nested = [v for v in obj.values() if is_state(v)] if isinstance(obj, dict) else []
    return nested[0] if len(nested) == 1 else None


def _unwrap_data_parallel(state: dict, module) -> dict:
    expected = module.state_dict().keys()
    if all(k.startswith(_DATA_PARALLEL_PREFIX) for k in state) and not all(
            k.startswith(_DATA_PARALLEL_PREFIX) for k in expected):
        return {k[len(_DATA_PARALLEL_PREFIX):]: v for k, v in state.items()}
    return state


def _first_line(e: Exception) -> str:
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)[:300]


def _runner(torch, net):
    import numpy as np

    def to_numpy(out: Any):
        if isinstance(out, torch.Tensor):
            return out.detach().cpu().numpy()
        if isinstance(out, dict):
            return {k: to_numpy(v) for k, v in out.items()}
        if isinstance(out, (tuple, list)):
            return tuple(to_numpy(v) for v in out)
        return out

    def predict(data: Any):
        if hasattr(data, "to_numpy"):
            data = data.to_numpy()
        x = torch.as_tensor(np.asarray(data, dtype=np.float32))
        try:
            with torch.no_grad():
                return to_numpy(net(x))
        except (RuntimeError, ValueError, TypeError) as e:
            raise ArtifactError(f"the network rejected the input of shape {tuple(x.shape)}: {_first_line(e)}") from None

    return predict


_SAMPLE_SIDE = 64  # height/width (or length) of a sample image (signal) for a network starting with a convolution


def _sampler(torch, net):
    """A sample input read from the network's first parameter (in registration order, the first layer's weight):
    ``nn.Linear`` weight ``[out, in]`` -> two rows of ``in`` features; ``nn.Conv1d/2d/3d`` weight
    ``[out, in, k...]`` -> one ``in``-channel input of side 64 (torch ``nn/modules/linear.py``, ``conv.py``).
    None (no sample) for a network without parameters or whose first one is anything else (an embedding...)."""
    import numpy as np

    try:
        name, first = next(iter(net.named_parameters()), (None, None))
    except (RuntimeError, AttributeError):
        return None
    if first is None or first.dim() < 2 or first.dim() > 5 or "embed" in name.lower():  # embeddings take token ids
        return None
    shape = tuple(first.shape)
    if first.dim() == 2:
        size = (2, shape[1])
    else:
        size = (1, shape[1]) + (_SAMPLE_SIDE,) * (first.dim() - 2)
    return lambda: np.random.default_rng(0).normal(size=size).astype(np.float32)
