"""Search spaces: what a trial may vary, declared as data (YAML or a dict) and checked.

A space maps a parameter name to ``{"choices": [...]}`` or ``{"low": a, "high": b}`` (with
``log: true`` for a log scale; ints stay ints). Names are the settings ``lepton train``
understands, so a trial's parameters become a training config (``to_config``) and the best
trial is retrained by the ordinary ``lepton train`` path. Architecture parameters apply only
where they mean something (``depth``/``width``/``dropout`` for MLPs, ``l2`` for the linear
model), so TPE never wastes trials on settings the chosen preset ignores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton.errors import ConfigError

# name -> where it goes in a `lepton train` config (see to_config)
PARAMETERS = {
    "preset": "model", "depth": "model", "width": "model", "dropout": "model", "l2": "model",
    "filters": "model", "blocks": "model",
    "learning_rate": "train", "batch_size": "train", "weight_decay": "train",
    "epochs": "train", "patience": "train", "augment": "train",
    "max_features": "text", "ngrams": "text",
}
MLP_ONLY = {"depth", "width", "dropout"}
MINIBATCH = {"learning_rate", "batch_size", "weight_decay", "epochs", "patience"}  # not L-BFGS
CNN_ONLY = {"filters", "blocks"}

DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "tabular": {
        "preset": {"choices": ["linear", "mlp"]},
        "l2": {"low": 0.01, "high": 100.0, "log": True},
        "depth": {"low": 1, "high": 3},
        "width": {"low": 32, "high": 512, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "batch_size": {"choices": [32, 64, 128, 256]},
        "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    },
    "text": {
        "preset": {"choices": ["text-tfidf"]},
        "max_features": {"choices": [5000, 10000, 20000]},
        "ngrams": {"low": 1, "high": 2},
        "depth": {"low": 1, "high": 2},
        "width": {"low": 32, "high": 256, "log": True},
        "dropout": {"low": 0.0, "high": 0.5},
        "learning_rate": {"low": 3e-4, "high": 3e-3, "log": True},
    },
    "image": {
        "preset": {"choices": ["cnn-small"]},
        "filters": {"choices": [16, 32]},
        "blocks": {"low": 2, "high": 3},
        "augment": {"choices": [True, False]},
        "learning_rate": {"low": 5e-4, "high": 5e-3, "log": True},
    },
}


def check_space(space: dict[str, Any], source: str = "the search space") -> dict[str, dict]:
    """A validated copy of ``space``; unknown names and empty ranges are ConfigErrors."""
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{source} must map parameter names to ranges",
                          expected="e.g. {learning_rate: {low: 1e-4, high: 1e-2, log: true}}",
                          received=repr(space)[:80])
    checked: dict[str, dict] = {}
    for name, spec in space.items():
        if name not in PARAMETERS:
            raise ConfigError(f"Unknown parameter '{name}' in {source}",
                              expected=f"one of {sorted(PARAMETERS)}", received=name)
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict) or not ({"choices"} <= set(spec) or
                                               {"low", "high"} <= set(spec)):
            raise ConfigError(f"Parameter '{name}' in {source} needs choices or low/high",
                              received=repr(spec)[:80])
        if "choices" in spec:
            if not spec["choices"]:
                raise ConfigError(f"Parameter '{name}' in {source} has no choices",
                                  received="choices: []", fix="list at least one value")
            checked[name] = {"choices": list(spec["choices"])}
            continue
        low, high = spec["low"], spec["high"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"Parameter '{name}' in {source} needs numeric low/high",
                              received=f"low={low!r}, high={high!r}")
        log = bool(spec.get("log", False))
        if low > high or (log and low <= 0):
            raise ConfigError(f"Parameter '{name}' in {source} has an empty range",
                              expected="low <= high (and low > 0 on a log scale)",
                              received=f"low={low}, high={high}")
        checked[name] = {"low": low, "high": high, "log": log}
    return checked


def load_space(space: str | Path | dict | None, kind: str) -> dict[str, dict]:
    """The space to search: a YAML file, a dict, or the default for ``kind``."""
    if space is None:
        return check_space(DEFAULT_SPACES[kind], f"the default {kind} space")
    if isinstance(space, dict):
        return check_space(space)
    import yaml

    try:
        data = yaml.safe_load(Path(space).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"Cannot read the space file '{space}'",
                          received=str(exc).splitlines()[0],
                          fix="check the path and the YAML syntax") from None
    return check_space(data, f"'{space}'")


def suggest(trial: Any, space: dict[str, dict]) -> dict[str, Any]:
    """Draw one trial's parameters; architecture settings only where the preset uses them."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        preset = params.get("preset", "")
        if name in MLP_ONLY and preset and not preset.startswith(("mlp", "text-tfidf")):
            continue
        if name == "l2" and preset != "linear":
            continue
        if name in MINIBATCH and preset == "linear":  # one full-batch L-BFGS fit
            continue
        if name in CNN_ONLY and preset and not preset.startswith("cnn"):
            continue
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=spec["log"])
    return params


def to_config(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(preset, `lepton train` config) for a trial's parameters."""
    preset = params.get("preset", "mlp")
    model: dict[str, Any] = {"preset": preset}
    if "depth" in params or "width" in params:
        depth, width = int(params.get("depth", 2)), int(params.get("width", 128))
        model["hidden"] = [max(8, width // 2 ** i) for i in range(depth)]
    if "dropout" in params:
        model["dropout"] = float(params["dropout"])
    if "l2" in params:
        model["l2"] = float(params["l2"])
    if "filters" in params or "blocks" in params:
        base, blocks = int(params.get("filters", 32)), int(params.get("blocks", 3))
        model["filters"] = [base * 2 ** i for i in range(blocks)]
    train = {k: params[k] for k in ("learning_rate", "batch_size", "weight_decay", "epochs",
                                    "patience", "augment") if k in params}
    config: dict[str, Any] = {"model": model, "train": train}
    text = {}
    if "max_features" in params:
        text["max_features"] = int(params["max_features"])
    if "ngrams" in params:
        text["ngrams"] = [1, int(params["ngrams"])]
    if text:
        config["preprocessing"] = {"text": text}
    return preset, config
