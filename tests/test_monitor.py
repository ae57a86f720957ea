"""Model Monitor without AWS (artifact_tools.monitor): baselines checked against pandas/numpy/scipy computing the same
statistics, the seed's scenario end to end (a training CSV -> baseline; traffic captured by CaptureWriter as the
endpoint captures it -> violations), the HTML report opened in a real headless browser, and bad inputs through the
CLI (one sentence, exit 2, nothing written)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("datasketches")

from artifact_tools import codec, monitor  # noqa: E402
from artifact_tools.capture import CaptureWriter  # noqa: E402

UTC = dt.timezone.utc
FEATURES = ["crim", "rooms", "chas", "zone", "dist"]
T0 = dt.datetime(2024, 6, 1, 10, 0, 0, tzinfo=UTC)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "crim": rng.lognormal(0.0, 1.0, n).round(5),  # Fractional, positive
        "rooms": rng.integers(3, 10, n),  # Integral
        "chas": rng.integers(0, 2, n),  # Integral 0/1
        "zone": rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1]),  # String
        "dist": rng.gamma(2.0, 2.0, n).round(4) + 0.5,  # Fractional, positive (the last feature)
    })


@pytest.fixture(scope="module")
def training(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("training")
    df = _frame(6000, 7)
    df.loc[df.index % 50 == 3, "dist"] = np.nan  # 2 % missing: completeness 0.98
    path = folder / "train.csv"
    df.to_csv(path, index=False)
    return path, df


@pytest.fixture(scope="module")
def baseline_dir(training, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline") / "out"
    monitor.baseline(training[0], out)
    return out


def _feature(stats: dict, name: str) -> dict:
    return next(f for f in stats["features"] if f["name"] == name)


def _sketch_quantile(kll: dict, q: float) -> float:
    """The q-quantile of a sketch read from its JSON levels (level i items weigh 2**i)."""
    items = [(v, 2.0 ** level) for level, values in enumerate(kll["sketch"]["data"]) for v in values]
    items.sort()
    values = np.array([v for v, _ in items])
    cum = np.cumsum([w for _, w in items])
    return float(values[np.searchsorted(cum, q * cum[-1])])


# ================================================================================================ baseline

def test_baseline_statistics_agree_with_pandas_and_numpy(training, baseline_dir):
    from datasketches import kll_doubles_sketch

    _, df = training
    stats = json.loads((baseline_dir / "statistics.json").read_text())
    cons = json.loads((baseline_dir / "constraints.json").read_text())
    assert stats["version"] == 0 and stats["dataset"]["item_count"] == len(df)
    assert [f["name"] for f in stats["features"]] == FEATURES
    types = {f["name"]: f["inferred_type"] for f in stats["features"]}
    assert types == {"crim": "Fractional", "rooms": "Integral", "chas": "Integral", "zone": "String",
                     "dist": "Fractional"}
    eps = kll_doubles_sketch.get_normalized_rank_error(2048, False)  # DataSketches' own error bound
    for name in ("crim", "rooms", "chas", "dist"):
        col = df[name].dropna().to_numpy(dtype=float)
        num = _feature(stats, name)["numerical_statistics"]
        assert num["common"] == {"num_present": len(col), "num_missing": int(df[name].isna().sum())}
        assert num["sum"] == pytest.approx(col.sum(), rel=1e-12)
        assert num["mean"] == pytest.approx(col.mean(), rel=1e-12)
        assert num["std_dev"] == pytest.approx(col.std(ddof=0), rel=1e-9)
        assert (num["min"], num["max"]) == (col.min(), col.max())
        kll = num["distribution"]["kll"]
        assert kll["sketch"]["parameters"]["k"] == 2048
        ordered = np.sort(col)
        for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
            value = _sketch_quantile(kll, q)
            lo = np.searchsorted(ordered, value, side="left") / len(col)
            hi = np.searchsorted(ordered, value, side="right") / len(col)
            assert lo - eps <= q <= hi + eps, (name, q, value)
        buckets = kll["buckets"]
        assert len(buckets) == 10 and buckets[0]["lower_bound"] == col.min() and buckets[-1]["upper_bound"] == col.max()
        edges = [b["lower_bound"] for b in buckets] + [buckets[-1]["upper_bound"]]
        expected, _ = np.histogram(col, bins=edges)  # numpy: [lo, hi) buckets, the last one closed
        assert sum(b["count"] for b in buckets) == len(col)
        assert all(abs(b["count"] - e) <= 2 * eps * len(col) + 1 for b, e in zip(buckets, expected))
    zone = _feature(stats, "zone")["string_statistics"]
    counts = df["zone"].value_counts()
    assert zone["distinct_count"] == 4
    assert {b["value"]: b["count"] for b in zone["distribution"]["categorical"]["buckets"]} == counts.to_dict()
    by_name = {f["name"]: f for f in cons["features"]}
    assert by_name["dist"]["completeness"] == pytest.approx(df["dist"].notna().mean())
    assert by_name["crim"]["num_constraints"] == {"is_non_negative": True}
    assert sorted(by_name["zone"]["string_constraints"]["domains"]) == sorted(counts.index)
    dc = cons["monitoring_config"]["distribution_constraints"]
    assert dc["perform_comparison"] == "Enabled" and dc["comparison_method"] in ("Robust", "Simple")
    assert {"comparison_threshold", "categorical_comparison_threshold"} <= set(dc)
    assert {"datatype_check_threshold", "domain_content_threshold"} <= \
        set(cons["monitoring_config"])


def test_headerless_csv_and_json_lines_give_the_same_statistics(training, tmp_path):
    path, df = training
    headerless = tmp_path / "train-noheader.csv"
    df.to_csv(headerless, index=False, header=False)
    jsonl = tmp_path / "train.jsonl"
    df.to_json(jsonl, orient="records", lines=True)
    with_header, _ = monitor.statistics(path)
    plain, _ = monitor.statistics(headerless)
    lines, _ = monitor.statistics(jsonl)
    assert [f["name"] for f in plain["features"]] == [f"_c{i}" for i in range(len(FEATURES))]
    assert [f["name"] for f in lines["features"]] == FEATURES
    for i, name in enumerate(FEATURES):
        a, b, c = _feature(with_header, name), _feature(plain, f"_c{i}"), _feature(lines, name)
        assert a["inferred_type"] == b["inferred_type"]
        key = "numerical_statistics" if "numerical_statistics" in a else "string_statistics"
        assert a[key]["common"] == b[key]["common"] == c[key]["common"]
        if key == "numerical_statistics":
            assert a[key]["mean"] == b[key]["mean"] == pytest.approx(c[key]["mean"], rel=1e-12)


def test_type_inference_follows_deequs_text_rules(tmp_path):
    path = tmp_path / "types.csv"
    path.write_text("a,b,c,d,e\n1,1.0,x,true,\n-2,2,3,false,\n+3,1e-05,4,true,\n", encoding="utf-8")
    stats, cons = monitor.statistics(path)
    assert {f["name"]: f["inferred_type"] for f in stats["features"]} == {
        "a": "Integral", "b": "Fractional", "c": "String", "d": "String", "e": "Unknown"}
    assert _feature(stats, "e")["string_statistics"]["common"] == {"num_present": 0, "num_missing": 3}


def test_drift_distance_is_the_ks_statistic_of_exact_sketches():
    """Below k items a KLL sketch keeps every item, so Deequ's L-infinity distance ("Simple") is exactly the
    two-sample Kolmogorov-Smirnov statistic scipy computes."""
    stats = pytest.importorskip("scipy.stats")
    from datasketches import kll_doubles_sketch

    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 700), rng.normal(0.3, 1.2, 500)

    def kll(values):
        s = kll_doubles_sketch(2048)
        s.update(values)
        return {"sketch": {"data": [sorted(v for v, _ in s)]}}

    d = monitor.numerical_distance(kll(a), kll(b), "Simple")
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    robust = monitor.numerical_distance(kll(a), kll(b), "Robust")
    assert robust == pytest.approx(max(0.0, d - 1.8 * np.sqrt((700 + 500) / (700 * 500))))


# ================================================================================================ the scenario

@pytest.fixture(scope="module")
def model(training):
    """A real model answering the endpoint's requests (its responses go into the capture like the endpoint's)."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    _, df = training
    X = df[["crim", "rooms", "chas", "dist"]].fillna(0).to_numpy()
    y = 3 * X[:, 0] - X[:, 1] + X[:, 3]
    return linear_model.LinearRegression().fit(X, y)


