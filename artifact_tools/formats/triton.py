"""Triton Inference Server model repositories: ``<model>/config.pbtxt`` (protobuf *text* format) and the
numbered version folders beside it, read as data.

Facts used, with their sources:

- Protobuf text format (protobuf.dev "Text Format Language Specification"; protocolbuffers/protobuf
  ``src/google/protobuf/text_format.cc``): a message is a sequence of fields ``name: value`` (the colon is
  optional before a message value), separated by optional ``,`` or ``;``; message values are ``{ ... }`` or
  ``< ... >``; a list ``[a, b]`` gives several values of one repeated field, and repeating the field does
  the same; scalar values are strings in ``"`` or ``'`` with C escapes (adjacent strings are joined),
  numbers (decimal, ``0x`` hex, leading-zero octal, floats with an optional ``f`` suffix, ``-`` for
  negatives, ``inf``/``nan``), and identifiers (enum names, ``true``/``false``); ``#`` starts a comment
  to the end of the line; ``[full.name]`` names an extension or ``Any`` type. A trailing comma before a
  list's ``]`` (seen in real repositories) is accepted here.
- Triton's ``ModelConfig`` (triton-inference-server/common ``protobuf/model_config.proto``): ``name``,
  ``platform``, ``backend``, ``runtime``, ``version_policy`` (``ModelVersionPolicy``: one of
  ``latest { num_versions }``, ``all { }``, ``specific { versions: [...] }``), ``max_batch_size`` (0 = the
  model does not batch; ``dims`` then include no batch dimension), repeated ``input`` (``ModelInput { name;
  data_type; format; dims; reshape { shape }; is_shape_tensor; allow_ragged_batch; optional }``), repeated
  ``output`` (``ModelOutput { name; data_type; dims; reshape; label_filename; is_shape_tensor }``), repeated
  ``instance_group`` (``ModelInstanceGroup { name; kind: KIND_AUTO|KIND_GPU|KIND_CPU|KIND_MODEL; count;
  gpus }``), ``default_model_filename``, ``parameters`` (``map<string, ModelParameter { string_value }>``),
  ``dynamic_batching``, ``sequence_batching``, ``ensemble_scheduling { step { model_name; model_version } }``,
  ``model_warmup``. An absent number or bool has its proto3 default (0, false), as protobuf reads it, except
  an instance group's ``count``, which Triton fills in as 1; an absent string is None. ``DataType`` values are
  ``TYPE_BOOL``, ``TYPE_UINT8`` ... ``TYPE_FP32``, ``TYPE_STRING``, ``TYPE_BF16`` (numbers 0-14, below).
- Repository layout (triton-inference-server/server ``docs/user_guide/model_repository.md``): a repository
  holds one folder per model, named as the model; in it an optional ``config.pbtxt``, output label files and
  one numerically named folder per version holding the model definition, whose default file name depends on
  the platform/backend (``model.plan``, ``model.onnx``, ``model.pt``, ``model.graphdef``,
  ``model.savedmodel/``, ``model.xml``+``model.bin``, ``model.py``...). Version folders whose names are not
  numbers, or start with ``0``, are ignored. Without ``version_policy`` Triton serves the latest version only
  (``docs/user_guide/model_configuration.md``, "Version Policy").
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from ..errors import CorruptArtifact, NotAnArtifact
from ._text import bounded_text

MAX_BYTES = 4 << 20
"""Largest config.pbtxt parsed (real ones are a few KiB)."""
MAX_DEPTH = 32
"""Deepest nesting of messages accepted (Triton's configs nest a handful deep)."""
MAX_VALUES = 200_000
"""Most fields and values accepted in one file."""

DATA_TYPES = {
    0: "TYPE_INVALID", 1: "TYPE_BOOL", 2: "TYPE_UINT8", 3: "TYPE_UINT16", 4: "TYPE_UINT32", 5: "TYPE_UINT64",
    6: "TYPE_INT8", 7: "TYPE_INT16", 8: "TYPE_INT32", 9: "TYPE_INT64", 10: "TYPE_FP16", 11: "TYPE_FP32",
    12: "TYPE_FP64", 13: "TYPE_STRING", 14: "TYPE_BF16",
}
"""``inference.DataType`` of ``model_config.proto``."""

INSTANCE_KINDS = {0: "KIND_AUTO", 1: "KIND_GPU", 2: "KIND_CPU", 3: "KIND_MODEL"}

DEFAULT_MODEL_FILENAMES = {
    "tensorrt_plan": "model.plan", "tensorrt": "model.plan",
    "onnxruntime_onnx": "model.onnx", "onnxruntime": "model.onnx",
    "pytorch_libtorch": "model.pt", "pytorch": "model.pt",
    "tensorflow_graphdef": "model.graphdef", "tensorflow_savedmodel": "model.savedmodel",
    "tensorflow": "model.savedmodel",
    "openvino": "model.xml", "python": "model.py", "dali": "model.dali",
}
"""Default model file (or folder) inside a version folder, by platform or backend (model_repository.md)."""

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n\f\v]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fF]?))
  | (?P<ident>-?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]<>:;,/.])
