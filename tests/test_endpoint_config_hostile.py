"""Hostile endpoint configs, weights and multi-model targets (from a red-team run of ``serve``'s endpoint
features): each is refused with one sentence, never a hang, a traceback, a 500 for a client's mistake or a model
from outside the prefix. Oracles: the file system (a FIFO, a symlink), ``random`` counts against the binomial
bounds of the weights asked for, and the HTTP server's own files."""

from __future__ import annotations

import functools
import http.server
import io
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from test_endpoint import (  # noqa: F401
    PROJECT_ROOT,
    Endpoint,
    artifacts,
    binomial_bounds,
    csv_body,
    env,
    invoke,
    metrics,
    rows,
    total,
    work,
)

from artifact_tools import endpoint
from artifact_tools.errors import ArtifactError

from helpers import free_port

TARGET = "X-Amzn-SageMaker-Target-Model"


def _config(path: Path, variants: list[dict]) -> Path:
    path.write_text(json.dumps({"EndpointConfigName": "hostile", "ProductionVariants": variants}))
    return path


def test_a_config_that_is_a_fifo_is_refused_at_once_not_read(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes: the worker's event loop (where a reload is read)
    and ``update-weights`` hung. It is refused as not a regular file, within a second."""
    fifo = tmp_path / "endpoint.json"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            endpoint.read_config(fifo)
        except BaseException as e:  # noqa: BLE001 - looked at below
            errors.append(e)

    for call in (read, lambda: errors.append(_catch(endpoint.update_weights, str(fifo), {"A": 1}))):
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(5)
        if worker.is_alive():  # unblock the reader, then fail
            with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "w"):
                pass
            pytest.fail("reading a FIFO config blocked")
    assert len(errors) == 2 and all(isinstance(e, ArtifactError) and "not a regular file" in str(e) for e in errors)


def _catch(fn, *args):
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001
        return e
    return None


@pytest.mark.parametrize("variant, sentence", [
    ({"VariantName": "A\n", "ModelDataUrl": "m.tar.gz"}, "the variant name 'A\\n' is not valid"),
    ({"VariantName": "A", "ModelDataUrl": "m.tar.gz", "InitialVariantWeight": 10 ** 400}, "finite number"),
    ({"VariantName": "A", "ModelDataUrl": "a\0b.tar.gz"}, "holds a NUL character"),
])
def test_bad_variants_are_one_sentence(variant, sentence, tmp_path):
    """A name with a final newline (``re.match``'s ``$`` let it through, and every answer then failed its header
    check), an integer weight too large for a float (OverflowError, "internal error"), a NUL in a path (a
    RuntimeError at startup)."""
    with pytest.raises(endpoint.EndpointError, match=sentence.replace("\\", "\\\\")):
        endpoint.read_config(_config(tmp_path / "c.json", [variant]))


def test_a_model_name_given_twice_is_one_sentence(tmp_path):
    """Two ``Models`` entries of one name: which one a variant meant is unknown (the last one won, silently)."""
    path = tmp_path / "twice.json"
    path.write_text(json.dumps({"ProductionVariants": [{"VariantName": "A", "ModelName": "m"}], "Models": [
        {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "a.tar.gz"}},
        {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "b.tar.gz"}}]}))
    with pytest.raises(endpoint.EndpointError, match="the model name 'm' is given twice"):
        endpoint.read_config(path)


def test_a_deeply_nested_config_is_one_sentence(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(endpoint.EndpointError, match="nests JSON too deeply"):
        endpoint.read_config(path)


@pytest.mark.parametrize("weight", [1e308, 5e-324, 1.0])
def test_equal_weights_split_evenly_at_any_magnitude(weight):
    """Two equal weights share the traffic within the binomial bounds, even where their sum overflows (1e308:
    all of it went to the second) or the choice's arithmetic underflows (5e-324: 25/75)."""
    spec = endpoint.parse_config({"ProductionVariants": [
        {"VariantName": name, "ModelDataUrl": "m.tar.gz", "InitialVariantWeight": weight} for name in "AB"]}, None)
    routes = endpoint._Routes([endpoint._Live(v, object(), None) for v in spec.variants])
    rng = random.Random(7)
    n = 20_000
    first = sum(routes.pick(rng).name == "A" for _ in range(n))
    low, high = binomial_bounds(n, 0.5)
    assert low <= first <= high


def test_concurrent_updates_lose_nothing_and_a_symlinked_config_stays_a_link(tmp_path):
    """Eight ``update_weights`` calls at once, each setting another variant: every change is in the file (without
    a lock, reads of the same file lost changes). Through a symlink, the file it names is rewritten and the link
    stays."""
    names = [f"V{i}" for i in range(8)]
    path = _config(tmp_path / "real.json", [{"VariantName": n, "ModelDataUrl": "m.tar.gz"} for n in names])
    threads = [threading.Thread(target=endpoint.update_weights, args=(str(path), {n: 5})) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    doc = json.loads(path.read_text())
    weights = {pv["VariantName"]: pv["InitialVariantWeight"] for pv in doc["ProductionVariants"]}
    assert weights == dict.fromkeys(names, 5.0)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    endpoint.update_weights(str(link), {"V0": 3})
    assert link.is_symlink() and json.loads(path.read_text())["ProductionVariants"][0]["InitialVariantWeight"] == 3


class _Boom:
    """A pickle that would call ``os.system`` when loaded (the audit refuses it; nothing runs)."""

    def __reduce__(self):
        return (os.system, ("true",))


def test_max_model_memory_zero_is_refused(artifacts, env, work):  # noqa: F811
    done = _serve_fails(env, "--multi-model", str(work), "--max-model-memory", "0")
    assert done.returncode == 2 and "--max-model-memory must be at least 1 byte" in done.stderr


def _serve_fails(env: dict, *args: str) -> subprocess.CompletedProcess:  # noqa: F811
    return subprocess.run([sys.executable, "-m", "artifact_tools", "serve", *args, "--port", str(free_port())],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_multi_model_targets_that_are_no_model_are_422_and_names_are_utf8(artifacts, env, work, rows):  # noqa: F811
    """A target that is a file under the prefix but no model (text, a pickle the audit refuses) is a 4xx with the
    refusal's sentence, never a 500 (the client chose it); a target named in UTF-8 (as S3 keys are) is found."""
    prefix = work / "mme-hostile"
    prefix.mkdir()
    shutil.copy(artifacts["sklearn"], prefix / "é-model.tar.gz")
    (prefix / "notes.txt").write_text("not a model\n")
    data = pickle.dumps(_Boom())
    with tarfile.open(prefix / "evil.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("model.pkl")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    body = csv_body(rows[:2])
    with Endpoint(env, work, "--multi-model", str(prefix), "--workers", "1") as server:
        status, _, out = invoke(server.port, body, {TARGET: "é-model.tar.gz".encode().decode("latin-1")})
        assert status == 200, out
        for target, words in (("notes.txt", "is not a model artifact"), ("evil.tar.gz", "refusing to load")):
            status, _, out = invoke(server.port, body, {TARGET: target})
            assert status == 422 and words in json.loads(out)["error"], (target, status, out)
        status, _, out = invoke(server.port, body, {TARGET: "\xe9-model.tar.gz"})  # one latin-1 byte: not UTF-8
        assert status == 400 and "not UTF-8" in json.loads(out)["error"]
        assert total(metrics(server.port), "Invocation5XXErrors_total") == 0


def test_an_http_prefix_keeps_targets_inside_it(artifacts, env, work, rows):  # noqa: F811
    """With an HTTP prefix the server decodes ``%2e%2e``: such a target loaded a model from outside the prefix, and
    ``?``/``#`` suffixes made a new cache entry and metric series per request. They are 400s."""
    root = work / "web"
    (root / "models").mkdir(parents=True)
    (root / "private").mkdir()
    shutil.copy(artifacts["sklearn"], root / "models" / "public.tar.gz")
    shutil.copy(artifacts["sklearn"], root / "private" / "secret.tar.gz")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: ANN002
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    body = csv_body(rows[:2])
    try:
        prefix = f"http://127.0.0.1:{httpd.server_address[1]}/models/"
        with Endpoint(env, work, "--multi-model", prefix, "--workers", "1") as server:
            assert invoke(server.port, body, {TARGET: "public.tar.gz"})[0] == 200
            for target in ("%2e%2e/private/secret.tar.gz", "%2E%2E/private/secret.tar.gz", "public.tar.gz?x=1",
                           "public.tar.gz#f"):
                status, _, out = invoke(server.port, body, {TARGET: target})
                assert status == 400 and "not a relative path" in json.loads(out)["error"], (target, out)
    finally:
        httpd.shutdown()


def test_a_reload_renames_the_endpoint_and_zeroes_a_removed_multi_model_gauge(artifacts, env, work, rows):  # noqa: F811
    """A reloaded config's ``EndpointConfigName`` is the endpoint's name from then on (``/ping``, sentences), and a
    multi-model variant it removes no longer shows its last ``LoadedModelCount``."""
    import time

    prefix = work / "mme-reload"
    prefix.mkdir()
    shutil.copy(artifacts["sklearn"], prefix / "m.tar.gz")
    path = work / "reload.json"
    first = {"EndpointConfigName": "before", "ProductionVariants": [
        {"VariantName": "A", "ModelDataUrl": str(artifacts["sklearn"])},
        {"VariantName": "MM", "ModelName": "mm", "InitialVariantWeight": 0}],
        "Models": [{"ModelName": "mm", "PrimaryContainer": {"ModelDataUrl": str(prefix), "Mode": "MultiModel"}}]}
    path.write_text(json.dumps(first))
    with Endpoint(env, work, "--endpoint-config", str(path), "--workers", "1") as server:
        assert invoke(server.port, csv_body(rows[:2]), {"X-Amzn-SageMaker-Target-Variant": "MM",
                                                        TARGET: "m.tar.gz"})[0] == 200
        assert total(metrics(server.port), "LoadedModelCount", variant="MM") == 1
        second = {**first, "EndpointConfigName": "after", "ProductionVariants": first["ProductionVariants"][:1]}
        endpoint.write_text_atomic(str(path), json.dumps(second))
        time.sleep(3 * endpoint.WATCH_INTERVAL)
        status, _, out = invoke(server.port, csv_body(rows[:2]), {"X-Amzn-SageMaker-Target-Variant": "MM"})
        assert status == 400 and "Endpoint after does not have a production variant named 'MM'" in out.decode()
        assert total(metrics(server.port), "LoadedModelCount", variant="MM") == 0
