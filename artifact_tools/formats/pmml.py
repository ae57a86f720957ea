"""PMML documents (Predictive Model Markup Language, XML) read as data, with a safe streaming XML parse.

Facts used, with their sources (dmg.org, "PMML 4.4 - General Structure", "Data Dictionary", "Mining
Schema", "Multiple Models"; the XSD ``pmml-4-4.xsd``):

- The root element is ``PMML`` with a ``version`` attribute, in the namespace ``http://www.dmg.org/PMML-<v>``
  (``PMML-4_4``, ``PMML-4_3``...; PMML 2.x/3.x used the same pattern; some writers omit it). Its children are
  ``Header`` (``copyright``, ``description``; ``Application`` with ``name`` and ``version``; ``Timestamp``),
  ``DataDictionary`` (``DataField`` with ``name``, ``optype`` = categorical | ordinal | continuous,
  ``dataType``, and ``Value`` children listing categories), ``TransformationDictionary``, then any number of
  model elements.
- Model elements: ``AnomalyDetectionModel``, ``AssociationModel``, ``BayesianNetworkModel``, ``BaselineModel``,
  ``ClusteringModel``, ``GaussianProcessModel``, ``GeneralRegressionModel``, ``MiningModel``,
  ``NaiveBayesModel``, ``NearestNeighborModel``, ``NeuralNetwork``, ``RegressionModel``, ``RuleSetModel``,
  ``SequenceModel``, ``Scorecard``, ``SupportVectorMachineModel``, ``TextModel``, ``TimeSeriesModel``,
  ``TreeModel``; each has ``modelName``, ``functionName`` (classification, regression, clustering...),
  ``algorithmName`` and a ``MiningSchema`` whose ``MiningField`` children give ``name`` and ``usageType``
  (default ``active``; ``target``, and the deprecated ``predicted``, mark the target). A ``MiningModel`` holds a
  ``Segmentation`` (``multipleModelMethod``) of ``Segment`` elements, each holding a model (ensembles such as
  the random forests and gradient boosting that sklearn2pmml and JPMML write).

Safety: no entity is ever expanded. A document type declaration (``<!DOCTYPE``) or an entity declaration
(``<!ENTITY``), the only ways to define entities (XML 1.0, sections 2.8 and 4.2), is refused before parsing
(in the raw bytes, as UTF-8 or UTF-16 by their byte-order mark or first bytes) and again by the parser
itself (expat handlers that raise), so an entity bomb or an external entity never gets expanded or fetched.
Only UTF-8, US-ASCII, ISO-8859-1 and UTF-16 encodings are accepted. The document is streamed through expat
(no tree is built): time and memory stay linear in its size, with an element count bound.
"""

from __future__ import annotations

import re
import xml.parsers.expat
from collections import Counter
from typing import Any, NoReturn

from ..errors import CorruptArtifact, NotAnArtifact

MODEL_TYPES = frozenset({
    "AnomalyDetectionModel", "AssociationModel", "BayesianNetworkModel", "BaselineModel", "ClusteringModel",
    "GaussianProcessModel", "GeneralRegressionModel", "MiningModel", "NaiveBayesModel", "NearestNeighborModel",
    "NeuralNetwork", "RegressionModel", "RuleSetModel", "SequenceModel", "Scorecard", "SupportVectorMachineModel",
    "TextModel", "TimeSeriesModel", "TreeModel",
})
MAX_ELEMENTS = 20_000_000
MAX_DEPTH = 100_000
_MAX_LISTED = 50  # category values listed per field
_MAX_TEXT = 1000
_ENCODINGS = {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "utf-16", "utf-16le", "utf-16be"}
_DECL_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT = re.compile(r"^\s*(?:<\?xml[^>]*\?>)?\s*(?:<!--.*?-->\s*)*<(?:[A-Za-z_][\w.-]*:)?PMML[\s>/]", re.DOTALL)


