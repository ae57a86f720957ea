"""The inspection report and its three views: JSON (stable schema), terminal (rich) and HTML (Jupyter).

JSON schema ``artifact-tools.inspect/1`` (keys always present; the JSON Schema document describing exactly what
:meth:`Report.to_json` emits ships in the package as ``artifact_tools/schema/inspect-1.schema.json``, see
:func:`json_schema`; README documents it too):

- ``schema``: ``"artifact-tools.inspect/1"``
- ``source``: what was opened; ``container``: tar.gz | tar | tar.bz2 | tar.xz | zip | directory | file | gzip-file
- ``root_prefix``: the extra top-level folder everything sits in ("" when none)
- ``framework``: mxnet | xgboost | sklearn | tensorflow | huggingface | spark | mleap | pytorch | r | djl-lmi |
  sagemaker-builtin | pickle | unknown
- ``layout``: builtin-algorithm | framework-container | tf-serving | sparkml-serving | custom-container |
  loose-file | unknown
- ``algorithm``: the SageMaker built-in algorithm (linear-learner, kmeans, pca, ntm, factorization-machines,
  image-classification, knn, blazingtext, xgboost) or null
- ``loadable``: bool; ``not_loadable_reason``: one sentence or null
- ``entry_point``: the inference script the serving container would run (``code/inference.py``...) or null
- ``trust``: ``{"verdict": safe | unknown-types | code | dangerous, "findings": [str], "members": [{"path",
  "verdict", "findings": [{"level": unknown-types | code | dangerous, "what": str, "on_load": bool}]}]}``
- ``files``: ``[{"path", "size", "kind", "ignored", "duplicates", "conflicts"}]``
- ``models``: ``[{"path", "format", "summary": {...}}]`` — per-format facts read from the files themselves
- ``warnings``: ``[str]``
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Literal, TypedDict, get_args

from ._value import Value
from .errors import ArtifactError

SCHEMA = "artifact-tools.inspect/1"
SCHEMA_FILE = "schema/inspect-1.schema.json"  # inside the package

Framework = Literal["mxnet", "xgboost", "sklearn", "tensorflow", "huggingface", "spark", "mleap", "pytorch", "r",
                    "djl-lmi", "sagemaker-builtin", "pickle", "onnx", "lightgbm", "catboost", "pmml",
                    "neuron", "unknown"]
Layout = Literal["builtin-algorithm", "framework-container", "tf-serving", "sparkml-serving", "custom-container",
                 "loose-file", "triton-repository", "mlflow-model", "compiled", "code-only", "unknown"]
Container = Literal["tar.gz", "tar", "tar.bz2", "tar.xz", "zip", "directory", "file", "gzip-file"]
Algorithm = Literal["linear-learner", "kmeans", "pca", "ntm", "factorization-machines", "image-classification", "knn",
                    "blazingtext", "xgboost"]
Verdict = Literal["safe", "unknown-types", "code", "dangerous"]  # best to worst (artifact_tools.trust.LEVELS)
FindingLevel = Literal["unknown-types", "code", "dangerous"]

FRAMEWORKS: tuple[str, ...] = get_args(Framework)
LAYOUTS: tuple[str, ...] = get_args(Layout)
CONTAINERS: tuple[str, ...] = get_args(Container)
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
VERDICTS: tuple[str, ...] = get_args(Verdict)


class MemberFinding(TypedDict):
    """One finding of the audit in one member (``artifact_tools.trust.Finding``)."""

    level: FindingLevel
    what: str
    on_load: bool  # False: informational (a script only a serving container would run)


class TrustMember(TypedDict):
    path: str
    verdict: Verdict
    findings: list[MemberFinding]


class TrustSection(TypedDict):
    """The report's ``trust``: the worst level found, one sentence per finding, and the detail per member."""

    verdict: Verdict
    findings: list[str]
    members: list[TrustMember]


def _no_findings() -> TrustSection:
    return {"verdict": "safe", "findings": [], "members": []}


class FileInfo(Value):
    _fields = ("path", "size", "kind", "ignored", "duplicates", "conflicts")

    def __init__(self, path: str, size: int, kind: str, ignored: bool = False, duplicates: int = 0,
                 conflicts: int = 0):
        self.path = path
        self.size = size
        self.kind = kind
        self.ignored = ignored
        self.duplicates = duplicates
        self.conflicts = conflicts


class ModelInfo(Value):
    _fields = ("path", "format", "summary")

    def __init__(self, path: str, format: str, summary: dict[str, Any] | None = None):
        self.path = path
        self.format = format
        self.summary: dict[str, Any] = {} if summary is None else summary


