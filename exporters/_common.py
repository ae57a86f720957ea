"""What every export target shares: the result and its verification checks, typed options, sample inputs,
prediction comparison, and wrapping a live model as a LoadedModel. Private: targets import it, users go
through :mod:`exporters`.

Verification samples: the user's ``sample=``, else the loaded artifact's own ``sample_input()`` (built by its
loader from the artifact's metadata), else rows generated for the width a live model declares. When none can be
had, the export is written without a prediction check and ``verification.json`` says why in one sentence
(``unverified``), unless the target needs a sample to write its output at all (:func:`build_needs_sample`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from artifact_tools.errors import ArtifactError
from loaders.base import LoadedModel, parse_options

VERIFICATION_FILE = "verification.json"
SAMPLE_ROWS = 5
SAMPLE_TEXTS = ["a great movie", "the movie is awful", "good", "bad movie", "the movie is a good movie"]
DEFAULT_RTOL, DEFAULT_ATOL = 1e-4, 1e-5

OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class SampleOptions:
    """The option every target takes: ``sample`` (inputs to verify the export with)."""

    sample: Any = field(default=None, metadata={
        "describe": "rows to verify with: an array, DataFrame, list of texts or a .csv/.json/.npy path "
                    "(default: the artifact's own sample input)"})


@dataclass(frozen=True)
class ExportOptions(SampleOptions):
    """Options of the targets with fixed default tolerances: ``sample`` and ``rtol``/``atol`` (the tolerances of
    the comparison). A target whose defaults depend on the converter (onnx) declares its own."""

    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL


def target_options(cls: type[OptionsT], options: dict, target: str) -> OptionsT:
    """``cls`` (a target's options dataclass) from keyword arguments; an unknown name is refused with one
    sentence naming the known ones, text values (``-o KEY=VALUE``) are converted to the field's type."""
    return parse_options(cls, options, f"the {target} target")


class ExportVerificationFailed(ArtifactError):
    """The exported output did not give the source model's predictions; nothing was published."""


@dataclass
class Check:
    """One verification step: what was re-opened and how, and whether it matched the source predictions."""

    name: str
    passed: bool
    detail: str
    max_abs_diff: float | None = None


@dataclass
class ExportResult:
    target: str
    framework: str
    output: Path
    files: list[str] = field(default_factory=list)  # what was written, relative to ``output``
    checks: list[Check] = field(default_factory=list)
    samples: int = 0
    facts: dict = field(default_factory=dict)  # target facts: image URI, environment, docker command, commit...
    notes: list[str] = field(default_factory=list)
    # why no prediction was compared (no sample given and none could be built), or None when one was
    unverified: str | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["output"] = str(self.output)
        d["passed"] = self.passed
        return d

    def summary(self) -> str:
        lines = [f"exported {self.framework} model to {self.target}: {self.output}",
                 f"verification: {'PASSED' if self.passed else 'FAILED'} on {self.samples} sample input(s)"]
        if self.unverified:
            state = ("NOT RUN" if not self.checks else "PASSED without predictions" if self.passed else "FAILED")
            lines[1] = f"verification: {state}: {self.unverified}"
        for c in self.checks:
            diff = f" (max |diff| {c.max_abs_diff:.3g})" if c.max_abs_diff is not None else ""
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}{diff}")
        for key, value in self.facts.items():
            if isinstance(value, (str, int, float)):
                lines.append(f"{key}: {value}")
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"report: {self.output / VERIFICATION_FILE}")
        return "\n".join(lines)

    def write(self, folder: Path) -> None:
        """Save the report as ``verification.json`` in ``folder`` (the staged output)."""
        (folder / VERIFICATION_FILE).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    def require_passed(self) -> None:
        """Raise :class:`ExportVerificationFailed` unless every check passed; an export that could not be
        verified for want of a sample (``unverified``) passes when no check failed."""
        if self.unverified and all(c.passed for c in self.checks):
            return
        if not self.passed:
            failed = "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.passed) or "no check ran"
            raise ExportVerificationFailed(f"the {self.target} export does not reproduce the source predictions "
                                           f"({failed}); nothing was written to {self.output}")


# ------------------------------------------------------------------------------------------------ live models