def _traffic(n: int, seed: int, change=None) -> list[list[str]]:
    df = _frame(n, seed)
    rows = [[repr(float(r.crim)), str(int(r.rooms)), str(int(r.chas)), r.zone, repr(float(r.dist))]
            for r in df.itertuples()]
    if change:
        rows = [change(i, row) for i, row in enumerate(rows)]
    return rows


def _send(writer: CaptureWriter, model, rows: list[list[str]], when: dt.datetime, per_request: int = 4) -> None:
    """Requests of a few CSV rows each, answered by the model, captured as the endpoint does."""
    for i in range(0, len(rows), per_request):
        chunk = rows[i:i + per_request]
        body = "\n".join(",".join(r) for r in chunk).encode()
        numeric = np.array([[float(r[0] or 0), float(r[1] or 0), float(r[2] or 0), float(r[4] or 0)] for r in chunk])
        response, ctype = codec.encode(model.predict(numeric), codec.JSON, None)
        writer.capture(body, "text/csv", response, ctype, inference_time=when + dt.timedelta(seconds=i))


WINDOWS = {"normal": 0, "scaled": 1, "fractional": 2, "missing": 3, "combined": 4}


@pytest.fixture(scope="module")
def capture_dir(model, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("capture") / "capture"

    def scaled(i, row):
        return [repr(float(row[0]) * 10_000)] + row[1:]

    def fractional(i, row):
        return row[:1] + ([f"{int(row[1]) + 0.5}"] if i % 4 == 0 else row[1:2]) + row[2:]

    def missing(i, row):
        return row[:4] + ([""] if i % 5 == 0 else row[4:])

    def combined(i, row):
        row = scaled(i, fractional(i, row))
        return row[:4] + [repr(-float(row[4]))]

    with CaptureWriter(root, "housing", "AllTraffic", 100, "Input,Output") as writer:
        for name, change in (("normal", None), ("scaled", scaled), ("fractional", fractional),
                             ("missing", missing), ("combined", combined)):
            when = T0 + dt.timedelta(hours=WINDOWS[name])
            _send(writer, model, _traffic(600, 100 + WINDOWS[name], change), when)
        assert writer.flush(30)
    assert writer.dropped == 0
    return root


def _window(name: str) -> tuple[str, str]:
    start = T0 + dt.timedelta(hours=WINDOWS[name])
    return start.isoformat(), (start + dt.timedelta(hours=1)).isoformat()


def _run(capture_dir, baseline_dir, tmp_path, name):
    report = tmp_path / f"report-{name}"
    result = monitor.run(capture_dir, baseline_dir, report, *_window(name))
    written = json.loads((report / "constraint_violations.json").read_text())
    assert written == {"violations": result["violations"]}
    return {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}, result, report


def test_normal_traffic_has_no_violations(capture_dir, baseline_dir, tmp_path):
    found, result, report = _run(capture_dir, baseline_dir, tmp_path, "normal")
    assert found == set()
    assert result["item_count"] == 600 and result["records"] == 150
    observed = json.loads((report / "statistics.json").read_text())
    assert [f["name"] for f in observed["features"]] == FEATURES  # positional CSV cells take the baseline names


def test_a_feature_multiplied_by_10000_is_baseline_drift(capture_dir, baseline_dir, tmp_path):
    found, result, _ = _run(capture_dir, baseline_dir, tmp_path, "scaled")
    assert found == {("crim", "baseline_drift_check")}
    assert result["details"]["crim"]["distance"] > 0.9
    description = next(v["description"] for v in result["violations"])
    assert re.search(r"Baseline drift distance: [0-9.]+ exceeds threshold: 0\.1", description)


def test_fractions_for_an_integer_feature_fail_the_data_type_check(capture_dir, baseline_dir, tmp_path):
    found, result, _ = _run(capture_dir, baseline_dir, tmp_path, "fractional")
    assert found == {("rooms", "data_type_check")}
    assert result["details"]["rooms"]["type_match"] == pytest.approx(0.75)
    assert "Expected data type: Integral, Expected match: 100.0%. Observed: Only 75.0% of data is Integral." in \
        result["violations"][0]["description"]


def test_missing_values_fail_the_completeness_check(capture_dir, baseline_dir, tmp_path):
    found, result, _ = _run(capture_dir, baseline_dir, tmp_path, "missing")
    assert found == {("dist", "completeness_check")}
    assert result["details"]["dist"]["completeness"] == pytest.approx(0.8)


def test_the_seed_scenario_names_exactly_the_broken_features(capture_dir, baseline_dir, tmp_path):
    """First feature x 10,000, the last one negated, fractions sent to an integer feature, all in one window."""
    found, _, report = _run(capture_dir, baseline_dir, tmp_path, "combined")
    assert found == {("crim", "baseline_drift_check"), ("dist", "baseline_drift_check"),
                     ("rooms", "data_type_check")}
    _check_report_in_browser(report, found, tmp_path)


def test_missing_and_extra_columns(baseline_dir, tmp_path):
    capture = tmp_path / "cap"
    with CaptureWriter(capture, "ep") as w:
        for i in range(50):
            w.capture(f"{i % 3 + 0.5},{i % 7 + 3},1".encode(), "text/csv", b"1", "text/csv")
            w.capture(json.dumps({"crim": 1.5, "rooms": 4, "chas": 0, "zone": "north", "dist": 2.5,
                                  "colour": "red"}).encode(), "application/json", b"1", "text/csv")
    result = monitor.run(capture, baseline_dir, tmp_path / "r")
    found = {(v["feature_name"], v["constraint_check_type"]) for v in result["violations"]}
    assert ("colour", "extra_column_check") in found
    assert ("zone", "completeness_check") in found and ("dist", "completeness_check") in found
    capture2 = tmp_path / "cap2"
    with CaptureWriter(capture2, "ep") as w:
        for i in range(50):
            w.capture(f"{i % 3 + 0.5},{i % 7 + 3},1".encode(), "text/csv", b"1", "text/csv")
    found2 = {(v["feature_name"], v["constraint_check_type"]) for v in
              monitor.run(capture2, baseline_dir, tmp_path / "r2")["violations"]}
    assert {("zone", "missing_column_check"), ("dist", "missing_column_check")} <= found2


# ================================================================================================ the HTML report

def _check_report_in_browser(report: Path, found: set, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH to render the HTML report (apt-get install chromium)")
    page = (report / "report.html").resolve()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html_text = dom.stdout
    rows = re.findall(r'<tr class="violation"><td>([^<]+)</td><td>([^<]+)</td>', html_text)
    assert set(rows) == found
    for name in FEATURES:
        section = re.search(rf'<section class="feature" data-feature="{name}">(.*?)</section>', html_text, re.S)
        assert section, name
        assert re.search(r"<svg[^>]*class=\"dist\"", section.group(1)), name
        kinds = ("polyline", "polyline") if name != "zone" else ("rect", "rect")
        assert re.search(rf'<{kinds[0]} class="baseline"', section.group(1)), name
        assert re.search(rf'<{kinds[1]} class="observed"', section.group(1)), name
    shot = tmp_path / "report.png"
    done = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,2400", page.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    pixels = np.asarray(image)
    blue = np.all(np.abs(pixels.astype(int) - [0x1F, 0x77, 0xB4]) < 30, axis=-1).sum()
    orange = np.all(np.abs(pixels.astype(int) - [0xFF, 0x7F, 0x0E]) < 30, axis=-1).sum()
    assert blue > 200 and orange > 200  # both curves were drawn


# ================================================================================================ bad input, CLI

def _cli(args, capsys) -> tuple[int, str]:
    from artifact_tools.cli import main

    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


@pytest.fixture
def cli_with_monitor():
    """The CLI, which registers ``monitor`` (kept as a fixture so the tests name what they rely on)."""
    from artifact_tools import cli

    cli.build_parser().parse_args(["monitor", "baseline", "a", "b"])  # exits 2 if the command is missing


def _capture_file(root: Path, lines: list[str], end: str = "\n") -> None:
    path = root / "ep" / "AllTraffic" / "2024" / "06" / "01" / "10" / "00-00-000-x.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + end, encoding="utf-8")


def _record(version: str = "0") -> str:
    return json.dumps({"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT",
                                                         "data": "1.5,4,0,north,2.5", "encoding": "CSV"}},
                       "eventMetadata": {"eventId": "e", "inferenceTime": "2024-06-01T10:00:00Z"},
                       "eventVersion": version})


