"""The HTTP service through FastAPI's TestClient: predictions, explanations, the page, limits and 4xx errors,
and the batching of concurrent /predict requests."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from textclf.cli import main
from textclf.errors import TextclfError
from textclf.inference.classifier import Classifier
from textclf.serving.app import create_app

from ..conftest import POSITIVE, REPO, make_reviews, wait_until_serving


@pytest.fixture(scope="module")
def clf(tiny_run):
    return Classifier.load(tiny_run, "cpu")


@pytest.fixture(scope="module")
def client(clf):
    app = create_app(clf, name="tiny", max_texts=4, max_chars=200, max_body_bytes=2_000, explain_steps=20)
    with TestClient(app) as c:
        yield c


def test_health_and_page(client):
    assert client.get("/health").json() == {"status": "ok", "model": "tiny", "labels": ["neg", "pos"],
                                            "batches": 0, "texts": 0, "pid": os.getpid()}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="review"' in page.text and "/explain" in page.text


def test_predict_one_and_many_in_order(client, clf):
    texts = ["superb brilliant film", "awful dull film", "the film"]
    r = client.post("/predict", json={"texts": texts})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert [p["label"] for p in preds[:2]] == ["pos", "neg"]
    np.testing.assert_allclose([p["probabilities"]["pos"] for p in preds], clf.predict_proba(texts)[:, 1], atol=1e-6)
    one = client.post("/predict", json={"text": "superb brilliant film"}).json()["predictions"]
    assert len(one) == 1 and one[0]["probability"] == pytest.approx(preds[0]["probability"], abs=1e-6)
    p_pos = preds[2]["probabilities"]["pos"]
    r = client.post("/predict", json={"text": "the film", "threshold": min(1.0, p_pos + 1e-3)})
    assert r.json()["predictions"][0]["label"] == "neg"


def test_explain_endpoint(client):
    r = client.post("/explain", json={"text": "a superb film"})
    data = r.json()
    assert r.status_code == 200 and data["label"] == "pos"
    assert data["tokens"] == ["a", "superb", "film"] and len(data["weights"]) == 3
    assert data["tokens"][int(np.argmax(data["weights"]))] in POSITIVE


@pytest.mark.parametrize(("body", "status", "message"), [
    ('{"text": "good", ', 400, "not valid JSON"),
    ("[1, 2]", 422, "must be a JSON object"),
    ('{"text": ""}', 422, "the text is empty"),  # it said "text 0", of a request that sent no list
    ('{"text": "   "}', 422, "the text is empty"),
    ('{"texts": ["a", " "]}', 422, "text 1 is empty"),
    ('{"text": "great \\ud800 film"}', 422, "holds a lone UTF-16 surrogate (U+D800) at character 6"),
    ('{"text": "good", "threshold": true}', 422, "threshold"),  # taken as 1.0
    ('{"text": "good", "threshold": "0.9"}', 422, "threshold"),  # taken as 0.9
    ('{"texts": []}', 422, "no text given"),
    ("{}", 422, "exactly one of"),
    ('{"text": "a", "texts": ["b"]}', 422, "exactly one of"),
    ('{"text": 3}', 422, "text: Input should be a valid string"),
    ('{"txt": "good"}', 422, "txt: Extra inputs are not permitted"),
    ('{"text": "good", "threshold": 2}', 422, "threshold"),
    ('{"texts": ["a", "b", "c", "d", "e"]}', 413, "5 texts in one request; at most 4"),
    ('{"text": "' + "x" * 300 + '"}', 413, "300 characters; at most 200"),
    ('{"text": "' + "x" * 3000 + '"}', 413, "larger than 2,000 bytes"),
])
def test_bad_requests_get_one_clear_json_error(client, body, status, message):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_what_a_client_gets_wrong_is_named(client):
    """A body sent without Content-Type: application/json (curl -d's form type) was "must be a JSON object"; a
    threshold in the query was ignored; /explain of a lone surrogate was a plain-text 500; HEAD /health a 405."""
    r = client.post("/predict", content='{"text": "good film"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]
    r = client.post("/predict", content='{"text": "good film"}', headers={"content-type": "application/json"})
    assert r.status_code == 200
    for route in ("/predict", "/explain"):
        r = client.post(f"{route}?threshold=0.99", json={"text": "good film"})
        assert r.status_code == 422 and "query parameters are not read (threshold)" in r.json()["error"]
    r = client.post("/explain", content='{"text": "great \\ud800 film"}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "lone UTF-16 surrogate" in r.json()["error"]
    assert client.head("/health").status_code == 200
    assert client.post("/predict", json={"text": "good film", "threshold": 1}).status_code == 200  # an int is a number


def test_a_threshold_is_for_binary_models_as_the_commands_say(tmp_path):
    """Issue 30 item 13: the server took a threshold for a multi-class model, which `textclf predict` refuses."""
    from ..conftest import save_random_model

    three = Classifier.load(save_random_model(tmp_path / "three", labels=("a", "b", "c")), "cpu")
    with TestClient(create_app(three, explain_steps=4)) as c:
        for route in ("/predict", "/explain"):
            r = c.post(route, json={"text": "good film", "threshold": 0.3})
            assert r.status_code == 422 and r.json() == {
                "error": "threshold is for binary models; this one has 3 classes and picks the most probable "
                         "(drop it)"}, r.text
            assert c.post(route, json={"text": "good film"}).status_code == 200


def test_body_limit_also_holds_without_content_length(client):
    chunks = (b'{"text": "' + b"x" * 500 + b'"}' if i == 0 else b" " * 500 for i in range(8))  # chunked upload
    r = client.post("/predict", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than 2,000 bytes" in r.json()["error"]


def test_explain_limits_and_unknown_routes(client):
    assert client.post("/explain", json={"text": ""}).status_code == 422
    assert client.post("/explain", json={"text": "x" * 201}).status_code == 413
    r = client.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"}
    assert client.get("/predict").status_code == 405


def test_serve_command_errors(tmp_path, tiny_run, capsys):
    assert main(["serve", str(tmp_path / "missing"), "--port", "8123"]) == 2
    assert "model folder not found" in capsys.readouterr().err
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert main(["serve", str(tiny_run), "--port", str(port)]) == 2
    assert "pick another --port" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--max-texts", "0"]) == 2
    assert main(["serve", str(tiny_run), "--threads", "0"]) == 2
    assert "--threads must be > 0" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--max-queue", "0"]) == 2
    assert "--max-queue must be > 0" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--batch-window-ms", "-1"]) == 2
    assert "--batch-window-ms must be in 0..1000" in capsys.readouterr().err
    assert main(["serve", str(tiny_run), "--workers", "0"]) == 2
    assert "--workers must be > 0" in capsys.readouterr().err


@pytest.mark.slow
def test_with_workers_a_bad_model_or_option_is_still_one_line_exit_2(tmp_path, tiny_run, capsys):
    """Each worker loads its own model; the first one's error is the command's, and nothing keeps running."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    assert main(["serve", str(tmp_path / "missing"), "--port", str(port), "--workers", "2"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: model folder not found")
    assert main(["serve", str(tiny_run), "--port", str(port), "--workers", "2", "--max-texts", "9",
                 "--max-queue", "4"]) == 2
    assert "--max-queue (4) must be at least --max-texts (9)" in capsys.readouterr().err


