"""``inspect(artifact)``: what is inside a model artifact, read as data — nothing executed, no framework imported.

The archive is streamed once (archive.py); every member is sniffed by content (sniff.py) and the bytes each
format reader needs are kept. Then the layout is recognised in this order (first match wins), because the
cheaper, more specific signatures must not be shadowed by the generic ones:

1. DJL/LMI ``serving.properties`` (``engine=`` / ``option.*`` keys)            -> djl-lmi
2. Triton model repositories (``<model>/config.pbtxt`` + version folders)       -> layout triton-repository
3. MLflow model folders (``MLmodel``): the model inside is found by the rest   -> layout mlflow-model
4. Neuron / Neo compiled artifacts (formats/neuron.py)                         -> layout compiled, not loadable
5. MLeap bundle (``bundle.json`` + ``root/``), zip or unzipped (SparkML Serving)  -> mleap
6. Spark ML saved pipeline (``metadata/part-*`` naming an ``org.apache.spark.ml`` class) -> spark
7. SageMaker built-in algorithms (formats/sagemaker_builtins.py)               -> mxnet / sagemaker-builtin
8. XGBoost model files of any era (formats/xgboost.py, pure Python)           -> xgboost
9. LightGBM text models, CatBoost binaries, ONNX models                       -> lightgbm / catboost / onnx
10. TensorFlow SavedModel protobufs                                           -> tensorflow
11. Hugging Face model folders (config.json with model_type/architectures)     -> huggingface
    (before Keras files: a TF-weights HF folder holds a tf_model.h5)
12. Keras files (.keras zip, HDF5)                                             -> tensorflow
13. PyTorch checkpoints (zip, TorchScript or legacy pickle)                   -> pytorch
14. MXNet framework-container exports (symbol JSON + NDArray params)          -> mxnet
15. Pickles / joblib (globals read from the opcode stream)                    -> sklearn or pickle
16. R serialized objects (RDS)                                                -> r
17. PMML documents                                                            -> pmml, not loadable
18. Another archive and no model file (model.tar.gz in model.tar.gz)         -> named, not loadable
19. Inference code and no model file (formats/python_script.py)               -> layout code-only, not loadable

Before any detector, the trust audit (audit.py) reads every member that can carry code.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from pathlib import PurePosixPath
from typing import Callable

from .archive import Artifact, Limits, common_root, open_artifact, open_nested
from .audit import audit_members
from .errors import ArtifactError, CorruptArtifact, NotAnArtifact
from .filetree import MappingTree, SubTree
from .formats.pickle_data import decompress_joblib, read_pickle
from .report import Algorithm, FileInfo, Framework, Layout, ModelInfo, Report
from .sniff import check_json_or_lines, keep_bytes, parse_json, sniff, zip_model_kind
from .trust import Finding, pickle_findings, summarize, worst

KEEP_BUDGET = 1 << 30  # at most this many bytes of member content are held during one inspection

log = logging.getLogger(__name__)


def _base(name: str) -> str:
    """The file name of a normalised member path (``PurePosixPath(name).name`` without building a path object:
    inspection asks it of every member, and an archive may hold 100,000)."""
    return name.rpartition("/")[2]


def inspect(source, *, limits: Limits | None = None, storage_options: dict | None = None) -> Report:
    """Inspect a model artifact (path, folder, fsspec URI or an opened Artifact) and return a :class:`Report`.

    One pass over the artifact (:meth:`Artifact.scan`): a plain tar, a zip, a folder or a loose file is listed by
    seeking, reading only each member's first 64 KiB and what the format readers need (``sniff.keep_bytes``); a
    compressed tar is inflated once from start to end.
    """
    with open_artifact(source, limits, storage_options) as art:
        return inspect_opened(art)


def inspect_opened(art: Artifact, *, extract_to: str | os.PathLike | None = None, digest: bool = False) -> Report:
    """:func:`inspect` of an opened artifact, in the one pass that can also extract it and hash it.

    ``extract_to``: every file is also written into this folder during the same pass (``Artifact.scan``); a
    refusal of extraction (differing duplicates, a name the file system refuses...) is left in
    ``art.extract_error`` and the folder is then incomplete, so that inspection's own refusals come first.
    ``digest``: the artifact's SHA-256 is left in ``art.digest``. ``loaders.cache`` uses both, so that loading
    reads the archive once.
    """
    kinds: dict[str, str] = {}
    kind_of: dict[int, str] = {}
    budget = [KEEP_BUDGET]

    def keep(member, head: bytes) -> int:
        kind = sniff(member.name, head, member.size)
        kinds[member.name] = kind
        kind_of[id(member)] = kind  # a later, different copy of the name replaces kinds[name], not this
        want = keep_bytes(kind, head, member.size)
        if want > len(head) and want > budget[0]:
            want = len(head)
        budget[0] -= want
        return want

    kept = art.scan(keep, extract_to=extract_to, digest=digest)
    members = art.members()
    lim = art.limits
    report = Report(source=art.label, container=art.container)
    files = [m for m in members if m.is_file]
    report.files = [FileInfo(m.name, m.size, "junk" if m.ignored else kinds.get(m.name, "binary"), m.ignored,
                             m.duplicates, m.conflicts)
                    for m in files]
    for m in files:
        if m.conflicts:
            report.warnings.append(
                f"{m.name} appears {m.duplicates + m.conflicts + 1} times with different contents; "
                "tar extraction (and so SageMaker) keeps the last copy, which is the one inspected here "
                "(the trust audit reads every copy); loading refuses such an archive")
        elif m.duplicates:
            report.warnings.append(f"{m.name} appears {m.duplicates + 1} times with identical contents")
    live = [m for m in files if not m.ignored]
    prefix = common_root([m.name for m in live])
    report.root_prefix = prefix
    strip = (lambda n: n[len(prefix) + 1:]) if prefix else (lambda n: n)
    content = {strip(m.name): kept[m.name] for m in live if m.name in kept}
    sizes = {strip(m.name): m.size for m in live}
    kind = {strip(m.name): kinds.get(m.name, "binary") for m in live}
    # Nested zips (built-in algorithms' model_algo-N) are listed and checked with the same rules; a zip that is
    # one model file (torch.save, TorchScript, .keras) is recognised by its entry names.
    nested_content: dict[str, bytes] = {}
    replaced: list[tuple[str, str, bytes, int]] = []  # (name, kind, bytes kept, size) of replaced copies
    nested_kind: dict[str, str] = {}
    for name in [n for n, k in kind.items() if k in ("zip", "torch-zip", "keras-zip") and n in content
                 and sizes[n] == len(content[n])]:
        inner_kinds: dict[str, str] = {}

        def keep_nested(member, head: bytes, inner_kinds: dict[str, str] = inner_kinds) -> int:
            """What the outer scan would keep, from the same budget (called during this iteration only)."""
            k = inner_kinds[member.name] = sniff(member.name, head, member.size)
            want = keep_bytes(k, head, member.size)
            if want > len(head) and want > budget[0]:
                want = len(head)
            budget[0] -= want
            return want

        nested = open_nested(content[name], f"{art.label}:{name}", lim, keep=keep_nested)
        role = zip_model_kind([m.name for m, _ in nested])
        if role:
            kind[name] = role
            continue
        for inner, body in nested:
            full = f"{name}!/{inner.name}"
            k = inner_kinds.get(inner.name) or sniff(inner.name, body[:65536], inner.size)
            report.files.append(FileInfo(full, inner.size, k, inner.ignored))
            if not inner.ignored:
                nested_kind[full] = k
                if len(body) == inner.size:  # only a body kept whole can be read whole
                    if full in nested_content and nested_content[full] != body:
                        replaced.append((full, k, nested_content[full], len(nested_content[full])))
                    nested_content[full] = body
    for name, k in kind.items():  # a damaged JSON file is a damaged artifact, whatever reads it later
        if k == "json" and name in content and len(content[name]) == sizes[name]:
            kind[name] = check_json_or_lines(content[name], name)
    by_path = {(f"{prefix}/{n}" if prefix else n): k for n, k in kind.items()}
    for f in report.files:
        f.kind = by_path.get(f.path, f.kind)
    tree = MappingTree(content, sizes)

    def whole(name: str) -> bytes | None:
        if name in nested_content:
            return nested_content[name]
        data = content.get(name)
        return data if data is not None and len(data) == sizes.get(name) else None

    findings = audit_members([*kind, *nested_kind], {**kind, **nested_kind}, whole,
                             _decompress_limit(lim))
    # Earlier copies of a name that a later, different copy replaced: tar -x keeps the last, but readers that
    # spell names otherwise (``a\\b`` is two folders here and one file name to GNU tar) keep both
    replaced += [(m.name, kind_of.get(id(m), "binary"), data, m.size) for m, data in art.replaced if not m.ignored]
    for name, k, data, size in replaced:
        held = data if len(data) == size else None
        for found in audit_members([name], {name: k}, _reader(held), _decompress_limit(lim)):
            findings.append(Finding(f"{found.member} (an earlier copy of that name)", found.level, found.what,
                                    found.on_load))
    ctx = _Context(report, tree, kind, sizes, art.container, findings)
    for detector in DETECTORS:
        if detector(ctx):
            break
    ctx.finish()
    log.info("%s: %s, %s layout, trust %s", art.label, report.framework, report.layout, report.trust.get("verdict"))
    return report


def _reader(body: bytes | None) -> Callable[[str], bytes | None]:
    """``audit_members``' read function for one member whose bytes are ``body`` (None: not held whole)."""
    return lambda _name: body