def _roots(obj: Any) -> set[str]:
    return {c.__module__.split(".")[0] for c in type(obj).__mro__}


def as_loaded(obj: Any) -> LoadedModel:
    """Wrap a model trained in this process as a LoadedModel (a LoadedModel is returned as is)."""
    import numpy as np

    if isinstance(obj, LoadedModel):
        return obj
    roots = _roots(obj)
    if "xgboost" in roots:
        import xgboost as xgb

        booster = obj if isinstance(obj, xgb.Booster) else obj.get_booster()
        note = {} if booster is obj else {"note": "the scikit-learn wrapper's Booster is exported; it predicts "
                                                  "probabilities/margins as the SageMaker XGBoost container does"}

        def predict_xgb(data):
            return booster.predict(xgb.DMatrix(np.asarray(data, dtype=np.float32), missing=np.nan))

        return LoadedModel(booster, "xgboost", predict_xgb, info=note)
    if "transformers" in roots and hasattr(obj, "task") and hasattr(obj, "model"):
        return LoadedModel(obj, "huggingface", lambda data: _pipeline_rows(obj, data), info={"task": obj.task})
    if "torch" in roots and hasattr(obj, "state_dict"):
        import torch

        def predict_torch(data):
            with torch.no_grad():
                return obj.eval()(torch.as_tensor(np.asarray(data, dtype=np.float32))).numpy()

        return LoadedModel(obj, "pytorch", predict_torch, info={"kind": "module"})
    if roots & {"keras", "tf_keras", "tensorflow"}:
        return LoadedModel(obj, "tensorflow", lambda data: np.asarray(obj(np.asarray(data, dtype=np.float32))),
                           info={"kind": "keras"})
    if "mxnet" in roots:
        import mxnet as mx

        return LoadedModel(obj, "mxnet", lambda data: obj(mx.nd.array(np.asarray(data, dtype=np.float32))).asnumpy(),
                           info={"kind": "gluon"})
    if hasattr(obj, "predict") and hasattr(obj, "get_params"):  # the scikit-learn estimator API
        return LoadedModel(obj, "sklearn", lambda data: obj.predict(data), info={})
    raise ArtifactError(f"artifact-tools cannot export a {type(obj).__module__}.{type(obj).__name__}; pass an "
                        "artifact path or a scikit-learn, XGBoost, Keras, PyTorch, Gluon or transformers model")


def _pipeline_rows(pipe: Any, data: Any):
    """A transformers pipeline's answers for texts as a DataFrame (one row per text for text-classification)."""
    import pandas as pd

    texts = [data] if isinstance(data, str) else list(data)
    out = pipe(texts)
    return pd.DataFrame([o[0] if isinstance(o, list) else o for o in out])


# ------------------------------------------------------------------------------------------------ samples

def sample_inputs(loaded: LoadedModel, sample: Any = None, rows: int = SAMPLE_ROWS) -> Any:
    """Inputs to verify an export with (see :func:`verification_sample`); ArtifactError when there are none."""
    samples, missing = verification_sample(loaded, sample, rows)
    if samples is None:
        raise ArtifactError(f"{missing}; pass sample=<rows> (an array, or a .csv/.json/.npy file) to verify the "
                            "export")
    return samples


def verification_sample(loaded: LoadedModel, sample: Any = None, rows: int = SAMPLE_ROWS) -> tuple[Any, str | None]:
    """``(inputs, None)`` to verify an export with, or ``(None, sentence)`` saying why there are none.

    The inputs are ``sample`` (an object, or a .csv/.json/.npy path) when given; else the loaded artifact's own
    :meth:`~loaders.base.LoadedModel.sample_input` (built from its metadata by the loader); else, for a model
    trained in this process, generated rows (seeded normal values) of the width the model declares, or fixed
    texts for a transformers pipeline.
    """
    if sample is not None:
        if isinstance(sample, (str, os.PathLike)):
            import loaders

            return loaders.read_input(str(sample)), None
        return sample, None
    reason = None
    if loaded.sample_fn is not None:
        try:
            return loaded.sample_input(), None
        except ArtifactError as e:
            reason = str(e).rstrip(".")
    generated = _generated_rows(loaded, rows)
    if generated is not None:
        return generated, None
    return None, reason or (f"no sample input can be built for this {loaded.framework} model: it declares no "
                            "input shape, feature names or schema")


