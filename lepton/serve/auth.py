"""Bearer-token check and the bind-address safety rule.

The token is compared in constant time (``hmac.compare_digest``) and never logged. A server
that listens beyond loopback without a token refuses to start: auth that is opt-in is off.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from lepton.errors import ConfigError

TOKEN_ENV = "LEPTON_TOKEN"
PUBLIC_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
MIN_TOKEN_CHARS = 16


def resolve_token(token: str | None) -> str | None:
    """The token given on the command line, else $LEPTON_TOKEN, else None."""
    token = token if token else os.environ.get(TOKEN_ENV) or None
    check_token(token)
    return token


def check_token(token: object) -> None:
    """A token is None (no auth) or a string long enough not to be guessed."""
    if token is None or (isinstance(token, str) and len(token) >= MIN_TOKEN_CHARS):
        return
    raise ConfigError("The API token is too short",
                      expected=f"a string of at least {MIN_TOKEN_CHARS} characters",
                      received=f"{len(token)} characters" if isinstance(token, str)
                      else type(token).__name__,
                      fix="generate one with: python -c \"import secrets; "
                          "print(secrets.token_urlsafe(32))\"")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token."""
    if not is_loopback(host) and token is None:
        raise ConfigError(f"Refusing to listen on {host} without an API token",
                          expected="a loopback host (127.0.0.1) or a token",
                          fix=f"pass --token or set {TOKEN_ENV}, or bind 127.0.0.1")


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` on raw ASGI headers."""

    def __init__(self, token: str | None) -> None:
        self._expected = f"Bearer {token}".encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def allows(self, path: str, authorization: bytes | None) -> bool:
        if self._expected is None or path in PUBLIC_PATHS:
            return True
        return hmac.compare_digest(authorization or b"", self._expected)