def _decompress_limit(lim: Limits) -> int:
    """How far a whole-file compressed pickle may expand while being audited: the archive's own byte cap, and
    never beyond 4 GiB."""
    return int(min(lim.max_total_bytes, 4 << 30))


class _Context:
    def __init__(self, report: Report, tree: MappingTree, kinds: dict[str, str], sizes: dict[str, int], container: str,
                 findings: list[Finding]):
        self.findings = findings
        self.report = report
        self.tree = tree
        self.kinds = kinds
        self.sizes = sizes
        self.container = container
        self._sorted: list[str] | None = None
        self._by_kind: dict[str, list[str]] = {}

    def names(self, kind: str | None = None) -> list[str]:
        """The member names (of one kind), sorted; the detectors ask often, so they are sorted once."""
        if self._sorted is None:
            self._sorted = sorted(self.kinds)
            self._by_kind = {}
            for n in self._sorted:
                self._by_kind.setdefault(self.kinds[n], []).append(n)
        return list(self._sorted if kind is None else self._by_kind.get(kind, ()))

    def whole(self, name: str) -> bytes | None:
        """The member's full bytes if inspection kept all of them, else None."""
        try:
            return self.tree.read(name)
        except KeyError:
            return None

    def json(self, name: str):
        data = self.whole(name)
        if data is None:
            raise CorruptArtifact(f"{name} is too large to read during inspection")
        return parse_json(data, name)

    def add_model(self, path: str, fmt: str, summary: dict) -> None:
        self.report.models.append(ModelInfo(path, fmt, summary))

    def summarize_each(self, names: list[str], fmt: str, reader: Callable[[bytes], dict]) -> None:
        """A model entry per file: ``reader(bytes)``, or a note when the file was too large to keep."""
        for n in names:
            data = self.whole(n)
            summary = reader(data) if data is not None else {"note": "too large to read during inspection"}
            self.add_model(n, fmt, summary)

    def flag_code(self, member: str, what: str) -> None:
        """Record that loading would run code carried by ``member`` (unless the audit already said so)."""
        if not any(f.member == member and f.what == what for f in self.findings):
            self.findings.append(Finding(member, "code", what))

    def set(self, framework: Framework, layout: Layout, *, algorithm: Algorithm | None = None, loadable: bool = True,
            reason: str | None = None) -> None:
        r = self.report
        r.framework, r.layout, r.algorithm = framework, layout, algorithm
        r.loadable, r.not_loadable_reason = loadable, reason

    def report_requirements(self) -> None:
        """A warning naming what ``requirements.txt`` lists: the SageMaker containers pip-install
        ``code/requirements.txt`` at start-up; artifact-tools never installs anything."""
        for name in self.names():
            if _base(name) != "requirements.txt" or name.count("/") > 1 \
                    or (name.count("/") == 1 and not name.startswith("code/")):
                continue
            from .formats import python_script

            listed = python_script.requirements(self.whole(name) or b"")
            if not listed:
                continue
            first = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
            self.report.warnings.append(f"{name} lists {len(listed)} package(s) ({first}) that the serving container "
                                        "would pip-install at start-up; artifact-tools reports them and installs none")

    def default_layout(self, framework_container: bool) -> Layout:
        if self.container in ("file", "gzip-file"):
            return "loose-file"
        return "framework-container" if framework_container else "custom-container"

    def finish(self) -> None:
        r = self.report
        if r.entry_point is None:
            r.entry_point = _entry_point(self.names())
        r.trust = summarize(self.findings)
        self.report_requirements()
        if r.framework == "unknown" and not r.models:
            if self.container in ("file", "gzip-file"):
                kind = next(iter(self.kinds.values()), "binary")
                raise NotAnArtifact(f"{r.source} is not a model artifact: its content ({kind}) matches no archive or "
                                    "model format artifact-tools knows")
            r.loadable = False
            if not r.not_loadable_reason:
                r.not_loadable_reason = (f"no model format artifact-tools knows was recognised among its "
                                         f"{len(self.kinds)} file(s)")
        # ``loadable`` predicts what ``loaders.load`` does, and a refusal always says why in one sentence.
        conflicting = [f.path for f in r.files if f.conflicts]
        if r.loadable and conflicting:
            r.loadable = False
            r.not_loadable_reason = (f"{conflicting[0]} appears more than once with different contents, and loading "
                                     "refuses an archive whose extraction depends on which copy is written last")
        if r.loadable and r.framework in _NO_LOADER:
            r.loadable = False
            r.not_loadable_reason = (f"artifact-tools has no loader for {r.framework} artifacts; the report above "
                                     "is what can be read from them")
        if r.loadable and r.framework == "unknown":
            r.loadable = False
            r.not_loadable_reason = (f"no model format artifact-tools loads was recognised in this {r.layout} "
                                     "layout")
        if not r.loadable and not r.not_loadable_reason:
            r.not_loadable_reason = f"artifact-tools cannot load this {r.framework} artifact"


