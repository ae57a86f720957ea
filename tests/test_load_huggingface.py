"""Hugging Face loader: the tiny BERT of ``scripts/make_samples.py`` with safetensors, pytorch_model.bin and
TensorFlow weights. Expected values come from transformers itself: the model class and tokenizer loaded
directly from the extracted folder, run by hand (tokenize, forward, softmax)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import loaders  # noqa: E402
from artifact_tools.errors import ArtifactError, TrustRequired  # noqa: E402
from artifact_tools.filetree import DirTree  # noqa: E402
from artifact_tools.formats import huggingface as hf_format  # noqa: E402
from artifact_tools.inspection import inspect  # noqa: E402
from artifact_tools.report import ModelInfo, Report  # noqa: E402
from loaders import huggingface as hf_loader  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
import make_samples  # noqa: E402

TEXTS = ["good movie", "the movie is awful", "a great great movie", "bad"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return make_samples.build_huggingface(tmp_path_factory.mktemp("hf-sample"))


@pytest.fixture(scope="module")
def folder(sample, tmp_path_factory) -> Path:
    """The sample's files, extracted with tarfile (not through artifact-tools)."""
    dest = tmp_path_factory.mktemp("hf-folder")
    with tarfile.open(sample) as t:
        t.extractall(dest, filter="data")
    return dest


def _copy_tokenizer(src: Path, dest: Path) -> None:
    for name in TOKENIZER_FILES:
        shutil.copy(src / name, dest / name)


def _expected(model, folder: Path, tf: bool = False, texts: list[str] = TEXTS):
    """Top label and its probability per text, computed by hand from logits (each text alone)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    labels, scores = [], []
    for text in texts:
        enc = tokenizer(text, return_tensors="tf" if tf else "pt")
        if tf:
            logits = model(**enc).logits.numpy()[0]
        else:
            with torch.no_grad():
                logits = model(**enc).logits.numpy()[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        labels.append(model.config.id2label[int(p.argmax())])
        scores.append(float(p.max()))
    return labels, np.array(scores)


def _check(out, labels, scores):
    assert list(out.columns) == ["label", "score"]
    assert out["label"].tolist() == labels
    np.testing.assert_allclose(out["score"].to_numpy(), scores, rtol=1e-5)


def test_safetensors_sample_matches_the_model_run_directly(sample, folder):
    model = loaders.load(sample)
    assert model.framework == "huggingface"
    assert model.info["task"] == "text-classification" and model.info["framework"] == "pt"
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    labels, scores = _expected(direct, folder)
    _check(model.predict(TEXTS), labels, scores)
    _check(model.predict(TEXTS[0]), labels[:1], scores[:1])
    _check(model.predict({"inputs": TEXTS}), labels, scores)  # the SageMaker toolkit's JSON body
    pd = pytest.importorskip("pandas")
    _check(model.predict(pd.DataFrame({"text": TEXTS, "id": range(len(TEXTS))})), labels, scores)


def test_padded_batches_answer_each_text_in_its_own_order(sample, folder):
    """Texts sent with a ``batch_size`` (as ``serve`` runs several texts) go through the pipeline in padded batches,
    which the loader fills with texts of like length: the answers still come back in the texts' order, each the
    text's own answer (computed alone, by hand) to float32 rounding."""
    texts = [" ".join(["good", "bad", "movie", "great", "awful", "plot"][(i + j) % 6] for j in range(1 + (i * 7) % 13))
             for i in range(11)]
    assert len({len(t) for t in texts}) > 5 and sorted(texts, key=len) != texts
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    labels, scores = _expected(direct, folder, texts=texts)
    assert len({round(s, 6) for s in scores}) > 5  # a text given another's answer would show
    model = loaders.load(sample)
    _check(model.predict({"inputs": texts, "parameters": {"batch_size": 3}}), labels, scores)


