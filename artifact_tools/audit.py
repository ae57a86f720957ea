"""The one trust audit: every member that can carry code or I/O, whatever detector wins, read as data.

``inspect`` runs it over every member it kept (nested zip members included) and stores the result in
``report.trust``; ``loaders.load``, ``serve`` and the exporters decide from that section through
``trust.check`` before any framework reads a byte. The rules per kind of member:

- Pickles wherever they sit (``.pkl``, ``.joblib``, extension-less files sniffed as pickles, whole-file compressed
  joblib files, the pickles inside torch files, object ``.npy`` arrays, the nested pickles joblib writes for
  object arrays): every global and every direct call, judged by ``trust.pickle_findings``.
- ``torch.save`` zips: every ``*.pkl`` record (``data.pkl``, TorchScript's ``constants.pkl``); a ``code/`` folder
  or ``constants.pkl`` means TorchScript, whose serialized code runs on load. Legacy ``torch.save`` files: the
  five pickles of that format (magic number, protocol, system info, the object, the storage keys).
  TorchScript written by torch 1.0 (``model.json`` beside ``code/`` and ``tensors/``) is code as well.
- Keras ``.keras`` zips and HDF5 files: ``formats.savedmodel.audit_keras`` (every config in the file).
- TensorFlow SavedModels: ``formats.savedmodel.audit_saved_model`` (ops that touch files, processes or Python,
  reachable from signatures, initialisers or restore functions).
- Hugging Face configs naming ``auto_map`` remote code; Spark ML stages whose class is not Spark's own (they
  need user code on the JVM class path).
- Python files: a serving container would run them; artifact-tools never does, so loading does not need trust.

A member the audit cannot read completely (too large to keep, or damaged) is a finding too, never skipped.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Callable, Iterable

from .errors import ArtifactError
from .formats.pickle_data import decompress_joblib, read_pickle
from .trust import Finding, pickle_findings

log = logging.getLogger(__name__)

PICKLE_KINDS = ("pickle", "joblib-compressed")
LEGACY_TORCH_PICKLES = 5


def audit_pickle_bytes(member: str, data: bytes, limit: int) -> list[Finding]:
    """Findings for one pickle file (joblib compression undone first, nested joblib pickles included)."""
    try:
        pk = read_pickle(decompress_joblib(data, limit))
    except ArtifactError as e:
        return [_unreadable(member, e)]
    return pickle_findings(member, pk.globals, pk.called, pk.oddities)


def audit_pickles_in_sequence(member: str, data: bytes, count: int, start: int = 0) -> list[Finding]:
    """Findings for ``count`` pickles written back to back (the legacy torch.save format)."""
    globals_, called, odd = [], [], []
    pos = start
    for i in range(count):
        try:
            pk = read_pickle(data, pos)
        except ArtifactError as e:
            if i < count - 1:
                return [_unreadable(member, e)]
            break
        globals_ += pk.globals
        called += pk.called
        odd += pk.oddities
        pos = pk.end
    return pickle_findings(member, globals_, called, odd)


def _unreadable(member: str, e: Exception) -> Finding:
    return Finding(member, "unknown-types", f"cannot be audited ({str(e)[:200]}); loading it needs trust=True")


def audit_torch_zip(member: str, data: bytes) -> list[Finding]:
    from .filetree import ZIP_ERRORS, ZipTree

    try:
        tree = ZipTree(bytes(data), label=member)
        names = tree.names()
    except (ArtifactError, *ZIP_ERRORS) as e:
        return [_unreadable(member, e)]
    return audit_torch_tree(member, tree, names)


def audit_torch_tree(member: str, tree, names: list[str]) -> list[Finding]:
    """A torch zip's records. TorchScript archives (a ``code/`` folder or ``constants.pkl``) are unpickled by
    TorchScript's own C++ unpickler, which resolves only the archive's ``__torch__`` classes (from its ``code/``)
    and its fixed ``torch.jit._pickle`` builtins, never a Python import (``torch/csrc/jit/serialization/
    unpickler.cpp``): what runs is the archive's code, one ``code`` finding. Other torch zips are read by
    ``torch.load``'s Python unpickler, so every ``*.pkl`` record gets the pickle rules. torch finds its records
    with miniz's ``mz_zip_reader_locate_file`` without ``MZ_ZIP_FLAG_CASE_SENSITIVE`` (caffe2/serialize/
    inline_container.cc), so names are compared ignoring case here: ``DATA.PKL`` is audited as ``data.pkl`` is,
    and two records whose names differ only in case are a finding (either could be the one torch reads)."""
    folded: dict[str, str] = {}
    for n in names:
        other = folded.setdefault(n.lower(), n)
        if other != n:
            return [Finding(member, "unknown-types",
                            f"holds records {other[:100]!r} and {n[:100]!r} whose names differ only in case; torch "
                            "looks records up ignoring case (miniz), so which one it reads cannot be told; "
                            "loading it needs trust=True")]
    lowered = [n.lower() for n in names]
    if any(n.endswith("/constants.pkl") or "/code/" in f"/{n}" for n in lowered):
        return [Finding(member, "code", "is a TorchScript archive, whose serialized code runs when it is loaded")]
    out: list[Finding] = []
    for n in names:
        if n.lower().endswith(".pkl"):  # miniz finds ``data.pkl`` under any case
            try:
                body = tree.read(n)
            except (ArtifactError, OSError, ValueError) as e:
                out.append(_unreadable(f"{member}!/{n}", e))
                continue
            out += audit_pickle_bytes(f"{member}!/{n}", body, len(body) + 1)
    return out


def audit_members(names: Iterable[str], kinds: dict[str, str], read: Callable[[str], bytes | None],
                  limit: int) -> list[Finding]:
    """Audit every member: ``read(name)`` gives its whole bytes, or None when inspection could not keep them."""
    out: list[Finding] = []
    names = list(names)
    for name in names:
        kind = kinds.get(name, "binary")
        base = name.rpartition("!/")[2].rpartition("/")[2]  # the file name (names are normalised)
        data = b""  # the member's bytes, read below for the kinds audited from them
        if kind in PICKLE_KINDS or kind in ("torch-legacy", "torch-zip", "keras-zip", "hdf5") \
                or base == "saved_model.pb" or (kind == "npy"):
            read_data = read(name)
            if read_data is None:
                if kind != "npy":
                    out.append(Finding(name, "unknown-types", "is too large to audit during inspection; "
                                                              "loading it needs trust=True"))
                continue
            data = read_data
        try:
            if kind in PICKLE_KINDS:
                out += audit_pickle_bytes(name, data, max(limit, 1))
            elif kind == "torch-legacy":
                out += audit_pickles_in_sequence(name, data, LEGACY_TORCH_PICKLES)
            elif kind == "torch-zip":
                out += audit_torch_zip(name, data)
            elif kind in ("keras-zip", "hdf5"):
                from .formats import savedmodel  # imported only when a member needs it

                out += [Finding(name, "code", s) for s in savedmodel.audit_keras(data)]
            elif base == "saved_model.pb":
                from .formats import savedmodel

                out += [Finding(name, "code", s) for s in savedmodel.audit_saved_model(data)]
            elif kind == "npy":
                out += _audit_npy(name, data)
            elif kind in ("json", "jsonl") and _SPARK_METADATA.search(name):
                out += _audit_spark_metadata(name, read(name))
            elif kind == "python":
                out.append(Finding(name, "code", "is Python code a serving container would run; "
                                                 "artifact-tools never runs it", on_load=False))
        except ArtifactError as e:
            out.append(_unreadable(name, e))
    out += _audit_old_torchscript(names)
    return out


def _audit_npy(name: str, data: bytes) -> list[Finding]:
    """An ``.npy`` array of Python objects is a pickle after the header (numpy ``lib/format.py``: magic, version,
    header length as uint16 in 1.0 and uint32 in 2.0/3.0, the header dict, then the data)."""
    if data[:6] != b"\x93NUMPY" or len(data) < 12:
        return []
    start = 10 + int.from_bytes(data[8:10], "little") if data[6] == 1 else 12 + int.from_bytes(data[8:12], "little")
    header = data[:start]
    if b"'O" not in header and b'"O' not in header and b"'|O" not in header and b"('" not in header:
        return []
    if start >= len(data) or not data[start:start + 2].startswith((b"\x80", b"(", b"c", b"]", b"}")):
        return []
    return audit_pickle_bytes(name, data[start:], len(data) + 1)


_SPARK_METADATA = re.compile(r"(^|/)metadata/part-\d{5}")


def _audit_spark_metadata(name: str, data: bytes | None) -> list[Finding]:
    """A Spark ML stage whose class is not Spark's own needs user code on the JVM class path (``loaders/spark.py``)."""
    if not data:
        return []
    line = data.split(b"\n", 1)[0]
    try:
        meta = json.loads(line)
    except (ValueError, RecursionError):
        return []
    cls = meta.get("class") if isinstance(meta, dict) else None
    if isinstance(cls, str) and not cls.startswith("org.apache.spark.ml."):
        return [Finding(name, "code", f"names the JVM class {cls[:200]}, which runs user code from the class path")]
    return []