# Frameworks the report can name but ``loaders`` has no module for (``loaders.LOADER_MODULES``); their detectors
# say why in their own words, this is the fallback.
_NO_LOADER = ("r", "djl-lmi", "pmml", "neuron")


def _entry_point(names: list[str]) -> str | None:
    if "code/inference.py" in names:
        return "code/inference.py"
    code = [n for n in names if n.startswith("code/") and n.endswith(".py") and n.count("/") == 1]
    if len(code) == 1:
        return code[0]
    if "inference.py" in names:
        return "inference.py"
    return None


# ------------------------------------------------------------------------------------------ detectors

def _djl(ctx: _Context) -> bool:
    props = [n for n in ctx.names("properties") if _base(n) == "serving.properties"]
    if not props:
        return False
    text = (ctx.whole(props[0]) or b"").decode("utf-8", "replace")
    options = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            options[k.strip()] = v.strip()
    if not any(k == "engine" or k.startswith("option.") for k in options):
        return False
    weights = [n for n, k in ctx.kinds.items() if k in ("safetensors", "torch-zip", "torch-legacy", "hdf5")]
    ctx.add_model(props[0], "djl-serving-properties", {"options": options, "weights_files": weights})
    model_id = options.get("option.model_id") or options.get("option.s3url") or options.get("option.model_dir")
    if weights:
        ctx.set("djl-lmi", "framework-container", loadable=False,
                reason="DJL/LMI artifacts are served by the DJL container; load the weights folder as a Hugging Face "
                       "model instead")
    else:
        where = f" ({model_id})" if model_id else ""
        ctx.set("djl-lmi", CODE_ONLY, loadable=False,
                reason=f"no weights inside: serving.properties tells the DJL/LMI container to download the "
                       f"model{where} at start-up")
    ctx.report.entry_point = options.get("option.entryPoint") or _entry_point(ctx.names())
    return True


def _mleap(ctx: _Context) -> bool:
    bundles = [n for n in ctx.names("json") if _base(n) == "bundle.json"]
    if not bundles and not ctx.names("zip"):
        return False
    from .formats import mleap_bundle

    for b in bundles:
        base = str(PurePosixPath(b).parent) if "/" in b else ""
        sub = SubTree(ctx.tree, base) if base else ctx.tree
        if not any(n.startswith("root/") for n in sub.names()):
            continue
        summary = mleap_bundle.summarize(sub)
        ctx.add_model(b, "mleap-bundle", summary)
        layout = "sparkml-serving" if not base and ctx.container.startswith("tar") else ctx.default_layout(True)
        reason = mleap_bundle.not_loadable_reason(summary)
        ctx.set("mleap", layout, loadable=reason is None, reason=reason)
        return True
    # A zip-form bundle stored as a member (bundle.zip inside a tar) or as the artifact itself.
    for z in ctx.names("zip"):
        data = ctx.whole(z)
        if data is None:
            continue
        from .filetree import ZipTree

        zt = ZipTree(data, z)
        if "bundle.json" in zt.names():
            summary = mleap_bundle.summarize(zt)
            ctx.add_model(z, "mleap-bundle", summary)
            reason = mleap_bundle.not_loadable_reason(summary)
            ctx.set("mleap", ctx.default_layout(True), loadable=reason is None, reason=reason)
            return True
    return False


