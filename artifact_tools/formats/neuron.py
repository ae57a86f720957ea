"""Artifacts compiled for AWS Inferentia / Trainium (Neuron) or by SageMaker Neo, recognised so that reports can
name them and say why they cannot be loaded here.

Facts used, with their sources:

- torch-neuron (Inferentia 1) and torch-neuronx (Inferentia 2 / Trainium) trace a model into TorchScript whose
  compiled parts run through the custom op ``torch.ops.neuron.forward_v2`` (older: ``forward_1``) on a
  ``torch.classes.neuron.Model`` holding the NEFF (aws-neuron/aws-neuron-sdk, ``torch_neuron`` /
  ``torch_neuronx`` packages). In a TorchScript archive the serialized code calls it as ``ops.neuron.<op>``
  and names the class ``__torch__.torch.classes.neuron.Model``; loading needs the Neuron runtime library
  (``libtorchneuron.so``) and a Neuron device.
- tensorflow-neuron replaces compiled subgraphs by the op ``NeuronOp`` (aws-neuron ``tensorflow/neuron``:
  ``REGISTER_OP("NeuronOp")``); in a SavedModel's ``GraphDef`` a node's op is field 2 of ``NodeDef``
  (``tensorflow/core/framework/node_def.proto``), so the bytes ``12 08 'NeuronOp'`` mark such a node.
- mxnet-neuron puts compiled subgraphs into ``_neuron_subgraph_op`` nodes of the symbol JSON
  (aws-neuron-sdk, ``mx_neuron_check_model.py``).
- ``.neff`` files are Neuron Executable File Format binaries, the compiler's output (neuronx-cc ``--output``).
- SageMaker Neo (TVM / DLR, neo-ai/neo-ai-dlr) writes ``compiled.so`` (a native shared library of the
  operators), ``compiled_model.json`` (the graph), ``compiled.params`` (the weights), often with
  ``compiled.meta`` and ``manifest``; older TVM exports use ``deploy_lib.so`` + ``deploy_graph.json`` +
  ``deploy_param.params``. Running them means loading that native library into the process, with the DLR
  runtime built for the target.

:func:`identify` reads names and, through the caller's ``read_head``, at most a bounded prefix of a few files;
nothing is loaded or run.
"""

from __future__ import annotations

import re
from typing import Callable

from ..errors import ArtifactError
from ..filetree import ZIP_ERRORS, ZipTree

SCAN_BYTES = 8 << 20
"""At most this many bytes of one file are searched for Neuron markers."""
_TORCHSCRIPT_MARKERS = (b"ops.neuron.", b"torch.classes.neuron.", b"classes.neuron.Model")
_TF_MARKER = b"\x12\x08NeuronOp"
_MX_MARKER = re.compile(rb'"op"\s*:\s*"_neuron_subgraph_op"')
_NEO_SETS = (
    ("compiled.so", "compiled_model.json", "compiled.params"),
    ("deploy_lib.so", "deploy_graph.json", "deploy_param.params"),
)
_TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".torchscript", ".neuron", ".ts", ".jit")

NEURON_REASON = ("this artifact was compiled for AWS Inferentia/Trainium (Neuron): its compiled parts run only "
                 "through the Neuron runtime on a Neuron device, so it cannot be loaded here; load the model it was "
                 "compiled from instead")
NEO_REASON = ("this artifact was compiled by SageMaker Neo (TVM/DLR): the model is a native shared library ({lib}) "
              "built for one target, which only the DLR runtime on that target can run, so it cannot be loaded "
              "here; load the model it was compiled from instead")


def identify(names: list[str], read_head: Callable[[str], bytes | None]) -> dict | None:
    """Whether the files ``names`` (paths relative to the artifact's root) are a Neuron- or Neo-compiled model.

    ``read_head(name)`` returns the file's bytes (the first :data:`SCAN_BYTES` are enough; the whole file lets
    a TorchScript zip be opened), or None when they are not at hand. Returns None, or ``{"compiler": "neuron" |
    "neo", "framework": "pytorch" | "tensorflow" | "mxnet" | "tvm" | None, "files": [...], "evidence": [...],
    "reason": one sentence}``.
    """
    evidence: list[str] = []
    files: list[str] = []
    framework = None
    for n in names:
        if n.endswith(".neff"):
            files.append(n)
            evidence.append(f"{n} is a Neuron executable (NEFF)")
    for n in names:
        base = n.rpartition("/")[2]
        if base.endswith(_TORCH_SUFFIXES) or base in ("model", "model_neuron"):
            data = _read(read_head, n)
            if data and data[:4] == b"PK\x03\x04" and _torchscript_uses_neuron(data):
                files.append(n)
                framework = "pytorch"
                evidence.append(f"{n} is TorchScript calling Neuron ops (torch.ops.neuron)")
        elif base == "saved_model.pb":
            data = _read(read_head, n)
            if data and _TF_MARKER in data:
                files.append(n)
                framework = "tensorflow"
                evidence.append(f"{n} holds NeuronOp nodes (tensorflow-neuron)")
        elif base.endswith("-symbol.json") or base == "symbol.json":
            data = _read(read_head, n)
            if data and _MX_MARKER.search(data):
                files.append(n)
                framework = "mxnet"
                evidence.append(f"{n} holds _neuron_subgraph_op nodes (mxnet-neuron)")
    if evidence:
        return {"compiler": "neuron", "framework": framework, "files": sorted(set(files)), "evidence": evidence,
                "reason": NEURON_REASON}
    by_folder: dict[str, set[str]] = {}
    for n in names:
        folder, _, base = n.rpartition("/")  # names are normalised: no trailing or doubled slashes
        by_folder.setdefault(folder or ".", set()).add(base)
    for folder, present in sorted(by_folder.items()):
        for required in _NEO_SETS:
            if set(required) <= present:
                prefix = "" if folder == "." else f"{folder}/"
                found = [prefix + r for r in required]
                found += [prefix + x for x in ("compiled.meta", "manifest") if x in present]
                return {"compiler": "neo", "framework": "tvm", "files": found,
                        "evidence": [f"{prefix}{required[0]} + {required[1]} + {required[2]} (TVM/DLR output)"],
                        "reason": NEO_REASON.format(lib=prefix + required[0])}
    return None


def _read(read_head: Callable[[str], bytes | None], name: str) -> bytes | None:
    try:
        data = read_head(name)
    except (KeyError, OSError):
        return None
    return bytes(data[:SCAN_BYTES]) if data is not None else None


def _torchscript_uses_neuron(data: bytes) -> bool:
    """Whether a TorchScript zip's serialized code calls Neuron ops. The ``code/`` entries and ``constants.pkl``
    are read through the bounded zip reader when the zip is whole; otherwise the raw bytes are searched (torch
    stores entries uncompressed)."""
    if any(m in data for m in _TORCHSCRIPT_MARKERS):
        return True
    try:
        tree = ZipTree(data, "TorchScript archive")
        budget = SCAN_BYTES
        for name in tree.names():
            if "/code/" in f"/{name}" or name.endswith(("constants.pkl", ".debug_pkl")):
                chunk = tree.read_head(name, min(budget, SCAN_BYTES))
                budget -= len(chunk)
                if any(m in chunk for m in _TORCHSCRIPT_MARKERS):
                    return True
                if budget <= 0:
                    break
    except (ArtifactError, *ZIP_ERRORS):
        return False
    return False
