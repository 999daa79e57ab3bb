"""Worker processes: a killed worker's trial is failed by heartbeat and retried once; a study
in PostgreSQL is shared by workers started from different folders (as from two machines)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from lepton.tune import tune
from lepton.tune.storage import open_storage, storage_url
from lepton.tune.worker import SURPLUS
from tests.conftest import REPO
from tests.tune.conftest import TINY_SPACE

# trials long enough to be killed in the middle, with margin: the kill comes at epoch 3 of
# 200 (no early stop), so a loaded machine cannot finish the trial between seeing it run and
# the SIGKILL landing
SLOW_SPACE = {**TINY_SPACE, "epochs": [200], "patience": [1000]}


def _running_trial(out, min_epochs: int):
    """(trial number, worker pid) of a RUNNING trial past ``min_epochs``, else None."""
    journal = out / "study.journal"
    if not journal.exists():
        return None
    try:
        study = optuna.load_study(study_name="kill", storage=open_storage(storage_url(None, out)))
    except KeyError:
        return None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.system_attrs.get("lepton:worker")
        if worker and len(trial.intermediate_values) >= min_epochs:
            return trial.number, int(worker.rsplit(":", 1)[1])
    return None


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_retried_once_and_never_counted_twice(
        breast_cancer_csv, tmp_path, home):
    out = tmp_path / "tuned"
    code = (f"from lepton.tune import tune; tune({str(breast_cancer_csv)!r}, 'target', "
            f"space={SLOW_SPACE!r}, trials=4, jobs=2, out={str(out)!r}, "
            f"study='kill', pruner='none', heartbeat=0.5, grace=6, register=False, log=print)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline, found = time.time() + 120, None
        while found is None and time.time() < deadline and proc.poll() is None:
            found = _running_trial(out, min_epochs=3)
            time.sleep(0.2)
        assert found, f"no running trial seen (exit {proc.poll()})"
        killed, pid = found
        os.kill(pid, signal.SIGKILL)
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output[-3000:]
    assert f"ended with status -{int(signal.SIGKILL)}" in output
    study = optuna.load_study(study_name="kill", storage=open_storage(storage_url(None, out)))
    # (a trial asked for when the others already covered the budget is closed unrun)
    trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS)]
    states = {t.number: t.state for t in trials}
    assert states[killed] == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == study.trials[killed].params
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4  # the budget, once
    assert len(trials) == 5  # 4 counted + the killed one


@pytest.mark.slow
def test_a_postgresql_study_is_shared_and_resumed_across_folders(
        breast_cancer_csv, tmp_path, home, pg_url):
    first = tune(breast_cancer_csv, "target", space=TINY_SPACE, trials=3, jobs=2,
                 storage=pg_url, study="team", out=tmp_path / "machine-a", register=False)
    assert first.counts["complete"] + first.counts["pruned"] == 3
    second = tune(breast_cancer_csv, "target", space=TINY_SPACE, trials=4, storage=pg_url,
                  study="team", out=tmp_path / "machine-b", register=False)
    assert second.counts["complete"] + second.counts["pruned"] == 4
    study = optuna.load_study(study_name="team", storage=open_storage(pg_url))
    counted = [t for t in study.trials if not t.user_attrs.get(SURPLUS)]
    assert len(counted) == 4
    workers = {t.system_attrs["lepton:worker"] for t in counted}  # surplus ones never ran
    assert len(workers) >= 2  # trials ran in more than one process
    assert json.loads((second.path / "lepton.json").read_text())["metadata"]["lineage"][
        "storage"].startswith("postgresql")
