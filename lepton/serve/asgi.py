"""Raw ASGI helpers for the hot routes: read a body once under its limit, answer in two sends.

No framework on this path: a response is one ``http.response.start`` with precomputed headers
and one ``http.response.body``. ``replay`` hands a body already read to the FastAPI app, which
reads it again through ``receive``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from lepton.serve.errors import Headers, body_too_large, status_and_message

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
OCTETS = b"application/octet-stream"


async def send_body(send: Send, status: int, body: bytes, headers: Headers | None = None,
                    content_type: bytes = JSON) -> None:
    base = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": base + headers if headers else base})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, status: int, message: str,
                     headers: Headers | None = None) -> None:
    await send_body(send, status, orjson.dumps({"error": message}), headers)


async def send_exception(send: Send, exc: BaseException) -> int:
    """Answer ``exc`` as ``{"error": ...}`` with its status; returns the status."""
    status, message, headers = status_and_message(exc)
    await send_error(send, status, message, headers)
    return status


async def read_body(receive: Receive, length: bytes | None, limit: int) -> bytes | None:
    """The whole body, or None when the client went away.

    Raises the 413 ``HTTPError`` as soon as the declared length or the bytes received pass
    ``limit``, before the rest is read.
    """
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise body_too_large(limit)
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then whatever the connection sends next."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