def _spark(ctx: _Context) -> bool:
    metas = [n for n in ctx.names() if re.search(r"(^|/)metadata/part-\d{5}", n)]
    roots = []
    for m in metas:
        base = m.split("metadata/")[0].rstrip("/")
        if "/stages/" in f"/{base}/":
            continue  # a stage of a pipeline: summarised through its parent
        try:
            meta = ctx.json(m) if ctx.kinds.get(m) == "json" else None
        except ArtifactError:
            meta = None
        if isinstance(meta, dict) and str(meta.get("class", "")).startswith("org.apache.spark.ml"):
            roots.append(base)
    if not roots:
        return False
    from .formats import spark_ml

    reasons = []
    for base in sorted(set(roots)):
        sub = SubTree(ctx.tree, base) if base else ctx.tree
        summary = spark_ml.summarize(sub)
        ctx.add_model(base or ".", "spark-ml", summary)
        reasons.append(spark_ml.not_loadable_reason(summary))
    reason = reasons[0]  # the loader loads the first model found
    ctx.set("spark", ctx.default_layout(True), loadable=reason is None, reason=reason)
    return True


# What a SageMaker built-in's files are by content (sniff.py's kinds), one of which every built-in artifact holds:
# a zip (Linear Learner, NTM, Factorization Machines), an NDArray list (k-means, PCA, image classification's
# params), a fastText model (BlazingText) or a FAISS index (k-NN); image classification without its params file is
# found by its ``*-symbol.json`` graph, the name ``sagemaker_builtins`` itself looks for.
_BUILTIN_KINDS = ("zip", "torch-zip", "keras-zip", "mxnet-params", "fasttext", "faiss")


def _builtin(ctx: _Context) -> bool:
    if not any(k in _BUILTIN_KINDS for k in ctx.kinds.values()) and \
            not any(n.endswith("-symbol.json") for n in ctx.kinds):
        return False  # none of the files a built-in leaves: its readers (and MXNet's format module) stay unloaded
    from .formats import sagemaker_builtins

    found = sagemaker_builtins.identify(ctx.tree)
    if not found:
        return False
    algorithm = found.get("algorithm")
    framework = found.get("framework", "mxnet")
    ctx.add_model(found.get("path", "."), f"sagemaker-{algorithm}", found)
    reason = found.get("not_loadable_reason")  # sagemaker_builtins.not_loadable_reason: what the loaders refuse
    ctx.set(framework, "builtin-algorithm", algorithm=algorithm, loadable=reason is None, reason=reason)
    return True


def _xgboost(ctx: _Context) -> bool:
    candidates = ctx.names("xgboost")
    if not candidates and not any(b"xgboost" in (d := ctx.whole(n) or b"")[:4096] and b"Booster" in d[:4096]
                                  for n in ctx.names("pickle")):
        return False
    from .formats import xgboost as xgboost_legacy  # with numpy: only when a file may be an XGBoost model

    found = []
    ctx.summarize_each(candidates, "xgboost", xgboost_legacy.facts)  # damage here is a damaged artifact
    found.extend(candidates)
    for n in ctx.names("pickle"):  # a pickled Booster; other xgboost pickles (XGBClassifier) go to _pickle
        data = ctx.whole(n)
        if data and b"xgboost" in data[:4096] and b"Booster" in data[:4096]:
            try:
                facts = xgboost_legacy.facts(data)
            except ArtifactError:
                continue
            ctx.add_model(n, "xgboost", facts)
            found.append(n)
    candidates = found
    if not candidates:
        return False
    root_named = any(_base(n) == "xgboost-model" for n in candidates)
    builtin = root_named and ctx.container not in ("file", "gzip-file")
    layout = "builtin-algorithm" if builtin else ctx.default_layout(True)
    ctx.set("xgboost", layout, algorithm="xgboost" if layout == "builtin-algorithm" else None)
    return True


def _tensorflow(ctx: _Context) -> bool:
    pbs = [n for n in ctx.names() if _base(n) == "saved_model.pb"]
    if not pbs:
        return False
    from .formats import savedmodel

    versions = []
    lambdas: list[tuple[str, list[str]]] = []
    for pb in pbs:
        data = ctx.whole(pb)
        if data is None:
            continue
        parent = PurePosixPath(pb).parent
        keras_meta = str(parent / "keras_metadata.pb") if str(parent) != "." else "keras_metadata.pb"
        summary = savedmodel.summarize(data, ctx.whole(keras_meta))
        version = parent.name if parent.name.isdigit() else None
        summary = {"version": int(version) if version else None, "model_dir": str(parent), **summary}
        ctx.add_model(pb, "tensorflow-savedmodel", summary)
        if summary.get("keras_lambda_layers"):
            lambdas.append((pb, summary["keras_lambda_layers"]))
        if version:
            versions.append(int(version))
    if any("/export/Servo/" in f"/{p}" for p in pbs):
        layout: Layout = "framework-container"
    elif versions:
        layout = "tf-serving"
    else:
        layout = ctx.default_layout(True)
    # The SavedModel a loader runs (loaders/tensorflow.py): the highest version folder, else the only one.
    saved = [m for m in ctx.report.models if m.format == "tensorflow-savedmodel" and "meta_graphs" in m.summary]
    numbered = [m for m in saved if m.summary.get("version") is not None]
    if numbered:
        top = max(m.summary["version"] for m in numbered)
        saved = [m for m in numbered if m.summary["version"] == top]
    reason = savedmodel.not_callable_reason(saved[0].summary, saved[0].path) if len(saved) == 1 else None
    ctx.set("tensorflow", layout, loadable=reason is None, reason=reason)
    for pb, names in lambdas:
        ctx.flag_code(pb, f"Keras Lambda layer(s) {', '.join(names)} carry Python bytecode")
    return True