def test_bad_inputs_are_one_sentence_and_write_nothing(baseline_dir, training, tmp_path, capsys, cli_with_monitor):
    truncated, version, empty = tmp_path / "t", tmp_path / "v", tmp_path / "e"
    _capture_file(truncated, [_record(), _record()[:40]], end="")
    _capture_file(version, [_record("7")])
    _capture_file(empty, [_record()])
    other = tmp_path / "other-baseline"
    other.mkdir()
    (other / "statistics.json").write_text(json.dumps({"version": 1, "features": []}))
    (other / "constraints.json").write_text(json.dumps({"version": 0, "features": []}))
    cases = [
        (["monitor", "run", str(truncated), "--baseline", str(baseline_dir), "--report", str(tmp_path / "r1")],
         "truncated"),
        (["monitor", "run", str(version), "--baseline", str(baseline_dir), "--report", str(tmp_path / "r2")],
         "eventVersion '7'"),
        (["monitor", "run", str(empty), "--baseline", str(other), "--report", str(tmp_path / "r3")],
         "version 1"),
        (["monitor", "run", str(empty), "--baseline", str(baseline_dir), "--report", str(tmp_path / "r4"),
          "--start", "2030-01-01T00:00:00Z"], "window is empty"),
        (["monitor", "baseline", str(tmp_path / "nope.csv"), str(tmp_path / "r5")], "does not exist"),
    ]
    for args, words in cases:
        code, err = _cli(args, capsys)
        assert code == 2, (args, err)
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert not Path(args[-1] if args[1] == "baseline" else args[args.index("--report") + 1]).exists()
    code, err = _cli(["monitor", "baseline", str(training[0]), str(tmp_path / "b")], capsys)
    assert code == 0 and {p.name for p in (tmp_path / "b").iterdir()} == {"statistics.json", "constraints.json"}
    code, err = _cli(["monitor", "run", str(empty), "--baseline", str(tmp_path / "b"), "--report",
                      str(tmp_path / "ok")], capsys)
    assert code == 0 and (tmp_path / "ok" / "report.html").is_file()


