"""Replicas behind one port: ``lepton serve --replicas N`` and ``--autoscale MIN:MAX``.

The supervisor binds the listening socket once and starts each replica as its own process
(``python -m lepton.serve.supervisor``) that inherits that socket and accepts on it: the kernel
hands each new connection to one of the replicas waiting in ``accept``, so load is balanced by
connection, with no proxy hop. It is the socket-sharing ``--workers`` uses (uvicorn's parent
binds, children inherit), chosen over ``SO_REUSEPORT`` because with one shared accept queue a
replica that stops accepting (draining, or dead) leaves its unaccepted connections to the
others; with per-process ``SO_REUSEPORT`` sockets the kernel would reset the connections
already hashed to the closing one. A replica loads its models before it accepts, so no
connection waits on a loading replica.

Each replica writes its in-flight requests, requests served and readiness to one slot of a
small shared status file (``mmap``); the supervisor samples it four times a second and asks
``scaling.desired_replicas`` how many it wants. It adds a replica, or drains the newest one
(SIGTERM: stop accepting, finish in-flight requests, exit), and restarts a replica that dies.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton.serve.options import ServerConfig
from lepton.serve.resources import SLOTS, STATUS_ENV, StatusBoard
from lepton.serve.scaling import Policy, Sample, desired_replicas

MAX_DEATHS_PER_MINUTE = 5  # more unplanned exits than this in 60 s: the supervisor stops
REBALANCE_S = 1.0  # how long older replicas recycle connections when one is added
ACCEPT_GRACE_S = 0.5  # a draining replica's wait between closing its accept and shutting down
log = logging.getLogger("lepton.serve")


@dataclass
class Replica:
    slot: int
    proc: subprocess.Popen
    started: float
    draining: bool = False


class Supervisor:
    """Runs replicas of one server config behind one socket, scaled by ``policy``."""

    def __init__(self, config: ServerConfig, policy: Policy, *, poll_s: float = 0.25) -> None:
        self.config = config
        self.policy = policy
        self.poll_s = poll_s
        self.replicas: list[Replica] = []
        self.samples: list[Sample] = []
        self.restarts = 0
        self.exit_code = 0
        self._deaths: list[float] = []
        self._areas: dict[int, tuple[float, float]] = {}  # pid: (when, in-flight seconds)
        self._stop = threading.Event()
        self._dir = tempfile.mkdtemp(prefix="lepton-replicas-")
        self.board = StatusBoard(Path(self._dir) / "status", create=True)
        self.sock = self._bind()
        self.port = self.sock.getsockname()[1]

    def _bind(self) -> socket.socket:
        host = self.config.host
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, self.config.port))
        sock.listen(2048)
        sock.set_inheritable(True)
        return sock

    # -- replicas -------------------------------------------------------------------------
    def _spawn(self, slot: int | None = None) -> Replica:
        used = {r.slot for r in self.replicas}
        slot = slot if slot is not None else next(i for i in range(SLOTS) if i not in used)
        self.board.clear(slot)
        metrics = Path(self._dir) / "metrics"
        metrics.mkdir(exist_ok=True)
        env = {**os.environ, "LEPTON_SERVE_CONFIG": self.config.to_json(),
               STATUS_ENV: self.board.path, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        proc = subprocess.Popen([sys.executable, "-m", "lepton.serve.supervisor",
                                 str(self.sock.fileno()), str(slot)], env=env,
                                pass_fds=(self.sock.fileno(),))
        replica = Replica(slot, proc, time.monotonic())
        self.replicas.append(replica)
        log.info("lepton serve: replica %d started (pid %d)", slot, proc.pid)
        return replica

    def _drain(self, replica: Replica) -> None:
        replica.draining = True
        log.info("lepton serve: draining replica %d (pid %d)", replica.slot, replica.proc.pid)
        replica.proc.send_signal(signal.SIGTERM)

    def _reap(self) -> None:
        for replica in list(self.replicas):
            code = replica.proc.poll()
            if code is None:
                continue
            self.replicas.remove(replica)
            self.board.clear(replica.slot)
            if not replica.draining and not self._stop.is_set():
                self.restarts += 1
                now = time.monotonic()
                self._deaths = [t for t in self._deaths if t > now - 60] + [now]
                if len(self._deaths) > MAX_DEATHS_PER_MINUTE:  # a crash loop: give up
                    log.error("lepton serve: replicas died %d times in a minute (last exit "
                              "code %s); stopping", len(self._deaths), code)
                    self.exit_code = 1
                    self._stop.set()
                    return
                log.warning("lepton serve: replica %d (pid %d) exited with %s; restarting",
                            replica.slot, replica.proc.pid, code)
                self._spawn(replica.slot)

    def _mean_inflight(self, slots: list[Any], active: list[Replica], now: float) -> float:
        """Mean total in flight since the last round (each replica's integral's change over
        the time passed), so a sample sees the load, not one instant between batches."""
        total = 0.0
        for replica in active:
            area = slots[replica.slot].inflight_us / 1e6
            seen = self._areas.get(replica.proc.pid)
            self._areas[replica.proc.pid] = (now, area)
            if seen is not None and now > seen[0] and area >= seen[1]:
                total += (area - seen[1]) / (now - seen[0])
        return total

    def active(self) -> list[Replica]:
        return [r for r in self.replicas if not r.draining]

    def step(self, now: float | None = None) -> int:
        """One supervision round: reap, sample, scale. Returns the replicas wanted."""
        now = time.monotonic() if now is None else now
        self._reap()
        slots = self.board.read()
        active = self.active()
        self.samples.append((now, self._mean_inflight(slots, active, now)))
        keep = max(self.policy.up_delay_s, self.policy.down_delay_s) + 2 * self.poll_s
        while len(self.samples) > 1 and self.samples[1][0] <= now - keep:
            self.samples.pop(0)
        wanted = desired_replicas(self.samples, now, len(active), self.policy)
        for _ in range(wanted - len(active)):
            self._spawn()
        if wanted < len(active):
            for replica in sorted(active, key=lambda r: r.started)[wanted:]:
                self._drain(replica)
        return wanted

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> int:
        """Start the replicas, supervise until SIGTERM/SIGINT, drain them all; exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        for _ in range(self.policy.min_replicas):
            self._spawn()
        try:
            while not self._stop.wait(self.poll_s):
                self.step()
        finally:
            self.stop()
        return self.exit_code

    def stop(self) -> None:
        self._stop.set()
        for replica in self.replicas:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.options.drain_s + 10
        for replica in self.replicas:
            try:
                replica.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                replica.proc.kill()
                replica.proc.wait()
        self.replicas.clear()
        self.sock.close()
        self.board.close()
        import shutil

        shutil.rmtree(self._dir, ignore_errors=True)


