"""Making a traffic experiment: the spec ``lepton traffic set`` and ``lepton serve --split``
write to the store, checked before anything is written (weights summing to 100, arms the
registry knows, a canary's steps, one experiment per model).

    from lepton.serve.experiment import set_experiment
    set_experiment(store, "churn", split="production=90,candidate=10")
    set_experiment(store, "churn", canary="candidate", steps=[5, 25, 50, 100], step_s=300)

A spec is ``{"arms": {arm: percent}, "champion": arm, "shadow": arm | None, "canary": {...}
| None}``; an arm is a version number or an alias of the model.
"""

from __future__ import annotations

from typing import Any

from lepton.errors import ConfigError
from lepton.serve.traffic import parse_split


def build_spec(*, split: str | dict | None = None, canary: str | None = None,
               shadow: str | None = None, champion: str | None = None,
               **canary_settings: Any) -> tuple[str, dict[str, Any]]:
    """(kind, spec) from what was asked; one clear error for what cannot be."""
    if split is not None and canary is not None:
        raise ConfigError("Give a split or a canary, not both", received="--split and --canary",
                          fix="a canary sets its own weights from its steps")
    if split is None and canary is None and shadow is None:
        raise ConfigError("Nothing to set", expected="--split, --canary or --shadow",
                          received="none of them", fix="e.g. --split production=90,candidate=10")
    if split is not None:
        arms = parse_split(split)
        champion = champion or next(iter(arms))
        if champion not in arms:
            raise ConfigError("The champion is not one of the split's arms",
                              expected=sorted(arms), received=champion)
        kind, extra = "split", None
    elif canary is not None:
        from lepton.serve.canary import canary_settings as make_canary

        champion = champion or "production"
        extra = make_canary(canary, champion, **canary_settings)
        first = extra["steps"][0]
        arms, kind = {champion: 100.0 - first, canary: first}, "canary"
    else:
        champion = champion or "production"
        arms, kind, extra = {champion: 100.0}, "shadow", None
    if shadow is not None and shadow == champion:
        raise ConfigError("The shadow cannot be the champion it is compared with",
                          received=shadow, fix="shadow another version")
    return kind, {"arms": arms, "champion": champion, "shadow": shadow, "canary": extra}


def arm_refs(model: str, spec: dict[str, Any]) -> list[str]:
    """Every arm of the spec as a registry reference (``name:3`` or ``name@alias``)."""
    arms = list(spec["arms"]) + ([spec["shadow"]] if spec.get("shadow") else [])
    return [f"{model}:{a}" if a.isdigit() else f"{model}@{a}" for a in arms]


def check_arms(store: Any, model: str, spec: dict[str, Any]) -> None:
    """Every arm resolves in the registry (an unknown version or alias is a one-line error)."""
    from lepton.registry import Registry

    registry = Registry(store)
    for ref in arm_refs(model, spec):
        registry.resolve(ref)


def set_experiment(store: Any, model: str, *, name: str | None = None, check: bool = True,
                   **asked: Any) -> dict[str, Any]:
    """Start or change the model's experiment; returns the stored row."""
    from lepton.store import _traffic
    from lepton.store._paths import validate_name

    kind, spec = build_spec(**asked)
    if check:
        check_arms(store, model, spec)
    return _traffic.put_experiment(store, validate_name(model),
                                   validate_name(name or model, "experiment"), kind, spec)
