"""Write MXNet fixtures with MXNet's own API: SageMaker Factorization Machines artifacts with row_sparse weights.

The layout follows a real Factorization Machines ``model.tar.gz`` (the corpus entry ``sm-fm-recsys``): the archive
holds one member, ``model_algo-1``, a zip of stored (uncompressed) members ``meta.json``, ``symbol.json`` and
``params``:

- ``symbol.json``: the FM graph, ``data`` (``csr``) · ``w1_weight`` (``row_sparse``, feature_dim x 1) +
  ``w0_weight``, plus ½ Σ_f ((x·v)_f² − Σ_i x_i² v_if²) with ``v`` (``row_sparse``, feature_dim x num_factors), the
  second-order term of Rendle's factorization machine written with the same operators (and node names) as the
  built-in's graph: ``dot``, ``broadcast_add``, ``square``, ``_mul_scalar``, ``Concat``, ``sum``, ``_square_sum``,
  ``negative``, ``elemwise_add``, then ``LinearRegressionOutput`` (regressor) or ``LogisticRegressionOutput``
  (binary classifier) named ``out`` with the label ``out_label``;
- ``params``: ``mx.nd.save`` of ``arg:w1_weight``, ``arg:w0_weight``, ``arg:v`` (in that order), the two
  factor matrices as ``mx.nd.sparse.row_sparse_array`` holding only some rows (a feature never seen in training
  has no stored row);
- ``meta.json``: ``version``, ``epoch_number``, ``training_parameters`` (the hyperparameters as strings:
  ``feature_dim``, ``num_factors``, ``predictor_type``...) and ``label_names``.

Usage (from the project root)::

    python scripts/make_mxnet_fixtures.py OUT_DIR     # writes fm-regressor.tar.gz and fm-binary.tar.gz

Everything is seeded: rerunning gives the same files. Tests call :func:`build_factorization_machines` directly.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

OUTPUTS = {"regressor": "LinearRegressionOutput", "binary_classifier": "LogisticRegressionOutput"}


def _mxnet():
    np.bool = bool  # MXNet 1.9.1 refers to np.bool, removed from numpy 1.24; this script only
    import mxnet as mx

    return mx


def fm_symbol(mx, feature_dim: int, num_factors: int, predictor_type: str):
    """The factorization-machine graph with the built-in's storage types, operators and names."""
    data = mx.sym.var("data", stype="csr")
    w1 = mx.sym.var("w1_weight", shape=(feature_dim, 1), stype="row_sparse", init=mx.init.Normal(0.01),
                    lr_mult=0.001, wd_mult=0.001)
    w0 = mx.sym.var("w0_weight", shape=(1,), init=mx.init.Normal(0.01), lr_mult=0.1, wd_mult=0.01)
    v = mx.sym.var("v", shape=(feature_dim, num_factors), stype="row_sparse", init=mx.init.Normal(0.001),
                   lr_mult=0.0001, wd_mult=0.00001)
    linear = mx.sym.broadcast_add(mx.sym.dot(data, w1, name="dot0"), w0, name="broadcast_plus0")
    xv_squared = mx.sym._internal._mul_scalar(mx.sym.square(mx.sym.dot(data, v, name="dot2"), name="Square"),
                                    scalar=0.5, name="_mulscalar0")
    first = mx.sym.sum(mx.sym.Concat(linear, xv_squared, dim=1, name="concat0"), axis=1, keepdims=True,
                       name="sum0")
    v_squared = mx.sym._internal._square_sum(v, axis=1, keepdims=True, name="_square_sum0")
    x2v2 = mx.sym.dot(mx.sym.square(data, name="x_square"), v_squared, name="dot1")
    second = mx.sym._internal._mul_scalar(mx.sym.negative(x2v2, name="negative0"), scalar=0.5, name="_mulscalar1")
    total = mx.sym.elemwise_add(first, second, name="Final_Summation")
    output = getattr(mx.sym, OUTPUTS[predictor_type])
    return output(total, mx.sym.var("out_label"), name="out")


def fm_params(mx, feature_dim: int, num_factors: int, seed: int, predictor_type: str) -> dict:
    """``arg:``-named weights: row_sparse ``w1_weight`` and ``v`` holding about two thirds of the rows."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(feature_dim, size=max(1, feature_dim * 2 // 3), replace=False)).astype(np.int64)
    scale = 1.0 if predictor_type == "regressor" else 0.6
    w1 = rng.normal(scale=scale, size=(len(rows), 1)).astype(np.float32)
    v = rng.normal(scale=0.5 * scale, size=(len(rows), num_factors)).astype(np.float32)
    sparse = mx.nd.sparse.row_sparse_array
    return {
        "arg:w1_weight": sparse((w1, rows), shape=(feature_dim, 1)),
        "arg:w0_weight": mx.nd.array([0.1 if predictor_type == "binary_classifier" else 3.0], dtype="float32"),
        "arg:v": sparse((v, rows), shape=(feature_dim, num_factors)),
    }


def fm_meta(feature_dim: int, num_factors: int, predictor_type: str) -> dict:
    hyper = {"epochs": "1", "mini_batch_size": "1000", "use_bias": "true", "use_linear": "true",
             "feature_dim": str(feature_dim), "num_factors": str(num_factors), "predictor_type": predictor_type}
    return {"version": 1, "epoch_number": 1, "training_parameters": hyper, "label_names": ["out_label"]}


def _write_atomically(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def build_factorization_machines(out_dir: Path, predictor_type: str = "regressor", *, feature_dim: int = 40,
                                 num_factors: int = 4, seed: int = 0, name: str | None = None) -> Path:
    """``out_dir/<name>`` (default ``fm-<predictor>.tar.gz``): a Factorization Machines model.tar.gz."""
    if predictor_type not in OUTPUTS:
        raise ValueError(f"predictor_type must be one of {', '.join(OUTPUTS)}")
    mx = _mxnet()
    symbol = fm_symbol(mx, feature_dim, num_factors, predictor_type)
    with tempfile.TemporaryDirectory() as tmp:
        params_path = Path(tmp) / "params"
        mx.nd.save(str(params_path), fm_params(mx, feature_dim, num_factors, seed, predictor_type))
        params = params_path.read_bytes()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", compression=zipfile.ZIP_STORED) as zf:
        members = {"meta.json": json.dumps(fm_meta(feature_dim, num_factors, predictor_type)).encode(),
                   "symbol.json": symbol.tojson().encode(), "params": params}
        for member, data in members.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=(2023, 4, 21, 14, 27, 0)), data)
    outer = io.BytesIO()
    with gzip.GzipFile(fileobj=outer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tf:
        info = tarfile.TarInfo("model_algo-1")
        info.size, info.mode, info.mtime = len(inner.getvalue()), 0o644, 1_700_000_000
        tf.addfile(info, io.BytesIO(inner.getvalue()))
    short = "binary" if predictor_type == "binary_classifier" else "regressor"
    return _write_atomically(Path(out_dir) / (name or f"fm-{short}.tar.gz"), outer.getvalue())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("Usage")[1].strip(), file=sys.stderr)
        return 2
    for predictor in OUTPUTS:
        print(build_factorization_machines(Path(argv[0]), predictor))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