def test_outputs_replace_whole_files(training, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "statistics.json").write_text("old")
    (out / "notes.txt").write_text("mine")
    monitor.baseline(training[0], out)
    assert json.loads((out / "statistics.json").read_text())["version"] == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["constraints.json", "notes.txt", "statistics.json"]


# ================================================================================================ CSV read as numbers

def _late_texts_csv(path: Path, n: int = 3000) -> dict[str, list[str]]:
    """Columns whose first rows look like one type and whose later rows hold a text that changes it."""
    rng = np.random.default_rng(5)
    ints = [str(v) for v in rng.integers(-50, 50, n)]
    floats = [f"{v:.4f}" for v in rng.normal(10, 3, n)]
    cols = {
        "late_fraction": list(ints), "late_hex": list(ints), "late_plus": list(ints), "late_whole_float": list(ints),
        "late_nan": list(floats), "late_word": list(floats), "late_overflow": list(floats),
        "plain_int": list(ints), "plain_float": list(floats),
        "blank_cells": [("" if i % 7 == 0 else v) for i, v in enumerate(floats)],
        "words": [f"w{v}" for v in rng.integers(0, 30, n)],
    }
    for name, at, text in (("late_fraction", 2500, "2.5"), ("late_hex", 2600, "0x1F"), ("late_plus", 2700, "+5"),
                           ("late_whole_float", 2750, "3.0"), ("late_nan", 2800, "nan"), ("late_word", 2900, "abc"),
                           ("late_overflow", 2950, "1e400")):
        cols[name][at] = text
    names = list(cols)
    path.write_text(",".join(names) + "\n" + "".join(",".join(cols[k][i] for k in names) + "\n" for i in range(n)),
                    encoding="utf-8")
    return cols