def _as_text(data: bytes) -> str:
    """The document's characters, for the checks made before parsing (a lossy decode is fine for them)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", "replace")
    if data[:4] == b"<\x00?\x00":
        return data.decode("utf-16-le", "replace")
    if data[:4] == b"\x00<\x00?":
        return data.decode("utf-16-be", "replace")
    return data.decode("utf-8", "replace")


def is_pmml(head: bytes) -> bool:
    """Whether bytes (the first KiB suffices) start an XML document whose root element is ``PMML``."""
    return bool(_ROOT.match(_as_text(bytes(head[:4096])).lstrip("\ufeff")))


class _Refused(Exception):
    pass


def summarize(data: bytes) -> dict:
    """Describe a PMML document.

    Returns ``{"version", "namespace", "application": {"name", "version"}, "timestamp", "copyright",
    "data_fields": [{"name", "optype", "data_type", "values": n, "categories": [first values]}],
    "transformations": n, "models": [{"type", "name", "function", "algorithm", "mining_fields": [{"name",
    "usage"}], "targets": [...], "outputs": [...], "segments": n, "multiple_model_method", "nested_models":
    {type: n}, "tree_nodes": n}], "model_types": [...], "element_count"}`` for the models that are children of
    the root (models inside ``Segment``\\ s are counted in ``nested_models``; ``tree_nodes`` counts every
    ``Node`` in the model, nested trees included).
    """
    if not data:
        raise NotAnArtifact("the PMML document is empty")
    data = bytes(data)
    utf16 = data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"<\x00?\x00", b"\x00<\x00?")
    if _FORBIDDEN.search(_as_text(data).encode("utf-8", "replace") if utf16 else data):
        raise CorruptArtifact("the PMML document declares a document type or entities (<!DOCTYPE / <!ENTITY), "
                              "which is refused: entity expansion can blow up or read other files")
    m = _DECL_ENCODING.match(data.lstrip(b"\xef\xbb\xbf"))
    if m and m.group(1).decode("ascii").lower() not in _ENCODINGS:
        raise CorruptArtifact(f"the PMML document uses the encoding {m.group(1).decode('ascii')}, which is not "
                              "read here (UTF-8, ISO-8859-1 or UTF-16)")
    state = _State()
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")

    def refuse(*_args: Any) -> NoReturn:
        raise _Refused

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = state.start
    parser.EndElementHandler = state.end
    parser.CharacterDataHandler = state.text
    try:
        parser.Parse(data, True)
    except _Refused:
        raise CorruptArtifact("the PMML document declares a document type or entities, which is refused: "
                              "entity expansion can blow up or read other files") from None
    except xml.parsers.expat.ExpatError as e:
        raise CorruptArtifact(f"the PMML document is not well-formed XML ({xml.parsers.expat.ErrorString(e.code)} "
                              f"at line {e.lineno}, column {e.offset})") from None
    except (ValueError, LookupError) as e:  # an encoding expat cannot use
        raise CorruptArtifact(f"the PMML document cannot be decoded ({str(e)[:100]})") from None
    if state.root is None:
        raise CorruptArtifact("the PMML document has no root element")
    if state.root != "PMML":
        raise CorruptArtifact(f"the XML document's root element is {state.root}, not PMML")
    return state.result()


class _State:
    """Streaming collector: a stack of local names, and the facts gathered so far."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.count = 0
        self.root: str | None = None
        self.version: str | None = None
        self.namespace: str | None = None
        self.application: dict | None = None
        self.timestamp: list[str] | str | None = None  # text pieces while inside <Timestamp>, then their text
        self.copyright: str | None = None
        self.fields: list[dict] = []
        self.transformations = 0
        self.models: list[dict] = []
        self.open_models: list[tuple[int, dict | None]] = []  # (stack depth, top-level model entry or None)

    def start(self, name: str, attrs: dict) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise CorruptArtifact(f"the PMML document has more than {MAX_ELEMENTS} elements")
        if len(self.stack) >= MAX_DEPTH:
            raise CorruptArtifact(f"the PMML document nests elements more than {MAX_DEPTH} deep")
        ns, _, local = name.rpartition(" ")
        parent = self.stack[-1] if self.stack else None
        depth = len(self.stack)
        self.stack.append(local)
        if depth == 0:
            self.root = local
            self.version = attrs.get("version")
            self.namespace = ns or None
            return
        top = self.open_models[0][1] if self.open_models else None
        if parent == "Header" and depth == 2:
            if local == "Application":
                self.application = {"name": attrs.get("name"), "version": attrs.get("version")}
            elif local == "Timestamp":
                self.timestamp = []
        elif local == "Header" and depth == 1:
            self.copyright = attrs.get("copyright")
        elif local == "DataField" and parent == "DataDictionary" and depth == 2:
            self.fields.append({"name": attrs.get("name"), "optype": attrs.get("optype"),
                                "data_type": attrs.get("dataType"), "values": 0, "categories": []})
        elif local == "Value" and parent == "DataField" and depth == 3 and self.fields:
            f = self.fields[-1]
            f["values"] += 1
            if len(f["categories"]) < _MAX_LISTED and attrs.get("property", "valid") == "valid":
                f["categories"].append(attrs.get("value"))
        elif parent == "TransformationDictionary" and local == "DerivedField":
            self.transformations += 1
        if local in MODEL_TYPES:
            if depth == 1:
                entry: dict[str, Any] = {
                    "type": local, "name": attrs.get("modelName"), "function": attrs.get("functionName"),
                    "algorithm": attrs.get("algorithmName"), "mining_fields": [], "targets": [],
                    "outputs": [], "segments": 0, "multiple_model_method": None,
                    "nested_models": Counter(), "tree_nodes": 0}
                self.models.append(entry)
                self.open_models.append((depth, entry))
            else:
                if top is not None:
                    top["nested_models"][local] += 1
                self.open_models.append((depth, None))
            return
        if top is None:
            return
        model_depth = self.open_models[-1][0]
        if local == "Node":
            top["tree_nodes"] += 1
        elif len(self.open_models) == 1 and depth == model_depth + 2:
            if local == "MiningField" and parent == "MiningSchema":
                usage = attrs.get("usageType", "active")
                top["mining_fields"].append({"name": attrs.get("name"), "usage": usage})
                if usage in ("target", "predicted"):
                    top["targets"].append(attrs.get("name"))
            elif local == "OutputField" and parent == "Output":
                top["outputs"].append({"name": attrs.get("name"), "feature": attrs.get("feature", "predictedValue")})
            elif local == "Segment" and parent == "Segmentation":
                top["segments"] += 1
        elif len(self.open_models) == 1 and depth == model_depth + 1 and local == "Segmentation":
            top["multiple_model_method"] = attrs.get("multipleModelMethod")

    def end(self, name: str) -> None:
        depth = len(self.stack) - 1
        local = self.stack.pop()
        if self.open_models and self.open_models[-1][0] == depth and local in MODEL_TYPES:
            self.open_models.pop()
        if local == "Timestamp" and self.timestamp is not None and not isinstance(self.timestamp, str):
            self.timestamp = "".join(self.timestamp).strip()

    def text(self, data: str) -> None:
        if isinstance(self.timestamp, list) and self.stack and self.stack[-1] == "Timestamp":
            if sum(map(len, self.timestamp)) < _MAX_TEXT:
                self.timestamp.append(data)

    def result(self) -> dict:
        models = [{**m, "nested_models": dict(sorted(m["nested_models"].items()))} for m in self.models]
        return {
            "version": self.version,
            "namespace": self.namespace,
            "application": self.application,
            "timestamp": self.timestamp if isinstance(self.timestamp, str) else None,
            "copyright": self.copyright,
            "data_fields": self.fields,
            "transformations": self.transformations,
            "models": models,
            "model_types": [m["type"] for m in models],
            "element_count": self.count,
        }
