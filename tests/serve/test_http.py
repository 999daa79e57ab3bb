"""The HTTP/1.1 layer over a raw socket: one write per response must not break keep-alive,
pipelining, HEAD, ``Expect: 100-continue`` or connection close."""

from __future__ import annotations

import logging
import socket
import sys

import httptools
import orjson
import pytest
import uvicorn

from lepton.serve import server as serving
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


@pytest.fixture
def fresh_protocol():
    serving.http_protocol.cache_clear()
    yield serving.http_protocol
    serving.http_protocol.cache_clear()


def test_the_private_uvicorn_class_is_used_only_on_tested_versions(fresh_protocol, monkeypatch,
                                                                   caplog):
    protocol = fresh_protocol()
    assert protocol != "httptools" and protocol.__name__ == "HttpProtocol"  # installed: tested
    for version in ("0.28.1", "0.99.0", "1.0.0", "dev"):
        fresh_protocol.cache_clear()
        monkeypatch.setattr(uvicorn, "__version__", version)
        with caplog.at_level(logging.WARNING, logger="lepton.serve"):
            assert fresh_protocol() == "httptools"
        assert f"uvicorn {version} is outside the versions" in caplog.text


def test_a_missing_private_class_falls_back_to_the_public_protocol(fresh_protocol, monkeypatch,
                                                                   caplog):
    monkeypatch.setitem(sys.modules, "uvicorn.protocols.http.httptools_impl", None)
    monkeypatch.delitem(sys.modules, "lepton.serve.http")  # imported again, and failing
    with caplog.at_level(logging.WARNING, logger="lepton.serve"):
        assert fresh_protocol() == "httptools"
    assert "HttpToolsProtocol is missing" in caplog.text


def test_a_server_on_the_fallback_protocol_still_answers(fresh_protocol, monkeypatch):
    from lepton.serve.app import LeptonApp
    from lepton.serve.models import ModelSource
    from lepton.serve.options import ServeOptions
    from tests.serve.conftest import cnn_runner, run_app

    monkeypatch.setattr(uvicorn, "__version__", "9.0.0")
    assert serving.uvicorn_kwargs(serving.ServerConfig(models=[]))["http"] == "httptools"
    images, _ = mnist_images(2)
    app = LeptonApp([ModelSource("mnist", cnn_runner)], ServeOptions(log_predictions=False))
    with run_app(app) as running, running.client() as c:
        r = c.post("/v2/models/mnist/infer", content=infer_body(images, id="fallback"))
    assert r.status_code == 200 and r.json()["id"] == "fallback"
    assert len(r.json()["outputs"][0]["data"]) == 20