def test_csv_columns_read_as_numbers_follow_the_text_rules(tmp_path, monkeypatch):
    """Columns are read as numbers when the first block shows only numbers; a later text those numbers cannot stand
    for (a fraction in an integer column, a hexadecimal integer, '+5', 'nan', '1e400', a word) makes the read start
    over, so the statistics are those of Deequ's text rules: the types are known by construction, the numbers come
    from numpy on the texts, and the same rows as JSON Lines (always read as texts) agree."""
    from datasketches import kll_doubles_sketch

    monkeypatch.setattr(monitor, "CSV_BLOCK", 4096)  # many blocks: the late texts are far past the first one
    monkeypatch.setattr(monitor, "KINDS_BLOCK", 4096)
    path = tmp_path / "late.csv"
    cols = _late_texts_csv(path)
    stats, _ = monitor.statistics(path)
    types = {f["name"]: f["inferred_type"] for f in stats["features"]}
    assert types == {"late_fraction": "Fractional", "late_hex": "String", "late_plus": "Integral",
                     "late_whole_float": "Fractional", "late_nan": "String", "late_word": "String",
                     "late_overflow": "String", "plain_int": "Integral", "plain_float": "Fractional",
                     "blank_cells": "Fractional", "words": "String"}
    for name in ("late_fraction", "late_plus", "late_whole_float", "plain_int", "plain_float", "blank_cells"):
        values = np.array([float(v) for v in cols[name] if v])
        num = _feature(stats, name)["numerical_statistics"]
        assert num["common"] == {"num_present": len(values), "num_missing": len(cols[name]) - len(values)}, name
        assert num["sum"] == pytest.approx(values.sum(), rel=1e-12) and (num["min"], num["max"]) == \
            (values.min(), values.max()), name
        assert num["std_dev"] == pytest.approx(values.std(), rel=1e-9), name
    for name in ("late_hex", "late_nan", "late_word", "late_overflow", "words"):
        common = _feature(stats, name)["string_statistics"]["common"]
        assert common == {"num_present": 3000, "num_missing": 0}, name
        distinct = len(set(cols[name]))  # exact up to 1,000 distinct values, then HyperLogLog's estimate
        assert _feature(stats, name)["string_statistics"]["distinct_count"] == \
            (distinct if distinct <= 1000 else pytest.approx(distinct, rel=0.03)), name
    jsonl = tmp_path / "late.jsonl"
    jsonl.write_text("".join(json.dumps({k: v for k, v in zip(cols, row) if v != ""}) + "\n"
                             for row in zip(*cols.values())), encoding="utf-8")
    texts, _ = monitor.statistics(jsonl)
    assert sorted(f["name"] for f in texts["features"]) == sorted(cols)
    for a in stats["features"]:
        b = _feature(texts, a["name"])  # JSON Lines: a key first seen later comes later
        assert a["inferred_type"] == b["inferred_type"]
        key = "numerical_statistics" if "numerical_statistics" in a else "string_statistics"
        assert a[key]["common"] == b[key]["common"], a["name"]
        if key == "numerical_statistics":
            assert a[key]["sum"] == pytest.approx(b[key]["sum"], rel=1e-12)
            n = a[key]["common"]["num_present"]  # two runs of a randomised sketch: each within its error bound
            slack = 2 * kll_doubles_sketch.get_normalized_rank_error(2048, False) * n + 1
            for x, y in zip(a[key]["distribution"]["kll"]["buckets"], b[key]["distribution"]["kll"]["buckets"]):
                assert (x["lower_bound"], x["upper_bound"]) == (y["lower_bound"], y["upper_bound"])
                assert abs(x["count"] - y["count"]) <= 2 * slack, a["name"]


