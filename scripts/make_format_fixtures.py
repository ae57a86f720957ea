"""Build sample artifacts of the formats of issue 11 (ONNX, LightGBM, CatBoost, Triton repository, MLflow model
folder, PMML, Neuron- and Neo-compiled) as SageMaker-style ``model.tar.gz`` files, with the real frameworks.

Usage (from the project root)::

    python scripts/make_format_fixtures.py OUT_DIR

Writes ``OUT_DIR/<name>.tar.gz`` and ``OUT_DIR/expected.json``: for each artifact its model file, format,
whether it is loadable and, for the loadable ones, a few input rows and the predictions the framework's own
loaded model gives for them (onnxruntime, ``lightgbm.Booster``, ``CatBoostClassifier``), so that tests of
``inspect``/``load`` compare against an independent source. Everything is seeded. Needs onnx, onnxruntime,
skl2onnx, scikit-learn, lightgbm, catboost, nyoka, PyYAML and torch (for the Neuron TorchScript only).

The Neo artifact's ``compiled.so`` is not a real shared library (no TVM compiler is at hand): Neo artifacts are
recognised by their file set, never opened, so its bytes do not matter.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def _pack(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(members[name]))


def build(out: Path) -> dict:
    """Write every sample artifact into ``out``; return the expectations also written to expected.json."""
    import catboost as cb
    import lightgbm as lgb
    import onnxruntime as ort
    import yaml
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    rows = X[:5]
    expected: dict = {}

    # ONNX (skl2onnx, probabilities as a tensor)
    onnx_bytes = to_onnx(LogisticRegression().fit(X, y), X[:1], options={"zipmap": False}).SerializeToString()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    label, proba = session.run(None, {"X": rows})
    _pack(out / "onnx.tar.gz", {"model.onnx": onnx_bytes})
    expected["onnx"] = {"file": "model.onnx", "format": "onnx", "loadable": True, "rows": rows.tolist(),
                        "predictions": {"label": label.tolist(), "probabilities": proba.tolist()}}

    # Triton repository around the same ONNX model
    config = ('name: "classifier"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
              'input [ { name: "X" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
              'output [ { name: "label" data_type: TYPE_INT64 dims: [ 1 ] },\n'
              '         { name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
              'instance_group [ { kind: KIND_CPU count: 1 } ]\n')
    _pack(out / "triton-onnx.tar.gz", {"classifier/config.pbtxt": config.encode(),
                                       "classifier/1/model.onnx": onnx_bytes})
    expected["triton-onnx"] = {"file": "classifier/config.pbtxt", "format": "triton-config",
                               "model_file": "classifier/1/model.onnx"}

    # LightGBM text model, and the same model in an MLflow folder (mlflow.lightgbm writes Booster.save_model
    # output as model.lgb and names it in the flavor's "data")
    frame = pd.DataFrame(X, columns=["f0", "f1", "f2", "f3"])
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1},
                        lgb.Dataset(frame, y), num_boost_round=5)
    text = booster.model_to_string().encode()
    own = lgb.Booster(model_str=text.decode())
    _pack(out / "lightgbm.tar.gz", {"model.txt": text})
    expected["lightgbm"] = {"file": "model.txt", "format": "lightgbm", "loadable": True, "rows": rows.tolist(),
                            "predictions": own.predict(rows.astype(np.float64)).tolist()}
    mlmodel = {
        "artifact_path": "model",
        "flavors": {"python_function": {"env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                                        "loader_module": "mlflow.lightgbm", "data": "model.lgb",
                                        "python_version": "3.11.7"},
                    "lightgbm": {"lgb_version": lgb.__version__, "data": "model.lgb",
                                 "model_class": "lightgbm.basic.Booster", "code": None}},
        "mlflow_version": "2.17.0", "model_uuid": "5c0ffee0123456789abcdef012345678",
        "run_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "utc_time_created": "2024-06-01 12:00:00.000000",
        "signature": {"inputs": json.dumps([{"type": "float", "name": f"f{i}", "required": True} for i in range(4)]),
                      "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]),
                      "params": None},
    }
    _pack(out / "mlflow-lightgbm.tar.gz", {
        "MLmodel": yaml.safe_dump(mlmodel, default_flow_style=False).encode(),  # as mlflow Model.save writes it
        "model.lgb": text, "conda.yaml": b"name: mlflow-env\ndependencies:\n- python=3.11.7\n",
        "python_env.yaml": b"python: 3.11.7\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n",
        "requirements.txt": f"mlflow==2.17.0\nlightgbm=={lgb.__version__}\n".encode()})
    expected["mlflow-lightgbm"] = {"file": "MLmodel", "format": "mlflow-model", "model_file": "model.lgb",
                                   "rows": rows.tolist(), "predictions": expected["lightgbm"]["predictions"]}

    # CatBoost classifier with a categorical feature
    cat_frame = frame.copy()
    cat_frame["colour"] = rng.choice(["red", "green", "blue"], len(frame))
    with tempfile.TemporaryDirectory() as tmp:
        model = cb.CatBoostClassifier(iterations=5, depth=3, verbose=0, random_seed=0, thread_count=1,
                                      allow_writing_files=False).fit(cat_frame, y, cat_features=["colour"])
        model.save_model(f"{tmp}/model.cbm")
        cbm = Path(f"{tmp}/model.cbm").read_bytes()
        own_cb = cb.CatBoostClassifier().load_model(f"{tmp}/model.cbm")
        model.save_model(f"{tmp}/model.pmml", format="pmml")
        catboost_pmml = Path(f"{tmp}/model.pmml").read_bytes()
    sample = cat_frame.head(5)
    _pack(out / "catboost.tar.gz", {"model.cbm": cbm})
    expected["catboost"] = {"file": "model.cbm", "format": "catboost", "loadable": True,
                            "rows": sample.to_dict(orient="list"),
                            "predictions": own_cb.predict_proba(sample).tolist()}

    # PMML (CatBoost's own exporter)
    _pack(out / "pmml.tar.gz", {"model.pmml": catboost_pmml})
    expected["pmml"] = {"file": "model.pmml", "format": "pmml", "loadable": False}

    # Neuron: TorchScript calling torch.ops.neuron.forward_v2 (registered here with a CPU stand-in)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        lib = torch.library.Library("neuron", "FRAGMENT")
        if not hasattr(torch.ops.neuron, "forward_v2"):
            lib.define("forward_v2(Tensor[] inputs) -> Tensor[]")
            lib.impl("forward_v2", lambda inputs: [t * 2 for t in inputs], "CompositeExplicitAutograd")

        class Compiled(torch.nn.Module):
            def forward(self, x):
                return torch.ops.neuron.forward_v2([x])[0]

        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(Compiled(), torch.ones(1, 4)), buf)
        _pack(out / "neuron-torchscript.tar.gz", {"model_neuron.pt": buf.getvalue()})
        expected["neuron-torchscript"] = {"file": "model_neuron.pt", "format": "neuron", "loadable": False}

    # SageMaker Neo (TVM/DLR) output: recognised by its file set
    _pack(out / "neo.tar.gz", {"compiled.so": b"\x7fELF" + bytes(60), "compiled_model.json": b'{"nodes": []}',
                               "compiled.params": bytes(16), "compiled.meta": b"{}", "manifest": b"{}"})
    expected["neo"] = {"file": "compiled.so", "format": "neo", "loadable": False}

    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    return expected


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/make_format_fixtures.py OUT_DIR", file=sys.stderr)
        return 2
    built = build(Path(argv[0]))
    print(f"wrote {len(built)} artifacts and expected.json into {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
