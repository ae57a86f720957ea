"""MLeap bundles: reading, pure-Python scoring and export from real Spark pipelines.

Expected values come from Spark's own ``transform`` (fitted in the test) or from plain numpy / a
recursive tree walk written here over the reference bundles' JSON, never from our scorer.
"""

from __future__ import annotations

import io
import json
import math
import random
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import loaders
from artifact_tools.errors import ArtifactError, CorruptArtifact, NotAnArtifact, NotLoadable
from artifact_tools.filetree import DirTree, MappingTree, ZipTree
from artifact_tools.formats import mleap_bundle
from exporters import mleap as exporter
from loaders import mleap as scorer

TOL = 1e-9

# --- reference bundles from MLeap's own test resources (corpus) -------------------------------


def _zip_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def _tar_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name.lstrip("./"): t.extractfile(m).read() for m in t.getmembers() if m.isfile()}


@pytest.fixture(scope="module")
def airbnb(corpus):
    frame = json.loads((corpus / "mleap-reference" / "frame.airbnb.json").read_text())
    names = [f["name"] for f in frame["schema"]["fields"]]
    base = dict(zip(names, frame["rows"][0]))
    lr = _zip_files(corpus / "mleap-reference" / "airbnb.model.lr.zip")
    # more rows: every label of each categorical column, numeric columns perturbed
    labels = {c: json.loads(lr[f"root/feature_pipeline.node/string_indexer_{c}.node/model.json"])
              ["attributes"]["labels"]["string"]
              for c in ("state", "room_type", "host_is_superhost", "cancellation_policy", "instant_bookable")}
    rng = random.Random(7)
    rows = [base]
    for i in range(40):
        r = dict(base)
        for c, labs in labels.items():
            r[c] = labs[(i * (3 + len(c))) % len(labs)]
        for c in ("bathrooms", "square_feet", "bedrooms", "security_deposit", "cleaning_fee", "extra_people",
                  "number_of_reviews", "review_scores_rating"):
            r[c] = round(base[c] * rng.uniform(0.2, 2.5), 2)
        rows.append(r)
    return rows


def _airbnb_inputs(files: dict[str, bytes], row: dict, assembler: str) -> np.ndarray:
    """Our own reading of the airbnb feature pipeline: indexes, one-hots and std scaling."""
    base = "root/feature_pipeline.node/"

    def model(name):
        return json.loads(files[f"{base}{name}.node/model.json"])["attributes"]

    def node_inputs(name):
        return [s["name"] for s in json.loads(files[f"{base}{name}.node/node.json"])["shape"]["inputs"]]

    cont = node_inputs("continuous_feature_assembler")
    std = np.array(model("continuous_feature_scaler")["std"]["double"])
    scaled = np.array([row[c] for c in cont], dtype=float) / std
    parts = []
    for col in node_inputs(assembler):
        if col == "scaled_continuous_features":
            parts.append(scaled)
        elif col.endswith("_index_oh"):
            raw = col[: -len("_index_oh")]
            index = model(f"string_indexer_{raw}")["labels"]["string"].index(row[raw])
            size = model(f"oh_encoder_{raw}_index")["size"]["long"]
            parts.append(np.eye(size + 1)[index][:size])
        else:
            raw = col[: -len("_index")]
            parts.append(np.array([model(f"string_indexer_{raw}")["labels"]["string"].index(row[raw])], dtype=float))
    return np.concatenate(parts)


def _walk(lines: list[str], pos: int, x: np.ndarray) -> tuple[float, int]:
    """Recursive pre-order walk of an MLeap tree.json: (prediction, position after the subtree)."""
    node = json.loads(lines[pos])
    if node["type"] == "leaf":
        return node["values"][0], pos + 1
    split = node["split"]
    value = x[split["featureIndex"]]
    if split["type"] == "continuous":
        go_left = value <= split["threshold"]
    else:
        go_left = (value in split["categories"]) == split["isLeft"]
    left, after_left = _walk(lines, pos + 1, x)
    right, after_right = _walk(lines, after_left, x)
    return (left if go_left else right), after_right


def test_airbnb_linear_regression_matches_numpy(corpus, airbnb):
    path = corpus / "mleap-reference" / "airbnb.model.lr.zip"
    files = _zip_files(path)
    lr = json.loads(files["root/linear_regression.node/model.json"])["attributes"]
    coef, intercept = np.array(lr["coefficients"]["double"]), lr["intercept"]["double"]
    expected = [float(_airbnb_inputs(files, r, "feature_assembler_lr") @ coef + intercept) for r in airbnb]

    model = scorer.load(ZipTree(path))
    assert model.framework == "mleap"
    single = [model.model.score_row(r)["price_prediction"] for r in airbnb]
    batch = model.predict(pd.DataFrame(airbnb))["price_prediction"].tolist()
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-9)
    via_load = loaders.load(path).predict(pd.DataFrame(airbnb))["price_prediction"].tolist()  # inspect + dispatch
    np.testing.assert_allclose(via_load, expected, rtol=0, atol=1e-9)
    assert model.predict(airbnb[0])["price_prediction"].iloc[0] == pytest.approx(expected[0], abs=TOL)
    # numeric labels are matched as Spark casts them to text: 1.0 -> "1.0"
    assert airbnb[0]["host_is_superhost"] == "1.0" and airbnb[0]["instant_bookable"] == "1.0"
    numeric = {**airbnb[0], "host_is_superhost": 1.0, "instant_bookable": np.float64(1.0)}
    assert model.model.score_row(numeric)["price_prediction"] == pytest.approx(expected[0], abs=TOL)
    assert model.predict(pd.DataFrame([numeric]))["price_prediction"][0] == pytest.approx(expected[0], abs=TOL)


