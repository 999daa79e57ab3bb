"""Search spaces: declared in YAML or Python, checked at the edge, conditional on the preset."""

from __future__ import annotations

import optuna
import pytest

from lepton.errors import ConfigError
from lepton.tune.space import DEFAULT_SPACES, check_space, load_space, suggest, to_config


def test_yaml_space_loads_and_converts_to_a_training_config(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("preset: [mlp]\nwidth: {low: 16, high: 64, log: true}\n"
                    "depth: {low: 2, high: 2}\ndropout: {low: 0.1, high: 0.3}\n"
                    "learning_rate: {low: 0.001, high: 0.01, log: true}\n")
    space = load_space(path, "tabular")
    params = suggest(optuna.trial.FixedTrial(
        {"preset": "mlp", "width": 32, "depth": 2, "dropout": 0.2, "learning_rate": 0.003}),
        space)
    preset, config = to_config(params)
    assert preset == "mlp"
    assert config["model"] == {"preset": "mlp", "hidden": [32, 16], "dropout": 0.2}
    assert config["train"] == {"learning_rate": 0.003}


@pytest.mark.parametrize("space, message", [
    ({"widht": {"low": 1, "high": 2}}, "Unknown parameter 'widht'"),
    ({"width": {"low": 64, "high": 8}}, "empty range"),
    ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "empty range"),
    ({"preset": {"choices": []}}, "no choices"),
    ({"dropout": {"low": "a", "high": 0.5}}, "numeric low/high"),
    ({}, "must map parameter names"),
])
def test_bad_spaces_are_config_errors(space, message):
    with pytest.raises(ConfigError, match=message):
        check_space(space)


def test_unknown_parameter_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layers: {low: 1, high: 3}\n")
    with pytest.raises(ConfigError, match=r"Unknown parameter 'layers' in '.*bad.yaml'"):
        load_space(path, "tabular")


def test_linear_trials_draw_only_what_the_linear_model_uses():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = load_space(None, "tabular")
    for _ in range(20):
        trial = study.ask()
        params = suggest(trial, space)
        if params["preset"] == "linear":
            assert set(params) == {"preset", "l2"}
        else:
            assert "l2" not in params and {"depth", "width", "learning_rate"} <= set(params)
        study.tell(trial, 0.0)


def test_every_default_space_is_valid():
    for kind, space in DEFAULT_SPACES.items():
        assert check_space(space, kind)
