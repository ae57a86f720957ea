"""Per framework: time to first prediction from model.tar.gz through `loaders.load`, over the anchor
(`tar -xzf` + the framework's own load from the unpacked folder + the same first prediction).

Target: ratio <= 1.15. Both sides run in fresh Python processes (so both pay their imports), on the same artifact,
in the same run; ours starts with an empty extraction cache, so it pays inspection, hashing and extraction.
Usage: python benchmarks/load_overhead.py [framework ...]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_samples  # noqa: E402

from _util import CACHE, run_timed  # noqa: E402

X = "np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)"

# framework -> (builder, anchor code run in the unpacked folder `d`)
CASES = {
    "sklearn": (make_samples.build_sklearn,
                "import joblib\nm = joblib.load(d / 'model.joblib')\nm.predict(x)"),
    "xgboost": (make_samples.build_xgboost,
                "import xgboost as xgb\nb = xgb.Booster(model_file=str(d / 'xgboost-model'))\n"
                "b.predict(xgb.DMatrix(x))"),
    "tensorflow": (make_samples.build_tensorflow,
                   "import os\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\nimport tensorflow as tf\n"
                   "m = tf.saved_model.load(str(d / '1'))\nf = m.signatures['serving_default']\n"
                   "f(**{list(f.structured_input_signature[1])[0]: tf.constant(x)})"),
    "mxnet": (make_samples.build_mxnet,
              "np.bool = bool\nimport mxnet as mx\nfrom mxnet import gluon\n"
              "net = gluon.SymbolBlock.imports(str(d / 'model-symbol.json'), ['data'], str(d / 'model-0000.params'))\n"
              "net(mx.nd.array(x)).asnumpy()"),
    "huggingface": (make_samples.build_huggingface,
                    "import torch, transformers\n"
                    "tok = transformers.AutoTokenizer.from_pretrained(str(d))\n"
                    "m = transformers.AutoModelForSequenceClassification.from_pretrained(str(d)).eval()\n"
                    "with torch.no_grad():\n"
                    "    m(**tok(['good movie'] * 4, return_tensors='pt', padding=True)).logits.softmax(-1)"),
}
OURS_INPUT = {"huggingface": "['good movie'] * 4"}


def main(names: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="load-overhead-"))
    try:
        for name in names or list(CASES):
            build, anchor_code = CASES[name]
            artifact = build(work / name)
            unpack = work / f"{name}-unpacked"
            anchor = (f"import subprocess, numpy as np\nfrom pathlib import Path\nd = Path({str(unpack)!r})\n"
                      f"d.mkdir()\nsubprocess.run(['tar', '-xzf', {str(artifact)!r}, '-C', str(d)], check=True)\n"
                      f"x = {X}\n{anchor_code}\n")
            ours = (f"import numpy as np, loaders\nx = {OURS_INPUT.get(name, X)}\n"
                    f"loaders.load({str(artifact)!r}).predict(x)\n")
            a_times, o_times = [], []
            for _ in range(5):  # min of 5: small models make imports dominate, and imports vary
                shutil.rmtree(unpack, ignore_errors=True)
                a_times.append(run_timed([sys.executable, "-c", anchor])[0])
                cache = work / "cache"
                shutil.rmtree(cache, ignore_errors=True)
                env = {**os.environ, "ARTIFACT_TOOLS_CACHE": str(cache)}
                o_times.append(run_timed([sys.executable, "-c", ours], env=env)[0])
            a, o = min(a_times), min(o_times)
            print(f"{name:12s} anchor {a:6.2f} s   loaders.load {o:6.2f} s   ratio: {o / a:.2f} (target <= 1.15)",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    CACHE.mkdir(parents=True, exist_ok=True)
    main(sys.argv[1:])