def _audit_old_torchscript(names: list[str]) -> list[Finding]:
    """TorchScript of torch 1.0-1.2: ``model.json`` with ``code/`` and ``tensors/`` beside it (no data.pkl).

    One walk over the names collects every folder that holds a ``code/`` or ``tensors/`` folder (linear in the
    names' length, however many ``model.json`` there are)."""
    code: set[str] = set()
    tensors: set[str] = set()
    jsons = []
    for n in names:
        if "code/" in n or "tensors/" in n:
            parts = n.split("/")
            for i in range(len(parts) - 1):
                if parts[i] == "code":
                    code.add("/".join(parts[:i]))
                elif parts[i] == "tensors":
                    tensors.add("/".join(parts[:i]))
        if n == "model.json" or n.endswith("/model.json"):
            jsons.append(n)
    out = []
    for n in jsons:
        d = n[: -len("model.json")].rstrip("/")
        if d in code and d in tensors:
            out.append(Finding(n, "code", "is a TorchScript archive of torch 1.0, whose serialized code runs "
                                          "when it is loaded"))
    return out


def hf_remote_code(member: str, config: dict) -> list[Finding]:
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if auto_map:
        shown = json.dumps(auto_map)[:200]
        return [Finding(member, "code", f"names remote code through auto_map ({shown}); loading it runs that code")]
    return []