def _keras(ctx: _Context) -> bool:
    keras_files = ctx.names("keras-zip") + ctx.names("hdf5")
    if not keras_files:
        return False
    from .formats import savedmodel

    ctx.summarize_each(keras_files, "keras", savedmodel.summarize_keras)
    for m in ctx.report.models:
        if m.summary.get("lambda_layers"):
            ctx.flag_code(m.path, f"Keras Lambda layer(s) {', '.join(m.summary['lambda_layers'])} carry Python "
                                  "bytecode")
    ctx.set("tensorflow", ctx.default_layout(True))
    return True


def _huggingface(ctx: _Context) -> bool:
    from .formats import huggingface

    configs = [n for n in ctx.names("json") if _base(n) == "config.json"]
    for c in sorted(configs, key=len):
        base = str(PurePosixPath(c).parent) if "/" in c else ""
        sub = SubTree(ctx.tree, base) if base else ctx.tree
        if not huggingface.is_hf_model_dir(sub):
            continue
        summary = huggingface.summarize(sub)
        ctx.add_model(c, "huggingface", summary)
        has_weights = bool(summary.get("weights_files") or summary.get("weights"))
        ctx.set("huggingface", ctx.default_layout(True), loadable=has_weights,
                reason=None if has_weights
                else "no weights file (model.safetensors, pytorch_model.bin, tf_model.h5) inside")
        remote = summary.get("auto_map") or summary.get("remote_code_files")
        if remote:
            ctx.flag_code(c, f"remote code (auto_map / *.py) present: {remote}")
        return True
    return False


def _pytorch(ctx: _Context) -> bool:
    names = ctx.names("torch-zip") + ctx.names("torch-legacy")
    if not names:
        return False
    from .formats import torch_zip

    ctx.summarize_each(names, "pytorch", torch_zip.summarize)
    old = [m.path for m in ctx.report.models if m.summary.get("format") == "torchscript-1.0"]
    if old and len(old) == len(names):
        ctx.set("pytorch", ctx.default_layout(True), loadable=False,
                reason=f"{old[0]} is TorchScript of torch 1.0-1.2 (model.json + tensors/), a format current torch "
                       "cannot load; re-export it with torch 1.x's torch.jit.save")
    else:
        ctx.set("pytorch", ctx.default_layout(True), loadable=True)
    return True


def _mxnet(ctx: _Context) -> bool:
    from .formats import mxnet

    params = ctx.names("mxnet-params")
    symbols = [n for n in ctx.names("json") if (ctx.whole(n) or b"")[:4096].find(b'"nodes"') >= 0
               and mxnet.is_symbol_json(ctx.whole(n) or b"")]
    if not params and not symbols:
        return False
    ctx.summarize_each(symbols, "mxnet-symbol", mxnet.summarize_symbol)

    def params_summary(data: bytes) -> dict:
        infos = mxnet.read_params(data)
        return {"count": len(infos), "parameters": [i.to_dict() for i in infos]}

    ctx.summarize_each(params, "mxnet-params", params_summary)
    chosen = mxnet.export_files(symbols, params)  # the pair loaders/mxnet.py loads, or why there is none
    ctx.set("mxnet", ctx.default_layout(True), loadable=chosen.reason is None, reason=chosen.reason)
    return True


# Conventional file names of a scikit-learn model in a SageMaker artifact. The SageMaker scikit-learn container
# has no default model_fn (aws/sagemaker-scikit-learn-container ``serving.py``: ``default_model_fn`` defers to
# sagemaker-containers, which raises NotImplementedError), so the name always comes from the user's script; the
# SageMaker Python SDK's scikit-learn guide (``doc/frameworks/sklearn/using_sklearn.rst``, "Load a Model") loads
# ``model.joblib``, and ``model.pkl`` / ``model`` (bring-your-own containers) are the other spellings in use.
CONVENTIONAL_MODEL_NAMES = ("model.joblib", "model.pkl", "model.pickle", "model")
# scikit-learn modules whose estimators transform or encode but do not predict (scikit-learn's API reference
# groups them so); a pickle of one of these beside a predicting estimator is a helper, not the model.
_NON_PREDICTING_MODULES = ("sklearn.preprocessing", "sklearn.feature_extraction", "sklearn.feature_selection",
                           "sklearn.impute", "sklearn.decomposition", "sklearn.random_projection",
                           "sklearn.kernel_approximation", "sklearn.manifold", "sklearn.compose._column_transformer",
                           "sklearn.neighbors._unsupervised")
_MAX_SCRIPT_BYTES = 1 << 20  # an entry point larger than this is not read for file names
_CONTAINERS = {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float", "bool",
               "NoneType"}


def _class_of(value) -> str:
    """The class a pickle's top-level object is made from, read as data: ``module.Class``, or a Python type name
    (``dict``) for plain values. ``copyreg._reconstructor(cls, base, state)`` (protocols 0 and 1) names ``cls``."""
    func = getattr(value, "func", None)
    if func is None:
        return type(value).__name__
    if str(func) in ("copyreg._reconstructor", "copy_reg._reconstructor") and value.args \
            and hasattr(value.args[0], "module"):
        return str(value.args[0])
    return str(func)


def _predicts(value, depth: int = 0) -> bool:
    """Whether the pickled top-level object is a predicting model, judged from its class name as data: plain
    values and the transformers of ``_NON_PREDICTING_MODULES`` do not; a ``Pipeline`` does when its last step does;
    any other class (scikit-learn estimators, XGBoost/LightGBM wrappers, the training script's own) is taken to."""
    cls = _class_of(value)
    if cls in _CONTAINERS or "." not in cls or cls.startswith(("numpy.", "builtins.", "__builtin__.", "pandas.")):
        return False
    if cls.startswith("sklearn.pipeline.") and depth < 8:
        state = getattr(value, "state", None)
        steps = state.get("steps") if isinstance(state, dict) else None
        if isinstance(steps, list) and steps and isinstance(steps[-1], tuple) and len(steps[-1]) == 2:
            return _predicts(steps[-1][1], depth + 1)
        return True
    return not cls.startswith(_NON_PREDICTING_MODULES)


