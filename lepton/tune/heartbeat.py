"""Heartbeats for running trials, and what happens to a trial whose worker died.

Optuna's own heartbeat exists only for its SQL storage; the journal file (our default) has
none, so a worker killed with ``kill -9`` would leave its trial RUNNING forever. Here every
worker stamps its running trial (a system attribute, the same way on every storage) each
``interval`` seconds; any worker that finds a RUNNING trial unstamped for ``grace`` seconds
marks it FAIL and queues one retry with the same parameters. Marking FAIL is a
compare-and-set in both storages (a finished trial cannot be updated), so when two workers
race only one queues the retry, and a trial that was failed while its worker still lived
cannot be reported afterwards: no trial is counted twice.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

BEAT = "lepton:heartbeat"
RETRY_OF = "failed_trial"  # Optuna's own key (RetryHeartbeatStaleTrialCallback)


class Heartbeat:
    """A daemon thread that stamps one trial until ``stop``; use as a context manager."""

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lepton-heartbeat", daemon=True)

    def _beat(self) -> None:
        self.storage.set_trial_system_attr(self.trial_id, BEAT, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a finished trial or a lost connection: stop
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()  # until the first beat, the trial's start time stands for one
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=max(1.0, self.interval))


def last_beat(trial: Any) -> float:
    """When the trial was last known alive (its stamp, else its start)."""
    beat = trial.system_attrs.get(BEAT)
    if beat is not None:
        return float(beat)
    start = trial.datetime_start or datetime.now()
    return start.timestamp()


def fail_stale(study: Any, grace: float, max_retry: int = 1) -> list[int]:
    """Mark RUNNING trials silent for ``grace`` seconds FAIL and queue each for ``max_retry``
    retries; returns the numbers of the trials this call failed."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    now, failed = time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if now - last_beat(trial) < grace:
            continue
        try:
            if not study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another worker failed (or finished) it first
            continue
        failed.append(trial.number)
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > max_retry:
            continue
        system = {k: v for k, v in trial.system_attrs.items() if k != BEAT}
        study.add_trial(optuna.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            user_attrs=dict(trial.user_attrs),
            system_attrs={**system, RETRY_OF: system.get(RETRY_OF, trial.number),
                          "retry_history": history}))
    return failed