def signature_sample(loaded: LoadedModel, samples: Any) -> Any:
    """``samples`` in the form the exported SavedModel's signature takes: for a TensorFlow signature that parses
    serialized ``tf.Example`` protos (estimator exports), feature values become those protos (the loader builds
    them as its ``predict`` does); anything else unchanged."""
    if samples is None or loaded.framework != "tensorflow" or not loaded.info.get("example_features"):
        return samples
    from loaders.tensorflow import serialized_examples

    return serialized_examples(loaded, samples)


def build_needs_sample(loaded: LoadedModel, target: str) -> str | None:
    """Why the ``target`` output of ``loaded`` cannot be written without sample inputs, or None when it can (then
    only its verification needs them). The SageMaker layouts (``sagemaker``, ``git``) trace a PyTorch module
    into TorchScript and export a Gluon block after a forward pass, both on the sample rows; a SavedModel written
    from a live Keras model (``sagemaker``, ``git``, ``tf-serving``) or a Hugging Face model (``tf-serving``)
    gets a serving signature shaped like the sample."""
    fw, model = loaded.framework, loaded.model
    from_artifact = loaded.report is not None and loaded.info.get("model_dir") is not None
    if target in ("sagemaker", "git"):
        if fw == "pytorch" and "ScriptModule" not in {c.__name__ for c in type(model).__mro__}:
            return "tracing the network into TorchScript runs it on sample rows"
        if fw == "mxnet":
            return "the Gluon block is exported after one forward pass on sample rows"
    if fw == "tensorflow" and not from_artifact:
        return "the SavedModel's serving signature takes the shape of the sample rows"
    if fw == "huggingface" and target == "tf-serving":
        return "the SavedModel's serving signature takes the shape of the tokenized sample texts"
    return None


def require_sample_for_build(loaded: LoadedModel, target: str, missing: str | None) -> None:
    """Raise one sentence when ``target`` cannot be written for ``loaded`` without the sample that is ``missing``
    (``verification_sample``'s sentence)."""
    need = build_needs_sample(loaded, target)
    if need is not None:
        raise ArtifactError(f"{missing or 'no sample input was given'}, and the {target} export needs one: {need}; "
                            "pass sample=<rows> (an array, or a .csv/.json/.npy file)")