def test_airbnb_random_forest_matches_tree_walk(corpus, airbnb):
    path = corpus / "mleap-reference" / "airbnb.model.rf.zip"
    files = _zip_files(path)
    rf = json.loads(files["root/rfr_5af14f58ae5f.node/model.json"])["attributes"]
    trees = [files[f"root/rfr_5af14f58ae5f.node/{t}/tree.json"].decode().splitlines() for t in rf["trees"]["string"]]
    expected = []
    for r in airbnb:
        x = _airbnb_inputs(files, r, "feature_assembler_rf")
        expected.append(sum(_walk(t, 0, x)[0] for t in trees) / len(trees))

    model = scorer.load(ZipTree(path))
    single = [model.model.score_row(r)["price_prediction"] for r in airbnb]
    batch = model.predict(pd.DataFrame(airbnb))["price_prediction"].tolist()
    np.testing.assert_allclose(single, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(batch, expected, rtol=0, atol=1e-9)


def test_demo_bundle_scaler_and_regression(corpus):
    files = _zip_files(corpus / "mleap-reference" / "demo.zip")
    attrs = {json.loads(v)["op"]: json.loads(v)["attributes"] for k, v in files.items() if k.endswith("model.json")}
    mean = np.array(attrs["standard_scaler"]["mean"]["double"])
    std = np.array(attrs["standard_scaler"]["std"]["double"])
    coef = np.array(attrs["linear_regression"]["coefficients"]["double"])
    intercept = attrs["linear_regression"]["intercept"]["double"]
    rows = [{"demo:a": a, "demo:c": c, "demo:d": d}
            for a, c, d in [(0.1, -1.0, 2.5), (3.0, 0.0, -0.5), (0.0, 0.0, 0.0)]]
    expected = [((np.array([r["demo:a"], r["demo:c"], r["demo:d"]]) - mean) / std) @ coef + intercept for r in rows]
    model = scorer.load(ZipTree(corpus / "mleap-reference" / "demo.zip"))
    out = model.predict(pd.DataFrame(rows))
    np.testing.assert_allclose(out["demo:prediction"], expected, rtol=0, atol=TOL)
    np.testing.assert_allclose([model.model.score_row(r)["demo:prediction"] for r in rows], expected, rtol=0, atol=TOL)


def test_min_max_scaler_bundle(corpus):
    files = _zip_files(corpus / "mleap-reference" / "min_max_scaler_tf.zip")
    attrs = json.loads(files["root/minMaxScal_b36e6ace4891.node/model.json"])["attributes"]
    lo, hi = np.array(attrs["min"]["double"]), np.array(attrs["max"]["double"])
    rows = [{"dti": 12.5, "loan_amount": 25000.0}, {"dti": -0.01, "loan_amount": 1200000.0}]
    model = scorer.load(ZipTree(corpus / "mleap-reference" / "min_max_scaler_tf.zip"))
    out = model.predict(pd.DataFrame(rows))
    for r, got in zip(rows, out["scaled_features"]):
        np.testing.assert_allclose(got, (np.array([r["dti"], r["loan_amount"]]) - lo) / (hi - lo), rtol=0, atol=TOL)


def test_one_hot_encoder_pipeline_keeps_unseen_labels(corpus):
    path = corpus / "mleap-reference" / "one_hot_encoder_pipeline.zip"
    files = _zip_files(path)
    indexer = next(json.loads(v)["attributes"] for k, v in files.items()
                   if k.endswith("model.json") and json.loads(v)["op"] == "string_indexer")
    labels = indexer["labels"]["string"]
    assert indexer["handle_invalid"]["string"] == "keep"
    model = scorer.load(ZipTree(path))
    values = labels + ["never-seen"]
    out = model.predict(pd.DataFrame({"col_1": values}))
    for v, idx, vec in zip(values, out["col_1_label_le"], out["col_1_label_one_hot_encoded"]):
        expected_idx = labels.index(v) if v in labels else len(labels)
        assert idx == expected_idx
        np.testing.assert_array_equal(vec, np.eye(len(labels) + 1)[expected_idx][: len(labels)])


def test_sagemaker_sdk_bundle_in_tar(corpus):
    tree = MappingTree(_tar_files(corpus / "sdk-sparkml-mleap" / "mleap_model.tar.gz"))
    summary = mleap_bundle.summarize(tree)
    assert summary["mleap_version"] == "0.10.0-SNAPSHOT"
    assert sorted(op["op"] for op in summary["ops"]) == ["one_hot_encoder", "one_hot_encoder", "pipeline",
                                                          "string_indexer", "string_indexer", "vector_assembler"]
    assert summary["inputs"] == ["Sex", "Embarked", "Pclass", "Age", "SibSp", "Fare"]
    assert summary["outputs"][-1] == "features"

    rows = [{"Sex": "male", "Embarked": "S", "Pclass": 3.0, "Age": 22.0, "SibSp": 1.0, "Fare": 7.25},
            {"Sex": "female", "Embarked": "Q", "Pclass": 1.0, "Age": 38.0, "SibSp": 0.0, "Fare": 71.28}]
    sex = {"male": [1.0], "female": [0.0]}
    embarked = {"S": [1.0, 0.0], "C": [0.0, 1.0], "Q": [0.0, 0.0]}
    model = scorer.load(tree)
    via_load = loaders.load(corpus / "sdk-sparkml-mleap" / "mleap_model.tar.gz")  # inspect + extract + dispatch
    assert via_load.report.layout == "sparkml-serving"
    for out in (model.predict(pd.DataFrame(rows)), via_load.predict(pd.DataFrame(rows))):
        for r, got in zip(rows, out["features"]):
            expected = [r["Pclass"], *sex[r["Sex"]], r["Age"], r["SibSp"], r["Fare"], *embarked[r["Embarked"]]]
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(ValueError, match="unseen"):
        model.predict({**rows[0], "Embarked": "X"})


def test_every_reference_bundle_reads_and_compiles(corpus):
    for path in sorted((corpus / "mleap-reference").glob("*.zip")):
        summary = mleap_bundle.summarize(ZipTree(path))
        assert summary["ops"] and summary["inputs"], path.name
        model = scorer.load(ZipTree(path))
        assert model.info["inputs"] == summary["inputs"]


def _old_style(value: dict) -> dict:
    """Re-encode a current-style attribute value the way MLeap <= 0.7 wrote it ({type, value})."""
    kind = value.get("type")
    if kind == "list":
        base = next(k for k in value if k != "type")
        return {"type": {"type": "list", "base": base}, "value": value[base]}
    if kind == "tensor":
        base = next(k for k in value if k not in ("type", "shape"))
        dims = [d["size"] for d in value["shape"]["dimensions"]]
        return {"type": {"type": "tensor", "tensor": {"base": base}},
                "value": {"values": value[base], "dimensions": dims}}
    (base, v), = value.items()
    return {"type": base, "value": v}


def test_old_style_attribute_encoding_scores_the_same(corpus, airbnb):
    files = _zip_files(corpus / "mleap-reference" / "airbnb.model.lr.zip")
    old = {}
    for name, data in files.items():
        if name.endswith("model.json"):
            m = json.loads(data)
            attrs = {k: _old_style(v) for k, v in m["attributes"].items() if k != "input_shapes"}
            data = json.dumps({"op": m["op"], "attributes": attrs}).encode()
        old[name] = data
    lr = json.loads(files["root/linear_regression.node/model.json"])["attributes"]
    inputs = _airbnb_inputs(files, airbnb[3], "feature_assembler_lr")
    expected = inputs @ np.array(lr["coefficients"]["double"]) + lr["intercept"]["double"]
    model = scorer.load(MappingTree(old))
    assert model.model.score_row(airbnb[3])["price_prediction"] == pytest.approx(expected, abs=TOL)


def test_unknown_op_is_not_loadable(corpus):
    files = _tar_files(corpus / "sdk-sparkml-mleap" / "mleap_model.tar.gz")
    name = "root/VectorAssembler_4791887787e56e13d677.node/model.json"
    files[name] = files[name].replace(b'"vector_assembler"', b'"made_up_op"')
    with pytest.raises(NotLoadable, match="made_up_op"):
        scorer.load(MappingTree(files))


def test_damaged_bundles_raise_artifact_errors(corpus):
    path = corpus / "mleap-reference" / "airbnb.model.rf.zip"
    good = _zip_files(path)
    with pytest.raises(CorruptArtifact):
        ZipTree(path.read_bytes()[:-200])
    with pytest.raises(NotAnArtifact):
        mleap_bundle.read_bundle(MappingTree({k: v for k, v in good.items() if k != "bundle.json"}))
    tree_name = "root/rfr_5af14f58ae5f.node/tree3/tree.json"
    cut = dict(good, **{tree_name: b"\n".join(good[tree_name].splitlines()[:-2])})
    with pytest.raises(CorruptArtifact, match="before its decision tree is complete"):
        scorer.load(MappingTree(cut))
    listed_only = MappingTree({k: v for k, v in good.items() if k != tree_name}, sizes={tree_name: 10})
    with pytest.raises(CorruptArtifact, match="cannot be read"):
        scorer.load(listed_only)
    proto = dict(good, **{"bundle.json": good["bundle.json"].replace(b'"json"', b'"protobuf"')})
    with pytest.raises(NotLoadable, match="protobuf"):
        scorer.load(MappingTree(proto))
    # random truncations and byte flips of every JSON file: an ArtifactError or a clean load, nothing else
    rng = random.Random(3)
    json_names = [n for n in good if n.endswith(".json")]
    for _ in range(300):
        name = rng.choice(json_names)
        data = bytearray(good[name])
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            scorer.load(MappingTree(dict(good, **{name: bytes(data)})))
        except ArtifactError:
            pass


# --- Spark pipelines exported with our writer, scored with our scorer, compared to Spark ---------

INF = float("inf")
COLUMNS = ["id", "cat", "cat2", "x", "y", "z", "k", "label", "label3", "target"]
SCHEMA = ("id long, cat string, cat2 string, x double, y double, z double, k double, label double, label3 double, "
          "target double")


def _make_rows(n: int, seed: int, unseen: bool) -> list[tuple]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        cat = rng.choice(["a", "b", "c", "d"] + (["zzz"] if unseen else []))
        cat2 = rng.choice(["p", "q", "r"] + (["qq"] if unseen else []))
        x, y = rng.gauss(0, 1), rng.uniform(0, 10)
        z = None if rng.random() < 0.15 else rng.gauss(5, 2)
        k = float(rng.choice([0, 1, 2] + ([5] if unseen else [])))
        label = 1.0 if x + (cat in "ab") - 0.3 * y / 10 + rng.gauss(0, 0.5) > 0.4 else 0.0
        label3 = float((cat in "ab") + (x > 0.2))
        target = 2.0 * x + y + (3.0 if cat == "c" else 0.0) + rng.gauss(0, 0.3)
        rows.append((i, cat, cat2, x, y, z, k, label, label3, target))
    return rows


def _spark_rows(df) -> dict[int, dict]:
    out = {}
    for r in df.collect():
        d = r.asDict()
        out[d["id"]] = {k: (np.asarray(v.toArray()) if hasattr(v, "toArray") else v) for k, v in d.items()}
    return out


def _assert_same(ours: pd.DataFrame, spark: dict[int, dict], columns: list[str]) -> None:
    assert sorted(ours["id"].tolist()) == sorted(spark)
    for _, row in ours.iterrows():
        expected = spark[row["id"]]
        for c in columns:
            np.testing.assert_allclose(np.asarray(row[c], dtype=float), np.asarray(expected[c], dtype=float),
                                       rtol=0, atol=TOL, err_msg=f"column {c}, row {row['id']}")


@pytest.fixture(scope="module")
def fitted(spark, tmp_path_factory):
    """One Spark pipeline with every supported stage, fitted and saved; plus held-back rows."""
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import (
        DecisionTreeClassifier,
        GBTClassifier,
        LogisticRegression,
        RandomForestClassifier,
    )
    from pyspark.ml.feature import (
        Bucketizer,
        Imputer,
        MinMaxScaler,
        OneHotEncoder,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )
    from pyspark.ml.regression import DecisionTreeRegressor, GBTRegressor, LinearRegression, RandomForestRegressor

    train = spark.createDataFrame(_make_rows(300, 1, unseen=False), SCHEMA).cache()
    features = [
        StringIndexer(inputCols=["cat", "cat2"], outputCols=["cat_idx", "cat2_idx"], handleInvalid="keep"),
        OneHotEncoder(inputCols=["cat_idx", "k"], outputCols=["cat_oh", "k_oh"], handleInvalid="keep", dropLast=False),
        OneHotEncoder(inputCol="cat2_idx", outputCol="cat2_oh"),
        Imputer(inputCols=["z"], outputCols=["z_imp"], strategy="median"),
        Bucketizer(splits=[-INF, 2.5, 5.0, 7.5, INF], inputCol="y", outputCol="y_b"),
        VectorAssembler(inputCols=["x", "y", "z_imp", "y_b", "cat_oh", "k_oh", "cat2_oh"], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="std", withMean=True, withStd=True),
        MinMaxScaler(inputCol="std", outputCol="mm", min=-1.0, max=2.0),
        VectorAssembler(inputCols=["cat_idx", "cat2_idx", "x", "y", "z_imp"], outputCol="tfeat"),
    ]
    predictors = [
        LinearRegression(featuresCol="mm", labelCol="target", predictionCol="lin_pred"),
        LogisticRegression(featuresCol="mm", labelCol="label", predictionCol="blr_pred",
                           probabilityCol="blr_prob", rawPredictionCol="blr_raw", threshold=0.4, maxIter=5),
        LogisticRegression(featuresCol="mm", labelCol="label3", family="multinomial", predictionCol="mlr_pred",
                           probabilityCol="mlr_prob", rawPredictionCol="mlr_raw", regParam=0.01,
                           maxIter=5),
        DecisionTreeRegressor(featuresCol="tfeat", labelCol="target", predictionCol="dtr_pred", maxDepth=4),
        RandomForestRegressor(featuresCol="tfeat", labelCol="target", predictionCol="rfr_pred", numTrees=3, maxDepth=4,
                              seed=3),
        GBTRegressor(featuresCol="tfeat", labelCol="target", predictionCol="gbtr_pred", maxIter=3, maxDepth=3, seed=3),
        DecisionTreeClassifier(featuresCol="tfeat", labelCol="label3", predictionCol="dtc_pred",
                               probabilityCol="dtc_prob", rawPredictionCol="dtc_raw", maxDepth=4),
        RandomForestClassifier(featuresCol="tfeat", labelCol="label3", predictionCol="rfc_pred",
                               probabilityCol="rfc_prob", rawPredictionCol="rfc_raw", numTrees=3, maxDepth=4, seed=3),
        GBTClassifier(featuresCol="tfeat", labelCol="label", predictionCol="gbtc_pred", maxIter=3, maxDepth=3, seed=3)
        .setProbabilityCol("gbtc_prob").setRawPredictionCol("gbtc_raw"),
    ]
    feature_model = Pipeline(stages=features).fit(train)
    prepared = feature_model.transform(train).cache()
    model = PipelineModel(feature_model.stages + [p.fit(prepared) for p in predictors])
    root = tmp_path_factory.mktemp("spark_mleap")
    model.write().save(str(root / "pipeline"))
    test_rows = _make_rows(80, 2, unseen=True)
    return {"model": model, "dir": root / "pipeline", "root": root, "rows": test_rows,
            "frame": pd.DataFrame(test_rows, columns=COLUMNS), "sdf": spark.createDataFrame(test_rows, SCHEMA)}


OUTPUTS = ["cat_idx", "cat2_idx", "cat_oh", "k_oh", "cat2_oh", "z_imp", "y_b", "raw", "std", "mm", "lin_pred",
           "blr_raw", "blr_prob", "blr_pred", "mlr_raw", "mlr_prob", "mlr_pred", "tfeat", "dtr_pred", "rfr_pred",
           "gbtr_pred", "dtc_raw", "dtc_prob", "dtc_pred", "rfc_raw", "rfc_prob", "rfc_pred", "gbtc_raw", "gbtc_prob",
           "gbtc_pred"]


def test_exported_pipeline_matches_spark_transform(fitted):
    bundle = exporter.export_pipeline(fitted["dir"], fitted["root"] / "pipeline.zip")
    model = scorer.load(ZipTree(bundle))
    assert set(OUTPUTS) <= set(model.model.output_columns)
    expected = _spark_rows(fitted["model"].transform(fitted["sdf"]))
    _assert_same(model.predict(fitted["frame"]), expected, OUTPUTS)  # vectorized path
    for row in fitted["frame"].to_dict("records")[:25]:  # single-row path
        got = model.model.score_row(row)
        for c in OUTPUTS:
            np.testing.assert_allclose(np.asarray(got[c], dtype=float), np.asarray(expected[row["id"]][c], dtype=float),
                                       rtol=0, atol=TOL, err_msg=c)
    assert any(v == "zzz" for v in fitted["frame"]["cat"]) and any(v == 5.0 for v in fitted["frame"]["k"])


def test_bundle_follows_mleap_encodings(fitted, tmp_path):
    out = exporter.export_pipeline(fitted["dir"], tmp_path / "bundle", form="dir")
    files = DirTree(out)
    info = json.loads(files.read("bundle.json"))
    assert info["format"] == "json" and info["name"] == fitted["model"].uid
    root = json.loads(files.read("root/model.json"))
    assert root["op"] == "pipeline"
    nodes = root["attributes"]["nodes"]["string"]
    models = {n: json.loads(files.read(f"root/{n}.node/model.json")) for n in nodes}
    shapes = {n: json.loads(files.read(f"root/{n}.node/node.json"))["shape"] for n in nodes}
    by_op: dict[str, list[str]] = {}
    for n in nodes:
        by_op.setdefault(models[n]["op"], []).append(n)
    # multi-column StringIndexer -> one node per column, MLeap's labels_length/labels_array_i encoding
    assert len(by_op["string_indexer"]) == 2
    si = models[by_op["string_indexer"][0]]["attributes"]
    assert si["labels_length"] == {"int": 1} and si["handle_invalid"] == {"string": "keep"}
    assert si["labels_array_0"]["type"] == "list"
    assert [s["port"] for s in shapes[by_op["string_indexer"][0]]["inputs"]] == ["input"]
    # OneHotEncoder keeps the multi-column form with input0.. ports and int category sizes
    ohe = [n for n in by_op["one_hot_encoder"] if len(shapes[n]["inputs"]) == 2][0]
    assert [s["port"] for s in shapes[ohe]["inputs"]] == ["input0", "input1"]
    assert models[ohe]["attributes"]["category_sizes"]["type"] == "list"
    assert models[ohe]["attributes"]["category_sizes"]["int"][0] == len(fitted["model"].stages[0].labelsArray[0]) + 1
    # Bucketizer infinities are null in JSON; multinomial coefficients are a 2-D column-major tensor
    splits = models[by_op["bucketizer"][0]]["attributes"]["splits"]["double"]
    assert splits[0] is None and splits[-1] is None
    lrs = {n: models[n]["attributes"] for n in by_op["logistic_regression"]}
    multi = next(a for a in lrs.values() if "coefficient_matrix" in a)
    cm = fitted["model"].stages[11].coefficientMatrix
    dims = [d["size"] for d in multi["coefficient_matrix"]["shape"]["dimensions"]]
    assert dims == [cm.numRows, cm.numCols]
    np.testing.assert_array_equal(multi["coefficient_matrix"]["double"], cm.toArray().flatten(order="F"))
    assert next(a for a in lrs.values() if "coefficients" in a)["threshold"] == {"double": 0.4}
    # vector assembler input shapes carry the sizes of the assembled vectors
    va = models[by_op["vector_assembler"][0]]["attributes"]["input_shapes"]["data_shape"]
    assert va[0] == {"base": "scalar", "isNullable": True}
    # cat_oh: StringIndexer(keep) gives labels + 1 categories; OneHotEncoder(keep, dropLast=False) adds one
    assert va[4]["tensorShape"]["dimensions"][0]["size"] == len(fitted["model"].stages[0].labelsArray[0]) + 2
    # ensembles: tree sub-model folders; classifier trees keep class counts; categorical splits present
    rf = by_op["random_forest_classifier"][0]
    assert models[rf]["attributes"]["trees"]["string"] == [f"tree{i}" for i in range(3)]
    sub = json.loads(files.read(f"root/{rf}.node/tree0/model.json"))
    assert sub["op"] == "decision_tree_classifier" and sub["attributes"]["num_classes"] == {"long": 3}
    gbt = by_op["gbt_classifier"][0]
    assert json.loads(files.read(f"root/{gbt}.node/tree1/model.json"))["op"] == "decision_tree_regression"
    np.testing.assert_allclose(models[gbt]["attributes"]["tree_weights"]["double"],
                               fitted["model"].stages[17].treeWeights)
    trees = [files.read(n).decode() for n in files.names() if n.endswith("tree.json")]
    assert any('"categorical"' in t for t in trees)
    ports = [s["port"] for s in shapes[by_op["decision_tree_classifier"][0]]["outputs"]]
    assert ports == ["raw_prediction", "probability", "prediction"]
    # both forms load to the same scorer outputs
    a = scorer.load(files).predict(fitted["frame"].head(10))
    zipped = ZipTree(exporter.export_pipeline(fitted["dir"], tmp_path / "b.zip"))
    b = scorer.load(zipped).predict(fitted["frame"].head(10))
    np.testing.assert_array_equal(a["rfc_prob"].tolist(), b["rfc_prob"].tolist())


def _sub_pipeline(fitted, indexes: list[int], spark_stage_edits: dict[int, tuple[str, str]], name: str):
    """Some stages of the fitted pipeline, with params changed on copies; saved, exported, loaded."""
    from pyspark.ml import PipelineModel

    stages = []
    for i in indexes:
        s = fitted["model"].stages[i]
        if i in spark_stage_edits:
            s = s.copy()
            s.set(s.getParam(spark_stage_edits[i][0]), spark_stage_edits[i][1])
        stages.append(s)
    pm = PipelineModel(stages)
    path = fitted["root"] / name
    pm.write().save(str(path))
    return pm, scorer.load(ZipTree(exporter.export_pipeline(path, fitted["root"] / f"{name}.zip")))


def test_string_indexer_skip_drops_the_same_rows_as_spark(fitted):
    # (the one-hot encoders were fitted on 'keep' indexes, so Spark refuses them behind a 'skip' indexer)
    pm, model = _sub_pipeline(fitted, [0, 3, 4, 8, 13], {0: ("handleInvalid", "skip")}, "skip")
    expected = _spark_rows(pm.transform(fitted["sdf"]))
    assert len(expected) < len(fitted["rows"])  # unseen labels were dropped
    ours = model.predict(fitted["frame"])
    _assert_same(ours, expected, ["cat_idx", "cat2_idx", "tfeat", "rfr_pred"])
    kept = [model.model.score_row(r) for r in fitted["frame"].to_dict("records")]
    assert sorted(r["id"] for r in kept if r is not None) == sorted(expected)


@pytest.mark.parametrize("indexes, stage, bad_column, bad_value, compare", [
    ([0, 3, 4, 8, 13], 0, "cat", "zzz", ["tfeat", "rfr_pred"]),  # StringIndexer error on an unseen label
    ([0, 1], 1, "k", 5.0, ["cat_oh", "k_oh"]),  # OneHotEncoder error on an unseen index
])
def test_error_mode_raises_like_spark(spark, fitted, indexes, stage, bad_column, bad_value, compare):
    pm, model = _sub_pipeline(fitted, indexes, {stage: ("handleInvalid", "error")}, f"error{stage}")
    frame = fitted["frame"]
    bad = frame[frame[bad_column] == bad_value].head(3)
    good = frame[(frame["cat"] != "zzz") & (frame["cat2"] != "qq") & (frame["k"] != 5.0)]
    with pytest.raises(Exception) as spark_error:
        pm.transform(spark.createDataFrame(bad)).collect()
    assert str(bad_value).removesuffix(".0") in str(spark_error.value)
    with pytest.raises(ValueError):
        model.predict(bad)
    with pytest.raises(ValueError):
        model.predict(bad.to_dict("records")[0])
    _assert_same(model.predict(good), _spark_rows(pm.transform(spark.createDataFrame(good))), compare)


@pytest.mark.parametrize("mode", ["keep", "skip", "error"])
def test_bucketizer_invalid_values_like_spark(spark, tmp_path, mode):
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import Bucketizer

    spark_error = (PySparkException, Py4JJavaError)  # what Spark raises for a failed job, by version
    pm = PipelineModel([Bucketizer(splits=[0.0, 1.0, 2.5, 4.0], inputCol="v", outputCol="b", handleInvalid=mode)])
    pm.write().save(str(tmp_path / "b"))
    model = scorer.load(ZipTree(exporter.export_pipeline(tmp_path / "b", tmp_path / "b.zip")))
    values = [(0, 0.0), (1, 1.0), (2, 3.9), (3, 4.0), (4, float("nan")), (5, 2.5)]
    frame = pd.DataFrame(values, columns=["id", "v"])
    sdf = spark.createDataFrame(values, "id long, v double")
    if mode == "error":
        with pytest.raises(spark_error):
            pm.transform(sdf).collect()
        with pytest.raises(ValueError, match="NaN"):
            model.predict(frame)
        return
    _assert_same(model.predict(frame), _spark_rows(pm.transform(sdf)), ["b"])
    with pytest.raises(spark_error):
        pm.transform(spark.createDataFrame([(9, 7.0)], "id long, v double")).collect()
    with pytest.raises(ValueError, match="outside"):
        model.predict({"id": 9, "v": 7.0})


def test_sparkml_serving_layout_and_schema(fitted, tmp_path):
    result = exporter.write_sparkml_serving(fitted["dir"], tmp_path / "serving")
    assert sorted(p.name for p in (tmp_path / "serving").iterdir()) == ["model.tar.gz", "sparkml_schema.json"]
    files = _tar_files(result.archive)
    assert "bundle.json" in files and "root/model.json" in files  # bundle unzipped at the archive root
    schema = json.loads(result.schema_path.read_text())
    assert schema == json.loads(result.environment["SAGEMAKER_SPARKML_SCHEMA"]) == result.schema
    types = {f["name"]: (f["type"], f.get("struct", "basic")) for f in schema["input"]}
    assert types == {"cat": ("string", "basic"), "cat2": ("string", "basic"), "k": ("double", "basic"),
                     "z": ("double", "basic"), "y": ("double", "basic"), "x": ("double", "basic")}
    assert schema["output"] == {"name": "gbtc_pred", "type": "double"}
    probs = exporter.write_sparkml_serving(fitted["dir"], tmp_path / "s2", output_column="rfc_prob").schema["output"]
    assert probs == {"name": "rfc_prob", "type": "double", "struct": "vector"}
    model = scorer.load(MappingTree(files))
    expected = _spark_rows(fitted["model"].transform(fitted["sdf"]))
    head = fitted["frame"].head(5)
    _assert_same(model.predict(head), {i: expected[i] for i in head["id"]}, ["gbtc_pred", "rfc_prob"])


def test_outputs_are_atomic_and_refuse_to_clobber_folders(fitted, tmp_path):
    target = tmp_path / "out" / "bundle.zip"
    exporter.export_pipeline(fitted["dir"], target)
    first = target.read_bytes()
    exporter.export_pipeline(fitted["dir"], target)  # replaced atomically
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == zipfile.ZipFile(target).namelist()
    assert sorted(p.name for p in target.parent.iterdir()) == ["bundle.zip"]  # no temp files left
    exporter.export_pipeline(fitted["dir"], tmp_path / "out" / "dir", form="dir")
    with pytest.raises(ArtifactError, match="already exists"):
        exporter.export_pipeline(fitted["dir"], tmp_path / "out" / "dir", form="dir")
    assert sorted(p.name for p in target.parent.iterdir()) == ["bundle.zip", "dir"]


def test_unsupported_spark_stage_is_named(spark, tmp_path):
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import Normalizer

    PipelineModel([Normalizer(inputCol="v", outputCol="n")]).write().save(str(tmp_path / "n"))
    with pytest.raises(NotLoadable, match="Normalizer"):
        exporter.export_pipeline(tmp_path / "n", tmp_path / "n.zip")
    assert not (tmp_path / "n.zip").exists()
    with pytest.raises(NotAnArtifact):
        exporter.export_pipeline(tmp_path / "missing", tmp_path / "m.zip")


def test_logistic_threshold_edges_do_not_overflow():
    """Extreme margins must give probabilities 0/1 like the JVM, not OverflowError."""
    attrs = {"num_classes": {"long": 2},
             "coefficients": {"double": [1000.0], "shape": {"dimensions": [{"size": 1, "name": ""}]}, "type": "tensor"},
             "intercept": {}, "threshold": {"double": 0.5}}
    files = {
        "bundle.json": b'{"uid": "u", "name": "p", "format": "json", "version": "0.25.2", "timestamp": "t"}',
        "root/node.json": b'{"name": "p", "shape": {"inputs": [], "outputs": []}}',
        "root/model.json": b'{"op": "pipeline", "attributes": {"nodes": {"string": ["lr"], "type": "list"}}}',
        "root/lr.node/node.json": json.dumps({"name": "lr", "shape": {
            "inputs": [{"name": "f", "port": "features"}],
            "outputs": [{"name": "p", "port": "probability"}, {"name": "y", "port": "prediction"}]}}).encode(),
        "root/lr.node/model.json": json.dumps({"op": "logistic_regression", "attributes": attrs}).encode(),
    }
    model = scorer.load(MappingTree(files))
    assert model.model.score_row({"f": [1.0]})["p"] == [0.0, 1.0]
    assert model.model.score_row({"f": [-1.0]})["y"] == 0.0
    out = model.predict(pd.DataFrame({"f": [[1.0], [-1.0]]}))
    np.testing.assert_array_equal(np.stack(out["p"]), [[0.0, 1.0], [1.0, 0.0]])
    assert math.isclose(out["y"][0], 1.0)


# --- k_means, rows without names, sample inputs, loadable (issue 11) --------------------------------------------


def _kmeans_corpus_facts(folder: Path) -> tuple[list[str], np.ndarray]:
    """The pipeline's input columns and the KMeans centres, read here with json from the bundle's own files."""
    root = folder / "model" / "root"
    nodes = json.loads((root / "model.json").read_text())["attributes"]["nodes"]["string"]
    ops = {n: json.loads((root / f"{n}.node" / "model.json").read_text())["op"] for n in nodes}
    assembler = [n for n in nodes if ops[n] == "vector_assembler"]
    kmeans = [n for n in nodes if ops[n] == "k_means"]
    assert len(assembler) == 1 and len(kmeans) == 1
    shape = json.loads((root / f"{assembler[0]}.node" / "node.json").read_text())["shape"]
    inputs = [s["name"] for s in shape["inputs"]]
    attrs = json.loads((root / f"{kmeans[0]}.node" / "model.json").read_text())["attributes"]
    centres = np.array([t["double"] for t in attrs["cluster_centers"]["tensor"]])
    return inputs, centres


def test_kmeans_corpus_bundle_matches_nearest_centre(corpus, tmp_path):
    folder = corpus / "mleap-kmeans-folder"
    inputs, centres = _kmeans_corpus_facts(folder)
    assert centres.shape[1] == len(inputs)
    rng = np.random.default_rng(4)
    # rows around each centre and between them, so that every centre wins some rows
    x = np.concatenate([c + rng.normal(scale=0.05, size=(40, len(inputs))) for c in centres]
                       + [rng.uniform(centres.min(0), centres.max(0), size=(40, len(inputs)))])
    expected = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    assert len(set(expected)) == len(centres)
    loaded = loaders.load(folder)  # inspect (the stale nodes and .DS_Store are not in the pipeline) + load
    assert loaded.framework == "mleap" and loaded.report.loadable
    frame = pd.DataFrame(x, columns=inputs)
    got = loaded.predict(frame)["prediction"].to_numpy()
    np.testing.assert_array_equal(got, expected)
    for row, want in zip(frame.to_dict("records")[:30], expected):
        assert loaded.model.score_row(row)["prediction"] == want
    # rows without names: a header-less CSV maps onto the input columns in order (CLI)
    from artifact_tools.cli import main

    bare = tmp_path / "rows.csv"
    bare.write_text("\n".join(",".join(repr(v) for v in r) for r in x[:10]) + "\n")
    import contextlib
    import io as _io

    buf = _io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["load", str(folder), "--predict", str(bare)]) == 0
    assert [r["prediction"] for r in json.loads(buf.getvalue())] == expected[:10].tolist()
    sample = loaded.sample_input()
    assert list(sample.columns) == inputs
    assert len(loaded.predict(sample)["prediction"]) == len(sample)