def _both_labels(model, folder: Path, text: str) -> list:
    """[(label, probability)] of both labels for ``text``, most probable first, computed by hand from the logits."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits.numpy()[0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return sorted(((model.config.id2label[i], float(p[i])) for i in range(len(p))), key=lambda x: -x[1])


def test_call_parameters_reach_the_pipeline_in_serve_and_transform(sample, folder, tmp_path):
    """A request's ``"parameters"`` (the body the SageMaker Hugging Face Inference Toolkit takes: ``{"inputs": ...,
    "parameters": {...}}``, which it passes to the pipeline call as keywords) reach the pipeline in ``serve`` and in
    ``transform``: ``top_k=2`` answers both labels of the text, most probable first (computed by hand); the same text
    without parameters, its top label only."""
    from artifact_tools import serve, transform

    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    texts = ["good movie", "the movie is awful"]
    want = [_both_labels(direct, folder, t) for t in texts]
    bodies = [json.dumps({"inputs": texts[0], "parameters": {"top_k": 2}}).encode(),
              json.dumps({"inputs": texts[1]}).encode()]

    def check(answers: list) -> None:
        (top2,), (top1,) = answers
        assert [r["label"] for r in top2] == [w[0] for w in want[0]]
        np.testing.assert_allclose([r["score"] for r in top2], [w[1] for w in want[0]], rtol=1e-5)
        assert [r["label"] for r in top1] == [want[1][0][0]]
        np.testing.assert_allclose([r["score"] for r in top1], [want[1][0][1]], rtol=1e-5)

    app = serve.create_app(loaders.load(sample))
    answers = []
    for body in bodies:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "application/json",
                   "HTTP_ACCEPT": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": sys.stderr}
        status, _, out = serve._call_wsgi(app, environ)
        assert status == 200, out[:300]
        answers.append([json.loads(out)["outputs"]])
    check(answers)

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "texts.jsonl").write_bytes(b"\n".join(bodies) + b"\n")
    summary = transform(str(sample), str(tmp_path / "in"), str(tmp_path / "out"), content_type="application/json",
                        accept="application/json", split_type="Line", strategy="SingleRecord", assemble_with="Line")
    assert summary["records_out"] == 2 and not summary["records_failed"], summary
    lines = (tmp_path / "out" / "texts.jsonl.out").read_bytes().splitlines()
    check([[json.loads(line)["outputs"]] for line in lines])


def test_serve_runs_the_texts_of_one_request_in_padded_batches_or_alone(sample, folder, tmp_path):
    """One ``/invocations`` request of several texts to ``serve``'s app runs them as the pipeline's padded
    batches; with a tokenizer that has no pad token that call fails, the texts run one by one and the model is
    not padded again; with ``--max-batch-rows 0`` padding is never tried; a tokenizer that gives no attention mask
    is never padded (padding would move every score). Each time the answer is each text's own (computed alone, by
    hand), in the texts' order."""
    from artifact_tools import serve

    texts = [" ".join(["good", "bad", "movie", "great", "awful", "plot"][(i + j) % 6] for j in range(1 + (i * 5) % 9))
             for i in range(40)]
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    labels, scores = _expected(direct, folder, texts=texts)
    unpadded = shutil.copytree(folder, tmp_path / "no-pad-token")
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        doc = json.loads((unpadded / name).read_text())
        doc.pop("pad_token", None)
        (unpadded / name).write_text(json.dumps(doc))
    unmasked = shutil.copytree(folder, tmp_path / "no-attention-mask")  # padding the model cannot tell apart
    doc = json.loads((unmasked / "tokenizer_config.json").read_text())
    (unmasked / "tokenizer_config.json").write_text(json.dumps({**doc, "model_input_names": ["input_ids"]}))
    body = json.dumps({"inputs": texts}).encode()
    pd = pytest.importorskip("pandas")
    for source, rows, pads in ((sample, None, True), (unpadded, 0, False), (unpadded, None, False),
                               (unmasked, None, False)):
        app = serve.create_app(loaders.load(source), pad_texts=rows != 0)  # (as --max-batch-rows ROWS makes it)
        assert app.batcher is not None and app.batcher.padded is (source != unmasked and rows != 0)
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "application/json",
                   "HTTP_ACCEPT": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": sys.stderr}
        status, _, out = serve._call_wsgi(app, environ)
        assert status == 200, out[:300]
        _check(pd.DataFrame(json.loads(out)["outputs"]), labels, scores)
        assert app.batcher.padded is pads


