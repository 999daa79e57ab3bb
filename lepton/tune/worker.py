"""A tuning worker: asks the shared study for trials and runs them until the budget is spent.

The same loop runs in-process (``--jobs 1``) and in each worker process
(``python -m lepton.tune.worker CONFIG.json``, started by ``lepton.tune.api``); processes, not
threads, because trials are CPU-bound. The budget is counted in the study itself (completed
plus pruned trials; failed ones do not count), so workers on several machines share it, and a
worker waits rather than starting a trial the others' running trials already cover. Exit
status 3 means "a trial failed and none has succeeded": the error is in ``<config>.error``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lepton.tune.heartbeat import Heartbeat, fail_stale
from lepton.tune.storage import TuneError, open_storage

ERROR_EXIT = 3
SURPLUS = "lepton:surplus"
POLL_S = 0.5


def make_pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=3, reduction_factor=3)
    return optuna.pruners.NopPruner()


def counts(study: Any) -> dict[str, int]:
    """Trials per state name (complete, pruned, fail, running, waiting)."""
    out = {"complete": 0, "pruned": 0, "fail": 0, "running": 0, "waiting": 0, "surplus": 0}
    for trial in study.get_trials(deepcopy=False):
        state = "surplus" if trial.user_attrs.get(SURPLUS) else trial.state.name.lower()
        out[state] = out.get(state, 0) + 1
    return out


def surplus(study: Any, trial: Any, n_trials: int) -> bool:
    """Whether trials numbered before ``trial`` already cover the budget (two workers asked
    at once): such a trial is closed unrun, so a study never runs past ``n_trials``."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.number < trial.number and t.state in live and not t.user_attrs.get(SURPLUS)
               for t in study.get_trials(deepcopy=False)) >= n_trials


def run_trial(study: Any, objective: Callable, interval: float,
              n_trials: int) -> tuple[Any, Any, str | None]:
    """Ask, run under a heartbeat, tell; returns (frozen trial or None, state, error)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    trial = study.ask()
    storage = study._storage
    if surplus(study, trial, n_trials):
        storage.set_trial_user_attr(trial._trial_id, SURPLUS, True)
        study.tell(trial, state=TrialState.FAIL)
        return None, TrialState.FAIL, None
    storage.set_trial_system_attr(trial._trial_id, "lepton:worker",
                                  f"{socket.gethostname()}:{os.getpid()}")
    value, state, error = None, TrialState.COMPLETE, None
    with Heartbeat(storage, trial._trial_id, interval):
        try:
            value = objective(trial)
        except Exception as exc:  # noqa: BLE001 - pruned, or the trial's own error
            import optuna

            if isinstance(exc, optuna.TrialPruned):
                state = TrialState.PRUNED
            else:
                state, error = TrialState.FAIL, f"{type(exc).__name__}: {exc}"
                storage.set_trial_user_attr(trial._trial_id, "error", error[:2000])
    try:
        frozen = study.tell(trial, value if state == TrialState.COMPLETE else None,
                            state=state)
    except UpdateFinishedTrialError:  # failed as stale meanwhile: its retry counts instead
        return None, TrialState.FAIL, None
    return frozen, state, error


def run_worker(cfg: dict[str, Any], objective: Any = None,
               log: Callable[[str], None] | None = None) -> None:
    """Run trials of ``cfg['study']`` until ``cfg['trials']`` are done or the deadline."""
    import optuna
    from optuna.trial import TrialState

    from lepton.tune.objective import Objective

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(cfg["storage"], cfg.get("jobs", 1))
    study = optuna.load_study(
        study_name=cfg["study"], storage=storage, pruner=make_pruner(cfg["pruner"]),
        sampler=optuna.samplers.TPESampler(seed=int(cfg["seed"]) + int(cfg.get("worker", 0)),
                                           n_startup_trials=int(cfg.get("startup", 10))))
    own = objective is None
    objective = objective or Objective(cfg["data"], cfg.get("target"), cfg["space"],
                                       cfg["metric"], int(cfg["seed"]))
    n_trials, deadline = int(cfg["trials"]), cfg.get("deadline")
    try:
        warm_up(objective)
        while True:
            fail_stale(study, float(cfg["grace"]))
            n = counts(study)
            done = n["complete"] + n["pruned"]
            if done >= n_trials or (deadline and time.time() >= deadline):
                return
            if done + n["running"] >= n_trials and not n["waiting"]:
                time.sleep(POLL_S)  # the others' trials cover the budget unless they die
                continue
            frozen, state, error = run_trial(study, objective, float(cfg["interval"]), n_trials)
            if error and not any(t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                                 for t in study.get_trials(deepcopy=False)):
                raise TuneError(f"Trial {frozen.number} failed and no trial has succeeded",
                                received=error,
                                fix="fix the data or the space (the error is the trial's)")
            if log is not None and frozen is not None:
                log(progress(study, frozen, n_trials))
    finally:
        if own:
            objective.close()


def warm_up(objective: Any) -> None:
    """Read the data and load torch's optimizer machinery (``torch.optim`` imports
    ``torch._dynamo`` on its first optimizer, about a second) before the first trial, so a
    fresh worker's first trial costs what the others do."""
    import torch

    objective.prepared(None)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def progress(study: Any, frozen: Any, n_trials: int) -> str:
    """One line: the trial just finished, trials done, best so far, pruned count."""
    n = counts(study)
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no completed trial yet"
    value = f"{frozen.value:.4f}" if frozen.value is not None else frozen.state.name.lower()
    return (f"trial {frozen.number}: {value} | done {n['complete'] + n['pruned']}/{n_trials}, "
            f"{best}, pruned {n['pruned']}, failed {n['fail']}")


def main(argv: list[str]) -> int:
    config_path = Path(argv[0])
    cfg = json.loads(config_path.read_text())
    cfg["worker"] = int(argv[1]) if len(argv) > 1 else 0
    from lepton.core.device import set_threads

    set_threads(int(cfg.get("threads") or 1))
    try:
        run_worker(cfg)
    except TuneError as exc:
        error_file = config_path.with_name(f"worker-{cfg['worker']}.error")
        error_file.write_text(str(exc))
        return ERROR_EXIT
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a worker process
    sys.exit(main(sys.argv[1:]))
