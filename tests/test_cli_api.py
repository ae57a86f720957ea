"""The command line and the Python API as users meet them: global flags in any position, the same trust and limit
flags on every command, typed loader options, the typed Report (from_dict, repr, JSON Schema), and loading that
leaves the process's environment and numpy as the framework's own loading leaves them."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import get_args

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_samples  # noqa: E402

import artifact_tools  # noqa: E402
import loaders  # noqa: E402
from artifact_tools import cli  # noqa: E402
from artifact_tools.errors import ArtifactError  # noqa: E402
from artifact_tools.report import Report, json_schema  # noqa: E402
from loaders.base import parse_options  # noqa: E402

from helpers import pack_tar_gz, untar  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """``samples(name)``: the sample artifact scripts/make_samples.py builds, built once."""
    out = tmp_path_factory.mktemp("samples")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = make_samples.BUILDERS[name](out)
        return built[name]

    return get


def _cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter with its own empty extraction cache (a warm cache would skip the archive)."""
    full = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(cwd / ".cache"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "artifact_tools", *args], capture_output=True, text=True, cwd=cwd,
                          env=full)


def _one_sentence(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("artifact-tools"), (res.returncode,
                                                                                                res.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def xgb_two_members(tmp_path_factory) -> Path:
    """An XGBoost built-in artifact with a second member, read by every command."""
    xgb = pytest.importorskip("xgboost")
    X, y = make_samples.make_data()
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X, label=y), 4)
    path = tmp_path_factory.mktemp("xgb") / "model.tar.gz"
    path.write_bytes(pack_tar_gz({"xgboost-model": bytes(booster.save_raw("ubj")), "notes.txt": b"trained here\n"}))
    return path


# ------------------------------------------------------------------------------------------ CLI flags

