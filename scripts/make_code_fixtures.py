"""Build SageMaker artifacts that need their own inference code: ``python scripts/make_code_fixtures.py OUT [NAME...]``.

- ``pytorch-model-fn``: ``model.pth`` (``torch.save(net.state_dict())`` of a small real network) + ``code/inference.py``
  whose ``model_fn`` imports the network from its sibling ``code/model_def.py`` (as SageMaker's PyTorch examples
  do) and leaves every request handler to the PyTorch container's defaults; ``code/requirements.txt`` names a
  package that does not exist, which must be reported and never installed.
- ``pytorch-json-csv``: a state dict + ``code/inference.py`` with ``model_fn``, an ``input_fn`` reading JSON
  ``{"instances": [[...], ...]}`` and an ``output_fn`` answering CSV (one line per row: the class, then its
  probabilities).
- ``sklearn-predict-fn``: ``model.joblib`` (a ``LogisticRegression``) + a top-level ``inference.py`` (as the
  SageMaker SDK packs scikit-learn models) whose ``predict_fn`` answers ``predict_proba`` instead of ``predict``.
- ``sklearn-transform-fn``: ``model.joblib`` + ``code/inference.py`` with ``model_fn`` and ``transform_fn`` (JSON
  in, JSON ``{"predictions": [...]}`` out).

The weights come from a fixed seed; the tests rebuild the same networks themselves and check predictions against
torch and scikit-learn run directly.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

SEED = 7

MODEL_DEF = '''\
import torch
from torch import nn


class Net(nn.Module):
    """A small classifier: 4 features, 3 classes (log-probabilities)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return torch.log_softmax(self.out(torch.relu(self.hidden(x))), dim=-1)
'''

MODEL_FN_ONLY = '''\
import os

import torch

from model_def import Net


def model_fn(model_dir):
    net = Net()
    with open(os.path.join(model_dir, "model.pth"), "rb") as f:
        net.load_state_dict(torch.load(f, map_location="cpu"))
    return net.eval()
'''

JSON_CSV = '''\
import io
import json
import os

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return torch.log_softmax(self.out(torch.relu(self.hidden(x))), dim=-1)


def model_fn(model_dir):
    net = Net()
    net.load_state_dict(torch.load(os.path.join(model_dir, "model.pth"), map_location="cpu"))
    return net.eval()


def input_fn(request_body, request_content_type):
    if request_content_type != "application/json":
        raise ValueError("this model reads application/json only, not " + str(request_content_type))
    return torch.tensor(json.loads(request_body)["instances"], dtype=torch.float32)


def predict_fn(input_data, model):
    with torch.no_grad():
        return model(input_data).exp()


def output_fn(prediction, accept):
    out = io.StringIO()
    for row in prediction.tolist():
        out.write(",".join([str(max(range(len(row)), key=row.__getitem__))] + [repr(p) for p in row]) + "\\n")
    return out.getvalue(), "text/csv"
'''

SKLEARN_PREDICT_FN = '''\
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(input_data, model):
    return model.predict_proba(input_data)
'''

SKLEARN_TRANSFORM_FN = '''\
import json
import os

import joblib
import numpy as np


def model_fn(model_dir, context=None):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def transform_fn(model, request_body, content_type, accept):
    rows = np.asarray(json.loads(request_body), dtype=np.float64)
    return json.dumps({"predictions": model.predict(rows).tolist()}), "application/json"
'''


def net_state_dict():
    """The state dict of ``Net`` (``MODEL_DEF``) with weights from ``SEED``."""
    import torch

    namespace: dict = {}
    exec(compile(MODEL_DEF, "model_def.py", "exec"), namespace)  # the fixture's own source, written just above
    torch.manual_seed(SEED)
    return namespace["Net"]().state_dict()


def iris_like(n: int = 60):
    """A small 4-feature, 3-class data set (seeded)."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 4)) + y[:, None] * np.array([1.0, -0.5, 0.8, 0.3])
    return X, y


def _tar(folder: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as t:
        for p in sorted(folder.rglob("*")):
            t.add(p, arcname=p.relative_to(folder).as_posix(), recursive=False)
    tmp.replace(out)
    return out


def build_pytorch_model_fn(out_dir: Path) -> Path:
    import torch

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        torch.save(net_state_dict(), root / "model.pth")
        (root / "code").mkdir()
        (root / "code" / "model_def.py").write_text(MODEL_DEF)
        (root / "code" / "inference.py").write_text(MODEL_FN_ONLY)
        (root / "code" / "requirements.txt").write_text("torch\nartifact-tools-fixture-never-installed==0.0.1\n")
        return _tar(root, out_dir / "pytorch-model-fn.tar.gz")


def build_pytorch_json_csv(out_dir: Path) -> Path:
    import torch

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        torch.save(net_state_dict(), root / "model.pth")
        (root / "code").mkdir()
        (root / "code" / "inference.py").write_text(JSON_CSV)
        return _tar(root, out_dir / "pytorch-json-csv.tar.gz")


def _logistic():
    import joblib  # noqa: F401  (the artifacts are written with joblib, as SageMaker's scikit-learn examples do)
    from sklearn.linear_model import LogisticRegression

    X, y = iris_like()
    return LogisticRegression(max_iter=500).fit(X, y)


def build_sklearn_predict_fn(out_dir: Path) -> Path:
    import joblib

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        joblib.dump(_logistic(), root / "model.joblib")
        (root / "inference.py").write_text(SKLEARN_PREDICT_FN)
        return _tar(root, out_dir / "sklearn-predict-fn.tar.gz")


def build_sklearn_transform_fn(out_dir: Path) -> Path:
    import joblib

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        joblib.dump(_logistic(), root / "model.joblib")
        (root / "code").mkdir()
        (root / "code" / "inference.py").write_text(SKLEARN_TRANSFORM_FN)
        return _tar(root, out_dir / "sklearn-transform-fn.tar.gz")


BUILDERS = {
    "pytorch-model-fn": build_pytorch_model_fn,
    "pytorch-json-csv": build_pytorch_json_csv,
    "sklearn-predict-fn": build_sklearn_predict_fn,
    "sklearn-transform-fn": build_sklearn_transform_fn,
}


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[0])
    for name in argv[1:] or list(BUILDERS):
        print(f"built {BUILDERS[name](out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