""", re.VERBOSE)
_ESCAPES = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63}
_FLOAT_WORDS = {"inf": float("inf"), "infinity": float("inf"), "nan": float("nan")}


class _Parser:
    def __init__(self, text: str, label: str):
        self.label = label
        self.tokens: list[tuple[str, str, int]] = []
        pos, line = 0, 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise self._error(line, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup
            assert kind is not None  # every alternative of _TOKEN is a named group
            if kind != "ws":
                if len(self.tokens) >= 4 * MAX_VALUES:
                    raise CorruptArtifact(f"{label} holds more than {MAX_VALUES} values")
                self.tokens.append((kind, m.group(), line))
            line += m.group().count("\n")
            pos = m.end()
        self.i = 0
        self.values = 0
        self.warnings: list[str] = []

    def _error(self, line: int, why: str) -> CorruptArtifact:
        return CorruptArtifact(f"{self.label} is not valid protobuf text format (line {line}: {why})")

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, text: str | None = None) -> tuple[str, str, int]:
        tok = self._peek()
        if tok is None:
            last = self.tokens[-1][2] if self.tokens else 1
            raise self._error(last, f"the text ends where {text or 'a value'} was expected")
        if text is not None and tok[1] != text:
            raise self._error(tok[2], f"expected {text!r}, found {tok[1][:40]!r}")
        self.i += 1
        return tok

    def message(self, close: str | None, depth: int) -> dict[str, list]:
        if depth > MAX_DEPTH:
            tok = self._peek()
            raise self._error(tok[2] if tok else 1, f"messages nest more than {MAX_DEPTH} deep")
        out: dict[str, list] = {}
        while True:
            tok = self._peek()
            if tok is None:
                if close is not None:
                    last = self.tokens[-1][2] if self.tokens else 1
                    raise self._error(last, f"a message is not closed with {close!r}")
                return out
            if close is not None and tok[1] == close:
                self.i += 1
                return out
            name = self._field_name()
            tok = self._peek()
            if tok is not None and tok[1] == ":":
                self.i += 1
                tok = self._peek()
            if tok is None:
                raise self._error(self.tokens[-1][2], f"field {name} has no value")
            if tok[1] == "[":
                self.i += 1
                values = self._list(depth)
            else:
                values = [self._value(depth)]
            out.setdefault(name, []).extend(values)
            self.values += len(values)
            if self.values > MAX_VALUES:
                raise CorruptArtifact(f"{self.label} holds more than {MAX_VALUES} values")
            tok = self._peek()
            if tok is not None and tok[1] in (",", ";"):
                self.i += 1

    def _field_name(self) -> str:
        kind, text, line = self._take()
        if kind == "ident" and not text.startswith("-"):
            return text
        if text == "[":  # [extension.name] or [type.googleapis.com/full.Name]
            parts = []
            while True:
                k, t, ln = self._take()
                if t == "]":
                    break
                if k not in ("ident", "punct") or t in "{}[]<>:;,":
                    raise self._error(ln, f"bad extension name part {t[:40]!r}")
                parts.append(t)
                if len(parts) > 200:
                    raise self._error(ln, "extension name too long")
            return "[" + "".join(parts) + "]"
        raise self._error(line, f"expected a field name, found {text[:40]!r}")

    def _list(self, depth: int) -> list:
        values: list = []
        while True:
            tok = self._peek()
            if tok is not None and tok[1] == "]":
                self.i += 1
                return values
            values.append(self._value(depth))
            tok = self._take()
            if tok[1] == "]":
                return values
            if tok[1] != ",":
                raise self._error(tok[2], f"expected ',' or ']' in a list, found {tok[1][:40]!r}")
            nxt = self._peek()
            if nxt is not None and nxt[1] == "]":
                self.warnings.append(f"{self.label} line {tok[2]}: a comma ends a list before ']', which "
                                     "protobuf's own text parser (and so Triton) rejects")

    def _value(self, depth: int) -> Any:
        kind, text, line = self._take()
        if text in ("{", "<"):
            return self.message("}" if text == "{" else ">", depth + 1)
        if kind == "string":
            parts = [self._unquote(text, line)]
            while (tok := self._peek()) is not None and tok[0] == "string":
                self.i += 1
                parts.append(self._unquote(tok[1], tok[2]))
            return "".join(parts)
        if kind == "number":
            return _number(text, lambda why: self._error(line, why))
        if kind == "ident":
            word = text.lstrip("-")
            if word.lower() in _FLOAT_WORDS:
                value = _FLOAT_WORDS[word.lower()]
                return -value if text.startswith("-") else value
            if text.startswith("-"):
                raise self._error(line, f"{text[:40]!r} is not a value")
            if text in ("true", "True", "t"):
                return True
            if text in ("false", "False", "f"):
                return False
            return text
        raise self._error(line, f"expected a value, found {text[:40]!r}")

    def _unquote(self, token: str, line: int) -> str:
        body = token[1:-1]
        out = bytearray()
        i = 0
        while i < len(body):
            c = body[i]
            if c != "\\":
                out += c.encode("utf-8")
                i += 1
                continue
            e = body[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
            elif e in "01234567":
                m = re.match(r"[0-7]{1,3}", body[i + 1:])
                assert m is not None  # body[i + 1] is an octal digit
                out.append(int(m.group(), 8) & 0xFF)
                i += 1 + len(m.group())
            elif e in "xX":
                m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 2:])
                if not m:
                    raise self._error(line, "a \\x escape has no hex digits")
                out.append(int(m.group(), 16))
                i += 2 + len(m.group())
            elif e in "uU":
                n = 4 if e == "u" else 8
                digits = body[i + 2:i + 2 + n]
                if not re.fullmatch(r"[0-9a-fA-F]{%d}" % n, digits) or int(digits, 16) > 0x10FFFF:
                    raise self._error(line, f"a \\{e} escape is not followed by {n} hex digits of a code point")
                out += chr(int(digits, 16)).encode("utf-8", "surrogatepass")
                i += 2 + n
            else:
                raise self._error(line, f"unknown escape \\{e}")
        return out.decode("utf-8", "replace")


def _number(text: str, error) -> int | float:
    t = text.rstrip("fF") if not text.lower().startswith(("0x", "-0x")) else text
    try:
        if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", t):
            return int(t, 16)
        if re.fullmatch(r"-?0[0-7]+", t):
            return int(t, 8)
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        return float(t)
    except ValueError:
        raise error(f"{text[:40]!r} is not a number") from None


def parse(data: bytes | str, label: str = "config.pbtxt", warnings: list[str] | None = None) -> dict[str, list]:
    """Parse protobuf text format into ``{field: [values]}`` (every field a list, messages the same dicts).

    ``warnings``, when given, receives a sentence for each leniency used (a trailing comma in a list).
    No schema is used, so strings and enum identifiers are both ``str``; ``true``/``false`` are bools.
    Raises :class:`CorruptArtifact` for a syntax error, invalid UTF-8, more than :data:`MAX_BYTES` bytes,
    nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_VALUES` values.
    """
    text = bounded_text(data, label, MAX_BYTES, "a model configuration")
    parser = _Parser(text, label)
    out = parser.message(None, 0)
    if warnings is not None:
        warnings.extend(parser.warnings)
    return out


def _one(msg: dict, key: str, default: Any = None) -> Any:
    values = msg.get(key)
    return values[-1] if values else default  # a singular field given twice: the last wins


def _msg(msg: dict, key: str) -> dict | None:
    value = _one(msg, key)
    return value if isinstance(value, dict) else None


def _enum(value: Any, names: dict[int, str]) -> Any:
    return names.get(value, value) if isinstance(value, int) and not isinstance(value, bool) else value


def _ints(values: list, what: str, label: str) -> list[int]:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise CorruptArtifact(f"{label} has a non-integer value in {what}")
    return list(values)


def summarize(data: bytes | str, label: str = "config.pbtxt") -> dict:
    """Describe a Triton ``config.pbtxt``.

    Returns ``{"name", "platform", "backend", "runtime", "max_batch_size", "inputs": [{"name", "data_type",
    "dims", "format", "reshape", "optional"}], "outputs": [{"name", "data_type", "dims", "reshape",
    "label_filename"}], "instance_groups": [{"name", "kind", "count", "gpus"}], "version_policy":
    {"latest": {"num_versions": n}} | {"all": {}} | {"specific": {"versions": [...]}}, "dynamic_batching",
    "sequence_batching", "ensemble_steps": [{"model_name", "model_version"}], "parameters": {key: value},
    "default_model_filename", "model_filename", "runs_python", "warnings": [...]}``. ``model_filename`` is the
    file (or folder) Triton looks for in each version folder; ``runs_python`` says that the Python backend would
    run the repository's ``model.py``; ``warnings`` name the leniencies the text needed.
    """
    if not data:
        raise NotAnArtifact(f"{label} is empty")
    warnings: list[str] = []
    cfg = parse(data, label, warnings)
    inputs = []
    for m in cfg.get("input", []):
        if not isinstance(m, dict):
            raise CorruptArtifact(f"{label} has an input that is not a message")
        reshape = _msg(m, "reshape")
        inputs.append({
            "name": _one(m, "name"),
            "data_type": _enum(_one(m, "data_type", "TYPE_INVALID"), DATA_TYPES),
            "dims": _ints(m.get("dims", []), "dims", label),
            "format": _one(m, "format"),
            "reshape": _ints(reshape.get("shape", []), "reshape", label) if reshape is not None else None,
            "optional": bool(_one(m, "optional", False)),
        })
    outputs = []
    for m in cfg.get("output", []):
        if not isinstance(m, dict):
            raise CorruptArtifact(f"{label} has an output that is not a message")
        reshape = _msg(m, "reshape")
        outputs.append({
            "name": _one(m, "name"),
            "data_type": _enum(_one(m, "data_type", "TYPE_INVALID"), DATA_TYPES),
            "dims": _ints(m.get("dims", []), "dims", label),
            "reshape": _ints(reshape.get("shape", []), "reshape", label) if reshape is not None else None,
            "label_filename": _one(m, "label_filename"),
        })
    groups = []
    for g in cfg.get("instance_group", []):
        if not isinstance(g, dict):
            raise CorruptArtifact(f"{label} has an instance_group that is not a message")
        groups.append({"name": _one(g, "name"), "kind": _enum(_one(g, "kind", "KIND_AUTO"), INSTANCE_KINDS),
                       "count": _one(g, "count", 1), "gpus": _ints(g.get("gpus", []), "gpus", label)})
    policy = _msg(cfg, "version_policy")
    if policy is None:
        version_policy: dict = {"latest": {"num_versions": 1}}
    elif "specific" in policy:
        version_policy = {"specific": {"versions": _ints((_msg(policy, "specific") or {}).get("versions", []),
                                                         "version_policy", label)}}
    elif "all" in policy:
        version_policy = {"all": {}}
    else:
        version_policy = {"latest": {"num_versions": _one(_msg(policy, "latest") or {}, "num_versions", 1)}}
    dynamic = _msg(cfg, "dynamic_batching")
    ensemble = _msg(cfg, "ensemble_scheduling") or {}
    steps = [{"model_name": _one(s, "model_name"), "model_version": _one(s, "model_version", 0)}
             for s in ensemble.get("step", []) if isinstance(s, dict)]
    parameters = {}
    for entry in cfg.get("parameters", []):
        if isinstance(entry, dict):
            value = _msg(entry, "value")
            parameters[str(_one(entry, "key", ""))] = _one(value, "string_value", "") if value is not None else ""
    platform = _one(cfg, "platform")
    backend = _one(cfg, "backend")
    default_file = _one(cfg, "default_model_filename")
    return {
        "name": _one(cfg, "name"),
        "platform": platform,
        "backend": backend,
        "runtime": _one(cfg, "runtime"),
        "max_batch_size": _one(cfg, "max_batch_size", 0),
        "inputs": inputs,
        "outputs": outputs,
        "instance_groups": groups,
        "version_policy": version_policy,
        "dynamic_batching": ({k: v if len(v) > 1 else v[0] for k, v in dynamic.items()} if dynamic is not None
                             else None),
        "sequence_batching": "sequence_batching" in cfg,
        "ensemble_steps": steps,
        "parameters": parameters,
        "default_model_filename": default_file,
        "model_filename": default_file or DEFAULT_MODEL_FILENAMES.get(backend or "") or DEFAULT_MODEL_FILENAMES.get(
            platform or ""),
        "runs_python": backend == "python",
        "warnings": warnings,
    }


def repository_layout(names: list[str]) -> list[dict]:
    """The Triton models in a list of file paths (``/``-separated, relative to the artifact's root).

    Each ``.../<model>/config.pbtxt`` gives ``{"model", "dir", "config", "versions": [{"version", "dir",
    "files"}], "ignored_folders": [...], "other_files": [...]}``: ``model`` is the folder's name (None when
    the configuration sits at the root, where the folder name is not part of the artifact), ``versions``
    the numerically named sub-folders in numeric order with the files below each (relative to it),
    ``ignored_folders`` the sub-folders Triton skips (not a number, or starting with ``0``), ``other_files``
    the files directly in the model folder besides the configuration (label files...).
    """
    out = []
    all_names = sorted(set(names))
    for config in all_names:
        p = PurePosixPath(config)
        if p.name != "config.pbtxt":
            continue
        folder = str(p.parent) if str(p.parent) != "." else ""
        prefix = f"{folder}/" if folder else ""
        versions: dict[str, list[str]] = {}
        ignored: set[str] = set()
        others = []
        for n in all_names:
            if not n.startswith(prefix) or n == config:
                continue
            rest = n[len(prefix):]
            head, sep, tail = rest.partition("/")
            if not sep:
                others.append(rest)
            elif head.isdigit() and not head.startswith("0"):
                versions.setdefault(head, []).append(tail)
            elif not (folder == "" and any(PurePosixPath(x).name == "config.pbtxt" and x.startswith(head + "/")
                                           for x in all_names)):
                ignored.add(head)
        out.append({
            "model": p.parent.name if folder else None,
            "dir": folder,
            "config": config,
            "versions": [{"version": int(v), "dir": f"{prefix}{v}", "files": files}
                         for v, files in sorted(versions.items(), key=lambda kv: int(kv[0]))],
            "ignored_folders": sorted(ignored),
            "other_files": others,
        })
    return out
