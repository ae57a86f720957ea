"""``inspect`` of 1 GiB containers against Python's own listing of the same file, and the bytes it reads.

Rows (each measured side by side in this run: the two commands alternate, median of ``--runs``):

- ``.tar``, deflated ``.zip``, stored ``.zip``: ``python -m artifact_tools inspect --json FILE`` against
  ``python -m tarfile -l FILE`` / ``python -m zipfile -l FILE`` (both fresh interpreters: both pay their start-up);
  target ratio <= 2. Also shown, in one long-lived child process (imports done, page cache warm), the same two
  calls in-process: ``artifact_tools.inspect(FILE)`` against ``tarfile.open(FILE).getmembers()`` /
  ``zipfile.ZipFile(FILE).infolist()``.
- bytes read by ``inspect``: the ``rchar`` counter of ``/proc/self/io`` (every byte returned by read(2) and
  pread(2), page-cache hits included) in that child, taken around the second ``inspect`` call of the file (so no
  module is imported during the measured call); target <= 1% of the file.
- ``.tar.gz``: ``python -m artifact_tools inspect --json FILE`` against ``python -m isal.igzip -dc FILE``
  (stdout to /dev/null, one core), target ratio <= 1.1; inspect's peak RSS (``wait4``), target <= 150 MiB.

Wall time is the headline; the CPU time (user + system, ``os.times`` of the children) is shown beside it, since
on a shared machine the wall time of one run also measures the neighbours. Child interpreters use compiled
bytecode (kept under the benchmark cache) even when the calling shell sets ``PYTHONDONTWRITEBYTECODE``.

The artifact is a Hugging Face style folder built from code once under the benchmark cache (no hub download):
a BERT ``BertForSequenceClassification`` with random weights whose word-embedding table is sized so that
``model.safetensors`` is ~1 GiB, its tokenizer files (``tokenizer.json``, ``vocab.txt``...) and ``config.json``.
benchmarks/load_warm.py loads the same model.

Usage: python benchmarks/inspect_containers.py [--runs N] [tar zip-deflated zip-stored tar.gz]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import CACHE  # noqa: E402

GIB = 1 << 30
HIDDEN = 1024
# Child interpreters use compiled bytecode as an installed package would (kept outside the source tree), even
# when this shell sets PYTHONDONTWRITEBYTECODE.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "great", "awful", "movie", "the", "is", "a",
         "film", "plot", "boring", "fun", "not", "very", "really"]


def hf_folder() -> Path:
    """The ~1 GiB Hugging Face model folder (built once): a 1-layer BERT whose vocabulary is padded so that its
    float32 word embeddings take 1 GiB; the tokenizer knows only a few words (ids beyond them are never used)."""
    out = CACHE / "hf-bert-1gib"
    if (out / "model.safetensors").exists():
        return out
    print(f"building {out} (once)...", flush=True)
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=GIB // (4 * HIDDEN), hidden_size=HIDDEN, num_hidden_layers=1,
                        num_attention_heads=4, intermediate_size=HIDDEN, max_position_embeddings=64, num_labels=2,
                        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    model = BertForSequenceClassification(config).eval()
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    fast.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def build(kind: str) -> Path:
    """The folder as ``kind`` (tar, zip-deflated, zip-stored, tar.gz) under the benchmark cache, built once."""
    folder = hf_folder()
    suffix = {"tar": "tar", "zip-deflated": "deflated.zip", "zip-stored": "stored.zip", "tar.gz": "tar.gz"}[kind]
    path = CACHE / f"hf-bert-1gib.{suffix}"
    if path.exists():
        return path
    print(f"building {path} (once)...", flush=True)
    tmp = path.with_name(path.name + ".part")
    if kind == "tar":
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
            for p in _files(folder):
                tf.add(p, p.relative_to(folder).as_posix())
    elif kind == "tar.gz":  # as SageMaker's model.tar.gz: gzip (level 1, with isal) over a tar
        with open(tmp, "wb") as raw:
            tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(folder), *[p.relative_to(folder).as_posix()
                                                                            for p in _files(folder)]],
                                   stdout=subprocess.PIPE)
            subprocess.run([sys.executable, "-m", "isal.igzip", "-1", "-c"], stdin=tar.stdout, stdout=raw, check=True)
            if tar.wait() != 0:
                raise SystemExit("tar failed")
    else:
        method = zipfile.ZIP_DEFLATED if kind == "zip-deflated" else zipfile.ZIP_STORED
        with zipfile.ZipFile(tmp, "w", compression=method, compresslevel=1 if kind == "zip-deflated" else None,
                             allowZip64=True) as zf:
            for p in _files(folder):
                zf.write(p, p.relative_to(folder).as_posix())
    os.replace(tmp, path)
    return path


# A long-lived child: in-process timings and bytes read, imports done before anything is measured.
CHILD = r"""
import json, sys, tarfile, time, zipfile
import artifact_tools

def rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])

path, kind, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind.startswith("zip"):
    anchor = lambda: zipfile.ZipFile(path).infolist()
else:
    anchor = lambda: tarfile.open(path).getmembers()
ours = lambda: artifact_tools.inspect(path)
ours(); anchor()  # imports every module both need, warms the page cache
before = rchar(); report = ours(); read = rchar() - before
a, o = [], []
for _ in range(runs):
    t = time.perf_counter(); anchor(); a.append(time.perf_counter() - t)
    t = time.perf_counter(); ours(); o.append(time.perf_counter() - t)
print(json.dumps({"anchor": a, "ours": o, "read": read, "framework": report.framework}))
"""


def run(cmd: list[str]) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds: user + system of the command and its children, stdout)."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    after = os.times()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, out


def median_pair(anchor: list[str], ours: list[str], runs: int) -> dict:
    """The two commands run alternately (after one warm-up each): median wall and CPU times, ours' last output."""
    a, o = [], []
    run(anchor)
    run(ours)  # warm-up: page cache, .pyc files
    for _ in range(runs):
        a.append(run(anchor))
        o.append(run(ours))
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    return {"anchor": med(a, 0), "ours": med(o, 0), "anchor_cpu": med(a, 1), "ours_cpu": med(o, 1),
            "out": o[-1][2]}


def peak_rss(cmd: list[str]) -> int:
    """Peak resident memory of one run of ``cmd`` (wait4 of that child alone)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss * 1024


def row(kind: str, runs: int) -> None:
    path = build(kind)
    size = path.stat().st_size
    ours_cmd = [sys.executable, "-m", "artifact_tools", "inspect", "--json", str(path)]
    if kind == "tar.gz":
        anchor_cmd = ["sh", "-c", f'"{sys.executable}" -m isal.igzip -dc "{path}" > /dev/null']
        m = median_pair(anchor_cmd, ours_cmd, runs)
        assert json.loads(m["out"])["framework"] == "huggingface"
        rss = peak_rss(ours_cmd)
        print(f"{kind:13s} {size / 2**20:6.0f} MiB   igzip -dc {m['anchor']:6.3f} s   inspect {m['ours']:6.3f} s   "
              f"ratio: {m['ours'] / m['anchor']:.3f} (target <= 1.1)   cpu ratio: {m['ours_cpu'] / m['anchor_cpu']:.3f}"
              f"   peak RSS {rss / 2**20:.0f} MiB (target <= 150)", flush=True)
        return
    module = "zipfile" if kind.startswith("zip") else "tarfile"
    m = median_pair([sys.executable, "-m", module, "-l", str(path)], ours_cmd, runs)
    assert json.loads(m["out"])["framework"] == "huggingface"
    rss = peak_rss(ours_cmd)
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), kind, str(max(runs, 5))], capture_output=True,
                           text=True, check=True, env=ENV)
    res = json.loads(child.stdout)
    ia, io_ = statistics.median(res["anchor"]), statistics.median(res["ours"])
    print(f"{kind:13s} {size / 2**20:6.0f} MiB   python -m {module} -l {m['anchor']:6.3f} s   inspect "
          f"{m['ours']:6.3f} s   ratio: {m['ours'] / m['anchor']:.2f} (target <= 2)   cpu ratio: "
          f"{m['ours_cpu'] / m['anchor_cpu']:.2f}   peak RSS {rss / 2**20:.0f} MiB", flush=True)
    print(f"{'':13s} in-process: {module} listing {ia * 1e3:7.2f} ms   inspect {io_ * 1e3:7.2f} ms   "
          f"ratio: {io_ / ia:.1f}   bytes read {res['read']:,} = {100 * res['read'] / size:.3f}% of the file "
          f"(target <= 1%)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("kinds", nargs="*", default=["tar", "zip-deflated", "zip-stored", "tar.gz"])
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        row(kind, args.runs)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
