"""The serial inference pipeline's rule, shared by ``serve --pipeline``, the endpoint's pipeline models and
``transform --pipeline``: SageMaker's inference pipelines (developer guide "Host models along with pre-processing
logic as serial inference pipeline behind one endpoint"; API reference ``CreateModel``: ``Containers``, at most 5
items) pass each container's response body, with its content type, to the next container as its request, and answer
with the last one's response. Here a model without its own inference code answers an intermediate step as CSV, or as
JSON where CSV cannot carry its output, and the next model reads that body as the codec decodes a request.

Kept apart from :mod:`artifact_tools.endpoint` so that a transform job imports the rule without the HTTP server."""

from __future__ import annotations

from typing import Any

from . import codec
from .errors import ArtifactError

MAX_PIPELINE = 5  # models (containers) in one inference pipeline: CreateModel's Containers, at most 5 items


def between(out: Any) -> tuple[bytes, str]:
    """An intermediate pipeline answer: CSV, or JSON where CSV cannot carry the output."""
    try:
        return codec.encode(out, codec.CSV)
    except codec.NotAcceptable:
        return codec.encode(out, codec.JSON)


def call_input(model: Any, request: codec.Request) -> Any:
    """What ``model.predict`` is given for a decoded ``request``: its data; for a Hugging Face model and a request
    that gives call parameters (``"parameters"``, or MLflow's ``"params"``), ``{"inputs": data, "parameters": ...}``,
    which its predict passes to the pipeline call as keywords, as the SageMaker Hugging Face Inference Toolkit does
    (``handler_service.predict``: ``self.model(inputs, **parameters)``). Other models take no call parameters, and
    theirs are left out. TensorFlow Serving's ``signature_name`` names the signature a TensorFlow model answers
    with: one other than the signature it was loaded with is refused, as TensorFlow Serving refuses a signature the
    model does not have, rather than answered by another."""
    params = dict(request.params)
    wanted = params.pop("signature_name", None)
    info = getattr(model, "info", None)
    if wanted is not None and getattr(model, "framework", None) == "tensorflow" and isinstance(info, dict) \
            and info.get("signature") and wanted != info["signature"]:
        raise ArtifactError(f"the request asks for signature {str(wanted)[:80]!r}, and this model answers with "
                            f"{info['signature']!r} (loaded with the option signature={info['signature']}; CLI: -o "
                            "signature=NAME)")
    if params and getattr(model, "framework", None) == "huggingface":
        return {"inputs": request.data, "parameters": params}
    return request.data


def chain_predict(models: list, data: Any, style: Any = None) -> tuple[Any, Any]:
    """Run ``data`` through ``models`` in order, as a serial inference pipeline: each model's predictions, encoded
    as a response body (:func:`between`) and decoded as the next model's request, are its input. Returns the last
    model's predictions and the request style they answer (the last decoded request's)."""
    out = None
    for i, model in enumerate(models):
        out = model.predict(data)
        if i + 1 < len(models):
            body, ctype = between(out)
            request = codec.decode(body, ctype, f"the response of pipeline model {i + 1}")
            data, style = request.data, request.style
    return out, style