def test_kmeans_op_from_spark_matches_spark(spark, tmp_path):
    """A Spark KMeans pipeline exported by our writer and scored by our k_means op against Spark's transform."""
    from pyspark.ml import Pipeline
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import VectorAssembler

    rng = np.random.default_rng(8)
    centres = rng.normal(scale=4, size=(4, 3))
    rows = [tuple(float(v) for v in centres[i % 4] + rng.normal(size=3)) for i in range(200)]
    df = spark.createDataFrame(rows, "p double, q double, r double")
    model = Pipeline(stages=[VectorAssembler(inputCols=["p", "q", "r"], outputCol="f"),
                             KMeans(k=4, seed=2, featuresCol="f", predictionCol="cluster")]).fit(df)
    model.write().save(str(tmp_path / "km"))
    test = [tuple(float(v) for v in rng.normal(scale=5, size=3)) for _ in range(150)]
    scored = model.transform(spark.createDataFrame(test, "p double, q double, r double")).collect()
    want = np.array([r["cluster"] for r in scored])
    bundle = scorer.load(ZipTree(exporter.export_pipeline(tmp_path / "km", tmp_path / "km.zip")))
    got = bundle.predict(pd.DataFrame(test, columns=["p", "q", "r"]))["cluster"].to_numpy()
    np.testing.assert_array_equal(got, want)
    node = [n for n in mleap_bundle.read_bundle(ZipTree(tmp_path / "km.zip")).nodes() if n.op == "k_means"][0]
    assert node.attributes["num_features"] == 3 and len(node.attributes["cluster_centers"]) == 4
    cosine = Pipeline(stages=[VectorAssembler(inputCols=["p", "q", "r"], outputCol="f"),
                              KMeans(k=2, seed=2, featuresCol="f", distanceMeasure="cosine")]).fit(df)
    cosine.write().save(str(tmp_path / "cos"))
    with pytest.raises(NotLoadable, match="cosine"):
        exporter.export_pipeline(tmp_path / "cos", tmp_path / "cos.zip")


