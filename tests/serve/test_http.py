"""The HTTP/1.1 layer over a raw socket: one write per response must not break keep-alive,
pipelining, HEAD, ``Expect: 100-continue`` or connection close."""

from __future__ import annotations

import socket

import httptools
import orjson

from lepton.serve.http import _HeadWithBody
from tests.serve.conftest import mnist_images
from tests.serve.test_server import infer_body


class Responses:
    """Reads whole HTTP responses from a socket with httptools."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, bytes]] = []
        self.body = b""

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self.body))
        self.body = b""

    def read(self, count: int = 1) -> list[tuple[int, bytes]]:
        while len(self.done) < count:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.parser.feed_data(data)
        out, self.done = self.done[:count], self.done[count:]
        return out


def request(path: str, body: bytes = b"", method: str = "POST", headers: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: application/json\r\n{headers}\r\n").encode() + body


def connect(server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def test_keep_alive_and_pipelined_requests_are_answered_in_order(server):
    images, _ = mnist_images(3)
    with connect(server) as sock:
        responses = Responses(sock)
        for i in range(3):  # one after the other on one connection
            sock.sendall(request("/v2/models/mnist/infer", infer_body(images[i:i + 1],
                                                                        id=f"k{i}")))
            status, body = responses.read()[0]
            assert status == 200 and orjson.loads(body)["id"] == f"k{i}"
        sock.sendall(b"".join(request("/v2/models/mnist/infer",
                                      infer_body(images[i:i + 1], id=f"p{i}"))
                              for i in range(3)))  # pipelined: three in one write
        answers = responses.read(3)
        assert [orjson.loads(b)["id"] for _, b in answers] == ["p0", "p1", "p2"]


def test_head_and_expect_100_continue_do_not_stall(server):
    images, _ = mnist_images(1)
    body = infer_body(images, id="e")
    with connect(server) as sock:
        sock.sendall(request("/v2/health/live", method="HEAD"))
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
        sock.sendall(request("/v2/models/mnist/infer", body,
                             headers="Expect: 100-continue\r\n")[:-len(body)])
        interim = sock.recv(65536)  # the interim answer comes before the body is sent
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        status, answer = Responses(sock).read()[0]
        assert status == 200 and orjson.loads(answer)["id"] == "e"


def test_connection_close_is_honoured_after_the_response(server):
    with connect(server) as sock:
        sock.sendall(request("/v2/health/live", method="GET", headers="Connection: close\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"live":true}')


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))

    def get_extra_info(self, name: str):
        return f"info:{name}"


def test_a_response_head_leaves_with_its_body_in_one_write():
    t = Recorder()
    transport = _HeadWithBody(t)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim: never held
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert t.calls == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]
    transport.write(b"ok")
    assert t.calls[-1] == ("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # no body follows: flushed at the end
    transport.flush()
    assert t.calls[-1] == ("write", b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    transport.close()  # closing sends what is held first
    assert [c[0] for c in t.calls[-2:]] == ["write", "close"]
    assert transport.get_extra_info("socket") == "info:socket"
