"""The canary: a stepped share of traffic (5 -> 25 -> 50 -> 100 % by default) that advances only
while guardrails hold and a sequential quality test does not show it worse, is rolled back
(weight 0, alias unchanged) when either fails, and is promoted (the alias moved to it) after
the last step. Every decision but a routine hold is stored with its evidence
(``lepton traffic show``); a hold at a due step is stored too, at most once per step period.

Guardrails, per version and per step: error rate <= ``max_error_rate`` and p99 <=
``slo_p99_ms``, judged once the canary has ``min_requests`` requests in the step. Fewer means
*hold*, never *pass* (Argo Rollouts and Flagger pass or stall on low traffic).

Quality: Wald's sequential probability ratio test on the canary's per-prediction outcomes,
Bernoulli, cumulative since the canary started. With feedback labels the outcome is "correct"
and H0: p = p0, the champion's accuracy on its own feedback over the same period (shrunk,
(k + 0.5) / (n + 1)); H1: p = p0 - ``delta``. Without labels the outcome is "agrees with the
champion" (the canary's answers are mirrored to the champion, ``shadow.Mirror``) and H0: p =
``min_agreement``, H1: p = ``min_agreement - delta``. The log-likelihood ratio
``binom.logpmf(k; n, p1) - binom.logpmf(k; n, p0)`` (SciPy) is compared with Wald's bounds
A = log((1 - beta) / alpha) (>= A: worse, roll back) and B = log(beta / (1 - alpha)) (<= B:
not worse); in between the test asks for more data and the canary holds. The SPRT is built
to be looked at after every observation, so checking it each second costs no error budget;
the approximation is the estimated p0 (documented, and why ``min_labels`` labels on each side
are required before it is read).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

from lepton.errors import ConfigError

log = logging.getLogger("lepton.serve")
DEFAULTS: dict[str, Any] = {"steps": [5.0, 25.0, 50.0, 100.0], "step_s": 60.0,
                            "max_error_rate": 0.01, "slo_p99_ms": 500.0, "min_requests": 50,
                            "min_labels": 30, "delta": 0.05, "alpha": 0.05, "beta": 0.2,
                            "min_agreement": 0.95}
EVAL_S = 0.5


def canary_settings(arm: str, champion: str, **given: Any) -> dict[str, Any]:
    """The canary part of an experiment's spec, checked; unset settings take DEFAULTS."""
    settings = {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
    steps = [float(s) for s in settings["steps"]]
    if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)) \
            or steps[-1] != 100:
        raise ConfigError("Invalid canary steps", expected="increasing percentages in (0, 100] "
                          "ending at 100", received=steps, fix="e.g. --steps 5,25,50,100")
    for key in ("step_s", "max_error_rate", "slo_p99_ms", "delta", "alpha", "beta",
                "min_agreement"):
        value = float(settings[key])
        if not math.isfinite(value) or value < 0 or (key in ("alpha", "beta", "min_agreement",
                                                            "max_error_rate") and value > 1):
            raise ConfigError(f"Invalid canary setting '{key}'", expected="a number >= 0 "
                              "(at most 1 for rates)", received=settings[key])
        settings[key] = value
    if arm == champion:
        raise ConfigError("The canary and the champion are the same arm", received=arm)
    now = time.time()
    default_alias = "production" if champion.isdigit() else champion
    return {**settings, "steps": steps, "arm": arm, "step": 0, "started_at": now,
            "step_started_at": now, "promote_to": settings.get("promote_to") or default_alias}


def sprt(successes: int, trials: int, p0: float, p1: float, alpha: float, beta: float
         ) -> dict[str, Any]:
    """Wald's SPRT of H0: p = p0 against H1: p = p1 < p0 (see the module docstring)."""
    from scipy.stats import binom

    p0 = min(max(p0, 1e-3), 1 - 1e-3)
    p1 = min(max(p1, 1e-4), p0 - 1e-4)
    llr = float(binom.logpmf(successes, trials, p1) - binom.logpmf(successes, trials, p0))
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    verdict = "worse" if llr >= upper else "not_worse" if llr <= lower else "undecided"
    return {"verdict": verdict, "llr": llr, "upper": upper, "lower": lower, "p0": p0, "p1": p1,
            "successes": successes, "trials": trials}


def correct(outputs: Any, label: Any, labels: list[Any]) -> bool | None:
    """Whether a logged prediction matches its feedback label (None: cannot tell)."""
    import numpy as np

    if isinstance(outputs, dict) and "label" in outputs:
        return str(outputs["label"]) == str(label)
    if isinstance(outputs, dict) and outputs and "value" not in outputs:
        scores = np.asarray(next(iter(outputs.values())), dtype=np.float64).ravel()
        best = int(scores.argmax()) if scores.size > 1 else int(scores[0] >= 0.5)
        names = [str(n) for n in labels]
        return str(label) == (names[best] if best < len(names) else str(best)) \
            or str(label) == str(best)
    return None


def _accuracy(store: Any, name: str, served: Any, since: float) -> tuple[int, int]:
    from lepton.store._traffic import feedback_outcomes

    if served.registry_version is None:
        return 0, 0
    labels = served.runner.metadata.get("labels") or []
    marks = [correct(o, label, labels)
             for o, label in feedback_outcomes(store, name, served.registry_version, since)]
    known = [bool(m) for m in marks if m is not None]
    return sum(known), len(known)