def test_a_bad_row_late_in_a_csv_is_one_sentence_and_stops_the_reader(tmp_path, monkeypatch):
    import threading

    monkeypatch.setattr(monitor, "CSV_BLOCK", 4096)
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(5000)) + "1,2,3\n", encoding="utf-8")
    before = threading.active_count()
    with pytest.raises(monitor.MonitorError, match="do not all have the first row's 2 columns"):
        monitor.statistics(path)
    assert threading.active_count() == before


def test_distinct_counts_of_many_strings_are_within_hyperloglogs_error(tmp_path):
    """Beyond 1,000 distinct values a String column's distinct count is the HyperLogLog estimate (2^14 registers:
    1.04 / 128 = 0.8 % standard error); short and long (over 64 bytes) values alike."""
    rng = np.random.default_rng(11)
    values = [f"id-{v}" for v in rng.integers(0, 40_000, 60_000)]
    values += ["x" * 80 + str(v) for v in rng.integers(0, 5_000, 10_000)]
    path = tmp_path / "ids.csv"
    path.write_text("id\n" + "\n".join(values) + "\n", encoding="utf-8")
    stats, _ = monitor.statistics(path, header=True)
    feature = _feature(stats, "id")["string_statistics"]
    assert feature["distinct_count"] == pytest.approx(len(set(values)), rel=0.03)
    top = {b["value"]: b["count"] for b in feature["distribution"]["categorical"]["buckets"]}
    exact = pd.Series(values).value_counts()
    assert all(count >= exact[value] for value, count in top.items())  # the frequent-items sketch's lower bound


# ================================================================================================ AWS's schemas

class _OneOf(tuple):
    """A value matching one of the alternatives (a feature is numeric or categorical)."""


NUMBER, TEXT, FLAG = "number", "string", "boolean"
# The shapes below are written from the SageMaker developer guide's schema pages (keys and JSON types only). A key
# ending in "?" is one the pages show for some features and not others (num_constraints for numbers,
# string_constraints for categorical features with a small domain).
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-statistics.html (and -byoc-statistics)
_COMMON = {"num_present": NUMBER, "num_missing": NUMBER}
STATISTICS_SHAPE = {
    "version": NUMBER,
    "dataset": {"item_count": NUMBER},
    "features": [_OneOf((
        {"name": TEXT, "inferred_type": TEXT, "numerical_statistics": {
            "common": _COMMON, "mean": NUMBER, "sum": NUMBER, "std_dev": NUMBER, "min": NUMBER, "max": NUMBER,
            "distribution": {"kll": {
                "buckets": [{"lower_bound": NUMBER, "upper_bound": NUMBER, "count": NUMBER}],
                "sketch": {"parameters": {"c": NUMBER, "k": NUMBER}, "data": [[NUMBER]]}}}}},
        {"name": TEXT, "inferred_type": TEXT, "string_statistics": {
            "common": _COMMON, "distinct_count": NUMBER,
            "distribution": {"categorical": {"buckets": [{"value": TEXT, "count": NUMBER}]}}}},
    ))],
}
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html
CONSTRAINTS_SHAPE = {
    "version": NUMBER,
    "features": [{"name": TEXT, "inferred_type": TEXT, "completeness": NUMBER,
                  "num_constraints?": {"is_non_negative": FLAG}, "string_constraints?": {"domains": [TEXT]},
                  "monitoringConfigOverrides": {}}],
    "monitoring_config": {
        "evaluate_constraints": TEXT, "emit_metrics": TEXT, "datatype_check_threshold": NUMBER,
        "domain_content_threshold": NUMBER,
        "distribution_constraints": {"perform_comparison": TEXT, "comparison_threshold": NUMBER,
                                     "comparison_method": TEXT, "categorical_comparison_threshold": NUMBER,
                                     "categorical_drift_method": TEXT}},
}
# https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-interpreting-violations.html
VIOLATIONS_SHAPE = {"violations": [{"feature_name": TEXT, "constraint_check_type": TEXT, "description": TEXT}]}
DOCUMENTED_CHECKS = {"data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
                     "extra_column_check", "categorical_values_check"}