def model_fn_files(source: bytes) -> list[str]:
    """The file names an inference script's ``model_fn`` mentions, in source order, read as text (never run).

    SageMaker's framework containers call ``model_fn(model_dir)`` from the entry point to load the model
    (SageMaker Python SDK, "Load a Model"); the files it opens are named by string literals inside it
    (``joblib.load(os.path.join(model_dir, "model.joblib"))``, ``f"{model_dir}/model.pkl"``) or by module-level
    constants it refers to (``MODEL_FILE = "model.joblib"``). Each literal is given as written, stripped of
    ``./``, ``/opt/ml/model/`` and surrounding slashes; callers match them against the artifact's members.
    A script that does not parse, or has no ``model_fn``, names nothing.
    """
    import ast

    if len(source) > _MAX_SCRIPT_BYTES:
        return []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    constants: dict[str, str] = {}
    functions = []
    node: ast.AST
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    constants[t.id] = node.value.value
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "model_fn":
            functions.append(node)
    if not functions:
        return []
    found: list[tuple[int, int, str]] = []
    try:
        for node in ast.walk(functions[-1]):  # the last definition is the one Python keeps
            text = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in constants:
                text = constants[node.id]
            if text is not None and len(text) < 4096:
                found.append((getattr(node, "lineno", 0), getattr(node, "col_offset", 0), text))
    except RecursionError:
        return []
    out = []
    for _, _, text in sorted(found):
        name = text.strip()
        if name.startswith("/opt/ml/model/"):
            name = name[len("/opt/ml/model/"):]
        while name.startswith("./"):
            name = name[2:]
        name = name.strip("/")
        if name and name not in out:
            out.append(name)
    return out


def _named_by_script(mentioned: list[str], candidates: list[str]) -> list[str]:
    """The candidates a script's literals name: by their path in the artifact, else by a unique file name."""
    out: list[str] = []
    exact = set(candidates)
    by_base: dict[str, list[str]] = {}
    for c in candidates:
        by_base.setdefault(_base(c), []).append(c)
    for text in mentioned:
        hits = [text] if text in exact else []
        if not hits:
            same = by_base.get(PurePosixPath(text).name, [])
            hits = same if len(same) == 1 else []
        out += [h for h in hits if h not in out]
    return out


def _choose_model(ctx: _Context, names: list[str], values: dict) -> tuple[str, str]:
    """Which pickle is the model, and why, as SageMaker's containers and the artifact's own script would load it:
    (1) the file the entry point's ``model_fn`` names, (2) a conventional model file name, (3) the pickle whose
    top-level object predicts; else the first scikit-learn pickle, else the first."""
    if len(names) == 1:
        return names[0], "it is the only pickle"
    entry = _entry_point(ctx.names())
    script = ctx.whole(entry) if entry else None
    if script:
        named = _named_by_script(model_fn_files(script), names)
        if named:
            best = next((n for n in named if n in values and _predicts(values[n])), named[0])
            return best, f"{entry}'s model_fn loads it"
    conventional = [n for c in CONVENTIONAL_MODEL_NAMES for n in names if _base(n) == c]
    if conventional:
        best = min(conventional, key=lambda n: n.count("/"))
        return best, f"{_base(best)} is the conventional name of a SageMaker model file"
    predicting = [n for n in names if n in values and _predicts(values[n])]
    if predicting:
        short = _class_of(values[predicting[0]]).rsplit(".", 1)[-1]
        return predicting[0], f"its {short} is the first pickled object that predicts"
    sk = [n for n in names if n in values and _class_of(values[n]).startswith("sklearn.")]
    return (sk or names)[0], "no pickle is named by a script or a conventional name, or predicts; it is the first"


def _pickle(ctx: _Context) -> bool:
    names = ctx.names("pickle") + ctx.names("joblib-compressed")
    if not names:
        return False
    framework: Framework = "pickle"
    entries: dict[str, ModelInfo] = {}
    values: dict[str, object] = {}
    for n in names:
        data = ctx.whole(n)
        if data is None:
            entries[n] = ModelInfo(n, "pickle", {"note": "too large to read during inspection"})
            continue
        pk = read_pickle(decompress_joblib(data, _decompress_limit(Limits())))
        globs = [str(g) for g in pk.globals]
        top = pk.value
        values[n] = top
        level = worst(f.level for f in pickle_findings(n, pk.globals, pk.called, pk.oddities))
        state = getattr(top, "state", None)
        saved_with = state.get("_sklearn_version") if isinstance(state, dict) else None
        entries[n] = ModelInfo(n, "pickle", {
            "protocol": pk.protocol,
            "top_level": _class_of(top),
            "sklearn_version": saved_with if isinstance(saved_with, str) else None,
            "joblib_arrays": len(pk.joblib_arrays),
            "embedded_pickles": pk.nested_pickles,
            "globals": globs,
            "verdict": level,
        })
        if any(g.startswith("sklearn.") for g in globs):
            framework = "sklearn"
    chosen, why = _choose_model(ctx, names, values)
    others = [n for n in names if n != chosen]
    entries[chosen].summary["role"] = "model"
    entries[chosen].summary["chosen_because"] = why
    for n in others:
        entries[n].summary["role"] = "other pickle"
    for n in [chosen, *others]:  # the model first: ``report.model("pickle")`` is the one ``load`` loads
        ctx.report.models.append(entries[n])
    if others:
        ctx.report.warnings.append(
            f"{chosen} is the model ({why}); the other pickle(s) {', '.join(others)} are not loaded "
            "(choose one with member=NAME, CLI --member NAME)")
    fw_container = ctx.container not in ("file", "gzip-file") and _entry_point(ctx.names()) is not None
    top = _class_of(values[chosen]) if chosen in values else None
    if top in _CONTAINERS or (top and top.startswith(("numpy.", "pandas."))):
        what = f"a plain {top}" if top in _CONTAINERS else f"{top.split('.')[0]} data ({top})"
        ctx.set(framework, ctx.default_layout(fw_container), loadable=False,
                reason=f"{chosen} holds {what}, not a model object with a predict method")
    else:
        ctx.set(framework, ctx.default_layout(fw_container))
    return True


