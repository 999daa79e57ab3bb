"""Values the store's rows share: who acted, timestamps as ISO 8601, checked ids."""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone

from lepton.errors import ConfigError


def actor() -> str:
    """Who is acting, for audit columns: ``$LEPTON_USER``, else the login name."""
    try:
        return os.environ.get("LEPTON_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="microseconds")


def check_id(value: object, what: str, max_len: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise ConfigError(f"Invalid {what}", expected=f"a non-empty string of at most "
                          f"{max_len} characters", received=repr(value)[:80])
    return value
