"""Import contracts between the layers, checked on the source of every module.

Layers, bottom up: the core (``artifact_tools`` without its application modules), ``loaders``, ``exporters``, and
the application layer (``artifact_tools.cli``, ``artifact_tools.serve``, ``artifact_tools.__main__``, the batch
commands ``artifact_tools.batch`` (``artifact_tools.transform``) and ``artifact_tools.spark``, the fleet migration
``artifact_tools.migrate``, data capture and Model Monitor ``artifact_tools.capture`` / ``artifact_tools.monitor``,
the endpoint ``artifact_tools.endpoint``). Every ``import`` statement is read from the syntax tree -- at module level
and inside functions, relative imports resolved, ``importlib.import_module("...")``/``__import__("...")`` with a
literal name included --
so a lazy import inside a function counts like any other.

Contracts:

- the core imports neither ``loaders`` nor ``exporters`` nor the application layer, and no ML framework; numpy
  only in ``artifact_tools.formats`` (the format readers that decode arrays) and ``artifact_tools.codec`` (request
  and response bodies);
- ``loaders`` import neither ``exporters`` nor the application layer;
- ``exporters`` import no application layer; an export target (``exporters.<name>``) imports no other target and
  not the ``exporters`` package itself, only its private modules ``exporters._*``; the private modules import no
  target; ``exporters/__init__.py`` imports no target (it imports them by name when asked);
- and at run time: inspecting an artifact leaves no ML framework, no ``loaders`` and no ``exporters`` in
  ``sys.modules`` (the same check on the whole corpus is ``test_inspect.test_inspection_imports_no_framework``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from test_inspect import FRAMEWORK_MODULES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("artifact_tools", "loaders", "exporters")
# the package's lazy attribute ``artifact_tools.transform`` (PEP 562 ``__getattr__``): imported when first used only
FACADE = {("artifact_tools", "artifact_tools.batch"), ("artifact_tools", "artifact_tools.batch.transform")}
APP = {"artifact_tools.cli", "artifact_tools.serve", "artifact_tools.__main__", "artifact_tools.batch",
       "artifact_tools.migrate", "artifact_tools.spark", "artifact_tools.capture", "artifact_tools.monitor",
       "artifact_tools.endpoint"}
ML_FRAMEWORKS = set(FRAMEWORK_MODULES) | {
    "tf_keras", "flax", "lightgbm", "catboost", "onnx", "onnxruntime", "paddle", "mleap", "tensorflow_serving",
    "sentence_transformers", "diffusers", "accelerate", "torchvision", "gluonnlp", "sagemaker"}
EXPORT_TARGETS = {"exporters.sagemaker", "exporters.tf_serving", "exporters.git_container", "exporters.mleap",
                  "exporters.onnx", "exporters.mlflow"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports; ``from a import b`` counts as ``a`` and ``a.b``."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if node.module or not node.level:
                found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                found.add(node.args[0].value)
    return found


def modules() -> dict[str, set[str]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = module_name(path)
            out[name] = imported_modules(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return out


def top(name: str) -> str:
    return name.split(".")[0]


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that breaks a contract (see the module notes)."""
    found = []
    for module, imports in sorted(graph.items()):
        for imported in sorted(imports):
            reason = _broken(module, imported)
            if reason:
                found.append(f"{module} imports {imported}: {reason}")
    return found


def _broken(module: str, imported: str) -> str | None:
    is_app = module in APP
    if within(module, "artifact_tools") and not is_app:
        if top(imported) in ("loaders", "exporters"):
            return "the core never imports loaders or exporters"
        if any(within(imported, app) for app in APP) and (module, imported) not in FACADE:
            return "the core never imports the application layer"
        if top(imported) in ML_FRAMEWORKS:
            return "the core never imports an ML framework"
        if top(imported) == "numpy" \
                and not (within(module, "artifact_tools.formats") or module == "artifact_tools.codec"):
            return "numpy belongs to the format readers (artifact_tools.formats) only"
    if within(module, "loaders") or within(module, "exporters"):
        if any(within(imported, app) for app in APP):
            return "loaders and exporters never import the application layer"
    if within(module, "loaders") and top(imported) == "exporters":
        return "loaders never import exporters"
    if within(module, "exporters") and top(imported) == "exporters" and imported != module:
        private = imported.split(".")[1].startswith("_") if "." in imported else False
        if module == "exporters":
            if any(within(imported, target) for target in EXPORT_TARGETS):
                return "exporters/__init__ imports targets only by name, when asked (importlib)"
        elif not private:
            return "exporter targets and private modules import only the private modules exporters._*"
    return None


GRAPH = modules()


def test_the_walk_finds_the_imports_it_must_judge():
    """The contracts can fail: lazy, relative and dynamic imports are all seen and judged."""
    source = ("import numpy as np\n"
              "def f():\n    from loaders import xgboost_legacy\n"
              "def g():\n    import importlib; importlib.import_module('xgboost')\n"
              "from . import cli\nfrom .formats.npy import load\n")
    found = imported_modules(source, "artifact_tools.sniff")
    assert {"numpy", "loaders", "loaders.xgboost_legacy", "xgboost", "artifact_tools.cli",
            "artifact_tools.formats.npy", "artifact_tools.formats.npy.load"} <= found
    reasons = violations({"artifact_tools.sniff": found})
    assert any("never imports loaders" in r for r in reasons)
    assert any("ML framework" in r for r in reasons)
    assert any("application layer" in r for r in reasons)
    assert any("numpy belongs" in r for r in reasons)
    assert violations({"exporters.tf_serving": imported_modules("from .sagemaker import Layout\n",
                                                                "exporters.tf_serving")})
    assert violations({"exporters.tf_serving": imported_modules("from . import check\n", "exporters.tf_serving")})
    assert not violations({"exporters.tf_serving": imported_modules("from ._tar import write_contents\n",
                                                                    "exporters.tf_serving")})
    assert violations({"loaders.xgboost": {"exporters._atomic"}})


def test_every_package_is_walked():
    assert {"artifact_tools.sniff", "artifact_tools.formats.xgboost", "artifact_tools.cli", "loaders.xgboost",
            "exporters", "exporters.sagemaker", "exporters._tar", "exporters._atomic"} <= set(GRAPH)
    assert "artifact_tools.formats.xgboost" in GRAPH["loaders.xgboost"]


@pytest.mark.parametrize("layer", ["artifact_tools", "loaders", "exporters"])
def test_import_contracts(layer):
    broken = [v for v in violations(GRAPH) if within(v.split(" ")[0], layer)]
    assert not broken, "\n".join(broken)


def test_inspecting_an_artifact_imports_no_framework_loaders_or_exporters(tmp_path):
    """An XGBoost artifact (its reader once lived in loaders/) and a pickle, inspected in a fresh interpreter."""
    data = ROOT / "tests" / "data" / "xgboost_legacy"
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(data / "x090-binary-logistic.p3.pkl", arcname="xgboost-model")
        tar.add(data / "x176-binary-logistic.ubj", arcname="extra/model.ubj")
    code = (
        "import sys, json, artifact_tools\n"
        f"report = artifact_tools.inspect({str(archive)!r})\n"
        f"names = {sorted(ML_FRAMEWORKS | {'loaders', 'exporters'})!r}\n"
        "print(json.dumps([report.framework, sorted(m for m in names if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    framework, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert framework == "xgboost"
    assert imported == []


def test_every_export_target_is_held_to_the_target_contract():
    import exporters

    assert set(exporters._MODULES.values()) == EXPORT_TARGETS
