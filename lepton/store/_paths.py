"""Where Lepton keeps its files, and the name checks that keep them there.

Names come from users (CLI arguments, HTTP paths), so they are checked twice: against a strict
pattern, and by resolving the final path and making sure it stays under its root. Checking
the string alone is how MLflow's path checks were bypassed (CVE-2023-1177 and its sequels).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lepton.errors import ConfigError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def workspace_dir(create: bool = True) -> Path:
    """The workspace: ``$LEPTON_HOME`` if set, else ``./.lepton``; created on demand."""
    root = Path(os.environ.get("LEPTON_HOME") or ".lepton").expanduser().resolve()
    if create:
        root.mkdir(parents=True, exist_ok=True)
    return root


def validate_name(name: object, what: str = "model name") -> str:
    """Return ``name`` if it is a safe single path component, else raise ConfigError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"Invalid {what}",
            expected="1-128 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit",
            received=repr(name),
            fix=f"choose a {what} such as 'fraud-detector' or 'resnet_v2.1'",
        )
    return name


def safe_join(root: Path, *parts: str) -> Path:
    """``root / parts`` resolved, refusing any result that leaves ``root`` (symlinks included)."""
    root = root.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and not path.is_relative_to(root):
        raise ConfigError(
            "Path escapes the workspace",
            expected=f"a path under {root.name}/",
            received="/".join(parts),
            fix="use a plain name without '..', slashes or symlinks",
        )
    return path
