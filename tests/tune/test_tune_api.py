"""`lepton.tune` end to end in one process: study, pruning, resume, the best model, errors."""

from __future__ import annotations

import json

import optuna
import pytest

from lepton.errors import ConfigError
from lepton.tune import TuneError, tune
from lepton.tune.objective import Objective, PruningCallback
from tests.tune.conftest import TINY_SPACE, write_table


class PruneAfter(optuna.pruners.BasePruner):
    """Prunes every trial once it has reported ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def prune(self, study, trial) -> bool:
        return max(trial.intermediate_values, default=-1) >= self.step


def test_pruning_callback_reports_each_epoch_and_stops_the_fit(breast_cancer_csv):
    study = optuna.create_study(pruner=PruneAfter(2))
    space = {**TINY_SPACE, "epochs": [30]}
    objective = Objective(breast_cancer_csv, "target", space, "val_loss")
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 2"):
        objective(trial)
    objective.close()
    frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert sorted(frozen.intermediate_values) == [0, 1, 2]  # stopped right after epoch 2
    assert frozen.user_attrs["fit"]["epochs"] == 3


def test_pruning_callback_names_a_missing_metric():
    callback = PruningCallback(optuna.trial.FixedTrial({}), "val_auc")
    with pytest.raises(ConfigError, match="'val_auc' is not in the training logs"):
        callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})


def test_tune_keeps_the_best_trial_as_a_registered_model_and_resumes(
        breast_cancer_csv, tmp_path, home):
    out = tmp_path / "tuned"
    lines: list[str] = []
    result = tune(breast_cancer_csv, "target", space=TINY_SPACE, trials=3, out=out,
                  study="bc", log=lines.append)
    assert result.counts["complete"] + result.counts["pruned"] == 3
    assert any("best" in line and "done 3/3" in line for line in lines)
    manifest = json.loads((result.path / "lepton.json").read_text())
    lineage = manifest["metadata"]["lineage"]
    assert lineage["study"] == "bc" and lineage["trial"] == result.best_trial
    assert lineage["params"] == result.best_params and lineage["metric"] == "val_loss"
    assert manifest["lineage"]["data_digest"]
    assert result.metrics["accuracy"] > 0.85
    assert result.registered["name"] == "bc"
    page = result.report.read_text()
    assert page.count("data:image/png;base64,") >= 2
    assert "Optimisation history" in page and "Parallel coordinates" in page
    # the same study name resumes: 2 more trials, not 5
    again = tune(breast_cancer_csv, "target", space=TINY_SPACE, trials=5, out=out,
                 study="bc", register=False)
    assert again.counts["complete"] + again.counts["pruned"] == 5
    study = optuna.load_study(study_name="bc", storage=_journal(out))
    assert len(study.trials) == 5


def test_a_study_made_on_other_data_is_refused(breast_cancer_csv, tmp_path, home):
    out = tmp_path / "tuned"
    tune(breast_cancer_csv, "target", space=TINY_SPACE, trials=1, out=out, study="s",
         register=False)
    other = write_table("wine", tmp_path)
    with pytest.raises(TuneError, match="Study 's' was made on other data.*digest"):
        tune(other, "target", space=TINY_SPACE, trials=1, out=out, study="s", register=False)


def test_every_trial_failing_stops_with_the_first_trials_error(iris_csv, tmp_path, home):
    with pytest.raises(TuneError, match="Trial 0 failed.*'val_nope' is not in the training"):
        tune(iris_csv, "target", space=TINY_SPACE, trials=4, out=tmp_path / "t",
             metric="val_nope", register=False)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"jobs": 0}, ConfigError, "--jobs must be a positive"),
    ({"pruner": "asha"}, ConfigError, "Unknown pruner"),
    ({"storage": "sqlite:///x.db", "jobs": 2}, ConfigError, "SQLite cannot hold a study"),
    ({"storage": "postgresql://lepton@127.0.0.1:9/none"}, TuneError,
     "Cannot reach the study storage"),
])
def test_bad_settings_are_lepton_errors(iris_csv, tmp_path, home, kwargs, error, message):
    with pytest.raises(error, match=message):
        tune(iris_csv, "target", space=TINY_SPACE, trials=1, out=tmp_path / "t",
             register=False, **kwargs)


def test_cli_errors_are_one_line(iris_csv, tmp_path, home, capsys):
    from lepton.cli import main

    code = main(["tune", "--data", str(iris_csv), "--target", "target", "--jobs", "0",
                 "--out", str(tmp_path / "t")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("lepton tune: error: --jobs must be a positive")


def _journal(out):
    from lepton.tune.storage import open_storage, storage_url

    return open_storage(storage_url(None, out))


def test_text_trials_vary_the_vectoriser(tmp_path, home):
    from tests.conftest import FIXTURES

    lines = (FIXTURES / "sms_spam.tsv").read_text().splitlines()[:400]
    data = tmp_path / "sms.tsv"
    data.write_text("\n".join(lines) + "\n")
    space = {"preset": ["text-tfidf"], "max_features": [1000, 3000], "width": [32],
             "epochs": [2]}
    result = tune(data, "Label", space=space, trials=2, out=tmp_path / "t", register=False)
    assert result.best_params["max_features"] in (1000, 3000)
    manifest = json.loads((result.path / "lepton.json").read_text())
    text = json.dumps(manifest["metadata"]["preprocessing"])
    assert f'"max_features": {result.best_params["max_features"]}' in text
