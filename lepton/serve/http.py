"""uvicorn's httptools protocol, with each response's head and body sent in one write.

uvicorn writes the status line and headers when the app sends ``http.response.start`` and the
body on ``http.response.body``: two ``send()`` calls per response, and on loopback or a LAN
each one is a syscall that also wakes the peer. On the infer hot path that second syscall cost
about 5 % of the server's throughput. Here the transport holds a response head until the next
write (the body) or the end of the response, and both go out together. ``100 Continue``
interim responses are never held, so clients that wait for them are not stalled.

``HttpToolsProtocol`` is private to uvicorn: ``server.http_protocol`` uses this module only on
the uvicorn versions it was checked against, and uvicorn's public ``"httptools"`` protocol
otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_FINAL_HEAD = b"HTTP/1.1 "
_INTERIM = b"HTTP/1.1 1"
_JOIN_LIMIT = 1 << 18


class _HeadWithBody:
    """A connection's transport that sends a response head together with what follows it."""

    __slots__ = ("transport", "head")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self.head
        if head is not None:
            self.head = None
            if len(data) <= _JOIN_LIMIT:  # uvloop's writelines costs more than the copy
                self.transport.write(head + data)
            else:
                self.transport.write(head)
                self.transport.write(data)
        elif data[:9] == _FINAL_HEAD and data[:10] != _INTERIM:
            self.head = data
        else:
            self.transport.write(data)

    def flush(self) -> None:
        head, self.head = self.head, None
        if head is not None:
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # the rest of the transport API, unchanged
        return getattr(self.transport, name)


class HttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose responses leave in one write (see the module docstring)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_HeadWithBody(transport))  # type: ignore[arg-type]

    def on_response_complete(self) -> None:
        # a response without a body (HEAD, 204, 304); self.transport is our _HeadWithBody
        self.transport.flush()  # type: ignore[attr-defined]
        super().on_response_complete()
