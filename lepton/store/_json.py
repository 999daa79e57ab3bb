"""JSON for the store's text columns: orjson when installed (the server ships it), else stdlib.

NumPy scalars and arrays are accepted, since predictions are often NumPy.
"""

from __future__ import annotations

import json
from typing import Any


def _default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # NumPy arrays and scalars, torch tensors
    if callable(tolist):
        return tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:
    import orjson

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumpb(value: Any) -> bytes:
        return orjson.dumps(value, default=_default, option=_OPTIONS)

    loads = orjson.loads
except ImportError:  # pragma: no cover - orjson comes with lepton[serve]

    def dumpb(value: Any) -> bytes:
        return json.dumps(value, default=_default, separators=(",", ":")).encode()

    loads = json.loads


def dumps(value: Any) -> str:
    return dumpb(value).decode()
