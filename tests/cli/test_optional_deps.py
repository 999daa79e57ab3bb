"""An optional part used without its extra ends as one line naming the pip command.

Each case runs the real CLI in a subprocess whose import system refuses the extra's modules,
as on a machine where they were never installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lepton.errors import OPTIONAL_MODULES, MissingDependencyError, missing_dependency

REPO = Path(__file__).resolve().parents[2]

WITHOUT = """
import sys

blocked = set(sys.argv[1].split(","))


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
from lepton.cli import main

sys.exit(main(sys.argv[2:]))
"""


def lepton_without(modules: list[str], *args: str, env: dict | None = None,
                   cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT, ",".join(modules), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def modules_of(extra: str) -> list[str]:
    return [module for module, name in OPTIONAL_MODULES.items() if name == extra]


def assert_one_line(result: subprocess.CompletedProcess, command: str, extra: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"lepton {command}: error: This feature needs the package")
    assert f"pip install 'lepton[{extra}]'" in result.stderr


def test_serve_without_the_serve_extra(tmp_path):
    result = lepton_without(modules_of("serve"), "serve", str(tmp_path / "model"))
    assert_one_line(result, "serve", "serve")


def test_parquet_without_pyarrow(tmp_path):
    from sklearn.datasets import load_breast_cancer

    data = tmp_path / "cancer.parquet"
    load_breast_cancer(as_frame=True).frame.to_parquet(data)  # pyarrow is here, not there
    result = lepton_without(["pyarrow"], "train", "--data", str(data), "--target", "target",
                            "--out", str(tmp_path / "m"), env={"LEPTON_HOME": str(tmp_path)})
    assert_one_line(result, "train", "parquet")


def test_postgres_without_psycopg(tmp_path):
    result = lepton_without(["psycopg"], "models", "list",
                            env={"LEPTON_DB_URL": "postgresql://lepton@127.0.0.1:1/lepton"})
    assert_one_line(result, "models", "postgres")


def test_help_works_without_any_extra():
    result = lepton_without(list(OPTIONAL_MODULES), "--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "demo" in result.stdout


def test_a_missing_core_package_still_shows_its_traceback(tmp_path):
    """Only optional modules are one line: a broken install is a bug to see in full."""
    from sklearn.datasets import load_breast_cancer

    data = tmp_path / "cancer.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(data, index=False)
    result = lepton_without(["sklearn"], "train", "--data", str(data), "--target", "target",
                            "--out", str(tmp_path / "m"), env={"LEPTON_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "No module named 'sklearn" in result.stderr


@pytest.mark.parametrize("module", sorted(OPTIONAL_MODULES))
def test_every_optional_module_maps_to_its_extra(module):
    error = missing_dependency(ModuleNotFoundError(name=f"{module}.sub"))
    assert isinstance(error, MissingDependencyError)
    assert f"pip install 'lepton[{OPTIONAL_MODULES[module]}]'" in str(error)
    assert missing_dependency(ImportError(f"cannot import name 'x' from '{module}'",
                                          name=module)) is None  # installed, wrong version


def test_the_table_covers_every_package_of_every_extra():
    """Each package pyproject.toml lists in an optional extra is in OPTIONAL_MODULES."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    provides: dict[str, set[str]] = {}
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            provides.setdefault(dist.lower().replace("_", "-"), set()).add(module)
    for extra in set(OPTIONAL_MODULES.values()):
        for requirement in extras[extra]:
            dist = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
            modules = provides.get(dist.replace("_", "-"), set())
            assert modules & set(modules_of(extra)), f"{requirement} ({extra}): {modules}"
