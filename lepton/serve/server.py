"""Run the app on uvicorn: model resolution, safe binding, workers, SIGTERM drain.

One process by default. With ``--workers N`` uvicorn starts N processes sharing the port; each
rebuilds the app from a JSON description passed in the environment (no pickle), sets its own
torch thread count (``--threads``, default 1), and loads its own copy of the models. SIGTERM
turns readiness to 503 at once, lets in-flight requests finish (up to the drain period) and
exits 0.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lepton.errors import ConfigError, NotFoundError
from lepton.serve.app import LeptonApp
from lepton.serve.auth import check_bind
from lepton.serve.models import ModelSource
from lepton.serve.options import ModelRef, ServerConfig, check_name

__all__ = ["BackgroundServer", "ModelRef", "ServerConfig", "build_app", "resolve_models",
           "serve"]

CONFIG_ENV = "LEPTON_SERVE_CONFIG"
# uvicorn (major, minor) versions whose private HttpToolsProtocol lepton.serve.http was checked
# against (the hooks it overrides read alike in 0.29.0 and 0.54.0): from the first, before the
# second
UVICORN_TESTED = ((0, 29), (0, 55))
log = logging.getLogger("lepton.serve")


def resolve_models(specs: list[str], names: list[str] | None = None) -> list[ModelRef]:
    """Artifact directories or registry references (``name``, ``name:3``, ``name@alias``)."""
    names = list(names or [])
    if names and len(names) != len(specs):
        raise ConfigError("Give one --name per model, or none",
                          expected=f"{len(specs)} names", received=f"{len(names)}")
    refs = []
    for i, spec in enumerate(specs):
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "lepton.json").is_file():
                raise NotFoundError("This directory is not a Lepton artifact",
                                    expected="a directory with lepton.json", received=spec,
                                    fix="pass a directory written by model.save()")
            ref = ModelRef(name=path.resolve().name, path=str(path.resolve()))
        else:
            ref = _from_registry(spec)
        if names:
            ref.name = names[i]
        check_name("model name", ref.name)
        refs.append(ref)
    return refs


def _from_registry(spec: str) -> ModelRef:
    try:
        from lepton.registry import Registry
        from lepton.store import Store
    except ImportError:
        raise NotFoundError("No such artifact directory", received=spec,
                            fix="pass the path of a saved model") from None
    entry = Registry(Store.open()).resolve(spec)
    return ModelRef(name=entry["name"], path=str(entry["path"]),
                    version=str(entry["version"]), registry_version=int(entry["version"]),
                    alias=spec if "@" in spec else None)


def build_app(config: ServerConfig, *,
              store_factory: Callable[[], Any] | None = None) -> LeptonApp:
    sources = [ModelSource.from_artifact(m.path, m.name, m.version, m.registry_version)
               for m in config.models]
    for source, ref in zip(sources, config.models, strict=True):
        source.extra["alias"] = ref.alias  # followed by --reload
    return LeptonApp(sources, config.options, store_factory=store_factory)


def app_from_env() -> LeptonApp:
    """uvicorn factory for worker processes: the config comes in $LEPTON_SERVE_CONFIG."""
    config = ServerConfig.from_json(os.environ[CONFIG_ENV])
    config.options.load_before_listen = True
    app = build_app(config)
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGTERM)
        if callable(previous):
            def on_term(sig: int, frame: Any) -> None:
                app.begin_drain()
                previous(sig, frame)

            signal.signal(signal.SIGTERM, on_term)
    return app


@functools.cache
def http_protocol() -> type[asyncio.Protocol] | str:
    """uvicorn's ``http`` setting: the one-write protocol of ``lepton.serve.http`` on the
    uvicorn versions it was tested on, else uvicorn's public ``"httptools"`` (correct, about
    5 % slower) with a warning in the log."""
    import uvicorn

    version = uvicorn.__version__
    try:
        checked = UVICORN_TESTED[0] <= tuple(map(int, version.split(".")[:2])) < UVICORN_TESTED[1]
    except ValueError:  # a version string that is not numbers
        checked = False
    if not checked:
        log.warning("lepton serve: uvicorn %s is outside the versions its HTTP layer was tested "
                    "on (%s); using uvicorn's plain httptools protocol", version,
                    " to before ".join(".".join(map(str, v)) for v in UVICORN_TESTED))
        return "httptools"
    try:
        from lepton.serve.http import HttpProtocol
    except ImportError as exc:  # uvicorn moved or renamed its private class
        log.warning("lepton serve: uvicorn's HttpToolsProtocol is missing (%s); using uvicorn's "
                    "plain httptools protocol", exc)
        return "httptools"
    return HttpProtocol


def uvicorn_kwargs(config: ServerConfig) -> dict[str, Any]:
    """The uvicorn settings every Lepton server runs with (CLI, workers, background, tests)."""
    kwargs: dict[str, Any] = {"host": config.host, "port": config.port, "access_log": False,
                              "log_level": "warning", "lifespan": "on",
                              "timeout_graceful_shutdown": config.options.drain_s,
                              "server_header": False, "timeout_keep_alive": 30,
                              "proxy_headers": False, "ws": "none", "http": http_protocol()}
    if config.tls_cert is not None:  # HTTPS: uvicorn's own ssl settings
        kwargs.update(ssl_certfile=config.tls_cert, ssl_keyfile=config.tls_key)
    try:
        import uvloop  # noqa: F401
        kwargs["loop"] = "uvloop"
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard], not on Windows
        pass
    return kwargs


def serve(config: ServerConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (0 after a clean drain)."""
    check_bind(config.host, config.options.token)
    if config.workers > 1:
        import shutil
        import tempfile

        import uvicorn

        os.environ[CONFIG_ENV] = config.to_json()
        metrics_dir = tempfile.mkdtemp(prefix="lepton-metrics-")  # workers sum their metrics
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            uvicorn.run("lepton.serve.server:app_from_env", factory=True,
                        workers=config.workers, **uvicorn_kwargs(config))
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        return 0
    return run_app(build_app(config), config.host, config.port, tls=(config.tls_cert,
                                                                       config.tls_key))


