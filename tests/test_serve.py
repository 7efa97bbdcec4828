"""The HTTP service through FastAPI's TestClient: predictions, explanations, the page, limits and 4xx errors."""

import socket

import numpy as np
import pytest
from fastapi.testclient import TestClient

from textclf.cli import main
from textclf.predict import Classifier
from textclf.serve import create_app

from .conftest import POSITIVE


@pytest.fixture(scope="module")
def clf(tiny_run):
    return Classifier.load(tiny_run, "cpu")


@pytest.fixture(scope="module")
def client(clf):
    app = create_app(clf, name="tiny", max_texts=4, max_chars=200, max_body_bytes=2_000, explain_steps=20)
    with TestClient(app) as c:
        yield c


def test_health_and_page(client):
    assert client.get("/health").json() == {"status": "ok", "model": "tiny", "labels": ["neg", "pos"]}
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
    ('{"text": ""}', 422, "text 0 is empty"),
    ('{"text": "   "}', 422, "text 0 is empty"),
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