class Report(Value):
    """What inspection found; ``_fields`` are the keys of schema ``artifact-tools.inspect/1`` after ``schema``."""

    _fields = ("source", "container", "root_prefix", "framework", "layout", "algorithm", "loadable",
               "not_loadable_reason", "entry_point", "trust", "files", "models", "warnings")

    def __init__(self, source: str, container: Container, root_prefix: str = "", framework: Framework = "unknown",
                 layout: Layout = "unknown", algorithm: Algorithm | None = None, loadable: bool = False,
                 not_loadable_reason: str | None = None, entry_point: str | None = None,
                 trust: TrustSection | None = None, files: list[FileInfo] | None = None,
                 models: list[ModelInfo] | None = None, warnings: list[str] | None = None):
        self.source = source
        self.container = container
        self.root_prefix = root_prefix
        self.framework = framework
        self.layout = layout
        self.algorithm = algorithm
        self.loadable = loadable
        self.not_loadable_reason = not_loadable_reason
        self.entry_point = entry_point
        self.trust: TrustSection = _no_findings() if trust is None else trust
        self.files: list[FileInfo] = [] if files is None else files
        self.models: list[ModelInfo] = [] if models is None else models
        self.warnings: list[str] = [] if warnings is None else warnings

    # ------------------------------------------------------------------ data views
    def to_dict(self) -> dict[str, Any]:
        """The report as schema ``artifact-tools.inspect/1``: plain dicts and lists, copied (changing them does
        not change the report)."""
        return copy.deepcopy(self._plain())

    def _plain(self) -> dict[str, Any]:
        """:meth:`to_dict` without the copy: it shares the report's own lists and dicts."""
        d: dict[str, Any] = {"schema": SCHEMA}
        for k in self._fields:
            d[k] = getattr(self, k)
        d["files"] = [{k: getattr(f, k) for k in f._fields} for f in self.files]
        d["models"] = [{"path": m.path, "format": m.format, "summary": m.summary} for m in self.models]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """``json.dumps(self.to_dict(), indent=indent)``, to the byte. With an indent, json's encoder is pure
        Python; the file list (one entry per member, 100,000 in the largest archives) is written here instead
        from its plain values (strings through json's own C escaper), the same text at a fifth of the cost."""
        d = self._plain()
        files = d["files"]
        if not indent or not isinstance(indent, int) or not files \
                or any(type(v) not in _PLAIN for f in files for v in f.values()):
            return json.dumps(d, indent=indent, default=_jsonable)
        enc = json.encoder.encode_basestring_ascii
        pad = " " * indent
        parts = []
        for k, v in d.items():
            if k == "files":
                key_pad, close = "\n" + pad * 3, "\n" + pad * 2 + "}"
                items = ["{" + ",".join(f"{key_pad}{enc(fk)}: {_plain_value(fv, enc)}" for fk, fv in f.items())
                         + close for f in files]
                text = "[\n" + pad * 2 + (",\n" + pad * 2).join(items) + "\n" + pad + "]"
            else:  # one level down: json's own text with every line indented once more (strings hold no newline)
                text = json.dumps(v, indent=indent, default=_jsonable).replace("\n", "\n" + pad)
            parts.append(f"{pad}{enc(k)}: {text}")
        return "{\n" + ",\n".join(parts) + "\n}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The Report that :meth:`to_dict` (or ``json.loads`` of :meth:`to_json`) gave, every key and value
        checked against schema ``artifact-tools.inspect/1``; anything else raises :class:`ArtifactError`
        naming the first key that does not fit."""
        d = _Reader(data, "the report")
        if d.get("schema", str) != SCHEMA:
            raise ArtifactError(f"the report's schema is {data.get('schema')!r}, not {SCHEMA!r}")
        trust = _Reader(d.get("trust", Mapping), "trust")
        members: list[TrustMember] = []
        for i, raw in enumerate(trust.get("members", list)):
            m = _Reader(raw, f"trust.members[{i}]")
            member: TrustMember = {"path": m.get("path", str), "verdict": m.choice("verdict", VERDICTS),
                                   "findings": []}
            for j, f in enumerate(m.get("findings", list)):
                r = _Reader(f, f"trust.members[{i}].findings[{j}]")
                member["findings"].append({"level": r.choice("level", get_args(FindingLevel)),
                                           "what": r.get("what", str), "on_load": r.get("on_load", bool)})
                r.done()
            members.append(member)
            m.done()
        section: TrustSection = {"verdict": trust.choice("verdict", VERDICTS),
                                 "findings": trust.strings("findings"), "members": members}
        trust.done()
        files = []
        keys = set(FileInfo._fields)
        for i, raw in enumerate(d.get("files", list)):
            # the common case checked in one expression (a cached report of 100,000 members is read at each load);
            # anything else goes through _Reader, which names what does not fit
            if type(raw) is dict and raw.keys() == keys:
                path, size, kind, ignored, dup, con = (raw["path"], raw["size"], raw["kind"], raw["ignored"],
                                                       raw["duplicates"], raw["conflicts"])
                if type(path) is str and type(kind) is str and type(ignored) is bool and type(size) is int \
                        and type(dup) is int and type(con) is int and size >= 0 and dup >= 0 and con >= 0:
                    files.append(FileInfo(path, size, kind, ignored, dup, con))
                    continue
            r = _Reader(raw, f"files[{i}]")
            files.append(FileInfo(r.get("path", str), r.count("size"), r.get("kind", str), r.get("ignored", bool),
                                  r.count("duplicates"), r.count("conflicts")))
            r.done()
        models = []
        for i, raw in enumerate(d.get("models", list)):
            r = _Reader(raw, f"models[{i}]")
            models.append(ModelInfo(r.get("path", str), r.get("format", str), dict(r.get("summary", Mapping))))
            r.done()
        report = cls(source=d.get("source", str), container=d.choice("container", CONTAINERS),
                     root_prefix=d.get("root_prefix", str), framework=d.choice("framework", FRAMEWORKS),
                     layout=d.choice("layout", LAYOUTS), algorithm=d.choice("algorithm", ALGORITHMS, optional=True),
                     loadable=d.get("loadable", bool),
                     not_loadable_reason=d.get("not_loadable_reason", str, optional=True),
                     entry_point=d.get("entry_point", str, optional=True), trust=section, files=files,
                     models=models, warnings=d.strings("warnings"))
        d.done()
        return report

    def __repr__(self) -> str:
        return (f"Report(source={self.source!r}, framework={self.framework!r}, layout={self.layout!r}, "
                f"verdict={self.trust.get('verdict')!r}, models={len(self.models)})")

    def model(self, fmt: str | None = None) -> ModelInfo | None:
        """The first model summary (of a format, when given)."""
        for m in self.models:
            if fmt is None or m.format == fmt:
                return m
        return None

    def kind_of(self, path: str) -> str | None:
        for f in self.files:
            if f.path == path:
                return f.kind
        return None

    # ------------------------------------------------------------------ human views
    def _headline(self) -> list[tuple[str, str]]:
        rows: list[tuple[str, str]] = [("framework", self.framework), ("layout", self.layout)]
        if self.algorithm:
            rows.append(("algorithm", self.algorithm))
        rows.append(("container", self.container + (f" (inside {self.root_prefix}/)" if self.root_prefix else "")))
        rows.append(("loadable", "yes" if self.loadable else f"no: {self.not_loadable_reason}"))
        if self.entry_point:
            rows.append(("entry point", self.entry_point))
        rows.append(("trust", self.trust.get("verdict", "?")))
        return rows

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        head = Table.grid(padding=(0, 2))
        head.add_column(style="bold")
        head.add_column()
        for k, v in self._headline():
            head.add_row(k, v)
        files = Table(title="files", title_justify="left", show_edge=False)
        files.add_column("path")
        files.add_column("size", justify="right")
        files.add_column("kind")
        files.add_column("note")
        for f in self.files:
            note = "ignored" if f.ignored else ""
            if f.duplicates:
                note = f"{f.duplicates} identical duplicate(s)"
            if f.conflicts:
                note = f"{f.conflicts} DIFFERENT duplicate(s)"
            files.add_row(f.path, _human(f.size), f.kind, note)
        parts: list[Any] = [head, files]
        for m in self.models:
            t = Table(title=f"{m.format}: {m.path}", title_justify="left", show_header=False, show_edge=False)
            t.add_column(style="bold", overflow="fold", max_width=48)
            t.add_column()
            for k, v in _flatten(m.summary):
                t.add_row(k, v)
            parts.append(t)
        for finding in self.trust.get("findings", []):
            parts.append(Text(f"trust: {finding}", style="yellow"))
        for w in self.warnings:
            parts.append(Text(f"warning: {w}", style="yellow"))
        return Group(*parts)

    def __str__(self) -> str:
        from rich.console import Console

        console = Console(width=120, record=True, force_terminal=False, color_system=None)
        with console.capture() as cap:
            console.print(self)
        return cap.get()

    def _repr_html_(self) -> str:
        import html

        e = html.escape
        out = ["<div class='artifact-tools-report'><table>"]
        out += [f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self._headline()]
        out.append("</table><details open><summary>files</summary>"
                   "<table><tr><th>path</th><th>size</th><th>kind</th></tr>")
        out += [f"<tr><td>{e(f.path)}</td><td>{_human(f.size)}</td><td>{e(f.kind)}</td></tr>" for f in self.files]
        out.append("</table></details>")
        for m in self.models:
            out.append(f"<details open><summary>{e(m.format)}: {e(m.path)}</summary><table>")
            out += [f"<tr><th style='text-align:left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _flatten(m.summary)]
            out.append("</table></details>")
        for w in self.trust.get("findings", []) + self.warnings:
            out.append(f"<p style='color:#a60'>{e(w)}</p>")
        out.append("</div>")
        return "".join(out)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _is_leaf(x: Any) -> bool:
    return not isinstance(x, (dict, list)) or (isinstance(x, list) and len(x) <= 8
                                                and all(not isinstance(y, (dict, list)) for y in x))


def _compact(d: dict) -> bool:
    return len(d) <= 7 and all(_is_leaf(x) for x in d.values())


def _one_line(d: dict) -> str:
    return ", ".join(f"{a}={json.dumps(b) if isinstance(b, list) else b}" for a, b in d.items())


def _flatten(d: dict, prefix: str = "", limit: int = 60) -> list[tuple[str, str]]:
    """Key/value rows of a nested summary for the human views (long lists are abbreviated)."""
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            if _compact(v):  # e.g. a tensor: name, dtype, shape
                rows.append((key, _one_line(v)))
            else:
                rows.extend(_flatten(v, key + ".", limit))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and (
                len(v) <= 8 or all(_compact(x) for x in v)):
            for i, x in enumerate(v):
                name = f"{key}[{i}]" if len(v) > 1 else key
                if _compact(x):
                    rows.append((name, _one_line(x)))
                else:
                    rows.extend(_flatten(x, name + ".", limit))
        elif isinstance(v, list):
            shown = ", ".join(json.dumps(x, default=_jsonable) if isinstance(x, (dict, list)) else str(x)
                              for x in v[:8])
            rows.append((key, shown + (f", ... ({len(v)} in all)" if len(v) > 8 else "")))
        else:
            rows.append((key, str(v)))
    return rows[:limit] + ([("...", f"{len(rows) - limit} more rows (see --json)")] if len(rows) > limit else [])


_PLAIN = (str, int, bool, type(None))


def _plain_value(v: str | int | bool | None, enc) -> str:
    """A string, int, bool or None as ``json.dumps`` writes it."""
    if type(v) is str:
        return enc(v)
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    return int.__repr__(v)


def _jsonable(o: Any):
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "__dict__"):
        return vars(o)
    return str(o)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``artifact-tools.inspect/1``, as shipped in the package."""
    from importlib.resources import files

    return json.loads(files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


class _Reader:
    """Typed access to one JSON object of a report, each key read once; ``done`` refuses keys left over."""

    def __init__(self, data: Any, where: str):
        if not isinstance(data, Mapping):
            raise ArtifactError(f"{where} must be a JSON object, not {type(data).__name__}")
        self.data, self.where = data, where
        self.seen: set[str] = set()

    def get(self, key: str, kind: type, optional: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data:
            raise ArtifactError(f"{self.where} lacks the key {key!r}")
        value = self.data[key]
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ArtifactError(f"{self.where}: {key} must be {'null or ' if optional else ''}"
                                f"{_KIND_NAMES.get(kind, kind.__name__)}, not {type(value).__name__}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], optional: bool = False) -> Any:
        value = self.get(key, str, optional)
        if value is not None and value not in allowed:
            raise ArtifactError(f"{self.where}: {key} must be one of {', '.join(allowed)}, not {value[:60]!r}")
        return value

    def count(self, key: str) -> int:
        value = self.get(key, int)
        if value < 0:
            raise ArtifactError(f"{self.where}: {key} must be 0 or more, not {value}")
        return value

    def strings(self, key: str) -> list[str]:
        values = self.get(key, list)
        if not all(isinstance(v, str) for v in values):
            raise ArtifactError(f"{self.where}: {key} must be a list of strings")
        return list(values)

    def done(self) -> None:
        extra = sorted(str(k) for k in self.data if k not in self.seen)
        if extra:
            raise ArtifactError(f"{self.where} has unknown key(s) {', '.join(extra)[:200]}")


_KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer", list: "a list", Mapping: "an object"}
