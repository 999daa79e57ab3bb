"""Encryption at rest of logged inputs: AES-256-GCM (authenticated) from the ``cryptography``
package, the key from ``$LEPTON_LOG_KEY`` (32 bytes, base64). Never hand-written crypto.

An encrypted sample is stored as the JSON string ``"enc:v1:<base64(nonce + ciphertext)>"``;
the model name and prediction id are bound as associated data, so a ciphertext copied to
another row does not decrypt. A missing or wrong key is a clear error, never garbage.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from lepton.errors import ConfigError, require
from lepton.store._json import dumpb, loads

ENV = "LEPTON_LOG_KEY"
PREFIX = "enc:v1:"


def _key(required: bool) -> bytes | None:
    text = os.environ.get(ENV)
    if not text:
        if required:
            raise ConfigError("Logged inputs are encrypted but no key is set",
                              expected=f"${ENV}: 32 bytes, base64", received="nothing",
                              fix=f"export {ENV} with the key the server used")
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"${ENV} is not a 256-bit key", expected="32 bytes, base64",
                          received=f"{len(key)} bytes",
                          fix="make one with: python -c \"import os,base64;"
                              "print(base64.b64encode(os.urandom(32)).decode())\"")
    return key


def _aesgcm(key: bytes) -> Any:
    require("cryptography", "monitor")
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def encryptor() -> Callable[[Any, str], str] | None:
    """``encrypt(value, associated) -> str`` when ``$LEPTON_LOG_KEY`` is set, else None."""
    key = _key(required=False)
    if key is None:
        return None
    aead = _aesgcm(key)

    def encrypt(value: Any, associated: str) -> str:
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, dumpb(value), associated.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()
    return encrypt


def decrypt(text: str, associated: str) -> Any:
    """The value of an encrypted sample; ConfigError when the key is missing or wrong."""
    if not text.startswith(PREFIX):
        return text
    key = _key(required=True)
    from cryptography.exceptions import InvalidTag

    raw = base64.b64decode(text[len(PREFIX):])
    try:
        return loads(_aesgcm(key).decrypt(raw[:12], raw[12:], associated.encode()))
    except InvalidTag:
        raise ConfigError("Cannot decrypt a logged input: wrong key (or altered data)",
                          received=f"${ENV} set", fix="set the key the server used") from None


def decryptor() -> Callable[[str, str], Any]:
    return decrypt
