"""MLflow model folders: the ``MLmodel`` file (YAML) read as data, with a small bounded reader of the YAML
subset MLmodel files use (the core has no YAML dependency).

Facts used, with their sources (mlflow/mlflow):

- ``mlflow/models/model.py``: ``Model.save`` writes ``yaml.safe_dump(model.to_dict(), default_flow_style=False)``
  and ``Model.load`` reads it back with ``yaml.safe_load``. Top-level keys: ``artifact_path``, ``flavors``
  (flavor name -> its settings), ``mlflow_version``, ``model_uuid``, ``run_id``, ``utc_time_created``,
  ``signature``, ``saved_input_example_info``, ``model_size_bytes``, ``metadata``, ``databricks_runtime``,
  ``resources``.
- ``mlflow/models/signature.py`` (``ModelSignature.to_dict``): ``signature`` holds ``inputs``, ``outputs`` and
  ``params`` as JSON *strings* (each a list of column or tensor specs), or null.
- ``mlflow/pyfunc/__init__.py`` (``add_to_model``): the ``python_function`` flavor names ``loader_module``,
  ``data`` or ``model_path``, ``code``, ``env`` (``conda: conda.yaml``, ``virtualenv: python_env.yaml``),
  ``python_version``; a custom ``PythonModel`` is stored as a cloudpickle named by ``python_model``
  (loading it runs its code). The framework flavors name their files: ``sklearn`` (``pickled_model``,
  ``serialization_format``, ``sklearn_version``), ``xgboost`` (``data``, ``xgb_version``, ``model_class``),
  ``lightgbm`` (``data``, ``lgb_version``), ``catboost`` (``data``, ``catboost_version``), ``onnx``
  (``data``, ``onnx_version``), ``pytorch`` (``model_data``, ``pytorch_version``), ``tensorflow`` / ``keras``
  (``saved_model_dir`` / ``data``), ``transformers`` (``components``, ``task``...).
  Next to ``MLmodel``: ``requirements.txt``, ``conda.yaml``, ``python_env.yaml``.

The YAML subset (YAML 1.1 as PyYAML reads it; yaml.org/spec/1.1): block mappings and block sequences by
indentation (a sequence may sit at its key's indentation, as PyYAML writes it), plain scalars (null, bool
``true/false/yes/no/on/off``, int, float with a dot, else string; continuation lines folded with a space),
single- and double-quoted scalars over several lines (line folding, ``''`` and backslash escapes), literal
and folded block scalars (``|``, ``>``, with ``-``/``+``), flow sequences and mappings (``[]``, ``{}``),
comments, one optional ``---``. Characters YAML forbids and raw Unicode line breaks (NEL, LS, PS) are refused
(MLflow's ``safe_dump`` writes ASCII, escaping everything else). Anything else is refused with
:class:`CorruptArtifact`: anchors (``&``),
aliases (``*``) and merge keys, tags (``!``, ``!!``), directives (``%``), complex keys (``?``), several
documents, tab indentation. Size, nesting and node count are bounded.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import CorruptArtifact, NotAnArtifact
from ._text import bounded_text

MAX_BYTES = 1 << 20
"""Largest MLmodel file read (real ones are a few KiB; signatures of wide tables reach tens of KiB)."""
MAX_DEPTH = 32
MAX_NODES = 100_000

REQUIREMENT_FILES = ("requirements.txt", "conda.yaml", "python_env.yaml")
FLAVOR_FILE_KEYS = ("pickled_model", "data", "model_data", "model_path", "saved_model_dir", "python_model")
"""Flavor settings that name the model's own file or folder, relative to the MLmodel folder."""

_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_BIN = re.compile(r"[-+]?0b[01_]+")
_HEX = re.compile(r"[-+]?0x[0-9a-fA-F_]+")
_OCT = re.compile(r"[-+]?0[0-7_]+")
_SEXAGESIMAL_INT = re.compile(r"[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+")
_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?")
_SEXAGESIMAL_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False,
          "yes": True, "Yes": True, "YES": True, "no": False, "No": False, "NO": False,
          "on": True, "On": True, "ON": True, "off": False, "Off": False, "OFF": False}
