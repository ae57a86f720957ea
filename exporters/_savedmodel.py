"""Saving and running TensorFlow SavedModels the way TensorFlow Serving loads them. Private: shared by the
``tf-serving`` target and the TensorFlow layout of the ``sagemaker`` target.

Keras models (Keras 3 and tf-keras) and Hugging Face TensorFlow models are saved with an explicit
``serving_default`` signature (``tf.TensorSpec`` inputs with a free batch dimension). A SavedModel is run the
way the server's C++ loader runs it: loaded into a fresh graph and session with its ``serve`` tag
(``tf.compat.v1.saved_model.loader.load``), the signature's tensors fed and fetched by name
(tensorflow/serving ``tensorflow_serving/servables/tensorflow/``; ``tensorflow/python/saved_model/loader_impl.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from artifact_tools.errors import ArtifactError

__all__ = ["SERVING_SIGNATURE", "run_signature", "save_with_signature", "signature_inputs"]

SERVING_SIGNATURE = "serving_default"


def _tf():
    import tensorflow as tf

    return tf


# ---------------------------------------------------------------------------------------------- saving

def save_with_signature(model: Any, path: Path, samples: Any) -> None:
    """Save a Keras model (Keras 3 or tf-keras) or a Hugging Face TF model as a SavedModel at ``path`` whose
    ``serving_default`` signature takes batches shaped like ``samples`` (float32; int32 token ids for HF)."""
    tf = _tf()
    roots = {c.__module__.split(".")[0] for c in type(model).__mro__}
    if "transformers" in roots:
        _save_hf(tf, model, path)
        return
    if isinstance(samples, dict):
        specs = {k: tf.TensorSpec([None, *np.shape(v)[1:]], tf.float32, name=k) for k, v in samples.items()}
    else:
        specs = {"inputs": tf.TensorSpec([None, *np.shape(samples)[1:]], tf.float32, name="inputs")}
    if "keras" in roots and "tf_keras" not in roots:  # Keras 3: its export archive tracks the variables
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        if len(specs) == 1:
            (name, spec), = specs.items()
            archive.add_endpoint(SERVING_SIGNATURE, lambda inputs: {"outputs": model(inputs, training=False)},
                                 input_signature=[spec])
        else:
            archive.add_endpoint(SERVING_SIGNATURE, lambda inputs: {"outputs": model(inputs, training=False)},
                                 input_signature=[specs])
        archive.write_out(str(path), verbose=False)
        return
    if len(specs) == 1:
        (name, spec), = specs.items()
        serve = tf.function(lambda inputs: {"outputs": model(inputs, training=False)}, input_signature=[spec])
    else:
        serve = tf.function(lambda **inputs: {"outputs": model(inputs, training=False)},
                            input_signature=[]).get_concrete_function(**specs)
    tf.saved_model.save(model, str(path), signatures={SERVING_SIGNATURE: serve})


def _save_hf(tf, model: Any, path: Path) -> None:
    specs = {"input_ids": tf.TensorSpec([None, None], tf.int32, name="input_ids"),
             "attention_mask": tf.TensorSpec([None, None], tf.int32, name="attention_mask")}

    @tf.function(input_signature=[specs])
    def serve(inputs):
        return {"logits": model(inputs, training=False).logits}

    tf.saved_model.save(model, str(path), signatures={SERVING_SIGNATURE: serve.get_concrete_function()})


# ---------------------------------------------------------------------------------------------- running

def run_signature(saved_model_dir: Path, signature: str, inputs: Any) -> Any:
    """Run ``signature`` of the SavedModel in a fresh graph and session, as TensorFlow Serving does; ``inputs`` is
    an array (single-input signatures) or a dict by input name. One output: an array; several: a dict."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # the v1 loader (what TF Serving uses) logs a deprecation notice
        try:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(saved_model_dir))
        finally:
            logger.setLevel(level)
        if signature not in meta.signature_def:
            raise ArtifactError(f"the SavedModel has no signature {signature!r} "
                                f"({', '.join(sorted(meta.signature_def))})")
        sig = meta.signature_def[signature]
        names = list(sig.inputs)
        values = inputs if isinstance(inputs, dict) else {names[0]: inputs} if len(names) == 1 else None
        if values is None or set(values) != set(names):
            raise ArtifactError(f"signature {signature!r} takes {', '.join(names)}")
        feed = {graph.get_tensor_by_name(sig.inputs[k].name):
                np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v,
                           dtype=tf.as_dtype(sig.inputs[k].dtype).as_numpy_dtype) for k, v in values.items()}
        fetch = {k: graph.get_tensor_by_name(t.name) for k, t in sig.outputs.items()}
        out = session.run(fetch, feed)
    return next(iter(out.values())) if len(out) == 1 else out


def signature_inputs(saved_model_dir: Path, signature: str) -> list[str]:
    from artifact_tools.formats import savedmodel

    summary = savedmodel.summarize((saved_model_dir / "saved_model.pb").read_bytes())
    for graph in summary.get("meta_graphs") or []:
        if "serve" in graph.get("tags", []) and signature in graph.get("signatures", {}):
            return list(graph["signatures"][signature]["inputs"])
    raise ArtifactError(f"the SavedModel in {saved_model_dir} has no {signature!r} signature for the serve tag")
