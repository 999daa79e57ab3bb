"""``lepton tune`` as a function: data in; a study, the best model (an artifact with its
tuning lineage, registered) and a report out.

``jobs`` worker processes share one study through its storage; with ``jobs=1`` the loop runs
in this process. The best trial is retrained on its parameters through ``lepton train``
(same split and seed, so the same model), which writes the artifact and its report the one
way every trained model is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton.errors import ConfigError
from lepton.tune.storage import TuneError

PRUNERS = ("median", "hyperband", "none")


@dataclass
class TuneResult:
    path: Path                 # the best model's artifact
    report: Path               # the tune report (HTML)
    study: str
    storage: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    counts: dict[str, int]
    metrics: dict[str, Any]    # the best model's test metrics
    seconds: float
    registered: dict | None = None


def _check(trials: int, jobs: int, pruner: str, timeout: float | None) -> None:
    if not isinstance(jobs, int) or jobs < 1:
        raise ConfigError("--jobs must be a positive number of worker processes",
                          received=f"jobs={jobs!r}", fix="pass --jobs 1 or more")
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError("--trials must be a positive int", received=f"trials={trials!r}")
    if pruner not in PRUNERS:
        raise ConfigError("Unknown pruner", expected=f"one of {list(PRUNERS)}",
                          received=repr(pruner))
    if timeout is not None and not timeout > 0:
        raise ConfigError("--timeout must be positive seconds", received=f"timeout={timeout}")


def _spawn(cfg: dict[str, Any], out: Path, jobs: int, log: Callable[[str], None]) -> None:
    """Run ``jobs`` worker processes to the end; raise the first trial error one reports."""
    import optuna

    from lepton.core.device import available_cpus
    from lepton.tune.storage import open_storage
    from lepton.tune.worker import ERROR_EXIT, counts

    folder = out / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    threads = max(1, available_cpus() // jobs)
    cfg_path = folder / "config.json"
    cfg_path.write_text(json.dumps({**cfg, "threads": threads}))
    env = {**os.environ, "LEPTON_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    procs = []
    for i in range(jobs):
        (folder / f"worker-{i}.error").unlink(missing_ok=True)
        with open(folder / f"worker-{i}.log", "wb") as out_file:
            procs.append(subprocess.Popen([sys.executable, "-m", "lepton.tune.worker",
                                           str(cfg_path), str(i)], env=env, stdout=out_file,
                                          stderr=subprocess.STDOUT))
    log(f"{jobs} worker processes ({threads} thread{'s' * (threads > 1)} each): "
        + ", ".join(str(p.pid) for p in procs))
    study = optuna.load_study(study_name=cfg["study"], storage=open_storage(cfg["storage"]))
    seen, reported = set(), ""
    try:
        while [p.poll() for p in procs].count(None):  # poll every one: returncode is set
            time.sleep(1.0)
            for i, proc in enumerate(procs):
                if proc.returncode is None or i in seen:
                    continue
                seen.add(i)
                if proc.returncode == ERROR_EXIT:
                    raise TuneError((folder / f"worker-{i}.error").read_text().rstrip("."))
                if proc.returncode != 0:
                    log(f"worker {i} (pid {proc.pid}) ended with status {proc.returncode}; "
                        f"the others retry its trial")
            n = counts(study)
            try:
                best = f", best {study.best_value:.4f} (trial {study.best_trial.number})"
            except ValueError:  # no completed trial yet
                best = ""
            line = (f"done {n['complete'] + n['pruned']}/{cfg['trials']}{best} (pruned "
                    f"{n['pruned']}, failed {n['fail']}, running {n['running']})")
            if line != reported:
                log(line)
                reported = line
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait()
    if all(p.returncode not in (0, ERROR_EXIT) for p in procs):
        n = counts(study)
        if n["complete"] + n["pruned"] < cfg["trials"] and not cfg.get("deadline"):
            logs = (folder / "worker-0.log").read_text(errors="replace")[-500:]
            raise TuneError("Every tuning worker stopped before the budget was spent",
                            received=logs.strip().splitlines()[-1:] or "no output",
                            fix=f"see the logs in {folder}")


def tune(data: str | Path, target: str | None = None, *, space: str | Path | dict | None = None,
         trials: int = 20, timeout: float | None = None, jobs: int = 1,
         storage: str | None = None, study: str | None = None, pruner: str = "median",
         metric: str = "val_loss", out: str | Path = "tuned", seed: int = 42,
         name: str | None = None, register: bool = True, heartbeat: float = 5.0,
         grace: float = 30.0, log: Callable[[str], None] | None = None) -> TuneResult:
    """Search models and training settings for ``data``; see ``lepton tune --help``."""
    from lepton.train import record
    from lepton.train.datasets import data_hash
    from lepton.tune.objective import Objective, direction
    from lepton.tune.space import load_space
    from lepton.tune.storage import open_storage, open_study, storage_url
    from lepton.tune.worker import counts, run_worker

    _check(trials, jobs, pruner, timeout)
    log = log or (lambda _msg: None)
    t0, data, out = time.perf_counter(), Path(data), Path(out)
    if not data.exists():
        raise ConfigError("No data at this path", received=str(data),
                          fix="pass --data with a .csv/.tsv/.parquet file or an image folder")
    objective = Objective(data, target, {}, metric, seed)
    try:
        kind = objective.prepared(None).kind  # reads the data once: bad input fails here
        objective.space = load_space(space, kind)
        out.mkdir(parents=True, exist_ok=True)
        url = storage_url(storage, out)
        study_name = record.safe_name(study or data.stem)
        digest = data_hash(data)
        opened = open_study(study_name, open_storage(url, jobs), direction(metric), digest)
        cfg = {"data": str(data.resolve()), "target": target, "space": objective.space,
               "metric": metric, "storage": url, "study": study_name, "trials": trials,
               "deadline": time.time() + timeout if timeout else None, "seed": seed,
               "pruner": pruner, "interval": heartbeat, "grace": grace, "jobs": jobs}
        before = counts(opened)
        log(f"study {study_name} ({before['complete'] + before['pruned']} trials done before) "
            f"in {url.split('@')[-1]}: {trials} trials, {jobs} worker(s), pruner {pruner}, "
            f"metric {metric} ({direction(metric)})")
        if jobs == 1:
            run_worker(cfg, objective, log)
        else:
            _spawn(cfg, out, jobs, log)
    finally:
        objective.close()
    return _finish(data, target, out, url, study_name, metric, seed, name, register, log, t0)


def _finish(data: Path, target: str | None, out: Path, url: str, study_name: str, metric: str,
            seed: int, name: str | None, register: bool, log: Callable[[str], None],
            t0: float) -> TuneResult:
    """Retrain the best trial, write its lineage, the tune report, and register it."""
    import optuna

    from lepton.artifact.manifest import read_manifest
    from lepton.artifact.save import update_manifest
    from lepton.train import record
    from lepton.train.run import train
    from lepton.tune.report import write_tune_report
    from lepton.tune.space import to_config
    from lepton.tune.storage import _hide, open_storage
    from lepton.tune.worker import counts

    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    n = counts(study)
    if not n["complete"]:
        raise TuneError(f"Study '{study_name}' has no completed trial",
                        received=f"{n['pruned']} pruned, {n['fail']} failed",
                        fix="raise --trials or --timeout, or use --pruner none")
    best = study.best_trial
    log(f"best trial {best.number}: {metric} {best.value:.4f} {best.params}; retraining it")
    _preset, config = to_config(best.params)
    config["split"] = {"seed": seed}
    result = train(data, target, config=config, out=out / "model", seed=seed, register=False,
                   name=name or study_name)
    manifest = read_manifest(result.path)
    tuning = {"study": study_name, "storage": _hide(url), "trial": best.number,
              "params": best.params, "metric": metric, "value": float(best.value)}
    update_manifest(result.path, metadata={**manifest.metadata, "lineage": tuning})
    report = write_tune_report(out / "report.html", study, {
        "data": str(data), "metric": metric, "best trial": best.number,
        "best parameters": json.dumps(best.params), "model": str(result.path),
        "model test metrics": ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()
                                         if isinstance(v, float))})
    registered = (record.register(result.path, name or study_name,
                                  manifest.lineage.get("run_id")) if register else None)
    return TuneResult(path=result.path, report=report, study=study_name, storage=url,
                      best_trial=best.number, best_value=float(best.value),
                      best_params=dict(best.params), counts=n, metrics=result.metrics,
                      seconds=time.perf_counter() - t0, registered=registered)