def test_each_worker_process_builds_the_app_from_the_settings_serve_hands_it(tiny_run, clf):
    import torch
    from fastapi.testclient import TestClient

    from textclf.inference import LoadOptions
    from textclf.serving.app import app_from_settings
    from textclf.serving.settings import AppOptions, ServeSettings

    before = torch.get_num_threads()
    settings = ServeSettings(str(tiny_run), LoadOptions("cpu", False, True), AppOptions(max_texts=3), threads=1)
    try:
        with TestClient(app_from_settings(settings)) as client:
            assert torch.get_num_threads() == 1
            out = client.post("/predict", json={"texts": ["superb film", "awful film"]}).json()["predictions"]
            assert [p["label"] for p in out] == [p.label for p in clf.predict(["superb film", "awful film"])]
            assert client.post("/predict", json={"texts": ["a"] * 4}).status_code == 413  # its max_texts
            assert client.get("/health").json()["pid"] == os.getpid()
    finally:
        torch.set_num_threads(before)


def test_gunicorn_builds_the_app_from_the_environment(tiny_run, clf, monkeypatch):
    import torch
    from fastapi.testclient import TestClient

    from textclf.serving.app import from_env
    from textclf.threads import cores

    monkeypatch.delenv("TEXTCLF_MODEL", raising=False)
    with pytest.raises(TextclfError, match="set TEXTCLF_MODEL=MODEL_DIR"):
        from_env()
    before = torch.get_num_threads()
    monkeypatch.setenv("TEXTCLF_MODEL", str(tiny_run))
    monkeypatch.setenv("TEXTCLF_DEVICE", "cpu")
    monkeypatch.setenv("WEB_CONCURRENCY", str(cores()))  # gunicorn's worker count: one thread each
    try:
        with TestClient(from_env()) as client:
            assert torch.get_num_threads() == 1
            out = client.post("/predict", json={"texts": ["superb film", "awful film"]}).json()["predictions"]
            assert [p["label"] for p in out] == [p.label for p in clf.predict(["superb film", "awful film"])]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_serve_makes_openmp_threads_wait_passively_unless_the_user_chose(tiny_run, monkeypatch, preset, expected):
    """Spinning OpenMP threads starve the event loop on a small machine; a user's own choice wins."""
    import textclf.serving.server

    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    seen = {}
    monkeypatch.setattr(textclf.serving.server, "_run", lambda *a, **k: seen.setdefault("policy", os.environ.get(
        "OMP_WAIT_POLICY")))
    assert main(["serve", str(tiny_run), "--port", "8123"]) == 0
    assert seen["policy"] == expected