def test_lone_vector_bundle_assembles_numeric_columns(spark, tmp_path):
    from pyspark.ml import PipelineModel
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(9)
    x = rng.normal(size=(60, 5))
    df = spark.createDataFrame([(Vectors.dense(r),) for r in x], ["features"])
    km = KMeans(k=3, seed=1).fit(df)
    PipelineModel([km]).write().save(str(tmp_path / "km"))
    want = np.array([r["prediction"] for r in km.transform(df).collect()])
    bundle = scorer.load(ZipTree(exporter.export_pipeline(tmp_path / "km", tmp_path / "km.zip")))
    np.testing.assert_array_equal(bundle.predict(x)["prediction"].to_numpy(), want)  # an array
    np.testing.assert_array_equal(bundle.predict(pd.DataFrame(x, columns=list("vwxyz")))["prediction"].to_numpy(), want)
    rows = [dict(zip("vwxyz", r)) for r in x.tolist()]
    np.testing.assert_array_equal(bundle.predict(rows)["prediction"].to_numpy(), want)
    with pytest.raises(ValueError, match=r"features \(a vector of 5 numbers\)"):
        bundle.predict(x[:, :4])


def test_scorer_ops_are_the_ops_inspection_calls_loadable():
    assert set(scorer._OPS) | {"pipeline"} == mleap_bundle.SCORED_OPS


