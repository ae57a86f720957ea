"""What every loader shares: the uniform result :class:`LoadedModel`, typed options, lazy framework imports.

Every loader module returns a LoadedModel. ``model`` is the framework's own object (a Booster, a Gluon
SymbolBlock, a scikit-learn estimator, ...), ``predict`` accepts what fits the model (numpy, pandas,
lists, texts) and returns numpy or pandas.

Options: each loader module declares its options as a dataclass named in its ``OPTIONS`` attribute
(``TensorFlowOptions(version=None, signature="serving_default")``...) and turns the keyword arguments
``loaders.load`` passes on into one with :func:`parse_options`: unknown names are refused with one sentence
naming the known ones, and text values (``-o KEY=VALUE`` on the command line) are converted to the field's
type.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import sys
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, TypeVar, Union

from artifact_tools.errors import ArtifactError, MissingExtra

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any
    framework: str
    predict_fn: Callable[[Any], Any]
    report: Any = None  # artifact_tools.report.Report of the artifact, when loaded from one
    info: dict = field(default_factory=dict)  # loader facts: versions, signature used, warnings...
    # a small valid input built from the artifact's own metadata (feature names/counts, signature shapes, schemas,
    # vocabularies); None when the artifact records nothing to build one from
    sample_fn: Callable[[], Any] | None = None
    # the artifact's own request handling (SageMaker inference code: input_fn -> predict_fn -> output_fn):
    # (body, content_type, accept) -> (body, content_type); None when the shared codec (de)serialises requests
    invoke_fn: Callable[[bytes, str, str], tuple[bytes, str]] | None = None

    def predict(self, data: Any) -> Any:
        return self.predict_fn(data)

    def sample_input(self) -> Any:
        """A small valid input for :meth:`predict`, built from the artifact's metadata only (never from data)."""
        if self.sample_fn is None:
            raise ArtifactError(f"no sample input can be built for this {self.framework} model: the artifact "
                                "records no input shape, feature names or schema")
        return self.sample_fn()

    def __repr__(self) -> str:
        return f"LoadedModel(framework={self.framework!r}, model={type(self.model).__name__})"


def require(module: str, extra: str):
    """Import a framework module lazily; a missing one raises :class:`MissingExtra` naming the extra."""
    already = sys.modules.get(module) is not None
    start = time.perf_counter()
    try:
        imported = importlib.import_module(module)
    except ImportError:
        raise MissingExtra(extra, module.split(".")[0]) from None
    if not already:
        log.info("imported %s %s in %.1f s", module, getattr(imported, "__version__", ""),
                 time.perf_counter() - start)
    return imported


def newer_version_warning(what: str, saved: str | None, installed: str) -> str | None:
    """A warning sentence when the artifact was saved by a newer ``what`` than the one installed, else None."""
    from packaging.version import InvalidVersion, Version

    try:
        newer = bool(saved) and Version(str(saved)) > Version(installed)
    except InvalidVersion:
        return None
    return (f"saved with {what} {saved}, newer than the installed {installed}; loading may fail or differ"
            if newer else None)


# ------------------------------------------------------------------------------------------ options

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_options(cls: type[T], given: Mapping[str, Any], what: str) -> T:
    """``cls`` (a dataclass of loader options) built from keyword arguments, refusing unknown names.

    Text values are converted to the field's type (``"3"`` -> ``3`` for ``int | str | None``, ``"true"`` ->
    ``True``, a ``Literal`` checks the choice); other values must already have the field's type. ``what``
    names the artifacts in the error sentence (``"TensorFlow artifacts"``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(given) - set(fields))
    if unknown:
        known = f"known: {describe_options(cls)}" if fields else "there are none"
        raise ArtifactError(f"unknown option(s) {', '.join(unknown)} for {what}; {known}")
    hints = typing.get_type_hints(cls)
    options = cls(**{name: _convert(name, value, hints[name]) for name, value in given.items()})
    log.debug("options for %s: %s", what, options)
    return options


def describe_options(cls: type) -> str:
    """``name (type, default ...)`` for each field of an options dataclass, for help texts and errors."""
    hints = typing.get_type_hints(cls)
    parts = []
    for f in dataclasses.fields(cls):
        default = "" if f.default is None or f.default is dataclasses.MISSING else f", default {f.default}"
        kind = f.metadata.get("describe") or _describe(hints[f.name])
        parts.append(f"{f.name} ({kind}{default.lower() if isinstance(f.default, bool) else default})")
    return ", ".join(parts)


def _members(tp: Any) -> list[Any]:
    """The members of a union type (``int | str | None``), or the type itself."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return list(typing.get_args(tp))
    return [tp]


def _describe(tp: Any) -> str:
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    out = []
    for m in _members(tp):
        if m is type(None):
            continue
        if typing.get_origin(m) is Literal:
            out.append(" or ".join(repr(a) for a in typing.get_args(m)))
        else:
            out.append(words.get(m, getattr(m, "__name__", str(m))))
    return " or ".join(out) or "nothing"


def _convert(name: str, value: Any, tp: Any) -> Any:
    """``value`` as the type ``tp`` (text converted, other values checked), or one sentence naming the field."""
    members = _members(tp)
    if tp is Any or object in members or (value is None and type(None) in members):
        return value
    if isinstance(value, str):  # text, as the command line gives it: the first member it converts to
        text = value.strip()
        for m in members:
            if m is str:
                return value
            if m in (int, float):
                try:
                    return m(text)
                except ValueError:
                    continue
            if m is bool and text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            if typing.get_origin(m) is Literal:
                match = [a for a in typing.get_args(m) if str(a) == text]
                if match:
                    return match[0]
    else:  # a Python value: it must already have one of the types (an int is a float, a bool is no number)
        for m in members:
            if typing.get_origin(m) is Literal:
                if value in typing.get_args(m) and not isinstance(value, bool):
                    return value
            elif m is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            elif isinstance(m, type) and m is not type(None) and isinstance(value, m) and not (
                    isinstance(value, bool) and m is int):
                return value
    shown = repr(value) if isinstance(value, (str, int, float, bool)) else f"a {type(value).__name__}"
    raise ArtifactError(f"{name} must be {_describe(tp)}, not {shown[:100]}")