# Batching: the texts of concurrent /predict requests run as one predict_proba call. httpx's ASGITransport
# runs the app on this test's event loop (no lifespan: the batcher starts on the first request).

def post_all(app, *rounds: list[dict]) -> list[httpx.Response]:
    """Each round's bodies POSTed to /predict at once, the rounds one after another; the responses in order."""
    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return [r for bodies in rounds for r in await asyncio.gather(*(c.post("/predict", json=b) for b in bodies))]

    try:
        return asyncio.run(run())
    finally:
        app.state.batcher.stop()


@pytest.fixture
def calls(clf, monkeypatch) -> list[int]:
    """The number of texts of every predict_proba call the server makes."""
    seen, real = [], clf.predict_proba

    def spy(texts, **kwargs):
        seen.append(len(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(clf, "predict_proba", spy)
    return seen


def test_concurrent_requests_share_forward_passes_and_get_their_solo_numbers(clf, calls):
    app = create_app(clf, batch_window_ms=300, explain_steps=2)
    calls.clear()  # the explainer's warm-up
    texts = make_reviews(18, seed=7).text.tolist()  # 4 to 34 words: batches mix lengths
    bodies = [{"text": t} for t in texts[:14]] + [{"texts": texts[14:16]}, {"texts": texts[16:]}]
    alone = [Classifier.predict_proba(clf, b.get("texts") or [b["text"]]) for b in bodies]  # not the spy
    responses = post_all(app, bodies)
    assert [r.status_code for r in responses] == [200] * 16
    assert len(calls) < len(bodies) and sum(calls) == 18
    for r, want in zip(responses, alone, strict=True):
        got = [[p["probabilities"][k] for k in clf.labels] for p in r.json()["predictions"]]
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_each_request_in_a_batch_has_its_own_threshold(clf, calls):
    app = create_app(clf, batch_window_ms=300, explain_steps=2)
    calls.clear()
    p_pos = float(Classifier.predict_proba(clf, ["the film"])[0, 1])
    low, high = {"text": "the film", "threshold": max(0.0, p_pos - 1e-3)}, {"text": "the film",
                                                                          "threshold": min(1.0, p_pos + 1e-3)}
    responses = post_all(app, [low, high, low])
    assert [r.json()["predictions"][0]["label"] for r in responses] == ["pos", "neg", "pos"]
    assert calls == [3]  # one batch, three thresholds


def _run_gated(app, gate: threading.Event, run):
    """`asyncio.run(run())`, the gate opened and the batch worker stopped whatever happens."""
    try:
        return asyncio.run(run())
    finally:
        gate.set()
        app.state.batcher.stop()


def _assert_refused_at_once(refused, waited: float, message: str) -> None:
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json() == {"error": message}
    assert waited < 10


def test_a_full_queue_answers_503_with_retry_after_at_once(clf, monkeypatch):
    app = create_app(clf, max_texts=2, max_queue=2, max_batch=1, batch_window_ms=0, explain_steps=2)
    entered, gate, real = threading.Event(), threading.Event(), clf.predict_proba

    def slow(texts, **kwargs):
        entered.set()
        gate.wait(30)
        return real(texts, **kwargs)

    monkeypatch.setattr(clf, "predict_proba", slow)

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            first = asyncio.create_task(c.post("/predict", json={"text": "a superb film"}))
            assert await asyncio.to_thread(entered.wait, 30)  # the model is busy with it
            queued = asyncio.create_task(c.post("/predict", json={"texts": ["dull", "an awful film"]}))
            for _ in range(3000):
                if app.state.batcher.queued == 2:
                    break
                await asyncio.sleep(0.01)
            started = time.monotonic()
            refused = await c.post("/predict", json={"text": "great"})
            waited = time.monotonic() - started
            gate.set()
            return refused, waited, await first, await queued

    refused, waited, first, queued = _run_gated(app, gate, run)
    # not queued behind the model, which held its batch until the gate opened
    _assert_refused_at_once(refused, waited, "the server is busy (2 texts waiting, at most 2); retry in 1 s")
    assert first.status_code == queued.status_code == 200 and len(queued.json()["predictions"]) == 2


def test_explanations_beyond_max_explain_answer_503_at_once(clf, monkeypatch):
    """/explain ran in FastAPI's thread pool, whose queue has no bound: a flood of explanations queued there for
    as long as it took. At most `max_explain` now run or wait; the next is a 503 with Retry-After, at once."""
    from textclf.inference.explain import Explainer

    app = create_app(clf, explain_steps=2, max_explain=1)
    entered, gate, real = threading.Event(), threading.Event(), Explainer.explain

    def slow(self, text, *args, **kwargs):
        entered.set()
        gate.wait(30)
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Explainer, "explain", slow)

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            first = asyncio.create_task(c.post("/explain", json={"text": "a superb film"}))
            assert await asyncio.to_thread(entered.wait, 30)  # the explainer is busy with it
            started = time.monotonic()
            refused = await c.post("/explain", json={"text": "an awful film"})
            waited = time.monotonic() - started
            gate.set()
            done = await first
            return refused, waited, done, await c.post("/explain", json={"text": "a dull film"})

    refused, waited, first, later = _run_gated(app, gate, run)
    _assert_refused_at_once(refused, waited, "the server is busy (1 of 1 explanations in progress); retry in 1 s")
    assert first.status_code == later.status_code == 200  # the count goes down when an explanation ends
    with pytest.raises(TextclfError, match="max_explain must be at least 1"):
        create_app(clf, explain_steps=2, max_explain=0)


def test_a_model_error_fails_only_its_batch_and_the_server_keeps_serving(clf, monkeypatch, caplog):
    app = create_app(clf, max_batch=1, batch_window_ms=0, explain_steps=2)  # a batch per request
    real = clf.predict_proba

    def fragile(texts, **kwargs):
        if any("boom" in t for t in texts):
            raise RuntimeError("boom: the kernel failed\ntraceback details")
        return real(texts, **kwargs)

    monkeypatch.setattr(clf, "predict_proba", fragile)
    responses = post_all(app, [{"text": "superb film"}, {"text": "boom film"}, {"text": "awful film"}],
                         [{"text": "superb film"}])
    assert [r.status_code for r in responses] == [200, 500, 200, 200]
    assert responses[1].json() == {"error": "prediction failed (RuntimeError: boom: the kernel failed); "
                                            "see the server log"}
    assert "prediction failed for a batch of 1 texts" in caplog.text


def test_the_batch_worker_runs_while_the_app_runs_and_stops_with_it(clf):
    app = create_app(clf, explain_steps=2)
    with TestClient(app) as c:
        assert app.state.batcher.running
        assert c.post("/predict", json={"text": "superb film"}).status_code == 200
    assert not app.state.batcher.running


def test_a_queue_shorter_than_a_request_is_refused(clf):
    with pytest.raises(TextclfError, match=r"--max-queue \(8\) must be at least --max-texts \(64\)"):
        create_app(clf, max_queue=8, explain_steps=2)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_the_served_process_stops_promptly_on_sigterm(tiny_run, workers):
    """The real command: the worker thread never keeps the process alive after uvicorn's shutdown; with
    --workers 2, two processes answer on the one port and all of them stop."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "textclf", "serve", str(tiny_run), "--port", str(port),
                               "--workers", str(workers)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(server, port)
        assert httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "superb film"}).status_code == 200
        pids = {httpx.get(f"http://127.0.0.1:{port}/health").json()["pid"] for _ in range(20)}  # new connections
        assert server.pid not in pids if workers > 1 else pids == {server.pid}
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
    finally:
        server.kill()
    for pid in pids:  # no worker outlives the command
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert server.stderr.read().count("Application shutdown complete") >= 1


def test_a_request_at_another_threshold_gets_the_lstm_where_the_shortcut_would_answer(tiny_run):
    """The shortcut is checked at 0.5 only: a request at another threshold is predicted in a call of its own, at
    that threshold, and gets the exact model's numbers, while default requests in the same batch keep the
    shortcut's (issue 23)."""
    import dataclasses

    from ..conftest import with_shortcut

    fast = with_shortcut(Classifier.load(tiny_run, "cpu"))
    exact = Classifier(dataclasses.replace(fast.artifact, shortcut=False), fast.device)
    texts = make_reviews(6, seed=9).text.tolist()
    seen, real = [], fast.predict_proba

    def spy(texts, **kwargs):
        seen.append((len(texts), kwargs.get("threshold")))
        return real(texts, **kwargs)

    fast.predict_proba = spy
    app = create_app(fast, batch_window_ms=300, explain_steps=2)
    seen.clear()
    bodies = [{"texts": texts[:3]}, {"texts": texts[3:], "threshold": 0.8}]
    responses = post_all(app, bodies)
    assert sorted(seen, key=str) == sorted([(3, None), (3, 0.8)], key=str)
    got = [[p["probabilities"]["pos"] for p in r.json()["predictions"]] for r in responses]
    np.testing.assert_allclose(got[0], real(texts[:3])[:, 1], atol=1e-6)
    np.testing.assert_allclose(got[1], exact.predict_proba(texts[3:])[:, 1], atol=1e-6)
