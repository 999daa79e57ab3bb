"""A model's named inputs and outputs as Open Inference Protocol tensors.

The artifact's ``signature`` lists them; runtimes check requests against them and the server
publishes them as model metadata. The datatype names are the protocol's (``FP32``, ``INT64``…).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lepton.errors import ArtifactError, ShapeError

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}
_DATATYPE_OF = {dtype: name for name, dtype in DATATYPES.items()}


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of a NumPy array (``FP32`` for float32…)."""
    try:
        return _DATATYPE_OF[array.dtype]
    except KeyError:
        raise ShapeError("Unsupported tensor dtype", expected=sorted(DATATYPES),
                         received=str(array.dtype),
                         fix="convert the array, e.g. x.astype(np.float32)") from None


@dataclass(slots=True)
class TensorSpec:
    """One named input or output of a model: OIP datatype and shape (-1 = any size)."""

    name: str
    datatype: str
    shape: list[int]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, raw: Any) -> TensorSpec:
        """Read one signature entry, refusing what no runtime could feed."""
        try:
            spec = cls(str(raw["name"]), str(raw.get("datatype", "FP32")),
                       [int(d) for d in raw["shape"]])
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ArtifactError("The artifact's signature has a malformed tensor entry",
                                expected='{"name": ..., "datatype": ..., "shape": [...]}',
                                received=repr(raw)[:120], fix="re-save the model") from None
        if spec.datatype not in DATATYPES:
            raise ArtifactError("The artifact's signature has an unsupported datatype",
                                expected=sorted(DATATYPES), received=spec.datatype)
        return spec


def specs(entries: Any) -> list[TensorSpec]:
    """A signature's ``inputs`` or ``outputs`` list as TensorSpecs."""
    return [TensorSpec.from_json(e) for e in entries or []]