def test_serve_batches_requests_of_one_text_each_answered_as_alone(sample, folder):
    """Requests of one text each (``{"inputs": "..."}``, the usual body) that ``serve``'s model thread takes together
    join one batch (before, only lists of texts did: each such request ran alone): one call of the pipeline, and
    each request's answer is its own text's (computed alone, by hand), in the same shape as when it is sent
    alone."""
    from artifact_tools import serve

    pd = pytest.importorskip("pandas")
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    labels, scores = _expected(direct, folder)
    app = serve.create_app(loaders.load(sample))

    def environ(text: str) -> dict:
        body = json.dumps({"inputs": text}).encode()
        return {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "CONTENT_TYPE": "application/json",
                "HTTP_ACCEPT": "application/json", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr}

    taken = [environ(text) for text in TEXTS]
    members = []
    for env in taken:
        prepared = app.batcher.prepare(env)
        assert prepared is not None and prepared[0] == ("texts",) and prepared[2] == 1
        members.append((env, prepared[1], prepared[2]))
    app.batcher.predict(members)
    for text, env, label, score in zip(TEXTS, taken, labels, scores):
        assert serve.PREDICTED in env  # predicted in the batch, not alone
        status, _, out = serve._call_wsgi(app, env)
        assert status == 200, out[:300]
        answer = json.loads(out)
        _check(pd.DataFrame(answer["outputs"]), [label], [score])
        status, _, alone = serve._call_wsgi(app, environ(text))
        assert status == 200 and json.loads(alone).keys() == answer.keys()
        assert len(json.loads(alone)["outputs"]) == len(answer["outputs"]) == 1


def test_a_text_longer_than_the_positions_is_cut_when_the_tokenizer_names_no_length(folder, tmp_path):
    """A tokenizer without ``model_max_length`` truncates nothing; a text longer than the model's position
    embeddings then failed inside the model (a 500 in ``serve``). It is cut at ``max_position_embeddings``
    tokens: the answer is the one computed by hand on the text tokenized with that bound."""
    copy = shutil.copytree(folder, tmp_path / "no-length")
    doc = json.loads((copy / "tokenizer_config.json").read_text())
    doc.pop("model_max_length", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(doc))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(copy), local_files_only=True)
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    positions = direct.config.max_position_embeddings
    assert tokenizer.model_max_length >= hf_loader._NO_LIMIT
    text = " ".join(["good", "bad", "movie"] * positions)
    assert len(tokenizer(text)["input_ids"]) > positions
    with torch.no_grad():
        logits = direct(**tokenizer(text, truncation=True, max_length=positions, return_tensors="pt")).logits[0]
    p = torch.softmax(logits, -1).numpy()
    model = loaders.load(copy)
    _check(model.predict([text, "good movie"])[:1], [direct.config.id2label[int(p.argmax())]], np.array([p.max()]))


