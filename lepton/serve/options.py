"""What a server is told: its settings, the models it serves and where it listens.

Each setting is written once, here, with its default and its valid range; ``ServeOptions`` and
``ServerConfig`` check themselves when made (from Python, the CLI or a worker's JSON), so a bad
value fails at start-up with a message naming the setting and its ``lepton serve`` flag. The
CLI reads its defaults from these classes. Light on purpose (no uvicorn, FastAPI or torch):
``lepton --help`` imports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from lepton.errors import ConfigError
from lepton.serve.auth import check_token

RUNTIME_CHOICES = ("torch", "onnxruntime")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(what: str, value: str) -> None:
    """Names must be safe in URLs and paths (no '..', '/', NUL)."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ConfigError(f"Invalid {what}", expected=NAME_RE.pattern, received=repr(value)[:80],
                          fix="use letters, digits, '.', '_' and '-' only")


def _setting(default: Any, flag: str | None = None, *, at_least: float | None = None,
             above: float | None = None, at_most: float | None = None) -> Any:
    """A checked setting: its type is its default's (bool, int, or float: any finite number)."""
    return field(default=default, metadata={"flag": flag, "at_least": at_least,
                                            "above": above, "at_most": at_most})


def _expected(kind: type, rule: dict[str, Any]) -> str:
    if kind is bool:
        return "True or False"
    text = "an integer" if kind is int else "a number"
    bounds = [f"{op} {rule[key]:g}" for key, op in (("at_least", ">="), ("above", ">"),
                                                    ("at_most", "<=")) if rule[key] is not None]
    return " ".join([text, " and ".join(bounds)]) if bounds else text


def _valid(kind: type, rule: dict[str, Any], value: Any) -> bool:
    if kind is bool or type(value) is bool:
        return kind is bool and type(value) is bool
    finite = isinstance(value, int) or (kind is float and isinstance(value, float)
                                        and math.isfinite(value))
    if not finite:
        return False
    return ((rule["at_least"] is None or value >= rule["at_least"])
            and (rule["above"] is None or value > rule["above"])
            and (rule["at_most"] is None or value <= rule["at_most"]))


def check_settings(settings: Any) -> None:
    """Check every ``_setting`` field of a dataclass instance against its type and range."""
    for f in dataclasses.fields(settings):
        if "flag" not in f.metadata:
            continue
        value = getattr(settings, f.name)
        kind = type(f.default)
        if not _valid(kind, dict(f.metadata), value):
            expected = _expected(kind, dict(f.metadata))
            flag = f" (lepton serve {f.metadata['flag']})" if f.metadata["flag"] else ""
            raise ConfigError(f"Invalid server setting '{f.name}'", expected=expected,
                              received=repr(value)[:80], fix=f"set {f.name}{flag} to {expected}")


def defaults(settings: type) -> dict[str, Any]:
    """The plain defaults of a settings dataclass, by field name (for the CLI)."""
    return {f.name: f.default for f in dataclasses.fields(settings)
            if f.default is not dataclasses.MISSING}


@dataclass
class ServeOptions:
    """Server settings; the defaults are the safe ones. Checked when made."""

    token: str | None = None
    max_body_bytes: int = _setting(16 * 1024 * 1024, "--max-body-mb", at_least=1)
    max_batch_size: int = _setting(64, "--max-batch-size", at_least=1)
    max_latency_ms: float = _setting(2.0, "--max-latency-ms", at_least=0)
    max_queue: int = _setting(1024, "--max-queue", at_least=1)
    timeout_s: float = _setting(30.0, "--timeout", above=0)
    drain_s: float = _setting(30.0, "--drain", at_least=0)
    log_predictions: bool = _setting(True, "--no-log")
    sample_inputs: float = _setting(0.0, "--log-inputs", at_least=0, at_most=1)  # share kept
    # input columns or tensors hashed ("name") or dropped ("name:drop") before any write
    redact: tuple[str, ...] = ()
    log_retention_s: float = _setting(0.0, "--log-retention", at_least=0)  # 0: kept forever
    reload_s: float = _setting(0.0, "--reload", at_least=0)  # alias check period; 0: never
    sketches: bool = _setting(True, "--no-sketches")  # per-window input sketches, with the log
    threads: int = _setting(1, "--threads", at_least=1)
    # each artifact's own runtime unless set ("torch" or "onnxruntime", where it has the files)
    runtime: str | None = None
    # workers sharing a port: only loaded ones accept (set for worker processes, not a flag)
    load_before_listen: bool = _setting(False)

    def __post_init__(self) -> None:
        check_token(self.token)
        check_settings(self)
        self.redact = tuple(self.redact or ())
        if self.redact:
            from lepton.serve.predlog import parse_redact

            parse_redact(self.redact)
        if self.runtime is not None and self.runtime not in RUNTIME_CHOICES:
            raise ConfigError("Invalid server setting 'runtime'", expected=list(RUNTIME_CHOICES),
                              received=repr(self.runtime)[:80],
                              fix="lepton serve --runtime torch or --runtime onnxruntime")


@dataclass
class ModelRef:
    """A resolved model to serve: where its artifact is and what it is called."""

    name: str
    path: str
    version: str | None = None
    registry_version: int | None = None
    alias: str | None = None  # "name@production" when served by alias (--reload follows it)


@dataclass
class ServerConfig:
    """The models, the settings and the address of one ``lepton serve``. Checked when made."""

    models: list[ModelRef]
    options: ServeOptions = field(default_factory=ServeOptions)
    host: str = "127.0.0.1"
    port: int = _setting(8000, "--port", at_least=0, at_most=65535)
    workers: int = _setting(1, "--workers", at_least=1)
    tls_cert: str | None = None  # PEM certificate chain and key: HTTPS (--tls-cert/--tls-key)
    tls_key: str | None = None

    def __post_init__(self) -> None:
        check_settings(self)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both a certificate and its key",
                              expected="--tls-cert FILE and --tls-key FILE",
                              received=f"cert={self.tls_cert}, key={self.tls_key}")
        for flag, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key)):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"No such file for {flag}", expected="a PEM file",
                                  received=path, fix="pass the path of an existing file")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        raw = json.loads(text)
        return cls(models=[ModelRef(**m) for m in raw["models"]],
                   options=ServeOptions(**raw["options"]),
                   **{k: raw[k] for k in ("host", "port", "workers", "tls_cert", "tls_key")
                      if k in raw})
