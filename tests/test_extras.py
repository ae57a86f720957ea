"""Packaging: every third-party import is provided by the extra that needs it, and an extra alone, installed into a
fresh virtualenv, gives a working inspect, load --predict (CSV with a header) and export.

The import map reads the code (an AST walk, no import), ``pyproject.toml`` (tomllib) and, for which distribution
provides which module, the installed distributions' own metadata (``importlib.metadata``): three independent
sources. The venv tests install the project wheel with only one extra from the package index (pinned by
``requirements/constraints.txt``), so they need the index: they skip, saying so, when it cannot be reached, unless
``ARTIFACT_TOOLS_REQUIRE_VENV_TESTS=1`` (then they fail instead).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OWN = {"artifact_tools", "loaders", "exporters"}

# The extra each loader module's own imports must come from (None: no framework, the base dependencies).
LOADER_EXTRA = {"sklearn.py": "sklearn", "xgboost.py": "xgboost", "xgboost_legacy.py": "xgboost", "mxnet.py": "mxnet",
                "tensorflow.py": "tensorflow", "huggingface.py": "huggingface", "pytorch.py": "pytorch",
                "spark.py": "spark", "mleap.py": "mleap", "lightgbm.py": "lightgbm", "catboost.py": "catboost",
                "onnx.py": "onnx", "builtins.py": None}
# Distributions that install the same module under another name (pyproject.toml explains the xgboost choice).
SAME_MODULE = {"xgboost-cpu": "xgboost"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    """The base dependencies and each extra's distributions (``artifact-tools[...]`` references expanded)."""
    base = {_norm(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    raw = {e: [Requirement(r) for r in reqs] for e, reqs in PYPROJECT["project"]["optional-dependencies"].items()}

    def expand(extra: str, seen: frozenset = frozenset()) -> set[str]:
        out = set()
        for req in raw[extra]:
            if _norm(req.name) == _norm(PYPROJECT["project"]["name"]):
                for inner in req.extras - seen:
                    out |= expand(inner, seen | {extra})
            else:
                out.add(_norm(req.name))
        return out

    return base, {e: expand(e) for e in raw}


@functools.cache
def _packages() -> dict[str, list[str]]:
    return md.packages_distributions()


def _providers(module: str) -> set[str]:
    """The installed distributions providing ``module`` (a dotted name decides between the distributions that
    share a namespace package, such as ``google``)."""
    top = module.split(".")[0]
    dists = {_norm(d) for d in _packages().get(top, [])}
    if len(dists) > 1 and "." in module:
        prefix = "/".join(module.split(".")[:2])
        narrowed = {d for d in dists if any(str(f).startswith(prefix + "/") or str(f) == prefix + ".py"
                                            for f in md.distribution(d).files or [])}
        dists = narrowed or dists
    return {SAME_MODULE.get(d, d) for d in dists} | dists


class _Imports(ast.NodeVisitor):
    """Third-party imports of one file: (module, line, inside a function, guarded by ``except ImportError``), and
    ``require(module, extra)`` calls."""

    def __init__(self):
        self.imports: list[tuple[str, int, bool, bool]] = []
        self.requires: list[tuple[str, str, int]] = []
        self._depth = 0
        self._guarded = 0

    def visit_FunctionDef(self, node):
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Try(self, node):
        names = set()
        for h in node.handlers:
            for n in ([h.type] if not isinstance(h.type, ast.Tuple) else h.type.elts) if h.type is not None else []:
                names.add(getattr(n, "id", getattr(n, "attr", "")))
        guard = bool(names & {"ImportError", "ModuleNotFoundError"})
        self._guarded += guard
        for stmt in node.body:
            self.visit(stmt)
        self._guarded -= guard
        for part in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(part)

    def _add(self, module: str, node) -> None:
        if module.split(".")[0] not in OWN and module.split(".")[0] not in sys.stdlib_module_names:
            self.imports.append((module, node.lineno, self._depth > 0, self._guarded > 0))

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node):
        if node.level == 0 and node.module:
            self._add(node.module, node)

    def visit_Call(self, node):
        name = getattr(node.func, "id", getattr(node.func, "attr", None))
        if name == "require" and len(node.args) == 2 and all(isinstance(a, ast.Constant) for a in node.args):
            self.requires.append((node.args[0].value, node.args[1].value, node.lineno))
        self.generic_visit(node)


def _scan(path: Path) -> _Imports:
    v = _Imports()
    v.visit(ast.parse(path.read_text(), str(path)))
    return v


def _files(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_every_third_party_import_has_an_extra():
    base, extras = _declared()
    anywhere = base.union(*extras.values())
    loader_extras = sorted({e for e in LOADER_EXTRA.values() if e})
    problems = []
    for path in _files("loaders", "exporters", "artifact_tools"):
        rel = path.relative_to(ROOT).as_posix()
        scan = _scan(path)
        for module, line, in_function, guarded in scan.imports:
            where = f"{rel}:{line} imports {module}"
            providers = _providers(module)
            if not providers:
                problems.append(f"{where}, which no installed distribution provides")
                continue
            if not in_function and not guarded and not providers & base:
                problems.append(f"{where} when the module is imported: it must be a base dependency")
            if rel.startswith("artifact_tools/"):
                continue  # the core's other imports are optional (guarded) or go through require()
            if not providers & anywhere:
                problems.append(f"{where}, which no extra provides ({', '.join(sorted(providers))})")
            if rel.startswith("loaders/"):
                name = path.name
                needed = [LOADER_EXTRA[name]] if name in LOADER_EXTRA else loader_extras  # shared loader code
                for extra in needed:
                    if not providers & (base | (extras[extra] if extra else set())):
                        problems.append(f"{where}: the '{extra or 'base'}' install lacks it")
        for module, extra, line in scan.requires:
            where = f"{rel}:{line} require({module!r}, {extra!r})"
            if extra not in extras:
                problems.append(f"{where} names an extra pyproject.toml does not define")
            elif not _providers(module) & (base | extras[extra]):
                problems.append(f"{where}: that extra does not provide {module}")
    assert not problems, "\n".join(problems)


def test_the_import_map_sees_what_it_checks():
    """The walk finds the imports it must judge (so the test above cannot pass by finding nothing)."""
    mxnet = _scan(ROOT / "loaders" / "mxnet.py")
    assert ("mxnet", "mxnet") in {(m, e) for m, e, _ in mxnet.requires}
    assert any(m == "numpy" and not in_function for m, _, in_function, _ in mxnet.imports)
    assert any(m == "pandas" for m, *_ in _scan(ROOT / "artifact_tools" / "codec.py").imports)
    guarded = [g for m, _, _, g in _scan(ROOT / "artifact_tools" / "sniff.py").imports if m.startswith("lz4")]
    assert guarded and all(guarded)
    assert _providers("google.protobuf") == {"protobuf"}
    assert "xgboost" in _providers("xgboost")


# ------------------------------------------------------------------------------------------ fresh venvs

def _index_reachable() -> str | None:
    """None when the package index answers, else why not."""
    url = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple/").rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read(1)
        return None
    except OSError as e:
        return f"the package index {url} is unreachable ({e})"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy of its sources (a build in place would write build/ into the tree)."""
    why = _index_reachable()
    if why:
        if os.environ.get("ARTIFACT_TOOLS_REQUIRE_VENV_TESTS") == "1":
            pytest.fail(why)
        pytest.skip(f"{why}: the fresh-venv install tests need it")
    d = tmp_path_factory.mktemp("wheel")
    src = d / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in OWN:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(d / "dist"), str(src)],
                   check=True, capture_output=True, text=True)
    return next((d / "dist").glob("artifact_tools-*.whl"))


def _venv(tmp: Path, wheel: Path, extra: str) -> tuple[Path, float]:
    """A fresh venv (no system site-packages) with the project and one extra; its bin folder and install time."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], check=True)
    bin_ = tmp / "venv" / "bin"
    # This interpreter's pip installs into the new venv (``--python``): no copy of pip is bootstrapped into it.
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(bin_ / "python"), "install", "-q",
                          "--disable-pip-version-check", "-c", str(ROOT / "requirements" / "constraints.txt"),
                          f"{wheel}[{extra}]"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return bin_, time.perf_counter() - start


def _run(bin_: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["ARTIFACT_TOOLS_CACHE"] = str(cwd / "cache")
    return subprocess.run([str(bin_ / "artifact-tools"), *args], capture_output=True, text=True, cwd=cwd, env=env)


def _tar_gz(path: Path, name: str, data: bytes) -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def _rows(tmp: Path):
    """Training data, and three rows written as a CSV file with a header."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(120, 3)), columns=["sepal", "petal", "stem"])
    y = (X["sepal"] - 0.5 * X["petal"] > 0).astype(int)
    X.head(3).to_csv(tmp / "rows.csv", index=False)
    return X, y


def _exercise(bin_: Path, tmp: Path, artifact: Path, framework: str, expected) -> None:
    """inspect, load --predict on the header CSV, export to SageMaker: each a success, with the right answer."""
    import numpy as np

    res = _run(bin_, "inspect", "--json", str(artifact), cwd=tmp)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["framework"] == framework
    res = _run(bin_, "load", str(artifact), "--predict", str(tmp / "rows.csv"), cwd=tmp)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.asarray(json.loads(res.stdout), dtype=float), expected, rtol=1e-6)
    res = _run(bin_, "export", str(artifact), "--to", "sagemaker", str(tmp / "exported"), cwd=tmp)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp / "exported" / "verification.json").read_text())["passed"] is True
    assert (tmp / "exported" / "model.tar.gz").is_file()


def _present(bin_: Path, *modules: str) -> list[str]:
    code = ("import importlib.util, sys; "
            f"print(','.join(m for m in {list(modules)!r} if importlib.util.find_spec(m)))")
    return [m for m in subprocess.run([str(bin_ / "python"), "-c", code], capture_output=True, text=True,
                                      check=True).stdout.strip().split(",") if m]


@pytest.mark.network
def test_sklearn_extra_alone_in_a_fresh_venv(wheel, tmp_path):
    import io

    joblib = pytest.importorskip("joblib")
    from sklearn.linear_model import LogisticRegression

    X, y = _rows(tmp_path)
    model = LogisticRegression().fit(X, y)  # fitted with feature names: the header CSV's columns
    buf = io.BytesIO()
    joblib.dump(model, buf)
    artifact = _tar_gz(tmp_path / "model.tar.gz", "model.joblib", buf.getvalue())
    bin_, seconds = _venv(tmp_path, wheel, "sklearn")
    print(f"sklearn extra: venv + install {seconds:.1f} s")
    assert _present(bin_, "torch", "xgboost", "tensorflow", "sklearn", "pandas") == ["sklearn", "pandas"]
    _exercise(bin_, tmp_path, artifact, "sklearn", model.predict(X.head(3)))


@pytest.mark.network
def test_xgboost_extra_alone_in_a_fresh_venv(wheel, tmp_path):
    xgb = pytest.importorskip("xgboost")

    X, y = _rows(tmp_path)
    # The built-in algorithm's way: trained on bare numbers (its CSV channels have no header).
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(X.to_numpy(), label=y), 8)
    artifact = _tar_gz(tmp_path / "model.tar.gz", "xgboost-model", bytes(booster.save_raw("ubj")))
    bin_, seconds = _venv(tmp_path, wheel, "xgboost")
    print(f"xgboost extra: venv + install {seconds:.1f} s")
    assert _present(bin_, "torch", "sklearn", "tensorflow", "xgboost", "pandas") == ["xgboost", "pandas"]
    _exercise(bin_, tmp_path, artifact, "xgboost", booster.predict(xgb.DMatrix(X.head(3).to_numpy())))