def test_loading_never_touches_the_network(sample, monkeypatch):
    attempts = []

    def refuse(self, address):  # recorded too, since a library may swallow the error and fall back
        attempts.append(address)
        raise OSError(f"network access to {address} refused by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    model = loaders.load(sample)
    assert list(model.predict(TEXTS).columns) == ["label", "score"]
    assert attempts == []


def test_pytorch_bin_weights(folder, tmp_path):
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    direct.save_pretrained(tmp_path, safe_serialization=False)
    _copy_tokenizer(folder, tmp_path)
    assert (tmp_path / "pytorch_model.bin").is_file() and not (tmp_path / "model.safetensors").exists()
    model = loaders.load(tmp_path)
    _check(model.predict(TEXTS), *_expected(direct, folder))


@pytest.fixture(scope="module")
def tf_folder(folder, tmp_path_factory):
    """The sample converted to TensorFlow weights (tf_model.h5) with transformers' own converter."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    dest = tmp_path_factory.mktemp("hf-tf")
    tf_model = transformers.TFBertForSequenceClassification.from_pretrained(str(folder), from_pt=True)
    tf_model.save_pretrained(str(dest))
    _copy_tokenizer(folder, dest)
    assert (dest / "tf_model.h5").is_file() and not (dest / "model.safetensors").exists()
    return dest


def test_tensorflow_weights(tf_folder):
    # The report is built from the project's own folder reader, as inspection does for a Hugging Face folder.
    report = Report(source=str(tf_folder), container="directory", framework="huggingface", loadable=True,
                    models=[ModelInfo("config.json", "huggingface", hf_format.summarize(DirTree(tf_folder)))])
    model = hf_loader.load(tf_folder, report)
    assert model.info["framework"] == "tf" and model.info["model_class"] == "TFBertForSequenceClassification"
    direct = transformers.TFBertForSequenceClassification.from_pretrained(str(tf_folder), local_files_only=True)
    _check(model.predict(TEXTS), *_expected(direct, tf_folder, tf=True))


def test_tensorflow_weights_through_inspection(tf_folder):
    assert inspect(tf_folder).framework == "huggingface"


def test_task_from_hf_task_variable(sample, folder, monkeypatch):
    monkeypatch.setenv("HF_TASK", "feature-extraction")
    model = loaders.load(sample)
    assert model.info["task"] == "feature-extraction" and model.info["model_class"] == "BertModel"
    base = transformers.BertModel.from_pretrained(str(folder), local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    with torch.no_grad():
        expected = np.stack([base(**tokenizer(t, return_tensors="pt")).last_hidden_state[0].mean(0).numpy()
                             for t in TEXTS])
    np.testing.assert_allclose(model.predict(TEXTS), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ArtifactError, match="no pipeline task 'no-such-task'"):
        loaders.load(sample, task="no-such-task")


def _edited_copy(folder: Path, dest: Path, **config) -> Path:
    shutil.copytree(folder, dest)
    path = dest / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    return dest


def test_remote_code_needs_trust(folder, tmp_path):
    copy = _edited_copy(folder, tmp_path / "remote",
                        auto_map={"AutoModelForSequenceClassification": "modeling_tiny.TinyModel"})
    (copy / "modeling_tiny.py").write_text("raise SystemExit('remote code must not run')\n")
    with pytest.raises(TrustRequired, match="auto_map"):
        loaders.load(copy)


def test_newer_transformers_version_is_a_warning(folder, tmp_path):
    copy = _edited_copy(folder, tmp_path / "newer", transformers_version="99.0.0")
    model = loaders.load(copy)
    assert "99.0.0" in model.info["warning"]
    direct = transformers.BertForSequenceClassification.from_pretrained(str(folder), local_files_only=True).eval()
    _check(model.predict(TEXTS), *_expected(direct, folder))


def test_tokenizer_inputs_the_model_does_not_take_are_not_fed(tmp_path):
    """A BERT tokenizer (it emits token_type_ids) with a DistilBERT classifier (its forward takes none)."""
    import inspect as pyinspect

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "great", "awful", "movie", "the", "is", "a"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    tokenizer.save_pretrained(tmp_path)
    assert "token_type_ids" in tokenizer(TEXTS[0])
    torch.manual_seed(3)
    config = transformers.DistilBertConfig(vocab_size=len(words), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                                           max_position_embeddings=32, num_labels=2,
                                           id2label={0: "NEGATIVE", 1: "POSITIVE"},
                                           label2id={"NEGATIVE": 0, "POSITIVE": 1})
    transformers.DistilBertForSequenceClassification(config).eval().save_pretrained(tmp_path)

    direct = transformers.DistilBertForSequenceClassification.from_pretrained(str(tmp_path), local_files_only=True)
    accepted = set(pyinspect.signature(direct.forward).parameters)
    assert "token_type_ids" not in accepted
    labels, scores = [], []
    for text in TEXTS:
        enc = {k: v for k, v in transformers.AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)(
            text, return_tensors="pt").items() if k in accepted}
        with torch.no_grad():
            logits = direct.eval()(**enc).logits.numpy()[0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        labels.append(direct.config.id2label[int(p.argmax())])
        scores.append(float(p.max()))

    model = loaders.load(tmp_path)
    assert model.info["tokenizer_inputs_dropped"] == ["token_type_ids"]
    _check(model.predict(TEXTS), labels, np.array(scores))
