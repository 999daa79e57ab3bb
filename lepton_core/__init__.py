"""``lepton_core``: the documented name of Lepton Core, the very same objects as ``lepton.core``.

Each submodule is aliased in ``sys.modules``, so ``from lepton_core.layers import Dense`` gives
``lepton.core.layers.Dense`` itself, not a copy.
"""

import sys

import lepton.core as _core
from lepton.core import *  # noqa: F403
from lepton.core import __all__  # noqa: F401

for _name in ("activations", "callbacks", "layers", "losses", "metrics", "models", "optimizers",
              "utils"):
    sys.modules[f"{__name__}.{_name}"] = getattr(_core, _name)

import lepton.core.applications as _applications  # noqa: E402 - after the core aliases

sys.modules[f"{__name__}.applications"] = _applications
for _name in ("mobilenet_v2", "resnet", "vgg16"):
    sys.modules[f"{__name__}.applications.{_name}"] = getattr(_applications, _name)
applications = _applications