def _rds(ctx: _Context) -> bool:
    names = ctx.names("rds")
    if not names:
        return False
    from .formats import rds

    ctx.summarize_each(names, "r-rds", rds.summarize)
    ctx.set("r", ctx.default_layout(False), loadable=False,
            reason="this is an R serialized object (RDS): R models cannot be loaded from Python; "
                   "serve it with an R container")
    return True


def _summarize_kind(ctx: _Context, kind: str, reader) -> list[str]:
    names = ctx.names(kind)
    ctx.summarize_each(names, kind, reader)
    return names


def _lightgbm(ctx: _Context) -> bool:
    """LightGBM text models, and Boosters saved with pickle (``model.pkl``), whose model text is read from the
    pickle as data (formats/lightgbm_pickle.py): the loader never unpickles them, so the audit's findings on such a
    pickle are kept in the report but do not gate loading."""
    pickles = ctx.names("pickle") + ctx.names("joblib-compressed")
    if not pickles and not ctx.names("lightgbm"):
        return False
    from .formats import lightgbm, lightgbm_pickle

    names = _summarize_kind(ctx, "lightgbm", lightgbm.summarize)
    pickled = []
    for n in pickles:
        data = ctx.whole(n)
        text = lightgbm_pickle.model_text(data, _decompress_limit(Limits())) if data is not None else None
        if text is None:
            continue
        ctx.add_model(n, "lightgbm", {**lightgbm.summarize(text), "pickled": lightgbm_pickle.BOOSTER})
        pickled.append(n)
        # model_text accepted it only if it names nothing beyond a Booster and its state's containers: a Booster's
        # class is not a dangerous call, and it is never unpickled anyway
        ctx.findings[:] = [Finding(f.member, "unknown-types",
                                   f"{f.what.replace('dangerous call(s)', 'type(s)')} (loading reads the model "
                                   "text inside as data and never unpickles it)", on_load=False)
                           if f.member == n else f for f in ctx.findings]
    if not names and not pickled:
        return False
    ctx.set("lightgbm", ctx.default_layout(True))
    return True


def _catboost(ctx: _Context) -> bool:
    if not ctx.names("catboost"):
        return False
    from .formats import catboost

    if not _summarize_kind(ctx, "catboost", catboost.summarize):
        return False
    ctx.set("catboost", ctx.default_layout(True))
    return True


def _onnx(ctx: _Context) -> bool:
    if not ctx.names("onnx"):
        return False
    from .formats import onnx

    names = _summarize_kind(ctx, "onnx", onnx.summarize)
    if not names:
        return False
    missing = [f"{PurePosixPath(m.path).parent / loc}".lstrip("./") for m in ctx.report.models if m.format == "onnx"
               for loc in m.summary.get("external_data") or []
               if str(PurePosixPath(m.path).parent / loc).lstrip("./") not in ctx.kinds]
    if missing:
        ctx.set("onnx", ctx.default_layout(True), loadable=False,
                reason=f"the ONNX model's external data file {missing[0]} is not in the artifact")
    else:
        ctx.set("onnx", ctx.default_layout(True))
    return True


def _pmml(ctx: _Context) -> bool:
    if not ctx.names("pmml"):
        return False
    from .formats import pmml

    if not _summarize_kind(ctx, "pmml", pmml.summarize):
        return False
    ctx.set("pmml", ctx.default_layout(False), loadable=False,
            reason="PMML models need a PMML scoring engine (JPMML, pypmml); artifact-tools reads them but does not "
                   "score them")
    return True


def _neuron(ctx: _Context) -> bool:
    from .formats import neuron

    found = neuron.identify(ctx.names(), ctx.whole)
    if not found:
        return False
    ctx.add_model((found.get("files") or ["."])[0], found.get("compiler", "neuron"), found)
    compiled_from = found.get("framework")
    framework: Framework = compiled_from if compiled_from in ("pytorch", "tensorflow", "mxnet") else "neuron"
    ctx.set(framework, "compiled", loadable=False, reason=found["reason"])
    return True


_TRITON_FRAMEWORKS: dict[str, Framework] = {
    "onnxruntime_onnx": "onnx", "onnxruntime": "onnx", "pytorch_libtorch": "pytorch", "pytorch": "pytorch",
    "tensorflow_savedmodel": "tensorflow", "tensorflow_graphdef": "tensorflow", "tensorflow": "tensorflow"}


def _triton(ctx: _Context) -> bool:
    """A Triton model repository: ``<model>/config.pbtxt`` beside numbered version folders (formats/triton.py)."""
    if not any(_base(n) == "config.pbtxt" for n in ctx.kinds):
        return False
    from .formats import triton

    layout = [m for m in triton.repository_layout(ctx.names()) if m["versions"]]
    if not layout:
        return False
    reasons = []
    framework: Framework = "unknown"
    loadable = False
    for model in layout:
        summary = triton.summarize(ctx.whole(model["config"]) or b"", model["config"])
        ctx.add_model(model["config"], "triton-config", {**summary, "repository": model})
        kind = summary.get("platform") or summary.get("backend") or ""
        framework = _TRITON_FRAMEWORKS.get(kind, framework)
        if summary.get("runs_python"):
            for v in model["versions"]:
                for f in v["files"]:
                    if f.endswith(".py"):
                        ctx.flag_code(f"{v['dir']}/{f}", "is the Python backend's model code, which Triton runs")
        latest = model["versions"][-1]
        for f in latest["files"]:
            path = f"{latest['dir']}/{f}"
            k = ctx.kinds.get(path)
            if k == "onnx":
                from .formats import onnx

                ctx.summarize_each([path], "onnx", onnx.summarize)
                loadable = True
            elif k in ("torch-zip", "torch-legacy"):
                from .formats import torch_zip

                ctx.summarize_each([path], "pytorch", torch_zip.summarize)
                entry = ctx.report.models[-1]
                if entry.summary.get("torchscript") and entry.summary.get("format") != "torchscript-1.0":
                    loadable = True
                else:
                    reasons.append(f"{path} is a state dict (weights only), not the TorchScript module "
                                   f"{kind or 'the pytorch backend'} loads, so there is no network to run")
        if not loadable and not reasons:
            reasons.append(f"the {kind or 'unknown'} model of {model['config']} is not a format artifact-tools loads")
    ctx.set(framework, "triton-repository", loadable=loadable, reason=None if loadable else reasons[0])
    return True


