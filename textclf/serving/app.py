"""The HTTP service: `POST /predict`, `POST /explain`, `GET /health`, and a demo page at `/` (FastAPI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..errors import TextclfError, first_line
from ..inference import LoadOptions, binary_threshold
from ..inference.classifier import Classifier
from ..models.decision import DEFAULT_THRESHOLD
from ..options import gather, no_more
from . import require_serve_extra
from .microbatch import MicroBatcher, Unavailable
from .settings import AppOptions, ServeSettings

log = logging.getLogger(__name__)

try:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError:  # the `serve` extra is optional; the CLI turns this into a one-line error
    FastAPI = None


if FastAPI is not None:

    class PredictRequest(BaseModel):
        """`{"text": "..."}` or `{"texts": ["...", ...]}`; binary models also take a `threshold`."""

        model_config = ConfigDict(extra="forbid")
        text: str | None = None
        texts: list[str] | None = None
        # strict: true and "0.9" were taken as 1.0 and 0.9 (the docs promise a 422 for mistyped fields)
        threshold: StrictFloat | StrictInt | None = Field(None, ge=0.0, le=1.0)  # None: 0.5; binary models only

    class ExplainRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: str
        threshold: StrictFloat | StrictInt | None = Field(None, ge=0.0, le=1.0)  # None: 0.5; binary models only


# A gathered batch holds reviews of every length, and on CPU the padded LSTM computes every padded step:
# length-sorted forwards of a few texts compute far less padding than one forward over the batch, and cost
# about as much per text (the arithmetic and onnx_speed.py's batch sizes: benchmarks/README.md).
FORWARD_BATCH_CPU = 8
RETRY_AFTER_S = 1  # what a 503 asks a client to wait: on CPU a default-sized full queue drains in less


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e)[:200]}" if str(e).strip() else type(e).__name__


def _validation_message(exc: RequestValidationError, content_type: str = "application/json") -> tuple[int, str]:
    """FastAPI's list of problems → one line; a body that is not JSON is a 400, a wrong shape a 422, a body sent
    as another media type (curl -d's form type: FastAPI does not read it) a 415."""
    first = exc.errors()[0]
    if not content_type.split(";")[0].strip().lower().endswith("json") and not first.get("loc", ())[1:]:
        shown = f'"{content_type}"' if content_type else "none"
        return 415, f"send the body as JSON with the header Content-Type: application/json (it was {shown})"
    if first.get("type") == "json_invalid":
        why = first.get("ctx", {}).get("error", "malformed")
        return 400, f"the request body is not valid JSON ({why} at character {first['loc'][-1]})"
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if not where:
            return 422, 'the request body must be a JSON object, e.g. {"text": "..."}'
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return 422, "; ".join(problems)


class BodyLimit:
    """ASGI middleware: a JSON 413 for a body over `limit` bytes, by its Content-Length or, when it
    has none (chunked), by counting the bytes as the app reads them."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await _error(413, self.message)(scope, receive, send)
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, self.message)  # FastAPI re-raises it while reading the body
            return message

        await self.app(scope, counting_receive, send)

    @property
    def message(self) -> str:
        return f"the request body is larger than {self.limit:,} bytes"


@dataclass
class Limits:
    """What one request may hold (texts, characters per text); a request over them is a 4xx naming the limit."""

    max_texts: int = 64
    max_chars: int = 20_000

    def check(self, texts: list[str], single: bool = False) -> None:
        """`single`: the request sent one "text", named so, not as a list's item 0."""
        if not texts:
            raise HTTPException(422, 'no text given: send {"text": "..."} or {"texts": ["...", ...]}')
        if len(texts) > self.max_texts:
            raise HTTPException(413, f"{len(texts)} texts in one request; at most {self.max_texts}")
        for i, text in enumerate(texts):
            where = "the text" if single else f"text {i}"
            if not text.strip():
                raise HTTPException(422, f"{where} is empty")
            if len(text) > self.max_chars:
                raise HTTPException(413, f"{where} has {len(text):,} characters; at most {self.max_chars:,}")
            if lone := _SURROGATE.search(text):  # JSON's "\ud800" alone: no character, and no UTF-8 to answer in
                raise HTTPException(422, f"{where} holds a lone UTF-16 surrogate (U+{ord(lone[0]):04X}) at character "
                                         f"{lone.start()}: send valid Unicode")


_SURROGATE = re.compile("[\ud800-\udfff]")


def batcher_for(clf: Classifier, max_batch: int, batch_window_ms: float, max_queue: int,
                forward_batch: int | None) -> MicroBatcher:
    """/predict's batcher: a gathered batch runs as one `predict_proba` in forwards of `forward_batch` texts."""
    forward = forward_batch or (FORWARD_BATCH_CPU if clf.device.type == "cpu" else max_batch)

    def predict(texts: list[str], threshold: float | None = None) -> np.ndarray:
        # clf.predict_proba looked up on every batch, not bound once: tests swap in a spy or a failing model
        return clf.predict_proba(texts, batch_size=forward, threshold=threshold)

    return MicroBatcher(predict, max_batch, batch_window_ms, max_queue)


def _handle_errors(app: FastAPI) -> None:
    """Every error as {"error": "one line"}: a body that is no JSON a 400, a wrong shape a 422, routing's too."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(*_validation_message(exc, request.headers.get("content-type", "")))

    @app.exception_handler(StarletteHTTPException)  # also routing's 404 and 405
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))


def _no_query(request: Request) -> None:
    """A query parameter is read by no route: `?threshold=0.9` was answered at the default, without a word."""
    if request.query_params:
        raise HTTPException(422, f"query parameters are not read ({', '.join(request.query_params)}): send them in the "
                                 'JSON body, e.g. {"text": "...", "threshold": 0.7}')


def _threshold(clf: Classifier, threshold: float | None) -> float:
    """A request's threshold, refused (422) for a multi-class model as `textclf predict --threshold` is."""
    try:
        return binary_threshold(threshold, len(clf.labels), option="threshold")
    except TextclfError as e:
        raise HTTPException(422, str(e)) from None


def _predictions(clf: Classifier, probs: np.ndarray, threshold: float) -> list[dict]:
    out = []
    for row, k in zip(probs, clf.decide(probs, threshold), strict=True):
        out.append({"label": clf.labels[k], "probability": float(row[k]),
                    "probabilities": dict(zip(clf.labels, map(float, row), strict=True))})
    return out


def _routes(app: FastAPI, clf: Classifier, batcher: MicroBatcher, explainer, limits: Limits, name: str,
            max_explain: int) -> None:
    page = resources.files("textclf.serving").joinpath("static/index.html").read_text(encoding="utf-8")
    # with a shortcut, a request at another threshold than the default is predicted apart (its key): the shortcut
    # is checked at the default decision only, so those texts get the LSTM
    shortcut = bool(clf.artifact.calibration.shortcut) and len(clf.labels) == 2

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.api_route("/health", methods=["GET", "HEAD"])  # HEAD: what uptime monitors probe with
    async def health() -> dict:  # async: on the event loop, never queued behind /explain in the thread pool
        # batches and texts so far: their ratio tells how well requests are being gathered
        return {"status": "ok", "model": name, "labels": clf.labels, "batches": batcher.batches,
                "texts": batcher.texts, "pid": os.getpid()}  # with --workers N, each process counts its own

    # `async`: it only waits for the batch worker, so the event loop, which parses and answers every
    # request, never runs the model.
    @app.post("/predict")
    async def predict(req: PredictRequest, request: Request) -> dict:
        _no_query(request)
        if (req.text is None) == (req.texts is None):
            raise HTTPException(422, 'send exactly one of {"text": "..."} or {"texts": ["...", ...]}')
        texts = [req.text] if req.text is not None else req.texts
        limits.check(texts, single=req.text is not None)
        threshold = _threshold(clf, req.threshold)
        try:
            key = threshold if shortcut and threshold != DEFAULT_THRESHOLD else None
            probs = await batcher.predict(texts, key)
        except Unavailable as e:
            raise HTTPException(503, f"{e}; retry in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        except Exception as e:  # logged with its traceback by the worker
            raise HTTPException(500, f"prediction failed ({_one_line(e)}); see the server log") from None
        return {"predictions": _predictions(clf, probs, threshold)}

    # Run in the thread pool (PyTorch releases the GIL while it computes), at most `max_explain` at once counting
    # those waiting for a thread: the pool's own queue has no bound, and each explanation is many forwards.
    pending = 0

    @app.post("/explain")
    async def explain(req: ExplainRequest, request: Request) -> dict:
        nonlocal pending  # read and changed on the event loop only: no lock
        _no_query(request)
        limits.check([req.text], single=True)
        threshold = _threshold(clf, req.threshold)
        if pending >= max_explain:
            raise HTTPException(503, f"the server is busy ({pending} of {max_explain} explanations in progress); "
                                     f"retry in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        pending += 1
        try:
            return (await run_in_threadpool(explainer.explain, req.text, threshold)).to_dict()
        except Exception as e:
            log.exception("explain failed")
            raise HTTPException(500, f"explanation failed ({_one_line(e)}); see the server log") from None
        finally:
            pending -= 1


def create_app(clf: Classifier, name: str = "model", **options) -> FastAPI:
    """The app around a loaded `Classifier`, as `options` say: `app` (`AppOptions`: limits, batching, explanation
    steps), its fields also loose (`max_texts=4`, ...)."""
    how = gather(AppOptions, options, "app")
    no_more(options, "create_app")
    require_serve_extra()
    from ..inference.explain import Explainer

    if how.max_explain < 1:
        raise TextclfError(f"max_explain must be at least 1, got {how.max_explain}")
    if how.max_queue < how.max_texts:
        raise TextclfError(f"--max-queue ({how.max_queue}) must be at least --max-texts ({how.max_texts}), "
                           "or the largest requests could never be queued")
    explainer = Explainer(clf, how.explain_steps)
    explainer.explain("warm up")  # the first backward pass is slow; pay for it before the first visitor
    batcher = batcher_for(clf, how.max_batch, how.batch_window_ms, how.max_queue, how.forward_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await asyncio.to_thread(batcher.stop)  # after uvicorn has answered the requests in flight

    app = FastAPI(title="textclf", summary="Review classification with a packed-sequence LSTM", lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, limit=how.max_body_bytes)
    _handle_errors(app)
    _routes(app, clf, batcher, explainer, Limits(how.max_texts, how.max_chars), name, how.max_explain)
    return app


def app_from_settings(s: ServeSettings) -> FastAPI:
    """The app that `serve` runs (in each worker process, with --workers), from the settings it hands over: the
    model loaded with this process's share of the cores."""
    import torch

    if s.threads:
        torch.set_num_threads(s.threads)
    return create_app(Classifier.load_with(s.model_dir, s.loading), name=s.model_dir, app=s.app)


def from_env() -> FastAPI:
    """The app for another process manager, e.g. gunicorn with uvicorn workers (restarts, graceful timeouts)::

        TEXTCLF_MODEL=runs/imdb WEB_CONCURRENCY=2 OMP_WAIT_POLICY=PASSIVE \\
            gunicorn -k uvicorn_worker.UvicornWorker --bind 127.0.0.1:8000 'textclf.serving.app:from_env()'

    TEXTCLF_MODEL names the model (required); TEXTCLF_DEVICE (default auto) and TEXTCLF_VIEWS (both) as `serve`'s
    options; each worker computes on TEXTCLF_THREADS threads, by default this machine's cores shared out among
    the WEB_CONCURRENCY workers (gunicorn's worker count when -w is not given)."""
    from ..threads import per_worker

    model = os.environ.get("TEXTCLF_MODEL")
    if not model:
        raise TextclfError("set TEXTCLF_MODEL=MODEL_DIR: the model textclf.serving.app:from_env() serves")
    threads = per_worker(int(os.environ.get("WEB_CONCURRENCY") or 1), int(os.environ.get("TEXTCLF_THREADS") or 0))
    loading = LoadOptions(os.environ.get("TEXTCLF_DEVICE", "auto"), views=os.environ.get("TEXTCLF_VIEWS", "both"))
    return app_from_settings(ServeSettings(model, loading, threads=threads))