def run_app(app: LeptonApp, host: str = "127.0.0.1", port: int = 8000,
            tls: tuple[str | None, str | None] = (None, None)) -> int:
    """Serve one app in this process (main thread) until a signal; 0 after a clean drain."""
    import uvicorn

    check_bind(host, app.options.token)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.begin_drain()
            super().handle_exit(sig, frame)

    config = ServerConfig(models=[], options=app.options, host=host, port=port,
                          tls_cert=tls[0], tls_key=tls[1])
    server = Server(uvicorn.Config(app, **uvicorn_kwargs(config)))
    app.on_load_error = lambda: setattr(server, "should_exit", True)
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler
    # turns that into a normal return, so a SIGTERM drain exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run()
    return 0 if app.load_error is None else 1


class BackgroundServer:
    """Serve an app from a thread of this process (for ``lepton demo``, notebooks, tests).

        with BackgroundServer(app) as url:
            lepton.Client(url).predict("mnist", images)
    """

    def __init__(self, app: LeptonApp, host: str = "127.0.0.1", port: int = 0, *,
                 tls_cert: str | None = None, tls_key: str | None = None) -> None:
        check_bind(host, app.options.token)
        self.app = app
        self.host = host
        self.port = port or _free_port(host)
        self.tls = (tls_cert, tls_key)
        self.url = f"{'https' if tls_cert else 'http'}://{host}:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 120.0) -> str:
        """Start, wait until ready (models loaded and warm); returns the URL."""
        import time

        import uvicorn

        config = ServerConfig(models=[], options=self.app.options, host=self.host,
                              port=self.port, tls_cert=self.tls[0], tls_key=self.tls[1])
        self._server = uvicorn.Server(uvicorn.Config(self.app, **uvicorn_kwargs(config)))
        self._thread = threading.Thread(target=self._server.run, name="lepton-serve",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.app.ready or not self._server.started:
            if self.app.load_error is not None or time.monotonic() > deadline:
                self.stop()
                raise ConfigError("The server did not become ready",
                                  received=self.app.load_error or f"not ready in {timeout_s} s")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Drain and stop (in-flight requests finish first)."""
        if self._server is not None:
            self.app.begin_drain()
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.app.options.drain_s + 10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
