"""The HTTP service: the app (app.py), running it in one process or several (server.py), batching requests
(microbatch.py), what a server is built from (settings.py)."""

from ..errors import TextclfError


def require_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise TextclfError("serving needs FastAPI and uvicorn: pip install 'textclf[serve]'") from None