def _mlflow(ctx: _Context) -> bool:
    """An MLflow Model folder (``MLmodel`` beside the flavor's files): the model inside is found by the other
    detectors, and the layout says it is an MLflow model."""
    files = ctx.names("mlflow-model")
    if not files:
        return False
    from .formats import mlflow_model

    for f in files:
        base = str(PurePosixPath(f).parent)
        pre = "" if base == "." else base + "/"
        inner = [n[len(pre):] for n in ctx.names() if n.startswith(pre) and n != f]
        summary = mlflow_model.summarize(ctx.whole(f) or b"", inner, f)
        ctx.add_model(f, "mlflow-model", summary)
    rest = DETECTORS[DETECTORS.index(_mlflow) + 1:]
    for detector in rest:
        if detector(ctx):
            break
    ctx.report.layout = "mlflow-model"
    return True


_ARCHIVE_KINDS = ("tar", "zip", "gzip", "compressed")


def _nested_archive(ctx: _Context) -> bool:
    """No model file, but another archive inside (``model.tar.gz`` packed into ``model.tar.gz``): SageMaker unpacks
    the artifact once into ``/opt/ml/model``, so the container would find the inner archive, not a model. Named,
    not loadable, with what to do; the inner archive is not opened here (its bytes are not kept)."""
    inner = [n for n, k in ctx.kinds.items() if k in _ARCHIVE_KINDS]
    if not inner or any(k not in (*_ARCHIVE_KINDS, *_CODE_AND_TEXT_KINDS) for k in ctx.kinds.values()):
        return False
    first = sorted(inner, key=lambda n: (n.count("/"), n))[0]
    ctx.add_model(first, "nested-archive", {"archives": sorted(inner)})
    if ctx.container == "gzip-file":  # the artifact itself is one gzip-compressed file, not a tar archive
        reason = (f"{first} is one gzip-compressed file ({_gunzipped_kind(ctx, first)} inside), not a tar archive, "
                  f"so SageMaker cannot unpack it; decompress it (gunzip) and inspect or load that file, or pack it "
                  f"with tar czf model.tar.gz")
    else:
        reason = (f"the artifact holds another archive ({first}) and no model file; SageMaker unpacks the artifact "
                  f"only once, so extract {first} from it and inspect or load that archive instead")
    ctx.set("unknown", ctx.default_layout(False), loadable=False, reason=reason)
    return True


def _gunzipped_kind(ctx: _Context, name: str) -> str:
    """What a kept gzip member holds, sniffed from the first 64 KiB it decompresses to (gzip: RFC 1952); nothing
    is written or run."""
    data = ctx.whole(name)
    if data is None:
        return "content not read"
    try:
        head = zlib.decompressobj(31).decompress(data[:1 << 20], 64 * 1024)
    except zlib.error:
        return "damaged data"
    return sniff(name.removesuffix(".gz"), head, len(head))


# Kinds of member that are code, configuration or notes, never a model's weights (sniff.py's text kinds).
_CODE_AND_TEXT_KINDS = ("python", "text", "properties", "yaml", "json", "jsonl", "csv", "empty", "pbtxt")
CODE_ONLY: Layout = "code-only"


def _code_only(ctx: _Context) -> bool:
    """Inference code and no model file (``code/inference.py``, ``requirements.txt``...): the serving container runs
    the code, which gets its model at run time (the Hub, S3, a URL). Tried last, after every model format; what the
    code fetches is read from its string literals (formats/python_script.py), nothing is run."""
    scripts = ctx.names("python") + [n for n in ctx.names() if n.endswith(".py") and ctx.kinds[n] != "python"]
    if not scripts or any(k not in _CODE_AND_TEXT_KINDS for k in ctx.kinds.values()):
        return False
    from .formats import python_script

    entry = _entry_point(ctx.names()) or (scripts[0] if len(scripts) == 1 else None)
    ordered = ([entry] if entry in scripts else []) + [s for s in scripts if s != entry]
    sources = [ctx.whole(s) or b"" for s in ordered]
    fetched: list[str] = []
    for src in sources:
        fetched += [f for f in python_script.downloads(src) if f not in fetched]
    framework = python_script.imported_framework(sources) or "unknown"
    ctx.add_model(entry or scripts[0], "inference-code", {"scripts": ordered, "downloads": fetched,
                                                           "imports_framework": framework})
    ctx.report.entry_point = entry
    what = entry or f"{len(scripts)} Python file(s)"
    if fetched:
        shown = ", ".join(fetched[:3]) + (" ..." if len(fetched) > 3 else "")
        reason = (f"the artifact holds inference code ({what}) but no model file: the code fetches its model at run "
                  f"time ({shown})")
    else:
        reason = (f"the artifact holds inference code ({what}) but no model file: the model is fetched or built at "
                  "run time by that code, which artifact-tools does not run")
    ctx.set(framework, CODE_ONLY, loadable=False, reason=reason)
    return True


DETECTORS: list[Callable[[_Context], bool]] = [
    _djl, _triton, _mlflow, _neuron, _mleap, _spark, _builtin, _xgboost, _lightgbm, _catboost, _onnx, _tensorflow,
    _huggingface, _keras, _pytorch, _mxnet, _pickle, _rds, _pmml, _nested_archive, _code_only,
]
