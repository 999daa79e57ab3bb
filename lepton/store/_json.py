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

    def dumps(value: Any) -> str:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()

    loads = orjson.loads
except ImportError:  # pragma: no cover - orjson comes with lepton[serve]

    def dumps(value: Any) -> str:
        return json.dumps(value, default=_default, separators=(",", ":"))

    loads = json.loads
