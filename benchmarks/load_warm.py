"""Loading a ~1 GiB Hugging Face model.tar.gz to its first prediction: cold and warm, against the plain way.

Each side runs in a fresh interpreter (both pay their imports), alternating, median of ``--runs``; the same
artifact (benchmarks/inspect_containers.py builds it from code: a BERT with random weights padded to 1 GiB
through its vocabulary, its tokenizer and config; no hub download), the same four texts.

- cold: ``loaders.load(model.tar.gz).predict(texts)`` with an empty extraction cache (one pass: list, sniff,
  audit, hash, extract) against ``python -m isal.igzip -dc model.tar.gz | tar -x`` into an empty folder followed
  by the framework's own load from it. Target ratio <= 1.1.
- warm: the same ``loaders.load`` again (the cache holds the extraction and its report: nothing of the archive is
  read; the trust gate runs on the stored report) against the framework's own load from the extracted folder.
  Target ratio <= 1.05.

The framework's own load is what ``loaders.huggingface`` does with transformers: ``AutoModelForSequenceClassification``
and ``AutoTokenizer`` ``from_pretrained(folder, local_files_only=True)``, a ``text-classification`` pipeline, one
call on the texts. Wall time is the headline; CPU time (user + system, from ``wait4``) is shown too because the
machine may be shared.

Usage: python benchmarks/load_warm.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inspect_containers import ENV, build  # noqa: E402

TEXTS = "['good movie', 'bad plot', 'great fun', 'really boring film']"

ANCHOR = f"""
import sys, transformers
d = sys.argv[1]
model = transformers.AutoModelForSequenceClassification.from_pretrained(d, local_files_only=True)
tok = transformers.AutoTokenizer.from_pretrained(d, local_files_only=True)
pipe = transformers.pipeline("text-classification", model=model, tokenizer=tok, framework="pt")
print(pipe({TEXTS}))
"""

OURS = f"""
import sys, loaders
print(loaders.load(sys.argv[1]).predict({TEXTS}))
"""


def run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds: user + system of the command and its children, stdout)."""
    before = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    after = os.times()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): "
                         f"{proc.stderr.decode(errors='replace')[-800:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, proc.stdout.decode()


def labels(out: str) -> list[str]:
    return [w for w in out.replace("'", " ").replace('"', " ").split() if w in ("NEGATIVE", "POSITIVE")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    artifact = build("tar.gz")
    print(f"artifact: {artifact} ({artifact.stat().st_size / 2**20:.0f} MiB)", flush=True)
    work = Path(tempfile.mkdtemp(prefix="load-warm-", dir=artifact.parent))
    cache, unpacked = work / "cache", work / "unpacked"
    env = {**ENV, "ARTIFACT_TOOLS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           "TOKENIZERS_PARALLELISM": "false"}
    (work / "anchor.py").write_text(ANCHOR)
    (work / "ours.py").write_text(OURS)
    anchor_cold = ["sh", "-c", f'mkdir -p "{unpacked}" && "{sys.executable}" -m isal.igzip -dc "{artifact}" | '
                   f'tar -xf - -C "{unpacked}" && "{sys.executable}" "{work / "anchor.py"}" "{unpacked}"']
    anchor_warm = [sys.executable, str(work / "anchor.py"), str(unpacked)]
    ours = [sys.executable, str(work / "ours.py"), str(artifact)]
    rows: dict[str, list[tuple[float, float]]] = {k: [] for k in ("anchor cold", "ours cold", "anchor warm",
                                                                  "ours warm")}
    try:
        for i in range(args.runs + 1):  # the first round warms the page cache and bytecode, and is not counted
            shutil.rmtree(unpacked, ignore_errors=True)
            a_cold = run(anchor_cold, env)
            shutil.rmtree(cache, ignore_errors=True)
            o_cold = run(ours, env)
            a_warm = run(anchor_warm, env)
            o_warm = run(ours, env)
            assert labels(a_cold[2]) == labels(o_cold[2]) == labels(a_warm[2]) == labels(o_warm[2]), \
                (a_cold[2][-300:], o_cold[2][-300:])
            if i:
                for k, r in zip(rows, (a_cold, o_cold, a_warm, o_warm)):
                    rows[k].append(r[:2])
            print(f"round {i}: " + "   ".join(f"{k} {r[0]:.2f} s" for k, r in
                                              zip(rows, (a_cold, o_cold, a_warm, o_warm))), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    for what, target in (("cold", 1.1), ("warm", 1.05)):
        (aw, ac), (ow, oc) = med[f"anchor {what}"], med[f"ours {what}"]
        print(f"{what}: anchor {aw:6.2f} s (cpu {ac:6.2f} s)   loaders.load {ow:6.2f} s (cpu {oc:6.2f} s)   "
              f"ratio: {ow / aw:.3f} (target <= {target})   cpu ratio: {oc / ac:.3f}", flush=True)


if __name__ == "__main__":
    main()
