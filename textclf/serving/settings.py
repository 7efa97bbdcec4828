"""What a server is built from, as values: the app's limits and batching (`AppOptions`, `textclf serve`'s flags) and
all that one server process needs (`ServeSettings`), handed by `serve` to each worker it starts. Imports nothing
heavy: `serve` builds them before torch may load."""

from __future__ import annotations

from dataclasses import dataclass

from ..inference import LoadOptions


@dataclass(frozen=True)
class AppOptions:
    """What `create_app` builds around a model. Limits: texts per request, characters per text, body bytes.
    Integrated-gradients steps per /explain. /predict requests are gathered into batches (`MicroBatcher`): up to
    `max_batch` texts that arrive within `batch_window_ms` of the first, at most `max_queue` texts waiting (more:
    503); a batch runs as one `predict_proba` in forwards of `forward_batch` texts (None: 8 on CPU, `max_batch`
    on a GPU). At most `max_explain` /explain requests run or wait at once (more: 503)."""

    max_texts: int = 64
    max_chars: int = 20_000
    max_body_bytes: int = 1_000_000
    explain_steps: int = 100
    max_batch: int = 64
    batch_window_ms: float = 5.0
    max_queue: int = 256
    forward_batch: int | None = None
    max_explain: int = 8


@dataclass(frozen=True)
class ServeSettings:
    """All one server process needs to build its app (`app.app_from_settings`): the model, how it loads, the app
    around it, and PyTorch's intra-op threads in this process (None: PyTorch's own)."""

    model_dir: str
    loading: LoadOptions = LoadOptions()
    app: AppOptions = AppOptions()
    threads: int | None = None
