"""Repack a ~1 GiB model.tar.gz with new inference code: ``exporters.sagemaker.repack`` over the SageMaker SDK's way.

The SDK's way (``sagemaker.utils.repack_model``, aws/sagemaker-python-sdk): extract every member with ``tarfile``
into a temp folder, copy the code into ``code/``, then write a new archive with ``tarfile.open(..., "w:gz")`` at
compression level 9. Ours streams members from the old archive into the new one (never to disk) and compresses
with ISA-L in a second thread. Both run in this process, on the same input, in the same run.

Target: ratio (ours / SDK's) <= 0.2. The artifact (the Hugging Face style model of ``inspect_vs_tar.py``: random
float16 weights, which compress only slightly, like trained ones) is built once under ~/.cache/artifact-tools/bench.
"""

from __future__ import annotations

import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from inspect_vs_tar import cached_artifact  # noqa: E402

from exporters.sagemaker import DEFAULT_LEVEL, repack  # noqa: E402

from _util import CACHE  # noqa: E402

TARGET = 0.2


def sdk_repack(source: Path, code: Path, out: Path) -> None:
    """Extract all, add the code folder, re-tar with gzip level 9 (what the SageMaker SDK does)."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        folder = Path(tmp) / "model"
        with tarfile.open(source) as tf:
            tf.extractall(folder, filter="data")
        shutil.rmtree(folder / "code", ignore_errors=True)
        shutil.copytree(code, folder / "code")
        with tarfile.open(out, "w:gz", compresslevel=9) as tf:
            for p in sorted(folder.iterdir()):
                tf.add(p, arcname=p.name)


def main() -> int:
    source = cached_artifact()
    with open(source, "rb") as f:  # both contenders start with the input in the page cache
        while f.read(8 << 20):
            pass
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        work = Path(tmp)
        code = work / "code"
        code.mkdir()
        (code / "inference.py").write_text("def model_fn(model_dir):\n    return model_dir\n")
        (code / "requirements.txt").write_text("transformers\n")
        t0 = time.perf_counter()
        repack(source, work / "ours.tar.gz", code=code, compresslevel=DEFAULT_LEVEL)
        ours = time.perf_counter() - t0
        print(f"ours (streaming, ISA-L level {DEFAULT_LEVEL}): {ours:.1f} s, "
              f"{(work / 'ours.tar.gz').stat().st_size / 2**20:.0f} MiB", flush=True)
        t0 = time.perf_counter()
        sdk_repack(source, code, work / "sdk.tar.gz")
        sdk = time.perf_counter() - t0
        print(f"SageMaker SDK way (extract all, w:gz level 9): {sdk:.1f} s, "
              f"{(work / 'sdk.tar.gz').stat().st_size / 2**20:.0f} MiB", flush=True)
        with tarfile.open(work / "ours.tar.gz") as a, tarfile.open(work / "sdk.tar.gz") as b:
            ours_names = sorted(m.name for m in a.getmembers() if m.isfile())
            sdk_names = sorted(m.name for m in b.getmembers() if m.isfile())
        if ours_names != sdk_names:
            print(f"the two archives differ: {ours_names} vs {sdk_names}")
            return 1
    ratio = ours / sdk
    print(f"ratio ours/SDK = {ratio:.3f} (target <= {TARGET}) {'OK' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
