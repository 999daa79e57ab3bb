"""The layer contract: ``__init__`` validates, ``build(input_shape)`` creates weights on first
use, ``call(inputs)`` computes.

Shapes at the API are Keras-style and channels-last (``(N, H, W, C)``). Layers that need torch's
``(N, C, H, W)`` view permute inside ``call``; since convolution weights and activations are kept
in channels-last memory, those permutes are views, not copies.

Every subclass is registered by class name, so an artifact names its classes and loading never
runs code from the file. Constructor arguments are captured automatically for ``get_config``.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lepton.core.layers.symbolic_tensor import call_symbolic, is_symbolic
from lepton.errors import ArtifactError, ConfigError

_REGISTRY: dict[str, type] = {}
_NAME_COUNTS: defaultdict[str, int] = defaultdict(int)
_LAYER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


def register(cls: type | None = None, *, name: str | None = None):
    """Register a custom Layer or Model class under ``name`` (default: its class name), so
    that ``load_model`` can rebuild it. Usable as ``@register`` or ``@register(name=...)``."""

    def decorate(c: type) -> type:
        key = name or c.__name__
        _REGISTRY[key] = c
        c._registered_name = key
        return c

    return decorate(cls) if cls is not None else decorate


def registered_class(name: str) -> type:
    """Return the class registered under ``name``, or explain how to register it."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ArtifactError(
            f"The artifact uses the class '{name}', which is not registered in this process",
            fix="import the module that defines it (decorate it with @lepton.core.register) "
            "before calling load_model",
        ) from None


def unique_name(prefix: str) -> str:
    """Auto-name layers Keras-style: dense, dense_1, dense_2..."""
    count = _NAME_COUNTS[prefix]
    _NAME_COUNTS[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


def to_json_value(value: Any, where: str) -> Any:
    """Turn a constructor argument into JSON (layers nest as {class_name, config})."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v, where) for k, v in value.items()}
    if isinstance(value, Layer):
        return {"__layer__": serialize_layer(value)}
    if hasattr(value, "get_config") and hasattr(value, "name"):
        return value.name
    raise ConfigError(
        f"Cannot save the argument {where} as JSON",
        expected="numbers, strings, lists, dicts, layers or registered names",
        received=f"{type(value).__name__}",
        fix="override get_config() in your layer to return JSON-friendly values",
    )


def from_json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [from_json_value(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__layer__"}:
            return deserialize_layer(value["__layer__"])
        return {k: from_json_value(v) for k, v in value.items()}
    return value


def serialize_layer(layer: Layer) -> dict:
    return {"class_name": type(layer)._registered_name, "config": layer.get_config()}


def deserialize_layer(spec: dict) -> Layer:
    cls = registered_class(spec["class_name"])
    return cls.from_config(from_json_value(spec["config"]))


def shape_of(x: Any) -> Any:
    """Shape(s) of a tensor or a list of tensors, as tuples."""
    if isinstance(x, (list, tuple)):
        return [shape_of(t) for t in x]
    return tuple(x.shape)


class Layer(nn.Module):
    """Base of every layer and model: lazy weights, auto names, JSON config."""

    _registered_name = "Layer"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        taken = _REGISTRY.get(cls.__name__)
        if taken is not None and taken.__module__.startswith("lepton.") and not (
            cls.__module__.startswith("lepton.")
        ):
            register(cls, name=f"{cls.__module__}.{cls.__qualname__}")  # never shadow built-ins
        else:
            register(cls)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def capturing_init(self: Layer, *args: Any, **kw: Any) -> None:
            if "_lepton_config" not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                config = {k: v for k, v in bound.arguments.items() if k != "self"}
                for key, param in signature.parameters.items():
                    if param.kind is inspect.Parameter.VAR_KEYWORD and key in config:
                        config.update(config.pop(key))
                    elif param.kind is inspect.Parameter.VAR_POSITIONAL and key in config:
                        config.pop(key)
                self.__dict__["_lepton_config"] = config
            init(self, *args, **kw)

        cls.__init__ = capturing_init

    def __init__(self, name: str | None = None, input_shape: Sequence[int] | None = None,
                 trainable: bool = True, dtype: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        if kwargs:
            raise ConfigError(
                f"{type(self).__name__} got unknown arguments {sorted(kwargs)}",
                expected="the layer's own arguments plus name, input_shape, trainable, dtype",
                received=f"{sorted(kwargs)}",
                fix="check the spelling against the layer's docstring",
            )
        if name is not None and not (isinstance(name, str) and _LAYER_NAME.match(name)):
            raise ConfigError(
                "Layer names must be identifiers (letters, digits, _ or -)",
                received=f"name={name!r}",
                fix="pick a name like 'dense_head'",
            )
        self.name = name or unique_name(snake_case(type(self).__name__))
        if input_shape is not None:
            input_shape = _validate_input_shape(input_shape, type(self).__name__)
        self.input_shape_arg = input_shape
        self.trainable = trainable
        self.built = False
        self.output_shape: Any = None
        self.input_shape: Any = None
        self.note = ""

    # -- the contract ------------------------------------------------------------------
    def build(self, input_shape: Any) -> None:
        """Create weights for inputs of ``input_shape`` (batch dimension included)."""

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def get_config(self) -> dict:
        """Constructor arguments as JSON; the default replays what ``__init__`` received."""
        config = dict(self.__dict__.get("_lepton_config", {}))
        config["name"] = self.name
        return {k: to_json_value(v, f"{k!r} of {self.name}") for k, v in config.items()}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(**config)

    # -- machinery -----------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and is_symbolic(args[0]):
            return call_symbolic(self, args, kwargs)
        return super().__call__(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.built:
            return self.call(*args, **kwargs)
        self.input_shape = shape_of(args[0])
        self.build(self.input_shape)
        self.built = True
        device = _device_of(args[0])
        if device is not None:
            self.to(device)
        if not self.trainable:
            self.requires_grad_(False)
        out = self.call(*args, **kwargs)
        self.output_shape = shape_of(out)
        return out

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


def _validate_input_shape(shape: Any, owner: str) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        raise ConfigError(
            f"{owner} expected `input_shape` as a tuple of positive ints, without the batch axis",
            received=f"input_shape={shape!r}",
            fix="for 28x28 grayscale images use input_shape=(28, 28, 1)",
        )
    return tuple(shape)


def _device_of(x: Any) -> torch.device | None:
    if isinstance(x, torch.Tensor):
        return x.device
    if isinstance(x, (list, tuple)) and x:
        return _device_of(x[0])
    return None
