"""Every error Lepton raises on purpose, in one tree.

Each message says what went wrong, what was expected, what was received, and the fix.
Subclasses also derive from the builtin they resemble (``ValueError``, ``TypeError``...),
so ``except ValueError`` keeps working, and each carries the HTTP status it maps to.
"""

from __future__ import annotations


def describe(what: str, *, expected: object = None, received: object = None,
             fix: str | None = None) -> str:
    """Compose the standard message: what. Expected: … Received: … Fix: …"""
    parts = [what.rstrip(".") + "."]
    if expected is not None:
        parts.append(f"Expected: {expected}.")
    if received is not None:
        parts.append(f"Received: {received}.")
    if fix:
        parts.append(f"Fix: {fix.rstrip('.')}.")
    return " ".join(parts)


class LeptonError(Exception):
    """Base of every error Lepton raises on purpose."""

    http_status = 400

    def __init__(self, what: str, *, expected: object = None, received: object = None,
                 fix: str | None = None) -> None:
        super().__init__(describe(what, expected=expected, received=received, fix=fix))


class ConfigError(LeptonError, ValueError):
    """An argument or configuration value is invalid."""


class LeptonTypeError(LeptonError, TypeError):
    """An argument has the wrong type."""


class ShapeError(LeptonError, ValueError):
    """Input data does not have the shape, rank or dtype the model expects."""

    http_status = 422


class LabelError(LeptonError, ValueError):
    """Labels do not fit the loss (shape, dtype or value range)."""

    http_status = 422


class NotCompiledError(LeptonError, RuntimeError):
    """A model was trained or evaluated before ``compile``."""


class TrainingError(LeptonError, RuntimeError):
    """Training cannot go on (for example, the loss became NaN)."""

    http_status = 500


class ArtifactError(LeptonError, ValueError):
    """A model artifact is missing, corrupt or unsafe to load."""

    http_status = 422


class UnsafeArtifactError(ArtifactError):
    """A file would execute code when loaded (pickle); Lepton refuses it."""


class DataError(LeptonError, ValueError):
    """Input data (a file, a column, an image) cannot be used as given."""

    http_status = 422


class NotFoundError(LeptonError, LookupError):
    """A named thing (model, version, run, column) does not exist."""

    http_status = 404


class ConflictError(LeptonError, RuntimeError):
    """A write conflicts with one that already happened (e.g. the same version twice)."""

    http_status = 409


class MissingDependencyError(LeptonError, ImportError):
    """An optional dependency is not installed."""

    http_status = 500

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"This feature needs the package '{package}', which is not installed",
            fix=f"pip install 'lepton[{extra}]'",
        )


class StoreUnavailableError(LeptonError, ConnectionError):
    """The store's database cannot be opened: refused, unreachable, bad credentials, or a
    workspace folder that cannot be created."""

    http_status = 503


class ServerUnavailableError(LeptonError, ConnectionError):
    """Nothing answers at the server's address (refused, timed out, unreachable)."""

    http_status = 503

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(
            f"Cannot reach a Lepton server at {url}", received=reason,
            fix=f"check that the server is running (`lepton serve MODEL` listens on "
                f"http://127.0.0.1:8000 by default) and that host and port in '{url}' are its")


class LeptonWarning(UserWarning):
    """A warning Lepton gives about likely mistakes that do not stop the work."""


# Top-level module of each optional dependency -> the extra that installs it (one table for
# the whole package; pyproject.toml [project.optional-dependencies] lists the same packages).
OPTIONAL_MODULES: dict[str, str] = {
    **dict.fromkeys(["fastapi", "starlette", "uvicorn", "uvloop", "httptools", "orjson",
                     "prometheus_client", "xxhash", "simdjson", "fastapi_offline"], "serve"),
    "psycopg": "postgres",
    "cryptography": "monitor",
    "optuna": "tune",
    "onnx": "compress",
    "onnxruntime": "compress",
    "pyarrow": "parquet",
    "tensorboard": "tensorboard",
}


def missing_dependency(exc: ImportError) -> MissingDependencyError | None:
    """The MissingDependencyError for a missing optional module; None for any other
    ImportError (a missing core package or a broken install is a bug to show in full)."""
    if isinstance(exc, MissingDependencyError):
        return exc
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    return MissingDependencyError(top, extra) if extra else None


def require(module: str, extra: str):
    """Import an optional dependency, or raise a MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module.split(".")[0], extra) from None
