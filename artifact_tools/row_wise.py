"""Which loaded models answer each row of a call on its own -- bit for bit what the row gets alone, whatever other
rows share the call (Hugging Face text classifiers: to float32 rounding, see ``ROW_WISE_TASKS``) --, so that requests
(``serve``) or records (``transform``, which leaves the text classifiers out) may be predicted together and the
answers split back. One rule for both: a request's or a record's answer must not depend on its neighbours.

Decided from the loaded model's framework, its audit and the classes it is made of; nothing is called, and no
framework is imported here.
"""

from __future__ import annotations

from typing import Any

# Frameworks whose ``predict`` answers each row on its own, whatever else is in the call: their tree ensembles and
# linear boosters read one row at a time (XGBoost's ``predict`` and ``inplace_predict`` -- gbtree, dart, gblinear --,
# LightGBM's and CatBoost's numeric ``predict``: measured bit-equal, 64 rows alone against in one call);
# scikit-learn only for the estimators of ``EXACT_SKLEARN`` below. Not listed, so never batched: models with their
# own inference code (``invoke_fn``), Spark and MLeap pipelines (their transformers may aggregate), TensorFlow,
# PyTorch and MXNet networks (batch-dependent layers, and float results that move with the batch's size), built-in
# algorithms, ONNX and anything unknown.
ROW_WISE = frozenset({"sklearn", "xgboost", "lightgbm", "catboost"})
# Hugging Face pipelines whose answer is one row per input text. A transformers pipeline called with a list of texts
# and no ``batch_size`` runs the model on each text alone (``Pipeline.__call__``: batch_size 1, no padding), which
# gives exactly the answers of single calls but saves little (16 texts of the benchmark's DistilBERT-shaped
# classifier: 31 ms in one call, 37 ms in 16). So a batch of texts is run as the pipeline's own padded batches
# (``batch_size``, at most ``serve.TEXT_BATCH``; the loader passes ``{"inputs", "parameters"}`` through): 20 ms for
# those 16 texts. The decision, measured on that model: padding joins texts into one tensor, and a text's scores then
# differ from its single-call scores by float32 rounding only (at most 6e-8, the labels equal); the attention mask
# keeps the padding itself out of every text's answer -- so a model whose tokenizer gives no attention mask is never
# padded (``serve._Batcher``; measured 1.6e-4 on a small classifier). The texts of one request run so too, by length
# (``serve._Batcher.predict_alone``, the loader's ``_by_length``). Where exact single-call answers matter,
# ``--max-batch-rows 0``.
ROW_WISE_TASKS = frozenset({"text-classification", "sentiment-analysis"})
# scikit-learn models batch only when every estimator in them answers a row with the same bits in any batch: the
# trees and tree ensembles (each row walks its trees alone; the forests' averages and the boosted sums add per
# row), elementwise scalers, imputers and encoders, Pipelines and ColumnTransformers of those, and the XGBoost and
# LightGBM scikit-learn wrappers (their boosters, as above). Not the linear models, SVMs, neural networks, k-means
# or anything else computed with BLAS matrix products: those move in the last bits with the batch (a 1-row call
# takes another kernel than a 64-row one; measured with LinearRegression and LogisticRegression, scikit-learn 1.x
# on OpenBLAS: half of 64 rows differed), so a request's answer would depend on its neighbours. Module -> class
# names (None: every class of the module).
EXACT_SKLEARN: dict[str, frozenset | None] = {
    "sklearn.tree._classes": None,
    "sklearn.ensemble._forest": None,
    "sklearn.ensemble._iforest": None,
    "sklearn.ensemble._gb": None,  # with a constant (Dummy) initial estimator only, see rows_exact
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting": None,
    "sklearn.dummy": None,
    "sklearn.preprocessing._data": frozenset({"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler",
                                              "Binarizer"}),
    "sklearn.impute._base": frozenset({"SimpleImputer", "MissingIndicator"}),
    "sklearn.preprocessing._encoders": frozenset({"OneHotEncoder", "OrdinalEncoder"}),
    "xgboost.sklearn": None,
    "lightgbm.sklearn": None,
}


def batchable(loaded_model: Any) -> bool:
    """Whether requests to ``loaded_model`` may be predicted together (rows concatenated, one ``predict``, the
    answer split back by request): a framework in ``ROW_WISE`` (or a Hugging Face pipeline of a task in
    ``ROW_WISE_TASKS``) whose load ran nothing beyond allowlisted types -- no trust finding of the audit applies on
    load (``on_load``), so no class of the artifact's own, whose ``predict`` could look at the whole batch, is in
    the model; inference code the artifact carries but the server does not run (no ``--trust``) is no obstacle --
    and that is not served through inference code of its own (``invoke_fn``)."""
    if getattr(loaded_model, "invoke_fn", None) is not None:
        return False
    trust = getattr(getattr(loaded_model, "report", None), "trust", None)
    if not isinstance(trust, dict) or not isinstance(trust.get("members"), list):
        return False  # not loaded from an audited artifact
    for member in trust["members"]:
        if any(not isinstance(f, dict) or (f.get("level") != "safe" and f.get("on_load", True))
               for f in member.get("findings") or ()):
            return False
    framework = getattr(loaded_model, "framework", None)
    if framework == "huggingface":
        info = getattr(loaded_model, "info", None)
        return isinstance(info, dict) and info.get("task") in ROW_WISE_TASKS
    if framework == "sklearn":
        return rows_exact(getattr(loaded_model, "model", None))
    return framework in ROW_WISE


def rows_exact(estimator: Any, depth: int = 0) -> bool:
    """Whether a scikit-learn ``estimator`` is made only of the estimators of ``EXACT_SKLEARN`` (told by class,
    nothing called): Pipeline steps and ColumnTransformer transformers looked into."""
    if depth > 16:
        return False
    kind = type(estimator)
    module, name = kind.__module__, kind.__name__
    if (module, name) == ("sklearn.pipeline", "Pipeline"):
        steps = getattr(estimator, "steps", None)
        return isinstance(steps, list) and all(
            isinstance(step, str) and step == "passthrough" or step is None or rows_exact(step, depth + 1)
            for _, step in steps)
    if (module, name) == ("sklearn.compose._column_transformer", "ColumnTransformer"):
        parts = getattr(estimator, "transformers_", None)
        return isinstance(parts, list) and all(
            isinstance(part, str) and part in ("drop", "passthrough") or rows_exact(part, depth + 1)
            for _, part, *_ in parts)
    if module not in EXACT_SKLEARN:
        return False
    names = EXACT_SKLEARN[module]
    if names is not None and name not in names:
        return False
    if module == "sklearn.ensemble._gb":  # its initial estimator: a constant, or a model of its own
        init = getattr(estimator, "init_", None)
        return isinstance(init, str) or type(init).__module__ == "sklearn.dummy"
    return True