def _shape_errors(value, shape, path: str = "$", seen: set | None = None) -> list[str]:
    """Where ``value`` departs from ``shape``: a missing or unknown key, a wrong JSON type. ``seen`` collects the
    shape paths a value filled (so a test can tell that every documented key was written somewhere)."""
    if seen is not None:
        seen.add(path)
    if isinstance(shape, _OneOf):
        tries = [_shape_errors(value, alt, f"{path}|{i}", None) for i, alt in enumerate(shape)]
        best = min(range(len(shape)), key=lambda i: len(tries[i]))
        return _shape_errors(value, shape[best], f"{path}|{best}", seen)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        required = {k for k in shape if not k.endswith("?")}
        allowed = {k.rstrip("?"): k for k in shape}
        errors = [f"{path}: no {k!r}" for k in sorted(required - set(value))]
        errors += [f"{path}: {k!r} is not in the schema" for k in sorted(set(value) - set(allowed))]
        for key, sub in value.items():
            if key in allowed:
                errors += _shape_errors(sub, shape[allowed[key]], f"{path}.{allowed[key]}", seen)
        return errors
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not an array"]
        return [e for i, item in enumerate(value) for e in _shape_errors(item, shape[0], f"{path}[]", seen)]
    kinds = {NUMBER: (int, float), TEXT: (str,), FLAG: (bool,)}[shape]
    if isinstance(value, bool) and shape != FLAG or not isinstance(value, kinds):
        return [f"{path}: {value!r} is not a JSON {shape}"]
    return []


def _shape_paths(shape, path: str = "$") -> set[str]:
    out = {path}
    if isinstance(shape, _OneOf):
        for i, alt in enumerate(shape):
            out |= _shape_paths(alt, f"{path}|{i}")
    elif isinstance(shape, dict):
        for k, sub in shape.items():
            out |= _shape_paths(sub, f"{path}.{k}")
    elif isinstance(shape, list):
        out |= _shape_paths(shape[0], f"{path}[]")
    return out


def test_shape_check_finds_departures():
    """The checker itself: a missing key, an unknown key and a wrong type are each reported."""
    good = {"violations": [{"feature_name": "a", "constraint_check_type": "data_type_check", "description": "d"}]}
    assert _shape_errors(good, VIOLATIONS_SHAPE) == []
    assert _shape_errors({"violations": [{"feature_name": "a", "description": "d"}]}, VIOLATIONS_SHAPE)
    assert _shape_errors({"violations": [], "extra": 1}, VIOLATIONS_SHAPE)
    assert _shape_errors({"version": True, "features": [], "dataset": {"item_count": 1}}, STATISTICS_SHAPE)


def test_our_files_have_the_documented_shapes(baseline_dir, capture_dir, tmp_path):
    """statistics.json, constraints.json and constraint_violations.json side by side with the shapes of AWS's schema
    pages: the same keys at every level and the same JSON types, and every documented key written somewhere."""
    seen: set[str] = set()
    stats = json.loads((baseline_dir / "statistics.json").read_text())
    cons = json.loads((baseline_dir / "constraints.json").read_text())
    assert _shape_errors(stats, STATISTICS_SHAPE, seen=seen) == []
    assert seen == _shape_paths(STATISTICS_SHAPE)
    seen = set()
    assert _shape_errors(cons, CONSTRAINTS_SHAPE, seen=seen) == []
    assert seen == _shape_paths(CONSTRAINTS_SHAPE)
    checks = set()
    for window in ("combined", "missing"):
        _, _, report = _run(capture_dir, baseline_dir, tmp_path, window)
        violations = json.loads((report / "constraint_violations.json").read_text())
        seen = set()
        assert _shape_errors(violations, VIOLATIONS_SHAPE, seen=seen) == []
        assert seen == _shape_paths(VIOLATIONS_SHAPE)
        checks |= {v["constraint_check_type"] for v in violations["violations"]}
        observed = json.loads((report / "statistics.json").read_text())
        assert _shape_errors(observed, STATISTICS_SHAPE) == []
    assert checks <= DOCUMENTED_CHECKS and len(checks) == 3


def test_quoted_line_breaks_across_chunks(tmp_path, monkeypatch):
    """Chunks end on record boundaries: quoted cells holding line breaks, commas and doubled quotes straddle many
    chunk edges and are read whole (checked against pandas)."""
    import csv as csv_module
    monkeypatch.setattr(monitor, "CSV_BLOCK", 300)
    monkeypatch.setattr(monitor, "KINDS_BLOCK", 300)
    rng = np.random.default_rng(2)
    path = tmp_path / "notes.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv_module.writer(f)
        w.writerow(["id", "note", "value"])
        for i in range(2000):
            note = f'line {i % 37}\nsecond, "quoted" part' if i % 3 == 0 else f"plain {i % 11}"
            w.writerow([i, note, f"{rng.normal():.5f}"])
    df = pd.read_csv(path)
    stats, _ = monitor.statistics(path)
    assert stats["dataset"]["item_count"] == len(df) == 2000
    assert _feature(stats, "id")["inferred_type"] == "Integral"
    assert _feature(stats, "id")["numerical_statistics"]["sum"] == df["id"].sum()
    assert _feature(stats, "value")["numerical_statistics"]["sum"] == pytest.approx(df["value"].sum(), rel=1e-12)
    note = _feature(stats, "note")["string_statistics"]
    assert note["distinct_count"] == df["note"].nunique()
    exact = df["note"].value_counts()
    top = {b["value"]: b["count"] for b in note["distribution"]["categorical"]["buckets"]}
    assert all(exact[v] == c for v, c in top.items())  # the texts whole, line breaks and quotes included
    assert sorted(top.values()) == sorted(exact.head(20).tolist())  # the 20 most frequent (ties in any order)


