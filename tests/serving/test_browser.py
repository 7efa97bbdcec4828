"""The demo page in a real headless browser (Debian's chromium, driven by Playwright): type a review, read it."""

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install -e '.[dev]')"),
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason="no chromium browser (apt-get install chromium; setup.sh installs it when CI=true)"),
]


@pytest.fixture(scope="module")
def base_url(tiny_run):
    """The app under a real uvicorn on 127.0.0.1, on a port the OS picks."""
    import uvicorn

    from textclf.inference.classifier import Classifier
    from textclf.serving.app import create_app

    app = create_app(Classifier.load(tiny_run, "cpu"), name="tiny", max_chars=300, explain_steps=20)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(  # a fresh profile: nothing left from other runs
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 900, "height": 900})
        try:
            yield browser.new_page()
        finally:
            browser.close()


def test_type_a_review_and_read_label_probability_and_words(page, base_url, tmp_path):
    page.goto(base_url)
    page.fill("#review", "A superb film: brilliant acting, a delightful score, and a moving ending.")
    page.click("#classify")
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.text_content("#label") == "pos"
    assert page.text_content("#probability").endswith("% sure")
    assert 50 < float(page.text_content("#probability").split("%")[0]) <= 100
    words = page.eval_on_selector_all("#tokens span.tok", "els => els.map(e => [e.textContent, +e.dataset.weight])")
    assert [w for w, _ in words][:3] == ["a", "superb", "film"]
    strongest = max(words, key=lambda w: abs(w[1]))
    assert strongest[0] in {"superb", "brilliant", "delightful", "moving"} and strongest[1] > 0
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_an_example_button_and_a_server_error_show_up(page, base_url):
    page.goto(base_url)
    page.click("button.example >> nth=1")  # "Two hours I will never get back. Dull and far too long."
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    assert page.text_content("#label") in {"neg", "pos"}
    page.fill("#review", "dull " * 80)  # 400 characters; this server takes 300
    page.click("#classify")
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    assert "at most 300" in page.text_content("#error")
    assert page.is_hidden("#result")