_NULLS = ("", "~", "null", "Null", "NULL")
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters YAML does not allow (PyYAML's ``Reader.NON_PRINTABLE``), plus the Unicode line breaks NEL, LS and
PS, which YAML counts as line breaks and PyYAML (as MLflow calls it) always writes escaped."""
_DQ_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r",
               "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0", "L": "\u2028",
               "P": "\u2029"}


class _Line:
    __slots__ = ("indent", "text", "number")

    def __init__(self, indent: int, text: str, number: int):
        self.indent, self.text, self.number = indent, text, number


class _Reader:
    def __init__(self, text: str, label: str):
        self.label = label
        self.nodes = 0
        self.lines: list[_Line] = []
        started = False
        for number, raw in enumerate(text.split("\n"), 1):
            raw = raw.rstrip("\r")
            body = raw.lstrip(" ")
            if body.startswith("\t") and body.strip():
                raise self.error(number, "indents with a tab")
            if raw.startswith("%"):
                raise self.error(number, "has a YAML directive (%...), which MLmodel files never use")
            if raw.rstrip() == "---" or raw.startswith("--- "):
                if started or any(not _is_blank(ln.text) for ln in self.lines):
                    raise self.error(number, "holds several YAML documents")
                started = True
                rest = raw[3:].strip()
                if rest and not rest.startswith("#"):
                    raise self.error(number, "has content on its document start line")
                continue
            if raw.rstrip() == "...":
                break
            self.lines.append(_Line(len(raw) - len(body), body, number))

    def error(self, number: int, why: str) -> CorruptArtifact:
        return CorruptArtifact(f"{self.label} is not a YAML file MLflow writes (line {number}: {why})")

    def _count(self, number: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(number, f"holds more than {MAX_NODES} values")

    # --- block structure -------------------------------------------------------------------------------

    def _skip(self, i: int) -> int:
        while i < len(self.lines) and _is_blank(self.lines[i].text):
            i += 1
        return i

    def document(self) -> Any:
        i = self._skip(0)
        if i >= len(self.lines):
            return None
        value, i = self._block(i, self.lines[i].indent, 0)
        i = self._skip(i)
        if i < len(self.lines):
            raise self.error(self.lines[i].number, "has content that does not belong to the document's structure")
        return value

    def _block(self, i: int, indent: int, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise self.error(self.lines[i].number, f"nests more than {MAX_DEPTH} levels deep")
        line = self.lines[i]
        if _is_dash(line.text):
            return self._sequence(i, indent, depth)
        if self._key(line) is not None:
            return self._mapping(i, indent, depth)
        return self._value(i, indent - 1, line.text, depth, allow_same_indent_sequence=False)

    def _mapping(self, i: int, indent: int, depth: int) -> tuple[dict, int]:
        out: dict = {}
        while True:
            i = self._skip(i)
            if i >= len(self.lines) or self.lines[i].indent < indent:
                return out, i
            line = self.lines[i]
            if line.indent > indent:
                raise self.error(line.number, "is indented more than the mapping it is in")
            parsed = self._key(line)
            if parsed is None:
                raise self.error(line.number, "expected 'key: value' in a mapping")
            key, rest = parsed
            self._count(line.number)
            out[key], i = self._value(i, indent, rest, depth, allow_same_indent_sequence=True)

    def _sequence(self, i: int, indent: int, depth: int) -> tuple[list, int]:
        out: list = []
        while True:
            i = self._skip(i)
            if i >= len(self.lines) or self.lines[i].indent < indent:
                return out, i
            line = self.lines[i]
            if line.indent > indent or not _is_dash(line.text):
                if line.indent == indent and not _is_dash(line.text):
                    return out, i  # the mapping this sequence belongs to goes on
                raise self.error(line.number, "expected '- item' in a sequence")
            self._count(line.number)
            rest = line.text[1:]
            inner = rest.lstrip(" ")
            if _is_blank(inner):
                value, i = self._nested(i + 1, indent, depth)
            elif _is_dash(inner) or self._key(_Line(0, inner, line.number)) is not None:
                # '- key: value' / '- - item': a collection starting on the dash line, at the item's column
                column = indent + 1 + (len(rest) - len(inner))
                self.lines[i] = _Line(column, inner, line.number)
                value, i = self._block(i, column, depth + 1)
            else:
                value, i = self._value(i, indent, inner, depth, allow_same_indent_sequence=False)
            out.append(value)

    def _nested(self, i: int, indent: int, depth: int, same_indent_sequence: bool = False) -> tuple[Any, int]:
        j = self._skip(i)
        if j < len(self.lines):
            nxt = self.lines[j]
            if nxt.indent > indent or (same_indent_sequence and nxt.indent == indent and _is_dash(nxt.text)):
                return self._block(j, nxt.indent, depth + 1)
        return None, i

    def _value(self, i: int, indent: int, rest: str, depth: int, *, allow_same_indent_sequence: bool
               ) -> tuple[Any, int]:
        line = self.lines[i]
        text = rest.strip(" ")
        if _is_blank(text):
            return self._nested(i + 1, indent, depth, allow_same_indent_sequence)
        first = text[0]
        if first in "&*!":
            raise self.error(line.number, "uses YAML anchors, aliases or tags, which MLmodel files never do")
        if first in "%@`" or text.startswith("? ") or text == "?":
            raise self.error(line.number, f"starts a value with the reserved character {first!r}")
        if first in "|>":
            return self._block_scalar(i, indent, text)
        if first in "\"'":
            return self._quoted(i, indent, text)
        if first in "[{":
            return self._flow(i, indent, text)
        plain = _strip_comment(text)
        if re.search(r":(?:[ \t]|$)", plain):
            raise self.error(line.number, "has ': ' inside a plain value (YAML does not allow a mapping here)")
        return self._scalar_lines(i, indent, plain, line.number)

    def _scalar_lines(self, i: int, indent: int, text: str, number: int) -> tuple[Any, int]:
        """A plain scalar starting on line ``i``; more-indented lines after it continue it (folded)."""
        words = [text.strip()]
        j = i + 1
        while j < len(self.lines) and (self.lines[j].indent > indent or _is_blank(self.lines[j].text)):
            if _is_blank(self.lines[j].text):
                if self.lines[j].text.strip().startswith("#"):
                    break
                words.append("\n")
            else:
                part = _strip_comment(self.lines[j].text).strip()
                if ": " in part or part.endswith(":") or part.startswith("- "):
                    raise self.error(self.lines[j].number, "has a mapping or sequence where a plain value goes on")
                words.append(part)
            j += 1
        while words and words[-1] == "\n":
            words.pop()
            j -= 1
        plain = _fold(words)
        if plain[:1] in ("&", "*", "!"):
            raise self.error(number, "uses YAML anchors, aliases or tags, which MLmodel files never do")
        return _resolve(plain), j

    def _quoted(self, i: int, indent: int, text: str) -> tuple[str, int]:
        quote = text[0]
        number = self.lines[i].number
        parts: list[str] = []
        body = text[1:]
        j = i
        while True:
            end = _closing_quote(body, quote)
            if end is not None:
                parts.append(body[:end])
                after = body[end + 1:].strip()
                if after and not after.startswith("#"):
                    raise self.error(self.lines[j].number, "has text after a quoted value")
                break
            parts.append(body)
            j += 1  # continuation lines may sit at any indentation, as PyYAML reads them
            if j >= len(self.lines):
                raise self.error(number, "has a quoted value that is never closed")
            body = self.lines[j].text
        return (_single(parts) if quote == "'" else _double(parts, lambda why: self.error(number, why))), j + 1

    def _block_scalar(self, i: int, indent: int, text: str) -> tuple[str, int]:
        number = self.lines[i].number
        m = re.fullmatch(r"([|>])([-+]?)([1-9]?)([-+]?)\s*(#.*)?", text)
        if not m:
            raise self.error(number, f"has a block scalar header {text[:20]!r} that is not understood")
        style, chomp = m.group(1), m.group(2) or m.group(4)
        explicit = int(m.group(3)) if m.group(3) else None
        j = i + 1
        body: list[_Line] = []
        while j < len(self.lines) and (self.lines[j].indent > indent or not self.lines[j].text.strip()):
            body.append(self.lines[j])
            j += 1
        trailing = 0
        while body and not body[-1].text.strip():
            body.pop()
            j -= 1
            trailing += 1
        content = [ln for ln in body if ln.text.strip()]
        block_indent = indent + explicit if explicit else min((ln.indent for ln in content), default=indent + 1)
        rows = []
        for ln in body:
            if not ln.text.strip():
                rows.append("")
            elif ln.indent < block_indent:
                raise self.error(ln.number, "is indented less than its block scalar")
            else:
                rows.append(" " * (ln.indent - block_indent) + ln.text)
        if style == "|":
            value = "\n".join(rows)
        else:  # folding: a break between two normal lines is a space, each empty line a newline
            value, empties, previous_more, first = "", 0, False, True
            for row in rows:
                if row == "":
                    empties += 1
                    continue
                more = row.startswith(" ")
                if first:
                    value = "\n" * empties + row
                elif more or previous_more:
                    value += "\n" * (empties + 1) + row
                else:
                    value += ("\n" * empties if empties else " ") + row
                empties, previous_more, first = 0, more, False
            value += "\n" * empties
        if rows and chomp != "-":
            value += "\n" * (1 + (trailing if chomp == "+" else 0))
        return value, j

    def _flow(self, i: int, indent: int, text: str) -> tuple[Any, int]:
        """A flow collection starting in ``text`` (the rest of line ``i``), over as many lines as its brackets
        need: the lines are gathered in one pass, then parsed once."""
        number = self.lines[i].number
        pieces = [text]
        depth, quote, j, k = 0, None, i, 0
        node_start = True  # a quote opens a quoted scalar only where a node starts: after '[', '{', ',' or ':'
        body = text
        while True:
            while k < len(body):
                c = body[k]
                if quote == "'":
                    if c == "'":
                        if body[k + 1:k + 2] == "'":
                            k += 1
                        else:
                            quote = None
                elif quote == '"':
                    if c == "\\":
                        k += 1
                    elif c == '"':
                        quote = None
                elif c in " \t":
                    pass
                elif c in "'\"" and node_start:
                    quote = c
                    node_start = False
                elif c in "[{":
                    depth += 1
                    node_start = True
                    if depth > MAX_DEPTH:
                        raise self.error(number, f"nests more than {MAX_DEPTH} levels deep")
                elif c in "]}":
                    depth -= 1
                    node_start = False
                    if depth == 0:
                        break
                elif c in ",:":
                    node_start = True
                elif c == "#" and (k == 0 or body[k - 1] in " \t"):
                    raise self.error(self.lines[j].number, "has a comment inside a flow collection")
                else:
                    node_start = False
                k += 1
            if depth == 0 and k < len(body):
                break
            j += 1
            if j >= len(self.lines):
                raise self.error(number, "has a flow collection ('[' or '{') that is never closed")
            body, k = self.lines[j].text, 0
            pieces.append(body)
        try:
            value, pos = _FlowParser("\n".join(pieces), lambda why: self.error(number, why), self).parse()
        except _NeedMore:
            raise self.error(number, "has a flow collection that is not closed properly") from None
        consumed = len("\n".join(pieces[:-1])) + (1 if len(pieces) > 1 else 0)
        after = pieces[-1][max(pos - consumed, 0):].strip()
        if after and not after.startswith("#"):
            raise self.error(self.lines[j].number, "has text after a flow collection")
        return value, j + 1

    def _key(self, line: _Line) -> tuple[Any, str] | None:
        """``(key, rest of the line)`` when the line is ``key: value`` (``key:`` at the end), else None."""
        text = line.text
        if text.startswith("? ") or text == "?":
            raise self.error(line.number, "uses a complex mapping key ('?'), which MLmodel files never do")
        if text[:1] in "\"'":
            end = _closing_quote(text[1:], text[0])
            if end is None:
                return None
            rest = text[end + 2:]
            if not (rest.startswith(":") and (len(rest) == 1 or rest[1] in " \t")):
                return None
            raw = [text[1:end + 1]]
            key = _single(raw) if text[0] == "'" else _double(raw, lambda why: self.error(line.number, why))
            return key, rest[1:]
        if text[:1] in "-[]{}#|>%@`," and not (text[:1] == "-" and len(text) > 1 and text[1] not in " \t"):
            return None
        m = re.search(r":(?:[ \t]|$)", text)
        if m is None:
            return None
        raw_key = text[:m.start()]
        if " #" in raw_key:
            return None
        if raw_key[:1] in ("&", "*", "!"):
            raise self.error(line.number, "uses YAML anchors, aliases or tags, which MLmodel files never do")
        if raw_key == "<<":
            raise self.error(line.number, "uses a merge key ('<<'), which MLmodel files never do")
        return _resolve(raw_key.strip()), text[m.end():]


_FLOW_PLAIN = re.compile(r"[^,\[\]{}]*?(?=\s*(?:[,\]}]|:(?:[\s,\[\]{}]|$)|$))")
"""A plain scalar inside a flow collection: it ends before ',', ']', '}' or a ':' followed by a space, the end or
a flow indicator (PyYAML's scanner rule in flow context)."""


class _NeedMore(Exception):
    """A flow collection continues on the next line."""


class _FlowParser:
    """``[ ... ]`` / ``{ ... }`` with quoted and plain scalars inside, nested to the reader's depth limit."""

    def __init__(self, text: str, error, reader: _Reader):
        self.s, self.pos, self.error, self.reader = text, 0, error, reader

    def parse(self) -> tuple[Any, int]:
        value = self._node(0)
        return value, self.pos

    def _ws(self) -> None:
        while self.pos < len(self.s) and self.s[self.pos] in " \t\n":
            self.pos += 1
        if self.pos < len(self.s) and self.s[self.pos] == "#":
            raise self.error("has a comment inside a flow collection")
        if self.pos >= len(self.s):
            raise _NeedMore

    def _node(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.error(f"nests more than {MAX_DEPTH} levels deep")
        self._ws()
        c = self.s[self.pos]
        self.reader._count(0)
        if c == "[":
            self.pos += 1
            items: list = []
            while True:
                self._ws()
                if self.s[self.pos] == "]":
                    self.pos += 1
                    return items
                items.append(self._node(depth + 1))
                self._ws()
                if self.s[self.pos] == ",":
                    self.pos += 1
                elif self.s[self.pos] != "]":
                    raise self.error("expects ',' or ']' in a flow sequence")
        if c == "{":
            self.pos += 1
            out: dict = {}
            while True:
                self._ws()
                if self.s[self.pos] == "}":
                    self.pos += 1
                    return out
                key = self._node(depth + 1)
                if isinstance(key, (list, dict)):
                    raise self.error("uses a collection as a mapping key")
                self._ws()
                if self.s[self.pos] in ",}":  # a key without ':' has a null value
                    out[key] = None
                    if self.s[self.pos] == ",":
                        self.pos += 1
                    continue
                if self.s[self.pos] != ":":
                    raise self.error("expects ':' after a key in a flow mapping")
                self.pos += 1
                out[key] = self._node(depth + 1)
                self._ws()
                if self.s[self.pos] == ",":
                    self.pos += 1
                elif self.s[self.pos] != "}":
                    raise self.error("expects ',' or '}' in a flow mapping")
        if c in "\"'":
            end = _closing_quote(self.s[self.pos + 1:], c)
            if end is None:
                raise _NeedMore
            raw = self.s[self.pos + 1:self.pos + 1 + end].split("\n")
            self.pos += end + 2
            return _single(raw) if c == "'" else _double(raw, self.error)
        if c in "&*!":
            raise self.error("uses YAML anchors, aliases or tags, which MLmodel files never do")
        if c in "%@`?":  # in flow context '?' always starts an explicit (complex) key
            raise self.error(f"starts a value with the reserved character {c!r}")
        m = _FLOW_PLAIN.match(self.s, self.pos)
        text = m.group() if m else ""
        self.pos += len(text)
        if self.pos >= len(self.s):
            raise _NeedMore
        return _resolve(_fold([w.strip() or "\n" for w in text.strip().split("\n")]))


def _is_blank(text: str) -> bool:
    t = text.strip()
    return not t or t.startswith("#")


def _is_dash(text: str) -> bool:
    return text == "-" or text.startswith("- ") or text.startswith("-\t")


def _strip_comment(text: str) -> str:
    m = re.search(r"[ \t]#", text)
    return text[:m.start()] if m else text


def _fold(words: list[str]) -> str:
    out = ""
    pending_newlines = 0
    for w in words:
        if w == "\n":
            pending_newlines += 1
            continue
        if out:
            out += "\n" * pending_newlines if pending_newlines else " "
        out += w
        pending_newlines = 0
    return out


def _closing_quote(body: str, quote: str) -> int | None:
    i = 0
    while i < len(body):
        c = body[i]
        if quote == "'" and c == "'":
            if body[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        if quote == '"':
            if c == "\\":
                i += 2
                continue
            if c == '"':
                return i
        i += 1
    return None


def _fold_lines(parts: list[str], escaped_break: bool) -> str:
    """Line folding of a multi-line quoted scalar: surrounding spaces trimmed, one break -> a space, each empty
    line -> a newline; with ``escaped_break`` a line ending in an unescaped backslash joins without a space."""
    if len(parts) == 1:
        return parts[0]
    out = parts[0].rstrip(" \t")
    empties = 0
    joined_escape = escaped_break and _ends_with_escape(parts[0])
    if joined_escape:
        out = parts[0][:-1]
    for k, part in enumerate(parts[1:], 1):
        last = k == len(parts) - 1
        piece = part.lstrip(" \t") if last else part.strip(" \t")
        if not piece and not last:
            empties += 1
            continue
        if joined_escape:
            sep = ""
        else:
            sep = "\n" * empties if empties else " "
        empties = 0
        joined_escape = escaped_break and not last and _ends_with_escape(part.rstrip(" \t"))
        if joined_escape:
            piece = piece[:-1]
        out += sep + piece
    return out


def _ends_with_escape(text: str) -> bool:
    n = len(text) - len(text.rstrip("\\"))
    return n % 2 == 1


def _single(parts: list[str]) -> str:
    return _fold_lines(parts, False).replace("''", "'")


def _double(parts: list[str], error) -> str:
    text = _fold_lines(parts, True)
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = text[i + 1:i + 2]
        if e in _DQ_ESCAPES:
            out.append(_DQ_ESCAPES[e])
            i += 2
        elif e in ("x", "u", "U"):
            n = {"x": 2, "u": 4, "U": 8}[e]
            digits = text[i + 2:i + 2 + n]
            if not re.fullmatch(r"[0-9a-fA-F]{%d}" % n, digits) or int(digits, 16) > 0x10FFFF:
                raise error(f"has a bad \\{e} escape")
            out.append(chr(int(digits, 16)))
            i += 2 + n
        else:
            raise error(f"has an unknown escape \\{e}")
    return "".join(out)


def _resolve(plain: str) -> Any:
    """A plain scalar as PyYAML's SafeLoader resolves it (YAML 1.1 null, bool, int, float as in PyYAML's
    ``resolver.py`` and ``constructor.py``; else a string; timestamps stay strings)."""
    if plain in _NULLS:
        return None
    if plain in _BOOLS:
        return _BOOLS[plain]
    digits = plain.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    unsigned = digits.lstrip("+-")
    if _FLOAT.fullmatch(plain):
        return float(digits)
    if _SEXAGESIMAL_FLOAT.fullmatch(plain):
        return sign * _base60(unsigned.split(":"), float)
    if _INF.fullmatch(plain):
        return sign * float("inf")
    if _NAN.fullmatch(plain):
        return float("nan")
    if _BIN.fullmatch(plain):
        return sign * int(unsigned[2:], 2)
    if _HEX.fullmatch(plain):
        return sign * int(unsigned[2:], 16)
    if _INT.fullmatch(plain):
        return int(digits)
    if _OCT.fullmatch(plain):
        return sign * int(unsigned, 8)
    if _SEXAGESIMAL_INT.fullmatch(plain):
        return sign * _base60(unsigned.split(":"), int)
    return plain


def _base60(parts: list[str], kind) -> Any:
    value = kind(0)
    for p in parts:
        value = value * 60 + kind(p)
    return value


def parse(data: bytes | str, label: str = "MLmodel") -> Any:
    """Read the YAML subset described in the module docstring into dicts, lists and scalars.

    Raises :class:`CorruptArtifact` for anything outside it, invalid UTF-8, more than :data:`MAX_BYTES`
    bytes, nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_NODES` values.
    """
    text = bounded_text(data, label, MAX_BYTES, "an MLmodel file")
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        raise CorruptArtifact(f"{label} is not a YAML file MLflow writes (line {line}: holds the character "
                              f"U+{ord(bad.group()):04X}, which YAML forbids or MLflow never writes raw)")
    return _Reader(text, label).document()


def summarize(data: bytes | str, names: list[str] | None = None, label: str = "MLmodel") -> dict:
    """Describe an ``MLmodel`` file; ``names`` are the other files of its folder (relative to it), when known.

    Returns ``{"flavors": {name: {setting: value}}, "flavor_names": [...], "loader_module", "python_version",
    "primary_flavor", "model_file", "custom_python_model", "signature": {"inputs": [...] | None, "outputs":
    ..., "params": ...} | None, "run_id", "model_uuid", "utc_time_created", "artifact_path", "mlflow_version",
    "model_size_bytes", "saved_input_example_info", "metadata", "databricks_runtime", "requirements_files":
    [...], "missing_files": [...]}``. ``primary_flavor`` is the first flavor other than ``python_function``;
    ``model_file`` the file or folder its settings name (``pickled_model``, ``data``, ``model_data``...);
    ``custom_python_model`` says that the pyfunc flavor holds a pickled ``PythonModel``, whose loading runs
    code; ``missing_files`` lists flavor files absent from ``names`` (checked only when ``names`` is given).
    """
    if not data:
        raise NotAnArtifact(f"{label} is empty")
    doc = parse(data, label)
    if not isinstance(doc, dict):
        raise CorruptArtifact(f"{label} is not a mapping, so it is not an MLmodel file")
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise CorruptArtifact(f"{label} names no flavors, so it is not an MLmodel file")
    flavors = {str(k): (v if isinstance(v, dict) else {}) for k, v in flavors.items()}
    pyfunc = flavors.get("python_function", {})
    primary = next((f for f in flavors if f != "python_function"), None)
    settings = flavors.get(primary, {}) if primary else pyfunc
    model_file = next((settings[k] for k in FLAVOR_FILE_KEYS if isinstance(settings.get(k), str)), None)
    if model_file is None:
        model_file = next((pyfunc[k] for k in FLAVOR_FILE_KEYS if isinstance(pyfunc.get(k), str)), None)
    signature = doc.get("signature")
    if signature is not None:
        if not isinstance(signature, dict):
            raise CorruptArtifact(f"{label} has a signature that is not a mapping")
        signature = {k: _json(signature.get(k), f"signature {k}", label) for k in ("inputs", "outputs", "params")}
    files = set(names or [])
    referenced = [v for s in flavors.values() for k, v in s.items() if k in FLAVOR_FILE_KEYS and isinstance(v, str)]
    return {
        "flavors": flavors,
        "flavor_names": list(flavors),
        "loader_module": pyfunc.get("loader_module"),
        "python_version": pyfunc.get("python_version"),
        "primary_flavor": primary,
        "model_file": model_file,
        "custom_python_model": "python_model" in pyfunc,
        "signature": signature,
        "run_id": doc.get("run_id"),
        "model_uuid": doc.get("model_uuid"),
        "utc_time_created": None if doc.get("utc_time_created") is None else str(doc.get("utc_time_created")),
        "artifact_path": doc.get("artifact_path"),
        "mlflow_version": doc.get("mlflow_version"),
        "model_size_bytes": doc.get("model_size_bytes"),
        "saved_input_example_info": doc.get("saved_input_example_info"),
        "metadata": doc.get("metadata"),
        "databricks_runtime": doc.get("databricks_runtime"),
        "requirements_files": [f for f in REQUIREMENT_FILES if f in files],
        "missing_files": sorted({f for f in referenced
                                 if names is not None and f not in files and not any(n.startswith(f.rstrip("/") + "/")
                                                                                     for n in files)}),
    }


def _json(text: Any, what: str, label: str) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):
        raise CorruptArtifact(f"{label} has a {what} that is not a JSON string")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise CorruptArtifact(f"{label} has a {what} that is not valid JSON") from None