def _generated_rows(loaded: LoadedModel, rows: int) -> Any:
    """Seeded rows of the width a model trained in this process declares; None when it declares none."""
    import numpy as np

    if loaded.framework == "huggingface":
        return SAMPLE_TEXTS[:rows]
    rng = np.random.default_rng(0)
    shape = input_shape(loaded)
    if shape is None:
        return None
    if isinstance(shape, dict):
        return {k: rng.normal(size=(rows, *s)).astype(np.float32) for k, s in shape.items()}
    data = rng.normal(size=(rows, *shape))
    names = getattr(loaded.model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        return pd.DataFrame(data, columns=list(names))
    return data.astype(np.float32) if loaded.framework != "sklearn" else data


def input_shape(loaded: LoadedModel) -> tuple | dict | None:
    """The shape of one input row (without the batch dimension), or a dict of them; None when unknown."""
    model, fw = loaded.model, loaded.framework
    if fw == "sklearn":
        n = getattr(model, "n_features_in_", None)
        return (int(n),) if n else None
    if fw == "xgboost":
        return (int(model.num_features()),)
    if fw == "tensorflow":
        return _tf_input_shape(loaded)
    if fw in ("pytorch", "mxnet"):
        shapes = loaded.info.get("input_shapes")  # model-shapes.json: [{"name": ..., "shape": [batch, ...]}]
        if isinstance(shapes, list) and len(shapes) == 1 and isinstance(shapes[0], dict):
            return tuple(shapes[0]["shape"][1:])
        return _first_dense_width(model, fw)
    return None


def _tf_input_shape(loaded: LoadedModel):
    inputs = loaded.info.get("inputs")
    if inputs is None and hasattr(loaded.model, "inputs") and loaded.model.inputs:
        inputs = {t.name: {"shape": list(t.shape)} for t in loaded.model.inputs}
    if not inputs:
        return None
    shapes = {}
    for name, spec in inputs.items():
        shape = spec.get("shape")
        if shape is None:  # unknown rank: one value per row
            shapes[name] = ()
        elif any(d is None or d < 0 for d in shape[1:]):
            return None
        else:
            shapes[name] = tuple(shape[1:])
    return next(iter(shapes.values())) if len(shapes) == 1 else shapes


def _first_dense_width(model: Any, fw: str) -> tuple | None:
    """Input width of a network whose first layer is dense (the second axis of its first 2-D weight)."""
    if fw == "pytorch":
        params = [p for _, p in model.named_parameters()] if hasattr(model, "named_parameters") else []
        first = params[0] if params else None
        return (int(first.shape[1]),) if first is not None and first.dim() == 2 else None
    params = list(model.collect_params().values()) if hasattr(model, "collect_params") else []
    first = params[0] if params else None
    shape = getattr(first, "shape", None)
    return (int(shape[1]),) if shape and len(shape) == 2 and shape[1] else None


# ------------------------------------------------------------------------------------------------ comparison

def compare(expected: Any, actual: Any, rtol: float = DEFAULT_RTOL,
            atol: float = DEFAULT_ATOL) -> tuple[bool, float | None, str]:
    """Whether ``actual`` predictions equal ``expected`` ones: (passed, max |difference| for numbers, sentence).

    Numbers match within ``rtol``/``atol`` after dropping length-1 axes; DataFrames column by column (texts
    exactly); dicts key by key.
    """
    import numpy as np

    if hasattr(expected, "columns"):
        import pandas as pd

        frame = actual if hasattr(actual, "columns") else pd.DataFrame(actual)
        worst: float | None = None
        for col in expected.columns:
            if col not in frame.columns:
                return False, None, f"the output has no column {col!r}"
            ok, diff, why = compare(expected[col].to_numpy(), frame[col].to_numpy(), rtol, atol)
            if not ok:
                return False, diff, f"column {col!r}: {why}"
            worst = diff if worst is None else max(worst, diff or 0.0)
        return True, worst, f"{len(expected)} row(s) and {len(expected.columns)} column(s) match"
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            got = sorted(actual) if isinstance(actual, dict) else type(actual).__name__
            return False, None, f"expected outputs {sorted(expected)}, got {got}"
        results = [compare(expected[k], actual[k], rtol, atol) for k in expected]
        bad = [(k, r) for k, r in zip(expected, results) if not r[0]]
        diffs = [r[1] for r in results if r[1] is not None]
        if bad:
            return False, bad[0][1][1], f"output {bad[0][0]!r}: {bad[0][1][2]}"
        return True, max(diffs) if diffs else None, f"{len(expected)} output(s) match"
    exp, act = np.asarray(expected), np.asarray(actual)
    if exp.dtype.kind not in "biuf" or act.dtype.kind not in "biuf":
        same = exp.shape == act.shape and bool(np.all(exp.astype(str) == act.astype(str)))
        shown = ", ".join(f"{e!r} vs {a!r}" for e, a in list(zip(exp.ravel().tolist(), act.ravel().tolist()))[:3])
        return same, None, "values are identical" if same else f"values differ (expected vs got: {shown}...)"
    exp_s, act_s = _squeezed(exp), _squeezed(act)
    if exp_s.shape != act_s.shape:
        return False, None, f"shape {act.shape} differs from the source's {exp.shape}"
    diff = float(np.max(np.abs(exp_s.astype(np.float64) - act_s.astype(np.float64)))) if exp_s.size else 0.0
    ok = bool(np.allclose(act_s.astype(np.float64), exp_s.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True))
    return ok, diff, (f"{exp_s.size} value(s) match" if ok else f"values differ beyond rtol={rtol:g}, atol={atol:g}")


def _squeezed(a):
    shape = tuple(d for d in a.shape if d != 1)
    return a.reshape(shape)


def check(name: str, expected: Any, actual: Any, rtol: float, atol: float, how: str) -> Check:
    """Compare and describe as a :class:`Check` (``how``: what was re-opened, e.g. 'xgboost-model via ...')."""
    ok, diff, why = compare(expected, actual, rtol, atol)
    return Check(name, ok, f"{how}; {why}", diff)


