"""The server's work besides answering requests, all off the hot path: the prediction log
with its traffic sketches, and background threads for the retention sweep
(``--log-retention``), the monitor gauges on ``/metrics`` (read from the store every 30 s),
alias reloads (``--reload``) and traffic experiments (``lepton.serve.traffic``, every 0.25 s,
and once before the server turns ready). ``LeptonApp.load`` calls ``start`` once the models
are loaded; ``LeptonApp.shutdown`` calls ``stop``.
"""

from __future__ import annotations

import logging
from typing import Any

from lepton.serve.retention import Periodic

log = logging.getLogger("lepton.serve")
GAUGES_S = 30.0


def prediction_log(app: Any) -> Any:
    """The app's prediction log: sampled, redacted and encrypted inputs as its options say,
    and traffic sketches of every served version that has a reference."""
    from lepton.serve.predlog import PredictionLog, parse_redact
    from lepton.serve.sketches import TrafficSketches
    from lepton.store._crypt import encryptor

    options = app.options
    redact = parse_redact(options.redact)
    sketches = None
    if options.sketches:
        sketches = TrafficSketches(app.store, redact=redact)
        for name, versions in app.table.models.items():
            for served in versions.values():
                sketches.register(name, served.registry_version, served.runner.path)
    encrypt = encryptor() if options.sample_inputs > 0 else None  # checks $LEPTON_LOG_KEY
    return PredictionLog(app.store, sample_inputs=options.sample_inputs,
                         redact=options.redact, sketches=sketches, encrypt=encrypt,
                         on_drop=app.metrics.predlog_dropped.inc)


def start(app: Any) -> list[Periodic]:
    """The background threads this app's options ask for."""
    threads = []
    options = app.options
    if app.store is not None:
        def gauges() -> None:
            app.metrics.monitor.refresh(app.store, list(app.table.models))

        threads.append(Periodic(gauges, GAUGES_S, "lepton-gauges", first_s=0.0))
        from lepton.serve.traffic import POLL_S

        app.traffic.poll()  # a split given at start routes the first request already
        threads.append(Periodic(app.traffic.poll, POLL_S, "lepton-traffic"))
        if options.log_retention_s > 0:
            from lepton.serve.retention import sweeper

            threads.append(sweeper(app.store, options.log_retention_s))
    if options.reload_s > 0:
        from lepton.serve.reload import check, followed

        if followed(app):
            threads.append(Periodic(lambda: check(app), options.reload_s, "lepton-reload"))
        else:
            log.warning("lepton serve: --reload follows models served by alias (name@alias); "
                        "none is")
    return threads


def stop(threads: list[Periodic]) -> None:
    for thread in threads:
        thread.close()
