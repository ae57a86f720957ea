"""TensorFlow 1 SavedModels to ONNX, run as a script in a child process by :mod:`exporters.onnx` (TensorFlow's graph
state stays in that process): ``python _tf1_onnx.py REQUEST.json``. Imports only TensorFlow and tf2onnx, so it
runs by path without the project on ``sys.path``. Private to :mod:`exporters.onnx`.

Why not ``python -m tf2onnx.convert --saved-model``: for a TF 1 SavedModel (no object graph) tf2onnx 1.x loads
with TensorFlow 2's v1 wrapper (``tf.saved_model.load``, tf2onnx ``tf_loader._from_saved_model_v2``), which prunes
*every* signature of the MetaGraph into a function first (tensorflow ``python/saved_model/load_v1_in_v2.py``
``_extract_signatures``) and fails on any it cannot prune, whichever one was asked for: TensorFlow Serving's
``saved_model_half_plus_two`` (a ``regress`` signature feeding a scalar string to ``ParseExample``) fails with
"Shape must be rank 1 but is rank 0".

What this does instead, as TensorFlow 1 serving does: load the MetaGraph into a ``tf.compat.v1.Session``
(``tf.compat.v1.saved_model.loader.load``), freeze the variables into constants (tf2onnx
``tf_loader.freeze_session``), then cut the graph at the signature's input tensors: a tensor that is not itself a
``Placeholder`` output (``x = tf.identity(parsed["x"])`` in half_plus_two) becomes a ``Placeholder`` of its dtype
and static shape, so what computed it (``ParseExample`` of the serialized protos) is pruned
(``tf.compat.v1.graph_util.extract_sub_graph``). With ``examples`` (a signature taking serialized ``tf.Example``
protos), the cut is at the dense outputs of the ``ParseExample``/``ParseExampleV2`` op instead, one input per
feature named after it: ONNX has no proto parser, so the ONNX model takes the feature values (outputs of
``ParseExample`` in order: sparse indices, values and shapes, ``Nsparse`` each, then the ``Ndense`` dense
values; ``ParseExampleV2`` likewise with ``num_sparse``: tensorflow ``core/ops/parsing_ops.cc``).
``tf2onnx.convert.from_graph_def`` converts the rest, graph inputs and outputs renamed to the signature's keys
(``tensors_to_rename``), as the tf2onnx CLI names them.

The request (JSON): ``folder``, ``tags``, ``signature``, ``output`` (the .onnx path), ``opset`` (or null),
``examples`` (bool). On failure the script prints one line ``ERROR: <sentence>`` on stdout and exits 1.
"""

from __future__ import annotations

import json
import re
import sys

_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")  # TensorFlow's node name rule (framework/graph.cc)


class Refused(Exception):
    """A SavedModel this conversion does not take, said in one sentence."""


def _placeholder(tf, node, dtype, shape) -> None:
    """Turn the NodeDef ``node`` into a Placeholder of ``dtype`` and ``shape`` (a TensorShape)."""
    name = node.name
    node.Clear()
    node.name = name
    node.op = "Placeholder"
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["shape"].shape.CopyFrom(shape.as_proto())


def _cut(tf, graph_def, cuts: dict[str, tuple]) -> dict[str, str]:
    """Make each tensor of ``cuts`` (tensor name -> (new node name, dtype, shape)) a Placeholder; returns the
    tensor names now fed (old name -> new tensor name)."""
    nodes = {n.name: n for n in graph_def.node}
    fed: dict[str, str] = {}
    for tensor, (new_name, dtype, shape) in cuts.items():
        op_name, _, index = tensor.partition(":")
        node = nodes.get(op_name)
        if node is None:
            raise Refused(f"the signature's tensor {tensor} is not in the frozen graph")
        if node.op == "Placeholder" and index in ("", "0"):
            fed[tensor] = f"{op_name}:0"
            continue
        if index in ("", "0") and new_name == op_name:
            _placeholder(tf, node, dtype, shape)
        else:  # another output of a node (ParseExample's dense values): a new Placeholder, its readers rewired
            if new_name in nodes:
                raise Refused(f"the graph already has a node named {new_name}")
            placeholder = graph_def.node.add()
            placeholder.name = new_name
            _placeholder(tf, placeholder, dtype, shape)
            nodes[new_name] = placeholder
            refs = {tensor} | ({op_name} if index in ("", "0") else set())
            for other in graph_def.node:
                for i, inp in enumerate(other.input):
                    if inp in refs:
                        other.input[i] = new_name
        fed[tensor] = f"{new_name}:0"
    return fed