class Counted:
    """The app, counting prediction requests from arrival to answer (what the autoscaler
    scales on: decoding and encoding included, not just the batcher's share)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inflight = 0
        self.served = 0
        self.area = 0.0  # in flight x seconds, up to ``self.last``
        self.rebalance_until = 0.0  # connections are recycled until then (monotonic)
        self.rebalance_share = 0.0  # the share of connections to recycle: added / replicas
        self.recycled: set[Any] = set()
        self.last = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.area += self.inflight * (now - self.last)
        self.last = now

    def inflight_seconds(self) -> float:
        """In flight integrated over time until now (read from the reporting thread)."""
        last, area, inflight = self.last, self.area, self.inflight
        return area + inflight * max(0.0, time.perf_counter() - last)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.endswith(("/infer", "/predict")):
            await self.app(scope, receive, send)
            return
        self._tick()
        self.inflight += 1
        if self.rebalance_until and time.monotonic() < self.rebalance_until:
            client = scope.get("client")  # one connection: recycled once, by its share
            if client not in self.recycled and random.random() < self.rebalance_share:
                self.recycled.add(client)
                send = _closing(send)
        try:
            await self.app(scope, receive, send)
        finally:
            self._tick()
            self.inflight -= 1
            self.served += 1


def _closing(send: Any) -> Any:
    """``send`` with ``Connection: close`` on the response: the client reconnects, and the
    kernel gives the new connection to whichever replica is waiting in accept."""
    async def closing(message: dict) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()),
                                              (b"connection", b"close")]}
        await send(message)
    return closing


def _report(counted: Counted, board: StatusBoard, slot: int, stop: threading.Event) -> None:
    """A replica's status, every 50 ms: in flight, served, ready (and not draining). When
    another replica turns ready, this one closes its fair share of keep-alive connections
    (added / replicas, each once, after its next answer, for ``REBALANCE_S``): they reconnect,
    mostly to the idle new replica, so long-lived connections spread over the new set
    (without it a keep-alive client stays on the replica it first reached)."""
    pid, app = os.getpid(), counted.app
    others = None
    while not stop.wait(0.05):
        ready = sum(1 for i, s in enumerate(board.read()) if s.ready and i != slot)
        if others is not None and ready > others:
            counted.recycled = set()
            counted.rebalance_share = (ready - others) / (ready + 1)
            counted.rebalance_until = time.monotonic() + REBALANCE_S
        others = ready
        board.write(slot, pid, counted.inflight, counted.served, app.ready and not app.draining,
                    int(counted.inflight_seconds() * 1e6))


def replica_main(fd: int, slot: int) -> int:
    """One replica: build the app from the environment and serve on the inherited socket."""
    import uvicorn

    from lepton.serve.server import CONFIG_ENV, build_app, uvicorn_kwargs

    config = ServerConfig.from_json(os.environ[CONFIG_ENV])
    config.options.load_before_listen = True
    app = build_app(config)
    board = StatusBoard(os.environ[STATUS_ENV])
    stop = threading.Event()
    counted = Counted(app)
    threading.Thread(target=_report, args=(counted, board, slot, stop), daemon=True).start()

    class Server(uvicorn.Server):
        """Drains in two steps: stop accepting at once (the other replicas take new
        connections from the shared queue), then, after ``ACCEPT_GRACE_S`` for connections
        accepted just before to send their request, uvicorn's shutdown, which finishes
        in-flight requests but closes connections that have sent nothing yet."""

        drain_since: float | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            app.begin_drain()
            if self.drain_since is not None:  # a second signal: stop now
                super().handle_exit(sig, frame)
            self.drain_since = time.monotonic()

        async def on_tick(self, counter: int) -> bool:
            if self.drain_since is not None:
                for listening in self.servers:
                    listening.close()  # this process's copy of the socket only
                if time.monotonic() - self.drain_since >= ACCEPT_GRACE_S:
                    self.should_exit = True
            return await super().on_tick(counter)

    sock = socket.socket(fileno=fd)
    server = Server(uvicorn.Config(counted, **uvicorn_kwargs(config)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    stop.set()
    return 0 if app.load_error is None else 1


def serve_replicas(config: ServerConfig, policy: Policy) -> int:
    """``lepton serve --replicas N | --autoscale MIN:MAX``: supervise until a signal."""
    supervisor = Supervisor(config, policy)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(replica_main(int(sys.argv[1]), int(sys.argv[2])))