def test_unsupported_op_makes_inspection_say_not_loadable(corpus, tmp_path):
    import shutil

    import artifact_tools

    work = tmp_path / "bundle"
    shutil.copytree(corpus / "mleap-kmeans-folder", work)
    used = json.loads((work / "model" / "root" / "model.json").read_text())["attributes"]["nodes"]["string"]
    model_json = work / "model" / "root" / f"{[n for n in used if n.startswith('KMeans')][0]}.node" / "model.json"
    model_json.write_text(model_json.read_text().replace('"k_means"', '"gaussian_mixture"'))
    summary = mleap_bundle.summarize(DirTree(work))
    assert summary["unsupported_ops"] == ["gaussian_mixture"]
    reason = mleap_bundle.not_loadable_reason(summary)
    assert "'gaussian_mixture'" in reason and reason.count(". ") == 0
    report = artifact_tools.inspect(work)
    assert report.loadable is False and report.not_loadable_reason == reason
    with pytest.raises(NotLoadable, match="gaussian_mixture"):
        loaders.load(work)


def test_protobuf_bundle_is_reported_not_loadable(corpus):
    files = _zip_files(corpus / "mleap-reference" / "airbnb.model.lr.zip")
    files["bundle.json"] = files["bundle.json"].replace(b'"json"', b'"protobuf"')
    summary = mleap_bundle.summarize(MappingTree(files))
    assert summary["serialization"] == "protobuf" and "protobuf" in mleap_bundle.not_loadable_reason(summary)


@pytest.mark.parametrize("entry", ["sdk-sparkml-mleap/mleap_model.tar.gz", "mleap-reference/airbnb.model.lr.zip",
                                   "mleap-reference/airbnb.model.rf.zip", "mleap-reference/demo.zip",
                                   "mleap-reference/min_max_scaler_tf.zip",
                                   "mleap-reference/one_hot_encoder_pipeline.zip", "mleap-kmeans-folder"])
def test_sample_input_predicts_on_corpus_bundles(corpus, entry):
    loaded = loaders.load(corpus / entry)
    sample = loaded.sample_input()
    assert len(sample) >= 1 and set(loaded.model.input_columns) <= set(sample.columns)
    out = loaded.predict(sample)
    assert len(out) == len(sample) and set(loaded.model.output_columns) <= set(out.columns)
    for op in loaded.model._ops:  # string inputs are labels the bundle's own indexers know
        if isinstance(op, scorer._StringIndexer):
            for ic, _, table, _ in op.cols:
                if ic in sample.columns:
                    assert set(sample[ic]) <= set(table)