def test_version():
    res = subprocess.run([sys.executable, "-m", "artifact_tools", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == f"artifact-tools {artifact_tools.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", artifact_tools.__version__)


@pytest.mark.parametrize("argv,debug,verbose,quiet", [
    (["inspect", "a"], False, 0, False),
    (["-v", "inspect", "a"], False, 1, False),
    (["inspect", "a", "-v"], False, 1, False),
    (["-v", "inspect", "-v", "a"], False, 2, False),
    (["--verbose", "load", "a", "-vv"], False, 3, False),
    (["--debug", "export", "a", "--to", "git", "o"], True, 0, False),
    (["export", "a", "--to", "git", "o", "--debug", "-q"], True, 0, True),
    (["-q", "serve", "a"], False, 0, True),
    (["convert-xgboost", "a", "o.json", "--quiet", "--debug"], True, 0, True),
])
def test_global_flags_in_any_position(argv, debug, verbose, quiet):
    args = cli.build_parser().parse_args(argv)
    cli._merge_global(args)
    assert (args.debug, args.verbose, args.quiet) == (debug, verbose, quiet)


COMMANDS = {
    "inspect": lambda a, d: ["inspect", a],
    "load": lambda a, d: ["load", a],
    "convert-xgboost": lambda a, d: ["convert-xgboost", a, str(d / "m.json")],
    "export": lambda a, d: ["export", a, "--to", "sagemaker", str(d / "exported")],
    "serve": lambda a, d: ["serve", a, "--port", "0"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_the_trust_and_limit_flags(command, xgb_two_members, tmp_path):
    """The same flags everywhere, and the limits reach the library: two members over a one-member cap."""
    base = COMMANDS[command](str(xgb_two_members), tmp_path)
    line = _one_sentence(_cli(*base, "--trust", "--trust-all", "--max-ratio", "0", "--max-members", "1",
                              cwd=tmp_path))
    assert "more than 1 entries" in line
    line = _one_sentence(_cli(*base, "--max-bytes", "10", cwd=tmp_path))
    assert "10" in line and "byte" in line
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "exported").exists()


def test_max_ratio_zero_turns_the_ratio_check_off_for_inspect_and_export(tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = make_samples.make_data()
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(X, label=y), 2)
    art = tmp_path / "padded.tar.gz"  # 24 MiB of zeros: far beyond 250:1 once past the 16 MiB floor
    art.write_bytes(pack_tar_gz({"xgboost-model": bytes(booster.save_raw("ubj")), "padding.bin": bytes(24 << 20)}))
    assert "decompression bomb" in _one_sentence(_cli("inspect", str(art), cwd=tmp_path))
    assert _cli("inspect", str(art), "--max-ratio", "0", cwd=tmp_path).returncode == 0
    assert "decompression bomb" in _one_sentence(_cli("export", str(art), "--to", "sagemaker",
                                                      str(tmp_path / "a"), cwd=tmp_path))
    res = _cli("export", str(art), "--to", "sagemaker", str(tmp_path / "b"), "--max-ratio", "0", cwd=tmp_path)
    assert res.returncode == 0, res.stderr


def test_verbosity_in_any_position_and_the_loaders_version_warning(samples, tmp_path):
    """-v gives our INFO lines, -vv (split around the command) our DEBUG lines; a pickle from another
    scikit-learn release gets the loader's one-line warning, and sklearn's own warning only with -vv or --debug."""
    import sklearn

    art = untar(samples("sklearn"), tmp_path / "src")
    data = (art / "model.joblib").read_bytes()
    old = "1.0." + "0" * (len(sklearn.__version__) - 4) if len(sklearn.__version__) >= 5 else "0.0.0"
    assert sklearn.__version__.encode() in data and len(old) == len(sklearn.__version__)
    (art / "model.joblib").write_bytes(data.replace(sklearn.__version__.encode(), old.encode()))  # same length
    quiet = _cli("load", str(art), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == ["loaded sklearn model: LogisticRegression",
                                         f"artifact-tools: warning: saved with scikit-learn {old}, loaded with "
                                         f"{sklearn.__version__}; scikit-learn does not promise identical "
                                         "predictions across versions"]
    assert "InconsistentVersionWarning" not in quiet.stderr
    res = _cli("load", str(art), "--verbose", cwd=tmp_path)
    assert "artifact-tools: imported sklearn" in res.stderr and "options for" not in res.stderr
    assert "InconsistentVersionWarning" not in res.stderr
    res = _cli("-v", "load", str(art), "-v", cwd=tmp_path)  # -vv: our debug lines, and the frameworks' own output
    assert "artifact-tools: [loaders.base] options for pickle artifacts: SklearnOptions(member=None)" in res.stderr
    assert "InconsistentVersionWarning" in res.stderr
    assert "InconsistentVersionWarning" in _cli("load", str(art), "--debug", cwd=tmp_path).stderr


def test_cli_quiets_frameworks_only_for_its_own_run(monkeypatch):
    """What the CLI sets for its run (TF's log level...) is put back when main returns; a user's value is kept."""
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    seen = {}

    def probe(args):
        seen.update(tf=os.environ.get("TF_CPP_MIN_LOG_LEVEL"), hf=os.environ.get("TRANSFORMERS_VERBOSITY"),
                    filters=len(__import__("warnings").filters))
        return 0

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda only=None: _with_probe(parser(only), probe))
    filters = len(__import__("warnings").filters)
    assert cli.main(["inspect", "x"]) == 0
    assert seen["tf"] == "3" and seen["hf"] == "info" and seen["filters"] > filters
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and os.environ["TRANSFORMERS_VERBOSITY"] == "info"
    assert len(__import__("warnings").filters) == filters
    assert cli.main(["--debug", "inspect", "x"]) == 0 and seen["tf"] is None  # --debug: frameworks as they are


def _with_probe(parser, probe):
    parser.set_defaults(func=probe)
    for action in parser._subparsers._group_actions:  # the commands' own defaults win over the main parser's
        for sub in action.choices.values():
            sub.set_defaults(func=probe)
    return parser


def test_bad_flags_are_one_sentence(tmp_path):
    for argv in (["inspect"], ["inspect", "a", "--bogus"], ["load", "a", "--max-members", "many"], ["nope"]):
        line = _one_sentence(_cli(*argv, cwd=tmp_path))
        assert "--help" in line


# ------------------------------------------------------------------------------------------ loader options

LOADER_MODULES = sorted(set(loaders.LOADER_MODULES.values()))


def test_every_loader_declares_typed_options():
    for name in LOADER_MODULES:
        assert dataclasses.is_dataclass(getattr(importlib.import_module(name), "OPTIONS", None)), name


@pytest.mark.parametrize("name", LOADER_MODULES)
def test_every_loader_refuses_unknown_options_naming_the_known_ones(name, tmp_path):
    module = importlib.import_module(name)
    fields = [f.name for f in dataclasses.fields(module.OPTIONS)]
    with pytest.raises(ArtifactError, match=r"unknown option\(s\) bogus for ") as e:
        module.load(tmp_path, None, bogus="1")
    assert all(f in str(e.value) for f in fields) and ("there are none" in str(e.value)) == (not fields)
    assert len(str(e.value).splitlines()) == 1


def test_option_text_is_converted_to_the_field_types():
    from loaders.mxnet import MXNetOptions
    from loaders.pytorch import PyTorchOptions
    from loaders.tensorflow import TensorFlowOptions

    assert parse_options(TensorFlowOptions, {"version": "3"}, "x") == TensorFlowOptions(version=3)
    assert parse_options(TensorFlowOptions, {"version": "affine/1"}, "x").version == "affine/1"
    assert parse_options(TensorFlowOptions, {"version": 2, "signature": "negate"}, "x") == TensorFlowOptions(2,
                                                                                                      "negate")
    assert parse_options(MXNetOptions, {"backend": "numpy", "host": "2"}, "x") == MXNetOptions("numpy", 2)
    assert parse_options(MXNetOptions, {"host": "model_algo-2"}, "x").host == "model_algo-2"
    with pytest.raises(ArtifactError, match=r"^backend must be 'mxnet' or 'numpy', not 'torch'$"):
        parse_options(MXNetOptions, {"backend": "torch"}, "x")
    with pytest.raises(ArtifactError, match=r"^signature must be text, not 3$"):
        parse_options(TensorFlowOptions, {"signature": 3}, "x")
    with pytest.raises(ArtifactError, match=r"^host must be a whole number or text, not True$"):
        parse_options(MXNetOptions, {"host": True}, "x")
    marker = object()
    assert parse_options(PyTorchOptions, {"module": marker}, "x").module is marker  # Python objects pass as they are


def test_cli_options_reach_the_loader_typed(samples, tmp_path):
    """``-o`` text goes through the loader's dataclass: unknown names and values outside a choice are refused in
    one sentence, a known option is used."""
    line = _one_sentence(_cli("load", str(samples("sklearn")), "-o", "nope=1", "-o", "member=x", cwd=tmp_path))
    assert line == "artifact-tools: unknown option(s) nope for pickle artifacts; known: member (text)"
    line = _one_sentence(_cli("load", str(samples("sklearn")), "-o", "member=other.pkl", cwd=tmp_path))
    assert "other.pkl" in line and "model.joblib" in line  # the refusal names the member asked and the ones there
    res = _cli("load", str(samples("sklearn")), "-o", "member=model.joblib", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert _one_sentence(_cli("load", str(samples("sklearn")), "--member", "other.pkl", cwd=tmp_path)) == line
    res = _cli("load", str(samples("sklearn")), "--member", "model.joblib", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    line = _one_sentence(_cli("load", str(samples("mxnet")), "-o", "backend=torch", cwd=tmp_path))
    assert line == "artifact-tools: backend must be 'mxnet' or 'numpy', not 'torch'"


def test_load_and_export_help_list_every_option():
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    text = " ".join(commands["load"].format_help().split())
    for needle in ("tensorflow: version (a whole number or text), signature (text, default serving_default)",
                   "mxnet: backend ('mxnet' or 'numpy'), host (a whole number or text)", "huggingface: task (text)"):
        assert needle in text
    text = " ".join(commands["export"].format_help().split())
    for target in ("sagemaker", "tf-serving", "git", "mleap"):
        assert re.search(rf"\b{target}: sample \(rows to verify with", text), target


# ------------------------------------------------------------------------------------------ Report API

SCHEMA = json_schema()


def _enum(prop: dict) -> tuple:
    return tuple(prop["enum"])


def test_the_schema_and_the_literal_types_agree():
    from artifact_tools import report as r

    props, defs = SCHEMA["properties"], SCHEMA["$defs"]
    assert _enum(props["framework"]) == get_args(r.Framework) == r.FRAMEWORKS
    assert _enum(props["layout"]) == get_args(r.Layout)
    assert _enum(props["container"]) == get_args(r.Container)
    assert _enum(props["algorithm"]) == (*get_args(r.Algorithm), None)
    assert _enum(defs["verdict"]) == get_args(r.Verdict)
    assert _enum(defs["level"]) == get_args(r.FindingLevel)
    from artifact_tools.trust import LEVELS

    assert get_args(r.Verdict) == LEVELS  # the trust module's order, best to worst
    assert set(props) == set(Report._fields) | {"schema"} == set(SCHEMA["required"])


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def _check_report(report: Report, validator) -> None:
    text = report.to_json()
    data = json.loads(text)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, f"{report!r}: {[f'{list(e.path)}: {e.message[:200]}' for e in errors[:5]]}"
    again = Report.from_dict(data)
    assert again.to_json() == text and Report.from_dict(report.to_dict()) == report


def _corpus_sources(corpus: Path) -> list[Path]:
    """Every corpus entry as a folder, and each file and folder in it."""
    out = []
    for entry in sorted(p for p in corpus.iterdir() if p.is_dir() and p.name != "golden"):
        out += [entry, *sorted(entry.iterdir())]
    return out


def test_every_corpus_report_fits_the_schema_and_round_trips(corpus, validator):
    checked, refused = 0, []
    for source in _corpus_sources(corpus):
        try:
            report = artifact_tools.inspect(source)
        except ArtifactError as e:  # nothing to validate; the refusal is other tests' subject
            refused.append(f"{source.name}: {e}")
            continue
        _check_report(report, validator)
        checked += 1
    assert checked >= 40, (checked, refused)


def test_every_sample_report_fits_the_schema_and_round_trips(samples, validator, tmp_path):
    names = sorted(make_samples.BUILDERS)
    for name in names:
        path = samples(name)
        _check_report(artifact_tools.inspect(path), validator)
        _check_report(artifact_tools.inspect(untar(path, tmp_path / name)), validator)  # as a folder


def test_schema_catches_what_does_not_fit(samples, validator):
    """The schema is strict: an extra key, a wrong enum, a missing key, an inconsistent trust section fail."""
    good = json.loads(artifact_tools.inspect(samples("sklearn")).to_json())
    assert good["trust"]["verdict"] == "code"  # code/inference.py: an informational finding
    bad = [
        {**good, "extra": 1},
        {**good, "framework": "keras"},
        {k: v for k, v in good.items() if k != "warnings"},
        {**good, "trust": {**good["trust"], "verdict": "safe"}},
        {**good, "files": [{**good["files"][0], "size": -1}]},
        {**good, "algorithm": "kmeans"},
        {**good, "trust": {**good["trust"], "members": [{**good["trust"]["members"][0], "findings": [
            {"level": "code", "what": "x"}]}]}},
    ]
    for data in bad:
        assert list(validator.iter_errors(data)), data


def test_from_dict_refuses_what_to_dict_never_gives(samples):
    good = artifact_tools.inspect(samples("xgboost")).to_dict()
    cases = {
        "the report's schema is 'other/1'": {**good, "schema": "other/1"},
        "the report lacks the key 'models'": {k: v for k, v in good.items() if k != "models"},
        "the report has unknown key(s) extra": {**good, "extra": 1},
        "the report: framework must be one of": {**good, "framework": "keras"},
        "the report: loadable must be true or false, not str": {**good, "loadable": "yes"},
        "files[0]: size must be an integer, not bool": {**good, "files": [{**good["files"][0], "size": True}]},
        "trust.members[0] lacks the key 'path'": {**good, "trust": {**good["trust"], "members": [{}]}},
        "models[0] must be a JSON object, not list": {**good, "models": [[]]},
    }
    for message, data in cases.items():
        with pytest.raises(ArtifactError) as e:
            Report.from_dict(data)
        assert str(e.value).startswith(message) and len(str(e.value).splitlines()) == 1


def test_repr_is_one_readable_line(samples):
    report = artifact_tools.inspect(samples("sklearn"))
    assert repr(report) == (f"Report(source={str(samples('sklearn'))!r}, framework='sklearn', "
                            "layout='framework-container', verdict='code', models=1)")
    assert "files" in str(report) and "\n" in str(report)  # the rich view stays str()


def test_the_schema_file_ships_with_the_package():
    from importlib.resources import files

    assert json.loads(files("artifact_tools").joinpath("schema/inspect-1.schema.json").read_text()) == SCHEMA
    assert SCHEMA["title"] == SCHEMA["properties"]["schema"]["const"] == "artifact-tools.inspect/1"
    assert files("artifact_tools").joinpath("py.typed").is_file()


# ------------------------------------------------------------------------------------------ process-wide state

PROLOGUE = """
import json, os, sys
import numpy as np
ENV, NP = dict(os.environ), set(np.__dict__)
"""
EPILOGUE = """
env = {k: os.environ.get(k) for k in set(ENV) | set(os.environ) if ENV.get(k) != os.environ.get(k)}
print("STATE " + json.dumps({"env": env, "numpy": sorted(set(np.__dict__) - NP),
                             "gone": sorted(NP - set(np.__dict__))}))
"""

# The framework's own way (an oracle), and loaders.load, on the same model; {art} is the artifact, {dir} the
# folder it was extracted to.
PLAIN = {
    "sklearn": """
import joblib
model = joblib.load({dir!r} + "/model.joblib"); model.predict(np.ones((2, 4)))
""",
    "xgboost": """
import xgboost as xgb
b = xgb.Booster(); b.load_model({dir!r} + "/xgboost-model"); b.predict(xgb.DMatrix(np.ones((2, 4))))
""",
    "tensorflow": """
import tensorflow as tf
fn = tf.saved_model.load({dir!r} + "/1").signatures["serving_default"]
fn(**{{next(iter(fn.structured_input_signature[1])): tf.constant(np.ones((2, 4), np.float32))}})
""",
    "mxnet": """
np.bool = bool  # the import needs it under numpy 1.26; a careful caller removes it again
import mxnet as mx
del np.bool
net = mx.gluon.SymbolBlock.imports({dir!r} + "/model-symbol.json", ["data"], {dir!r} + "/model-0000.params")
net(mx.nd.array(np.ones((2, 4)))).asnumpy()
""",
    "pytorch": """
import torch
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
net.load_state_dict(torch.load({dir!r} + "/model.pth", weights_only=True)); net(torch.ones((2, 4)))
""",
    "huggingface": """
import transformers
transformers.pipeline("text-classification", model={dir!r}, tokenizer={dir!r})(["good movie", "bad"])
""",
}
LOADED = {
    "sklearn": "m = loaders.load({art!r}); m.predict(np.ones((2, 4)))",
    "xgboost": "m = loaders.load({art!r}); m.predict(np.ones((2, 4)))",
    "tensorflow": "m = loaders.load({art!r}); m.predict(np.ones((2, 4), np.float32))",
    "mxnet": "m = loaders.load({art!r}); m.predict(np.ones((2, 4)))",
    "pytorch": """
import torch
net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
m = loaders.load({art!r}, module=net); m.predict(np.ones((2, 4)))
""",
    "huggingface": "m = loaders.load({art!r}); m.predict(['good movie', 'bad'])",
}
# MXNet reads numpy.bool again at run time only in mx.np; every layout the loader handles runs after the alias is
# gone (the built-ins from the corpus, when it is present).
MXNET_CORPUS = """
for name, kw, x in [("cookbook-ll/model.tar.gz", {{}}, np.ones((2, 1))),
                    ("covid-ntm/downloaded_model.tar.gz", {{"host": 2}}, None),
                    ("movies-kmeans-a/model.tar.gz", {{"backend": "mxnet"}}, None),
                    ("plagiarism-pca/model.tar.gz", {{"backend": "mxnet"}}, None)]:
    m = loaders.load({corpus!r} + "/" + name, **kw)
    if x is None:
        dim = m.info.get("dim") or m.info.get("feature_dim") or 1
        x = np.ones((2, dim))
    if name.startswith("covid"):
        continue  # its input is a sparse vocabulary; loading it is what runs MXNet here
    m.predict(x)
"""


class _Proxy:
    """A proxy on 127.0.0.1 that counts the connections made to it and closes each at once."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _states(codes: list[str], tmp: Path, **env_extra: str) -> list[dict]:
    """The state each snippet leaves, each in its own fresh interpreter (run side by side). Every HTTP(S) request
    goes to a local proxy that refuses it: none may be made."""
    proxy = _Proxy()
    drop = ("HF_HUB_OFFLINE", "TF_CPP_MIN_LOG_LEVEL", "NO_PROXY", "no_proxy")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(ARTIFACT_TOOLS_CACHE=str(tmp / "cache"), HTTPS_PROXY=proxy.url, HTTP_PROXY=proxy.url,
               https_proxy=proxy.url, http_proxy=proxy.url, **env_extra)
    try:
        procs = [subprocess.Popen([sys.executable, "-c", PROLOGUE + textwrap.dedent(code) + EPILOGUE], env=env,
                                  cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for code in codes]
        states = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
            states.append(json.loads(next(line[6:] for line in out.splitlines() if line.startswith("STATE "))))
    finally:
        proxy.close()
    assert proxy.connections == 0, f"{proxy.connections} network connection(s) attempted"
    return states


@pytest.mark.parametrize("framework", sorted(PLAIN))
def test_loading_changes_no_process_state_beyond_the_frameworks_own(framework, samples, tmp_path, request):
    """os.environ and numpy's attributes after loaders.load + predict, in a fresh interpreter, against the same
    model loaded and run the framework's own way: nothing may change that the framework itself does not change."""
    pytest.importorskip({"huggingface": "transformers", "pytorch": "torch"}.get(framework, framework))
    art = samples(framework)
    folder = untar(art, tmp_path / "extracted")
    code = "import loaders\n" + LOADED[framework].format(art=str(art))
    corpus = Path(os.environ.get("ARTIFACT_TOOLS_CORPUS", ROOT.parent / "shared" / "corpus"))
    if framework == "mxnet" and (corpus / "EXPECTED.tsv").is_file():
        code += MXNET_CORPUS.format(corpus=str(corpus))
    # transformers would import TensorFlow too (it is installed); both sides skip it alike, to save time
    env = {"USE_TF": "0"} if framework == "huggingface" else {}
    plain, ours = _states([PLAIN[framework].format(dir=str(folder)), code], tmp_path, **env)
    extra_env = {k: v for k, v in ours["env"].items() if plain["env"].get(k, object()) != v}
    assert not extra_env, f"loaders.load changed the environment beyond {framework} itself: {extra_env}"
    assert set(ours["numpy"]) <= set(plain["numpy"]), set(ours["numpy"]) - set(plain["numpy"])
    assert "bool" not in ours["numpy"] and not ours["gone"]
    if framework in ("huggingface", "tensorflow"):  # what the loaders used to set for the whole process
        assert "HF_HUB_OFFLINE" not in ours["env"] and "TF_CPP_MIN_LOG_LEVEL" not in ours["env"]


def test_mxnet_import_leaves_an_existing_numpy_bool_alone():
    """A caller who defined numpy.bool themselves keeps it (the loader removes only the alias it added)."""
    pytest.importorskip("mxnet")
    code = """
np.bool = bool
from loaders.mxnet import _import_mxnet
mx = _import_mxnet()
assert np.bool is bool
del np.bool
"""
    assert "bool" not in _states([code], Path.cwd())[0]["numpy"]


def test_the_network_guard_sees_a_request(tmp_path):
    """The guard of the test above is live: a request from the child reaches the local proxy, and fails."""
    with pytest.raises(AssertionError, match="1 network connection"):
        _states(["import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com', timeout=5)\n"
                 "except OSError:\n    pass\n"], tmp_path)
