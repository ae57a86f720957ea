"""``artifact-tools migrate`` (issue 13): a fleet built here (``scripts/make_fleet.py``: scikit-learn, XGBoost of
every era, the corpus' MXNet Linear Learner and 0.90-era pickle, a SageMaker model description and an inference
pipeline description, a hostile pickle, a truncated archive) migrated with the real loaders and exporters;
the report checked against its JSON Schema, the exported XGBoost models against the predictions the old XGBoost
builds wrote themselves, resume, ``jobs=2``, and the HTML report rendered in a real headless Chromium."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from conftest import CORPUS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import make_fleet  # noqa: E402

import exporters  # noqa: E402
from artifact_tools import migrate as mig  # noqa: E402

LEGACY = ROOT / "tests" / "data" / "xgboost_legacy"


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _corpus() -> Path | None:
    return CORPUS if (CORPUS / "EXPECTED.tsv").is_file() else None


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    expected = make_fleet.build_fleet(root, _corpus())
    return root, expected


@pytest.fixture(scope="module")
def migrated(fleet, tmp_path_factory):
    root, expected = fleet
    before = _digests(root)
    out = tmp_path_factory.mktemp("out") / "sagemaker"
    report = mig.migrate(root / "fleet", "sagemaker", out, jobs=1)
    assert _digests(root) == before, "the source fleet was modified"
    return report, out


def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = mig.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _by_id(report: dict) -> dict:
    return {r["id"]: r for r in report["models"]}


def _outcome_matches(rec: dict, want: str) -> bool:
    if want == "loadable":  # the MXNet built-in: inspected, audited and loaded; whether it exports is the target's
        return rec["stage"] in ("export", "verify", "done")
    return rec["outcome"] == want


# ------------------------------------------------------------------------------------------ the fleet

def test_fleet_migrates_to_sagemaker(fleet, migrated):
    root, expected = fleet
    report, out = migrated
    _validator().validate(report)
    records = _by_id(report)
    assert set(records) == set(expected), "discovery found other models than the fleet holds"
    wrong = {k: (records[k]["outcome"], records[k]["stage"], records[k]["reason"]) for k, want in expected.items()
             if not _outcome_matches(records[k], want)}
    assert not wrong, wrong
    for rec in report["models"]:
        if rec["outcome"] == "migrated":
            v = rec["verification"]
            assert v["passed"] and v["samples"] > 0 and rec["stage"] == "done", rec["id"]
            assert v["max_abs_diff"] is not None and v["max_abs_diff"] <= 1e-4, rec["id"]
            assert (out / rec["output"]).is_dir()
    assert json.loads((out / mig.REPORT_JSON).read_text()) == json.loads(json.dumps(report))
    counts = report["counts"]
    assert counts["total"] == len(expected) == sum(counts[o] for o in mig.OUTCOMES)
    assert sum(sum(v.values()) for v in report["by_framework"].values()) == counts["total"]


def test_the_hostile_artifact_is_refused_by_the_audit_and_the_broken_one_reported(migrated):
    report, out = migrated
    records = _by_id(report)
    hostile = records["hostile/model.tar.gz"]
    assert hostile["outcome"] == "refused" and hostile["stage"] == "audit"
    assert hostile["trust"]["verdict"] == "dangerous" and "os.system" in hostile["reason"]
    assert hostile["output"] is None and not any("hostile" in p.name for p in (out / mig.MODELS).iterdir())
    broken = records["broken/model.tar.gz"]
    assert broken["outcome"] == "failed" and broken["stage"] == "inspect"
    assert "truncated" in broken["reason"] and "\n" not in broken["reason"]


def test_every_xgboost_era_is_recorded_and_its_export_predicts_as_the_old_xgboost_did(migrated):
    """The exported ``xgboost-model`` (current format), read by XGBoost itself, against the predictions the
    XGBoost build that wrote the legacy file computed (tests/data/xgboost_legacy/*.pred.csv)."""
    import xgboost as xgb

    report, out = migrated
    records = _by_id(report)
    manifest = {e["file"]: e for e in json.loads((LEGACY / "manifest.json").read_text())}
    eras = set()
    for label, name in make_fleet.LEGACY_FILES.items():
        rec = records[f"xgboost-{label}/model.tar.gz"]
        entry = manifest[name]
        assert rec["framework"] == "xgboost" and rec["era"].startswith(entry["era"]), (rec["era"], entry["era"])
        eras.add(entry["era"])
        with tarfile.open(out / rec["output"] / "model.tar.gz") as tar:
            data = tar.extractfile("xgboost-model").read()
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        X = np.loadtxt(LEGACY / entry["inputs"], delimiter=",", ndmin=2)
        want = np.loadtxt(LEGACY / entry["pred"], delimiter=",", ndmin=2)
        got = booster.predict(xgb.DMatrix(X))
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    assert eras >= {"legacy-binary", "pickle-1.x-snapshot", "py2-pickle"}
    assert records["xgboost-current-json/model.tar.gz"]["era"].startswith("json")
    assert records["xgboost-current/model.tar.gz"]["era"].startswith("ubjson")


def test_the_mxnet_builtin_of_the_corpus_is_inspected_and_loaded(fleet, migrated):
    if "mxnet-linear-learner/model.tar.gz" not in fleet[1]:
        pytest.skip(f"the corpus (cookbook-ll) is not at {CORPUS}")
    rec = _by_id(migrated[0])["mxnet-linear-learner/model.tar.gz"]
    assert (rec["framework"], rec["algorithm"], rec["trust"]["verdict"]) == ("mxnet", "linear-learner", "safe")
    assert rec["seconds"]["load"] is not None and rec["stage"] in ("export", "verify", "done")
    assert rec["outcome"] == "migrated" or rec["reason"]


def test_descriptions_migrate_as_models_and_the_pipeline_as_one_unit(fleet, migrated):
    root, _ = fleet
    report, out = migrated
    records = _by_id(report)
    single = records["descriptions/churn-xgb.json#churn-xgb"]
    assert single["kind"] == "sagemaker-model" and single["outcome"] == "migrated"
    sm = single["sagemaker"]
    assert sm["model_name"] == "churn-xgb" and sm["image"]["framework"] == "xgboost"
    assert sm["image"]["version"] == "1.7-1" and sm["image"]["repository"] == "sagemaker-xgboost"
    assert Path(single["source"]).resolve() == (root / "s3" / "churn" / "output" / "model.tar.gz").resolve()

    pipe = records["descriptions/scaler-then-xgb.json#scaler-then-xgb"]
    assert pipe["kind"] == "pipeline" and pipe["outcome"] == "migrated" and pipe["framework"] == "pipeline"
    assert [s["framework"] for s in pipe["steps"]] == ["sklearn", "xgboost"]
    assert [s["sagemaker"]["hostname"] for s in pipe["steps"]] == ["preprocess", "model"]
    assert pipe["sagemaker"]["mode"] == "Serial" and pipe["sagemaker"]["containers"] == 2
    assert any("SAGEMAKER_PROGRAM" in w for w in pipe["steps"][0]["warnings"])
    manifest = json.loads((out / pipe["output"] / mig.PIPELINE_MANIFEST).read_text())
    assert manifest["mode"] == "Serial" and [s["hostname"] for s in manifest["steps"]] == ["preprocess", "model"]
    for step in manifest["steps"]:
        assert (out / pipe["output"] / step["output"] / "model.tar.gz").is_file()
    # the first step, exported, answers as scikit-learn itself does on the same rows
    import joblib

    with tarfile.open(root / "s3" / "pipeline" / "preprocess" / "model.tar.gz") as tar:
        original = joblib.load(io.BytesIO(tar.extractfile("model.joblib").read()))
    with tarfile.open(out / pipe["output"] / manifest["steps"][0]["output"] / "model.tar.gz") as tar:
        name = next(n for n in tar.getnames() if n.endswith((".joblib", ".pkl")) or n == "model")
        exported = joblib.load(io.BytesIO(tar.extractfile(name).read()))
    rows = np.random.default_rng(9).normal(5.0, 2.0, size=(7, 4))
    np.testing.assert_allclose(exported.predict(rows), original.predict(rows))


def test_csv_and_html_hold_one_row_per_model(migrated):
    report, out = migrated
    rows = list(csv.DictReader(io.StringIO((out / mig.REPORT_CSV).read_text())))
    assert [r["id"] for r in rows] == [m["id"] for m in report["models"]]
    assert [r["outcome"] for r in rows] == [m["outcome"] for m in report["models"]]
    assert tuple(rows[0]) == mig.CSV_COLUMNS
    page = (out / mig.REPORT_HTML).read_text()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for name in (mig.REPORT_JSON, mig.REPORT_CSV, mig.REPORT_HTML, mig.STATE):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def _umask() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("the umask cannot be read without changing it")


# ------------------------------------------------------------------------------------------ resume and jobs

def test_resume_skips_done_models_and_retries_the_others(fleet, migrated, tmp_path):
    root, _ = fleet
    report, out = migrated
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    done = {m["id"] for m in report["models"] if m["outcome"] in mig.DONE}
    stamps = {i: (copy / _by_id(report)[i]["output"]).stat().st_mtime_ns for i in done}
    again = mig.migrate(root / "fleet", "sagemaker", copy, jobs=1)
    _validator().validate(again)
    records = _by_id(again)
    assert {i for i, r in records.items() if r["resumed"]} == done
    assert again["counts"]["resumed"] == len(done)
    assert all((copy / records[i]["output"]).stat().st_mtime_ns == stamps[i] for i in done)
    not_done = set(records) - done
    assert not_done and all(not records[i]["resumed"] for i in not_done)
    assert {i: r["outcome"] for i, r in records.items()} == {m["id"]: m["outcome"] for m in report["models"]}
    # without resume everything runs again
    fresh = mig.migrate(root / "fleet", "sagemaker", copy, jobs=1, resume=False)
    assert fresh["counts"]["resumed"] == 0


def test_a_changed_source_is_migrated_again(tmp_path):
    src = tmp_path / "src"
    make_fleet.build_small(src, 2)
    out = tmp_path / "out"
    first = mig.migrate(src, "sagemaker", out)
    assert first["counts"]["migrated"] == 2
    target = src / "m0001-xgboost" / "model.tar.gz"
    make_fleet.tar_gz(target, {"xgboost-model": make_fleet.xgboost_bytes(77, rounds=3)})
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10_000_000_000))
    second = _by_id(mig.migrate(src, "sagemaker", out))
    assert second["m0000-sklearn/model.tar.gz"]["resumed"] is True
    assert second["m0001-xgboost/model.tar.gz"]["resumed"] is False
    assert second["m0001-xgboost/model.tar.gz"]["outcome"] == "migrated"
    with pytest.raises(mig.MigrateError, match="holds a migration to sagemaker"):
        mig.migrate(src, "git", out)


def test_two_jobs_give_the_same_report(fleet, migrated, tmp_path):
    root, _ = fleet
    report, _ = migrated
    parallel = mig.migrate(root / "fleet", "sagemaker", tmp_path / "out", jobs=2)
    _validator().validate(parallel)

    def essence(rep):
        return [(m["id"], m["outcome"], m["stage"], m["framework"], m["era"], m["trust"]["verdict"], m["output"],
                 m["reason"], (m["verification"] or {}).get("passed")) for m in rep["models"]]

    assert essence(parallel) == essence(report)
    assert parallel["counts"] == report["counts"] and parallel["jobs"] == 2


def test_a_model_that_crashes_its_worker_fails_alone(tmp_path):
    """A tree pickle of allowlisted types whose node indices point out of bounds: scikit-learn crashes (SIGSEGV)
    predicting with it. The loader's structure check refuses it before scikit-learn runs it (were it to get through,
    its worker would die alone); either way it fails alone and the models beside it are migrated all the same."""
    probe = subprocess.run([sys.executable, "-c", "import sys, io, joblib; sys.path.insert(0, sys.argv[1]); "
                            "import make_fleet; m = joblib.load(io.BytesIO(make_fleet.crashing_tree())); "
                            "m.predict([[5.0, 3.0, 1.0, 0.2]])", str(ROOT / "scripts")], capture_output=True)
    if probe.returncode >= 0:
        pytest.skip(f"this scikit-learn does not crash on the damaged tree (exit {probe.returncode})")
    src = tmp_path / "src"
    make_fleet.build_small(src, 3)
    make_fleet.tar_gz(src / "m0001-crash" / "model.tar.gz", {"model.joblib": make_fleet.crashing_tree()})
    for jobs in (1, 2):
        report = mig.migrate(src, "sagemaker", tmp_path / f"out{jobs}", jobs=jobs)
        records = _by_id(report)
        crash = records["m0001-crash/model.tar.gz"]
        assert crash["outcome"] == "failed", crash
        assert "outside the model" in crash["reason"] or "died" in crash["reason"], crash
        assert [records[f"m000{i}-{fw}/model.tar.gz"]["outcome"] for i, fw in
                ((0, "sklearn"), (1, "xgboost"), (2, "sklearn"))] == ["migrated"] * 3


def _runs(out: Path) -> dict:
    """Where and when each model of the last run ran, from the state file: id -> {"pid", "started", "ended", ...}."""
    state = json.loads((out / mig.STATE).read_text())
    return {uid: e["run"] for uid, e in state["models"].items() if e.get("run")}


def _pickle_calling(module: str, name: str, *args: bytes) -> bytes:
    import make_hostile as mh

    return mh.whole_pickle(mh.p_call(mh.p_global(module, name), *args))


def test_two_jobs_run_two_models_at_the_same_time(tmp_path):
    src = tmp_path / "src"
    make_fleet.build_small(src, 6)
    out = tmp_path / "out"
    report = mig.migrate(src, "sagemaker", out, jobs=2)
    assert report["counts"]["migrated"] == 6
    runs = _runs(out)
    assert set(runs) == {m["id"] for m in report["models"]}
    by_worker: dict = {}
    for run in runs.values():
        assert run["started"] <= run["ended"] and run["cpu"] >= 0
        by_worker.setdefault(run["pid"], []).append(run)
    assert len(by_worker) == 2 and os.getpid() not in by_worker, "two worker processes, neither this one"
    a, b = by_worker.values()
    assert any(x["started"] < y["ended"] and y["started"] < x["ended"] for x in a for y in b), \
        "no model of one worker ran while a model of the other did"
    for worker in by_worker.values():  # one model at a time within a worker: its intervals never overlap
        worker.sort(key=lambda r: r["started"])
        assert all(p["ended"] <= n["started"] for p, n in zip(worker, worker[1:]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    want = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() \
        else max(1, cores // 2)
    assert {r["threads"] for r in runs.values()} == {want}
    assert not (out / mig.STATE_JOURNAL).exists(), "the journal is folded into the state file when the run ends"


def test_a_model_that_kills_its_worker_fails_alone_and_the_worker_is_replaced(tmp_path):
    """A pickle whose load calls ``os._exit(3)`` (loaded only under trust="all"): its worker process dies without a
    word; the model is tried once more in a new worker, dies again and is reported failed; the models before and
    after it are migrated by other workers."""
    src = tmp_path / "src"
    make_fleet.build_small(src, 3)
    import make_hostile as mh

    make_fleet.tar_gz(src / "m0001-exit" / "model.tar.gz",
                      {"model.pkl": _pickle_calling("os", "_exit", mh.p_int(3))})
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        report = mig.migrate(src, "sagemaker", out, jobs=jobs, trust="all")
        records = _by_id(report)
        dead = records["m0001-exit/model.tar.gz"]
        assert dead["outcome"] == "failed" and "died twice" in dead["reason"] and "exit status 3" in dead["reason"]
        others = [f"m000{i}-{fw}/model.tar.gz" for i, fw in ((0, "sklearn"), (1, "xgboost"), (2, "sklearn"))]
        assert [records[k]["outcome"] for k in others] == ["migrated"] * 3
        runs = _runs(out)
        assert "m0001-exit/model.tar.gz" not in runs  # no worker lived to tell
        if jobs == 1:  # one worker at a time: the models after the crash ran in a replacement
            assert runs[others[0]]["pid"] != runs[others[2]]["pid"]


def test_a_killed_run_resumes_from_its_journal(tmp_path):
    """The migration process is killed (SIGKILL, the whole process group) while its last model hangs: the models
    it finished are in the journal only (the state snapshot is the one written at the start), and the next run
    resumes them all without migrating any again."""
    import signal
    import time

    src = tmp_path / "src"
    make_fleet.build_small(src, 4)
    import make_hostile as mh

    hang = src / "m0009-hang" / "model.tar.gz"  # last in the order: every other model finishes first
    make_fleet.tar_gz(hang, {"model.pkl": _pickle_calling("time", "sleep", mh.p_int(3600))})
    out = tmp_path / "out"
    code = ("import sys; from artifact_tools.migrate import migrate; "
            "migrate(sys.argv[1], 'sagemaker', sys.argv[2], jobs=1, trust='all')")
    child = subprocess.Popen([sys.executable, "-c", code, str(src), str(out)], cwd=ROOT, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / mig.STATE_JOURNAL
    try:
        deadline = time.monotonic() + 600
        while True:
            lines = journal.read_text().splitlines() if journal.exists() else []
            if len(lines) >= 5:  # the header and the four models
                break
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the four models did not finish"
            time.sleep(0.1)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert json.loads((out / mig.STATE).read_text())["models"] == {}
    finished = {json.loads(line)["id"] for line in lines[1:]}
    assert len(finished) == 4 and "m0009-hang/model.tar.gz" not in finished
    shutil.rmtree(hang.parent)
    again = mig.migrate(src, "sagemaker", out)
    assert again["counts"]["resumed"] == 4 and again["counts"]["migrated"] == 4
    assert {m["id"] for m in again["models"] if m["resumed"]} == finished
    assert not journal.exists() and set(json.loads((out / mig.STATE).read_text())["models"]) == finished


def test_workers_beyond_the_models_are_let_go_and_none_outlives_the_run(tmp_path):
    """The workers start before the fleet is listed (``jobs`` of them); those beyond the number of models to run are
    let go, and no worker process is left once migrate returns, also when every model is resumed (none to run)."""
    import multiprocessing

    src = tmp_path / "src"
    make_fleet.build_small(src, 2)
    out = tmp_path / "out"
    report = mig.migrate(src, "sagemaker", out, jobs=3)
    assert report["counts"]["migrated"] == 2
    assert len({run["pid"] for run in _runs(out).values()}) == 2
    assert [p for p in multiprocessing.active_children() if p.name == "artifact-tools-migrate"] == []
    again = mig.migrate(src, "sagemaker", out, jobs=2)
    assert again["counts"]["resumed"] == 2
    assert [p for p in multiprocessing.active_children() if p.name == "artifact-tools-migrate"] == []


def test_skops_is_imported_without_torch_and_trusts_the_same_types():
    """A worker imports skops.io (MLflow's scikit-learn flavor) with scikit-learn's array-API wrappers of other
    libraries and pytest hidden, so that neither torch nor pytest is imported on the way: skops must trust exactly
    the types it trusts when imported plainly (the oracle: a plain ``import skops.io`` in another interpreter), and
    the wrapper must import as always afterwards."""
    pytest.importorskip("skops")
    import importlib.util

    lists = ("import json, sys; import skops.io._trusted_types as t; "
             "print(json.dumps({'torch': 'torch' in sys.modules, 'pytest': 'pytest' in sys.modules, "
             "'types': {k: sorted(map(str, v)) for k, v in "
             "vars(t).items() if k.isupper() and isinstance(v, list)}}))")

    def run(code: str) -> list:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return [json.loads(line) for line in done.stdout.splitlines()]

    (plain,) = run(lists)
    ours, after = run("from artifact_tools import migrate as mig; mig._import_skops(); " + lists + "; "
                      "assert not any(isinstance(f, mig._Unimportable) for f in sys.meta_path); "
                      "import sklearn.externals.array_api_compat.torch as w; print(json.dumps('torch' in sys.modules))"
                      if importlib.util.find_spec("torch") else
                      "from artifact_tools import migrate as mig; mig._import_skops(); " + lists + "; print('false')")
    assert ours["types"] == plain["types"] and len(plain["types"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100
    assert ours["torch"] is False and ours["pytest"] is False
    if importlib.util.find_spec("torch"):
        assert plain["torch"] is True, "this scikit-learn no longer imports torch with skops.io: drop the workaround"
        assert after is True


# ------------------------------------------------------------------------------------------ the HTML report

def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium) to render the report")


def test_the_html_report_renders_in_headless_chromium(migrated, tmp_path):
    browser = _chromium()
    report, out = migrated
    page = (out / mig.REPORT_HTML).resolve().as_uri()
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html_text = dom.stdout
    rows = re.findall(r'<tr class="model outcome-(\w+)[^"]*" data-id="([^"]*)"', html_text)
    steps = sum(len(m["steps"] or []) for m in report["models"])
    assert len(rows) == len(report["models"]) + steps
    assert set(rows) >= {(m["outcome"], m["id"]) for m in report["models"]}
    bars = re.findall(r'<rect class="bar" data-framework="([^"]+)" data-outcome="(\w+)" data-count="(\d+)"',
                      html_text)
    assert {(f, o): int(n) for f, o, n in bars} == {(f, o): n for f, c in report["by_framework"].items()
                                                    for o, n in c.items() if n}
    shot = out / "migration-report.png"
    run = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1400,1800", page],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as img:
        colors = {c for _, c in img.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert (0x2E, 0x7D, 0x32) in colors, "the chart's migrated bars were not drawn"
    assert (0xC6, 0x28, 0x28) in colors, "the chart's refused bar was not drawn"


# ------------------------------------------------------------------------------------------ SOURCE forms

def test_discovery_of_folders_globs_and_ignored_files(tmp_path):
    src = tmp_path / "src"
    make_fleet.build_small(src, 2)
    (src / "README.md").write_text("# models\n")
    (src / ".cache").mkdir()
    make_fleet.tar_gz(src / ".cache" / "model.tar.gz", {"x": b"1"})
    tfs = src / "tfs-model" / "00000123"
    tfs.mkdir(parents=True)
    (tfs / "saved_model.pb").write_bytes(b"\x08\x01\x12\x04test")
    (tfs / "variables").mkdir()
    (tfs / "variables" / "variables.index").write_bytes(b"\x00\x01\x02")
    units, ignored = mig._discover([str(src)], None, str(tmp_path / "out"))
    assert [u[0] for u in units] == ["m0000-sklearn/model.tar.gz", "m0001-xgboost/model.tar.gz", "tfs-model"]
    assert ignored == [{"source": "README.md", "reason": "a text file beside the artifacts, not a model"}]
    units, _ = mig._discover([str(src / "m*" / "model.tar.gz")], None, None)
    assert [u[0] for u in units] == ["m0000-sklearn/model.tar.gz", "m0001-xgboost/model.tar.gz"]
    with pytest.raises(mig.MigrateError, match="does not exist"):
        mig.migrate(tmp_path / "nothing", "sagemaker", tmp_path / "o")
    with pytest.raises(mig.MigrateError, match="no file matches"):
        mig.migrate(str(tmp_path / "x*.tar.gz"), "sagemaker", tmp_path / "o")


def test_unsupported_containers_are_reported_not_migrated(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    make_fleet.build_small(tmp_path / "s3", 1)
    model = "../s3/m0000-sklearn/model.tar.gz"
    docs = [
        {"ModelName": "from-package",
         "PrimaryContainer": {"ModelPackageName": "arn:aws:sagemaker:us-east-1:1:model-package/p/1"}},
        {"ModelName": "multi",
         "PrimaryContainer": {"Mode": "MultiModel", "ModelDataUrl": "s3://b/models/",
                              "Image": "1.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"}},
        {"ModelName": "create-model-request", "PrimaryContainer": {  # CreateModel's ModelDataSource form
            "Image": "1.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "ModelDataSource": {"S3DataSource": {"S3Uri": model, "S3DataType": "S3Object", "CompressionType": "Gzip"}}},
         "ExecutionRoleArn": "arn:aws:iam::1:role/r"},
        {"ModelName": "half-pipeline", "Containers": [{"ModelDataUrl": model}, {"ModelPackageName": "p"}]},
    ]
    (src / "models.json").write_text(json.dumps(docs))
    (src / "not-a-description.json").write_text(json.dumps({"hello": "world"}))
    report = mig.migrate(src, "sagemaker", tmp_path / "out")
    _validator().validate(report)
    records = _by_id(report)
    assert records["models.json#from-package"]["outcome"] == "unsupported"
    assert "model package" in records["models.json#from-package"]["reason"]
    assert records["models.json#multi"]["outcome"] == "unsupported"
    assert "MultiModel" in records["models.json#multi"]["reason"]
    assert records["models.json#create-model-request"]["outcome"] == "migrated"
    half = records["models.json#half-pipeline"]
    assert half["kind"] == "pipeline" and half["outcome"] == "unsupported"
    assert [s["outcome"] for s in half["steps"]] == ["migrated", "unsupported"]
    assert half["reason"].startswith("container 2:")
    assert not (tmp_path / "out" / half["output"] if half["output"] else tmp_path / "out" / "models" /
                "half-pipeline" / mig.PIPELINE_MANIFEST).exists()
    # a JSON file that is no description, beside the descriptions, belongs to no model
    assert report["ignored"] == [{"source": "not-a-description.json",
                                  "reason": "a json file beside the artifacts, not a model"}]


def test_image_uris_name_framework_and_version():
    facts = mig._image_facts("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
    assert (facts["framework"], facts["version"], facts["tag"]) == ("xgboost", "1.7-1", "1.7-1")
    assert mig._image_facts("382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1")["framework"] == \
        "sagemaker-builtin"
    assert mig._image_facts("763104351884.dkr.ecr.us-west-2.amazonaws.com/pytorch-inference:2.0.0-cpu-py310")[
        "version"] == "2.0.0"
    assert mig._image_facts("my.registry/private/thing:latest")["framework"] is None


# ------------------------------------------------------------------------------------------ command line

def test_cli_migrate(tmp_path, capsys):
    import argparse

    from artifact_tools import cli

    src = tmp_path / "src"
    make_fleet.build_small(src, 2)
    parser = argparse.ArgumentParser(prog="artifact-tools")
    sub = parser.add_subparsers(dest="command")
    mig.add_migrate_command(sub, add_opening=cli._add_opening, add_global=cli._add_global)
    args = parser.parse_args(["migrate", str(src), "--to", "sagemaker", str(tmp_path / "out"), "--jobs", "1"])
    assert args.func(args) == 0
    assert "migrated 2 of 2 model(s) to sagemaker" in capsys.readouterr().err
    registered = "migrate" in cli.build_parser()._subparsers._group_actions[0].choices
    if not registered:
        pytest.skip("artifact-tools migrate is not registered in cli.build_parser() yet")
    code = cli.main(["migrate", str(src), "--to", "no-such-target", str(tmp_path / "out2")])
    assert code == 2 and "unknown target" in capsys.readouterr().err
    assert cli.main(["-q", "migrate", str(src), "--to", "sagemaker", str(tmp_path / "out")]) == 0
    assert "2 resumed" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ MLflow and ONNX

@pytest.mark.parametrize("target", ["mlflow", "onnx"])
def test_fleet_migrates_to_mlflow_and_onnx(fleet, target, tmp_path):
    if target not in exporters.TARGETS:
        pytest.skip(f"the {target} export target is not registered in exporters.TARGETS yet")
    root, expected = fleet
    report = mig.migrate(root / "fleet", target, tmp_path / "out", jobs=2)
    _validator().validate(report)
    records = _by_id(report)
    assert set(records) == set(expected)
    want = {k: ("migrated" if v == "loadable" else v) for k, v in expected.items()}
    wrong = {k: (records[k]["outcome"], records[k]["stage"], records[k]["reason"]) for k, v in want.items()
             if records[k]["outcome"] != v}
    assert not wrong, wrong
    for rec in report["models"]:
        if rec["outcome"] == "migrated":
            assert rec["verification"]["passed"] and rec["verification"]["samples"] > 0


# ------------------------------------------------------------------------------------------ Spark

def test_spark_engine_runs_one_task_per_model(spark, tmp_path):
    src = tmp_path / "src"
    make_fleet.build_small(src, 3)
    local = mig.migrate(src, "sagemaker", tmp_path / "local")
    on_spark = mig.migrate(src, "sagemaker", tmp_path / "spark", engine="spark")
    assert on_spark["engine"] == "spark"
    assert [(m["id"], m["outcome"], m["era"]) for m in on_spark["models"]] == \
        [(m["id"], m["outcome"], m["era"]) for m in local["models"]]
    assert on_spark["counts"]["migrated"] == 3


def test_spark_engine_a_model_that_kills_its_worker_fails_alone(spark, tmp_path):
    """On Spark, a pickle whose load calls ``os._exit(3)`` kills its task's Python worker, which fails the wave's
    Spark job; the wave runs again one model per job, so that model alone is reported failed, with Spark's reason,
    and the models around it are migrated."""
    src = tmp_path / "src"
    make_fleet.build_small(src, 3)
    import make_hostile as mh

    make_fleet.tar_gz(src / "m0001-exit" / "model.tar.gz",
                      {"model.pkl": _pickle_calling("os", "_exit", mh.p_int(3))})
    report = mig.migrate(src, "sagemaker", tmp_path / "out", trust="all", engine="spark")
    records = _by_id(report)
    dead = records["m0001-exit/model.tar.gz"]
    assert dead["outcome"] == "failed" and "failed twice" in dead["reason"], dead
    assert "Python worker exited unexpectedly" in dead["reason"] and "Traceback" not in dead["reason"], dead["reason"]
    others = [f"m000{i}-{fw}/model.tar.gz" for i, fw in ((0, "sklearn"), (1, "xgboost"), (2, "sklearn"))]
    assert [records[k]["outcome"] for k in others] == ["migrated"] * 3
    assert report["counts"] == {**report["counts"], "migrated": 3, "failed": 1}


# ------------------------------------------------------------------------------------------ hostile and broken input

def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_aws(monkeypatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup: fails at credentials


def test_unreachable_and_broken_model_data_fail_alone_in_one_sentence(tmp_path, monkeypatch):
    """An s3:// ModelDataUrl without AWS credentials, a device, a refused HTTP URL and cut-off descriptions beside a
    good artifact: each fails alone, with what went wrong; the good one migrates."""
    pytest.importorskip("s3fs")
    botocore = pytest.importorskip("botocore.exceptions")
    _no_aws(monkeypatch)
    src = tmp_path / "src"
    make_fleet.build_small(src, 1)
    url = f"http://127.0.0.1:{_closed_port()}/model.tar.gz"
    (src / "s3.json").write_text(json.dumps({"PrimaryContainer": {"ModelDataUrl": "s3://no-such-bucket-xyz/model.tar.gz"}}))
    (src / "zero.json").write_text(json.dumps({"PrimaryContainer": {"ModelDataUrl": "/dev/zero"}}))
    (src / "refused.json").write_text(json.dumps({"PrimaryContainer": {"ModelDataUrl": url}}))
    cut = json.dumps({"ModelName": "cut", "PrimaryContainer": {"ModelDataUrl": "s3://b/model.tar.gz"}})[:50]
    (src / "cut.json").write_text(cut)
    (src / "broken.json").write_text("{'single': 'quotes'}")  # any .json that does not parse
    errors = {}
    for name in ("cut.json", "broken.json"):
        with pytest.raises(ValueError) as e:
            json.loads((src / name).read_text())
        errors[name] = str(e.value).splitlines()[0]
    report = mig.migrate(src, "git", tmp_path / "out")
    _validator().validate(report)
    records = _by_id(report)
    assert records["m0000-sklearn/model.tar.gz"]["outcome"] == "migrated"
    s3 = records["s3.json"]
    assert s3["outcome"] == "failed" and s3["stage"] == "inspect"
    assert str(botocore.NoCredentialsError()) in s3["reason"] and "s3://no-such-bucket-xyz" in s3["reason"]
    assert records["zero.json"]["outcome"] == "failed"
    assert records["zero.json"]["reason"] == "/dev/zero is not a regular file (a character device)"
    refused = records["refused.json"]
    assert refused["outcome"] == "failed" and refused["reason"].startswith(f"{url} could not be fetched (")
    assert "does not exist" not in refused["reason"] and "connect" in refused["reason"].lower()
    for name, error in errors.items():
        rec = records[name]
        assert (rec["outcome"], rec["stage"]) == ("failed", "discover")
        assert rec["reason"] == f"{name} is a malformed model description (JSON parse error: {error})"
    assert report["ignored"] == []
    for rec in report["models"]:
        assert "\n" not in rec["reason"] if rec["reason"] else True
        assert "internal error" not in (rec["reason"] or "")
    with pytest.raises(mig.MigrateError, match=re.escape(f"malformed model description (JSON parse error: "
                                                         f"{errors['cut.json']})")):
        mig.read_descriptions(str(src / "cut.json"))
    # a device or a named pipe given in a folder is never opened (a pipe would block), and as SOURCE is refused
    os.mkfifo(src / "pipe")
    units, ignored = mig._discover([str(src)], None, None)
    assert {"source": "pipe", "reason": "not a regular file (a named pipe)"} in ignored
    with pytest.raises(mig.MigrateError, match="is not a regular file"):
        mig.migrate("/dev/zero", "git", tmp_path / "out2")


def test_an_s3_model_without_s3fs_fails_alone(tmp_path):
    """Without the s3fs package an s3:// ModelDataUrl is that model's failure, in one sentence."""
    src = tmp_path / "src"
    make_fleet.build_small(src, 1)
    (src / "s3.json").write_text(json.dumps({"PrimaryContainer": {"ModelDataUrl": "s3://no-such-bucket-xyz/m.tar.gz"}}))
    block = tmp_path / "block"
    block.mkdir()
    (block / "s3fs.py").write_text("raise ImportError(\"No module named 's3fs'\")\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(ROOT)])}
    code = ("import json, sys; from artifact_tools import migrate as m; "
            "r = m.migrate(sys.argv[1], 'git', sys.argv[2]); "
            "print(json.dumps({x['id']: [x['outcome'], x['reason']] for x in r['models']}))")
    done = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads(done.stdout.strip().splitlines()[-1])
    assert records["m0000-sklearn/model.tar.gz"][0] == "migrated"
    outcome, reason = records["s3.json"]
    assert outcome == "failed" and "s3fs" in reason and "\n" not in reason and "internal error" not in reason


def test_a_state_file_with_wrong_types_is_no_state_for_those_entries(tmp_path):
    src = tmp_path / "src"
    make_fleet.build_small(src, 2)
    out = tmp_path / "out"
    first = mig.migrate(src, "git", out)
    assert first["counts"]["migrated"] == 2
    state = json.loads((out / mig.STATE).read_text())
    ids = sorted(state["models"])
    state["models"][ids[1]] = 5  # wrong types: that model has no state and runs again
    state["models"]["gone"] = {"name": "../../escaped", "identity": "x", "record": {"outcome": "migrated"}}
    (out / mig.STATE).write_text(json.dumps(state))
    second = _by_id(mig.migrate(src, "git", out))
    assert second[ids[0]]["resumed"] is True and second[ids[1]]["resumed"] is False
    assert second[ids[1]]["outcome"] == "migrated"
    # a journal whose lines are of the wrong shapes
    (out / mig.STATE).write_text(json.dumps({"schema": mig.STATE_SCHEMA, "target": "git", "models": []}))
    (out / mig.STATE_JOURNAL).write_text(json.dumps({"schema": mig.STATE_SCHEMA, "target": "git"}) + "\n" + "\n".join(
        json.dumps(x) for x in [5, {"id": ids[0], "name": 7, "record": {}}, {"id": ids[1], "record": "abc"},
                                {"id": ids[1], "name": "n", "identity": "i", "record": {"outcome": "migrated",
                                                                                      "seconds": "x"}}]) + "\n")
    third = mig.migrate(src, "git", out)
    assert third["counts"]["migrated"] == 2 and third["counts"]["resumed"] == 0
    assert not (tmp_path / "escaped").exists()


def test_an_output_folder_that_cannot_be_made_is_one_sentence(tmp_path, capsys):
    from artifact_tools import cli

    src = tmp_path / "src"
    make_fleet.build_small(src, 1)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out in ("/proc/artifact-tools-migrate-out", str(a_file / "out")):
        with pytest.raises(mig.MigrateError, match=f"the output folder {re.escape(out)} cannot be created"):
            mig.migrate(src, "git", out)
        assert cli.main(["migrate", str(src), "--to", "git", out]) == 2
        err = capsys.readouterr().err
        assert "cannot be created" in err and "Traceback" not in err and "internal error" not in err
