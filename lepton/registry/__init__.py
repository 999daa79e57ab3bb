"""The model registry: ``register``, ``resolve``, ``promote``, ``history``, ``delete``.

    from lepton.registry import Registry
    reg = Registry()                      # on Store.open()
    v = reg.register("out/fraud", "fraud")
    reg.promote("fraud", v["version"], "production")
    reg.resolve("fraud@production")["path"]
"""

from lepton.registry._registry import STAGES, Registry, parse_ref

__all__ = ["STAGES", "Registry", "parse_ref"]