# ================================================================================================ Spark engine

def test_spark_engine_matches_the_local_engine(spark, training, tmp_path):
    """``--engine spark`` profiles each partition where it lies and merges the partitions' counts, moments and
    sketches: the counts and sums equal the local engine's (and pandas'), the merged KLL sketches stay within
    DataSketches' error bound of the exact quantiles, and the constraints are the same."""
    import sys

    from datasketches import kll_doubles_sketch

    path, df = training
    local = monitor.baseline(path, tmp_path / "local")
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "48k")  # several partitions of the one small file
    saved, spark.sparkContext.pythonExec = spark.sparkContext.pythonExec, sys.executable  # workers: this venv
    try:
        assert spark.read.option("header", "true").csv(str(path)).rdd.getNumPartitions() >= 3
        done = monitor.baseline(path, tmp_path / "spark", engine="spark", spark=spark)
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)
        spark.sparkContext.pythonExec = saved
    ours, theirs = done["statistics"], local["statistics"]
    assert json.loads((tmp_path / "spark" / "statistics.json").read_text()) == ours
    assert ours["dataset"] == theirs["dataset"] == {"item_count": len(df)}
    assert [f["name"] for f in ours["features"]] == [f["name"] for f in theirs["features"]] == FEATURES
    eps = kll_doubles_sketch.get_normalized_rank_error(2048, False)
    for a, b in zip(ours["features"], theirs["features"]):
        assert a["inferred_type"] == b["inferred_type"], a["name"]
        if "string_statistics" in a:
            assert a["string_statistics"] == b["string_statistics"]
            continue
        x, y = a["numerical_statistics"], b["numerical_statistics"]
        assert x["common"] == y["common"] and (x["min"], x["max"]) == (y["min"], y["max"])
        for key in ("sum", "mean"):
            assert x[key] == pytest.approx(y[key], rel=1e-12)
        assert x["std_dev"] == pytest.approx(y["std_dev"], rel=1e-9)
        col = np.sort(df[a["name"]].dropna().to_numpy(dtype=float))
        kll = x["distribution"]["kll"]
        assert sum(2 ** level * len(items) for level, items in enumerate(kll["sketch"]["data"])) == len(col)
        for q in (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99):
            value = _sketch_quantile(kll, q)
            lo = np.searchsorted(col, value, side="left") / len(col)
            hi = np.searchsorted(col, value, side="right") / len(col)
            assert lo - eps <= q <= hi + eps, (a["name"], q)
        for p, r in zip(kll["buckets"], y["distribution"]["kll"]["buckets"]):
            assert (p["lower_bound"], p["upper_bound"]) == (r["lower_bound"], r["upper_bound"])
            assert abs(p["count"] - r["count"]) <= 4 * eps * len(col) + 2
    assert done["constraints"] == local["constraints"]


def test_merged_profiles_of_parts_agree_with_the_whole(tmp_path):
    """What the Spark engine does per partition, checked on one machine: a column past 1,000 distinct values in one
    part and exact in the other merges into sketches holding both (distinct count within HyperLogLog's error, the
    frequent values' counts no lower than pandas' exact counts); counts and sums add exactly."""
    import pyarrow as pa

    rng = np.random.default_rng(4)
    words = [f"w{v}" for v in rng.zipf(1.3, 30_000) % 5000]
    parts = [words[:25_000], words[25_000:25_300]]  # the second part alone has few distinct values
    merged = monitor._Profile()
    for part in parts:
        profile = monitor._Profile()
        profile.add(["word", "n"], [pa.array(part), pa.array([str(len(w)) for w in part])], len(part))
        merged.merge(profile)
    stats = merged.statistics()
    word = _feature(stats, "word")["string_statistics"]
    whole = pd.Series(words[:25_300])
    assert stats["dataset"]["item_count"] == 25_300 and word["common"]["num_present"] == 25_300
    assert word["distinct_count"] == pytest.approx(whole.nunique(), rel=0.03)
    exact = whole.value_counts()
    assert all(b["count"] >= exact[b["value"]] for b in word["distribution"]["categorical"]["buckets"])
    assert [b["value"] for b in word["distribution"]["categorical"]["buckets"][:3]] == list(exact.index[:3])
    n = _feature(stats, "n")["numerical_statistics"]
    assert n["sum"] == sum(len(w) for w in words[:25_300])