def quality(traffic: Any, name: str, router: Any, c: dict[str, Any]) -> dict[str, Any]:
    """The quality test's evidence: on feedback accuracy when the canary has labels, else on
    agreement with the champion."""
    canary = next(a for a in router.arms if a.name == c["arm"])
    champion = next(a for a in router.arms if a.name == router.exp["spec"]["champion"])
    store = traffic.app.store
    k_c, n_c = _accuracy(store, name, canary.served, c["started_at"])
    if n_c:
        k_0, n_0 = _accuracy(store, name, champion.served, c["started_at"])
        evidence = {"mode": "accuracy", "canary_labels": n_c, "champion_labels": n_0,
                    "canary_accuracy": k_c / n_c,
                    "champion_accuracy": k_0 / n_0 if n_0 else None}
        if n_c < c["min_labels"] or n_0 < c["min_labels"]:
            return {**evidence, "verdict": "undecided", "why": "too few feedback labels"}
        p0 = (k_0 + 0.5) / (n_0 + 1)
        return {**evidence, **sprt(k_c, n_c, p0, p0 - c["delta"], c["alpha"], c["beta"])}
    mirror = router.reference
    n, k = (mirror.compared, mirror.agree) if mirror is not None else (0, 0)
    evidence = {"mode": "agreement", "compared": n, "agreement": k / n if n else None}
    if n == 0:
        return {**evidence, "verdict": "undecided", "why": "no labels and no comparisons yet"}
    a0 = c["min_agreement"]
    return {**evidence, **sprt(k, n, a0, a0 - c["delta"], c["alpha"], c["beta"])}


def decide(c: dict[str, Any], canary: dict[str, Any], champion: dict[str, Any],
           q: dict[str, Any], now: float) -> tuple[str, str]:
    """(action, reason): hold, advance, rollback or promote."""
    if canary["requests"] >= c["min_requests"]:
        if canary["error_rate"] > c["max_error_rate"]:
            return "rollback", (f"error rate {canary['error_rate']:.3f} above "
                                f"{c['max_error_rate']:g}")
        if canary["p99_ms"] is not None and canary["p99_ms"] > c["slo_p99_ms"]:
            return "rollback", f"p99 {canary['p99_ms']:.1f} ms above {c['slo_p99_ms']:g} ms"
    if q["verdict"] == "worse":
        return "rollback", f"sequential test on {q['mode']}: canary worse (LLR {q['llr']:.2f})"
    if now - c["step_started_at"] < c["step_s"]:
        return "hold", "step still running"
    if canary["requests"] < c["min_requests"]:
        return "hold", (f"too little traffic: {canary['requests']} of {c['min_requests']} "
                        f"requests this step")
    if q["verdict"] != "not_worse":
        return "hold", f"quality test undecided ({q.get('why') or q['mode']})"
    if c["step"] + 1 >= len(c["steps"]):
        return "promote", f"every step passed; {c['promote_to']} moves to the canary"
    return "advance", f"step {c['steps'][c['step']]:g} % passed"


def tick(traffic: Any, name: str, router: Any) -> str | None:
    """Evaluate a running canary (at most every EVAL_S) and apply its decision."""
    exp = router.exp
    c = exp["spec"]["canary"]
    now = time.time()
    last = traffic.__dict__.setdefault("_evaluated", {})
    if now - last.get(exp["id"], 0.0) < EVAL_S:
        return None
    last[exp["id"]] = now
    arms = {a.name: a.stats.summary() for a in router.arms}
    q = quality(traffic, name, router, c)
    action, reason = decide(c, arms[c["arm"]], arms[exp["spec"]["champion"]], q, now)
    evidence = {"step": c["step"], "weight": c["steps"][c["step"]], "elapsed_s":
                now - c["step_started_at"], "canary": arms[c["arm"]],
                "champion": arms[exp["spec"]["champion"]], "quality": q}
    if action == "hold":
        held = traffic.__dict__.setdefault("_held", {})
        due = now - c["step_started_at"] >= c["step_s"]
        if due and now - held.get(exp["id"], 0.0) >= max(c["step_s"], 1.0):
            held[exp["id"]] = now
            _record(traffic, exp, action, reason, evidence)
        return action
    apply(traffic, name, exp, action, reason, evidence)
    return action


def apply(traffic: Any, name: str, exp: dict[str, Any], action: str, reason: str,
          evidence: dict[str, Any]) -> None:
    """Write the decision (compare-and-set on the revision) and route by it at once."""
    from lepton.store import _traffic

    spec = copy.deepcopy(exp["spec"])
    c, champion = spec["canary"], spec["champion"]
    state = "running"
    if action == "rollback":
        spec["arms"] = {champion: 100.0, c["arm"]: 0.0}
        state = "rolled_back"
    elif action == "promote":
        spec["arms"] = {champion: 0.0, c["arm"]: 100.0}
        state = "promoted"
    else:
        c["step"] += 1
        c["step_started_at"] = time.time()
        weight = c["steps"][c["step"]]
        spec["arms"] = {champion: 100.0 - weight, c["arm"]: weight}
    done = _traffic.compare_and_set(traffic.app.store, exp["id"], exp["revision"], state=state,
                                    spec=spec, actor_name="lepton-canary")
    if done is None:  # another worker decided first; the next poll brings its decision
        return
    traffic.install(name, done)  # rollback within one poll, not the next one
    if action == "promote":
        served = traffic.resolve(name, c["arm"])
        try:
            from lepton.registry import Registry

            Registry(traffic.app.store).promote(name, int(served.registry_version),
                                                c["promote_to"], reason=f"canary: {reason}")
        except Exception as exc:  # noqa: BLE001 - recorded with the decision
            reason = f"{reason}; the alias could not be moved: {exc}"
    _record(traffic, done, action, reason, evidence)
    log.warning("lepton serve: canary %s on %s: %s (%s)", exp["name"], name, action, reason)


def _record(traffic: Any, exp: dict[str, Any], action: str, reason: str,
            evidence: dict[str, Any]) -> None:
    from lepton.store import _traffic

    _traffic.add_decision(traffic.app.store, exp["id"], action, reason, evidence)
