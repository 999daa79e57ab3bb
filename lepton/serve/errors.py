"""The server's one mapping from an exception to an HTTP status, message and headers.

Both the raw hot routes and the FastAPI routes answer errors through ``status_and_message``,
so a client sees the same ``{"error": ...}`` body and status whichever layer refused it. Only
Lepton's own errors reach the client with their message; anything else is logged and becomes a
500 that names no file, path or traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from lepton.errors import LeptonError
from lepton.serve.batcher import OverloadedError

log = logging.getLogger("lepton.serve")

Headers = list[tuple[bytes, bytes]]


class ProtocolError(LeptonError, ValueError):
    """A request does not follow the Open Inference Protocol or the model's signature."""

    http_status = 400


class HTTPError(LeptonError):
    """An error with an explicit status (and extra response headers), raised by the server."""

    def __init__(self, status: int, message: str, *, headers: Headers | None = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.http_status = status
        self.headers: Headers = headers or []


def loading() -> HTTPError:
    """503 while the models load: load balancers and clients retry after a second."""
    return HTTPError(503, "The server is still loading its models",
                     fix="retry when /v2/health/ready answers 200",
                     headers=[(b"retry-after", b"1")])


def body_too_large(limit: int) -> HTTPError:
    """413, and the connection closes: the rest of the body is never read."""
    return HTTPError(413, "Request body too large", expected=f"at most {limit} bytes",
                     fix="send smaller requests or raise --max-body-mb",
                     headers=[(b"connection", b"close")])


def status_and_message(exc: BaseException) -> tuple[int, str, Headers]:
    """Map an exception to (status, client-safe message, extra headers)."""
    if isinstance(exc, OverloadedError):
        return 503, str(exc), [(b"retry-after", str(int(exc.retry_after_s)).encode())]
    if isinstance(exc, HTTPError):
        return exc.http_status, str(exc), exc.headers
    if isinstance(exc, LeptonError) and (400 <= exc.http_status < 500
                                         or exc.http_status in (503, 504)):
        return exc.http_status, str(exc), []
    log.error("lepton serve: internal error", exc_info=exc)
    return 500, "Internal server error; the server log has the details", []