def _example_cuts(tf, graph, placeholder, used: set[str]) -> dict[str, tuple]:
    """The dense outputs of the ParseExample op reading ``placeholder``: tensor name -> (feature's node name,
    dtype, shape of a batch of it)."""
    for op in placeholder.consumers():
        if op.type == "ParseExample":
            n_sparse, n_dense = op.get_attr("Nsparse"), op.get_attr("Ndense")
            key_tensors = list(op.inputs[2 + n_sparse:2 + n_sparse + n_dense])
        elif op.type == "ParseExampleV2":
            n_sparse = op.get_attr("num_sparse")
            key_tensors = [op.inputs[3]]
            n_dense = len(op.get_attr("Tdense"))
        else:
            continue
        with tf.compat.v1.Session(graph=graph) as sess:
            values = sess.run(key_tensors)
        keys = [k for v in values for k in (v.reshape(-1).tolist() if hasattr(v, "reshape") else [v])]
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in keys][:n_dense]
        cuts = {}
        for j, key in enumerate(keys):
            out = op.outputs[3 * n_sparse + j]
            name = key if _NAME.match(key) and key not in used else f"feature_{j}"
            cuts[out.name] = (name, out.dtype, out.shape, key)
        return cuts
    raise Refused("the signature takes serialized tf.Example protos but no ParseExample op reads them")


def convert(request: dict) -> dict:
    import tensorflow as tf
    import tf2onnx  # type: ignore[import-untyped]  # (no type information published)
    from tf2onnx import tf_loader

    folder, signature = request["folder"], request["signature"]
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, request.get("tags") or ["serve"], folder)
        if signature not in meta.signature_def:
            raise Refused(f"the SavedModel has no signature {signature!r}")
        sig = meta.signature_def[signature]
        inputs = {k: graph.get_tensor_by_name(v.name) for k, v in sig.inputs.items() if v.name}
        outputs = {k: v.name for k, v in sig.outputs.items() if v.name}
        if len(inputs) != len(sig.inputs) or len(outputs) != len(sig.outputs):
            raise Refused(f"signature {signature!r} uses sparse or composite tensors, which tf2onnx does not take")
        used = {n.name for n in graph.as_graph_def().node}
        if request.get("examples"):
            (placeholder,) = inputs.values()
            cuts = _example_cuts(tf, graph, placeholder, used)
            renames = {f"{name}:0": key for _, (name, _, _, key) in cuts.items()}
            cut_specs = {t: (name, dtype, shape) for t, (name, dtype, shape, _) in cuts.items()}
        else:
            cut_specs = {t.name: (t.op.name if t.value_index == 0 else f"{t.op.name}_{t.value_index}", t.dtype,
                                  t.shape) for t in inputs.values()}
            renames = {}
        frozen = tf_loader.freeze_session(sess, input_names=[], output_names=list(outputs.values()))
    fed = _cut(tf, frozen, cut_specs)
    if not request.get("examples"):
        by_tensor = {t.name: k for k, t in inputs.items()}
        renames = {new: by_tensor[old] for old, new in fed.items()}
    frozen = tf.compat.v1.graph_util.extract_sub_graph(frozen, [n.split(":")[0] for n in outputs.values()])
    input_names = list(fed.values())
    renames.update({tensor: key for key, tensor in outputs.items()})
    tf2onnx.convert.from_graph_def(frozen, input_names=input_names, output_names=list(outputs.values()),
                                   opset=request.get("opset"), tensors_to_rename=renames,
                                   output_path=request["output"])
    return {"inputs": [renames.get(n, n) for n in input_names], "outputs": list(outputs)}


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        request = json.load(f)
    try:
        done = convert(request)
    except Refused as e:
        print(f"ERROR: {e}")
        return 1
    except Exception as e:  # TensorFlow and tf2onnx raise many types for one cause: the graph does not convert
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        print(f"ERROR: tf2onnx cannot convert the SavedModel: {type(e).__name__}: {(lines or [''])[0][:300]}")
        return 1
    print("DONE " + json.dumps(done))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
