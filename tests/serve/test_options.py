"""Server settings check themselves, and ``lepton serve`` takes its defaults from them."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from lepton.cli import serve as serve_cli
from lepton.errors import ConfigError
from lepton.serve.options import ModelRef, ServeOptions, ServerConfig


@pytest.mark.parametrize(("setting", "value", "expected"), [
    ("max_batch_size", 0, "an integer >= 1"),
    ("max_batch_size", 2.5, "an integer >= 1"),
    ("max_batch_size", True, "an integer >= 1"),
    ("max_queue", -3, "an integer >= 1"),
    ("threads", "4", "an integer >= 1"),
    ("max_body_bytes", 0, "an integer >= 1"),
    ("max_latency_ms", -0.5, "a number >= 0"),
    ("max_latency_ms", float("nan"), "a number >= 0"),
    ("timeout_s", 0, "a number > 0"),
    ("timeout_s", float("inf"), "a number > 0"),
    ("drain_s", -1, "a number >= 0"),
    ("log_predictions", 1, "True or False"),
    ("sample_inputs", "yes", "a number >= 0 and <= 1"),
    ("sample_inputs", 1.5, "a number >= 0 and <= 1"),
    ("log_retention_s", -1, "a number >= 0"),
])
def test_a_bad_setting_is_named_with_its_range_and_flag(setting, value, expected):
    with pytest.raises(ConfigError) as info:
        ServeOptions(**{setting: value})
    message = str(info.value)
    flag = {f.name: f for f in dataclasses.fields(ServeOptions)}[setting].metadata["flag"]
    assert f"Invalid server setting '{setting}'" in message
    assert f"Expected: {expected}." in message and f"Received: {value!r}." in message
    assert f"Fix: set {setting} (lepton serve {flag}) to {expected}." in message


def test_good_settings_pass_and_a_short_token_is_refused():
    options = ServeOptions(max_latency_ms=0, timeout_s=0.25, drain_s=0, max_batch_size=1,
                           token="t" * 16)
    assert options.max_latency_ms == 0 and options.token == "t" * 16
    with pytest.raises(ConfigError, match="too short.*at least 16 characters"):
        ServeOptions(token="short")
    with pytest.raises(ConfigError, match="Received: int"):
        ServeOptions(token=12345678901234567890)


def test_server_config_checks_port_and_workers_and_survives_its_json():
    for bad in ({"port": 70000}, {"port": -1}, {"workers": 0}):
        with pytest.raises(ConfigError, match="Invalid server setting"):
            ServerConfig(models=[], **bad)
    config = ServerConfig(models=[ModelRef("digits", "/tmp/x", "2", 2)],
                          options=ServeOptions(max_batch_size=8), port=0, workers=2)
    assert ServerConfig.from_json(config.to_json()) == config
    raw = json.loads(config.to_json())
    raw["options"]["max_queue"] = 0  # a worker refuses a bad config it is handed, too
    with pytest.raises(ConfigError, match="max_queue"):
        ServerConfig.from_json(json.dumps(raw))


def test_the_cli_defaults_are_the_settings_defaults():
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    args = parser.parse_args(["model-dir"])
    defaults = ServeOptions()
    assert (args.max_batch_size, args.max_latency_ms, args.max_queue, args.timeout,
            args.drain, args.threads, args.token) == (
        defaults.max_batch_size, defaults.max_latency_ms, defaults.max_queue,
        defaults.timeout_s, defaults.drain_s, defaults.threads, defaults.token)
    assert int(args.max_body_mb * 1024 * 1024) == defaults.max_body_bytes
    assert (not args.no_log, args.log_inputs) == (defaults.log_predictions,
                                                  defaults.sample_inputs)
    server = ServerConfig(models=[])
    assert (args.host, args.port, args.workers) == (server.host, server.port, server.workers)
    flags = {a for action in parser._actions for a in action.option_strings}
    for settings in (ServeOptions, ServerConfig):  # each flag an error names exists
        for f in dataclasses.fields(settings):
            assert f.metadata.get("flag") in flags | {None}, f.name


def test_the_cli_refuses_a_bad_value_before_looking_for_models(tmp_path, monkeypatch):
    monkeypatch.delenv("LEPTON_TOKEN", raising=False)
    parser = argparse.ArgumentParser()
    serve_cli.add_arguments(parser)
    for argv, setting in ((["--max-batch-size", "0"], "max_batch_size"),
                          (["--max-body-mb", "nan"], "max_body_bytes"),
                          (["--workers", "0"], "workers")):
        with pytest.raises(ConfigError, match=f"'{setting}'"):
            serve_cli.run(parser.parse_args([str(tmp_path / "missing"), *argv]))


def test_every_lazy_name_of_lepton_serve_loads():
    import lepton.serve

    for name in lepton.serve.__all__:
        assert getattr(lepton.serve, name).__name__ == name
