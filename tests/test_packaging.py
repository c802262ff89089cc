"""The installed package: ``pip install .`` ships every module of pyfunc/, and only the runtime dependencies.

The package is built from a copy of the checkout's pyproject.toml, requirements files and pyfunc/ (so no
build/ or egg-info lands in the checkout) and installed offline into a temporary folder; a fresh interpreter
that cannot see the checkout then imports every module from there and runs ``python -m pyfunc --help``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from email.parser import Parser
from pathlib import Path

import pytest
from conftest import REPO

# The build backend pyproject.toml names; 70.1 and newer build wheels without the `wheel` package.
MIN_SETUPTOOLS = (70, 1)

# Run with -I (no PYTHONPATH, no current directory, no user site): only the installed copy is on sys.path.
IMPORT_ALL = """
import importlib, json, pkgutil, sys
sys.path.insert(0, sys.argv[1])
import pyfunc
def fail(name):
    raise ImportError(f"walking {name} failed")
found = {"pyfunc": pyfunc.__file__}
for info in pkgutil.walk_packages(pyfunc.__path__, "pyfunc.", onerror=fail):
    found[info.name] = importlib.import_module(info.name).__file__
print(json.dumps(found))
"""

RUN_MAIN = """
import runpy, sys
sys.path.insert(0, sys.argv[1])
sys.argv = ["pyfunc", "--help"]
runpy.run_module("pyfunc", run_name="__main__", alter_sys=True)
"""


def checkout_modules() -> set[str]:
    """The dotted names of pyfunc/**/*.py in the checkout (a package by its __init__.py)."""
    names = set()
    for path in (REPO / "pyfunc").rglob("*.py"):
        names.add(".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"))
    return names


def setuptools_version() -> tuple[int, ...] | None:
    try:
        import setuptools
    except ImportError:
        return None
    return tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pyfunc installed (no dependencies, offline, no build isolation) into a folder outside the checkout."""
    version = setuptools_version()
    assert version is not None and version >= MIN_SETUPTOOLS, (
        f"setuptools >= {'.'.join(map(str, MIN_SETUPTOOLS))} is needed to build the package offline, found "
        f"{version}; bash tools/setup.sh installs requirements-dev.txt")
    root = tmp_path_factory.mktemp("packaging")
    source, target = root / "source", root / "site"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "requirements-dev.txt"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "pyfunc", source / "pyfunc", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return target


def isolated_python(script: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c", script, str(site)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_every_module_is_installed_and_imports_from_the_installed_copy(installed: Path, tmp_path: Path) -> None:
    proc = isolated_python(IMPORT_ALL, installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    missing = sorted(checkout_modules() - set(found))
    assert missing == [], f"not in the installed package: {missing}"
    assert sorted(set(found) - checkout_modules()) == []
    site = installed.resolve()
    outside = {name: file for name, file in found.items() if not Path(file).resolve().is_relative_to(site)}
    assert outside == {}, "imported from elsewhere than the installed copy"
    assert {"pyfunc.training", "pyfunc.pipeline", "pyfunc.cli.tools"} <= set(found)


def test_python_m_pyfunc_help_runs_from_the_installed_copy(installed: Path, tmp_path: Path) -> None:
    proc = isolated_python(RUN_MAIN, installed, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: " in proc.stdout and "verify" in proc.stdout


def test_runtime_dependencies_leave_out_the_test_and_lint_tools(installed: Path) -> None:
    (metadata,) = installed.glob("pyfunc-*.dist-info/METADATA")
    requires = Parser().parsestr(metadata.read_text()).get_all("Requires-Dist")
    runtime = {r.split(";")[0].strip() for r in requires if "extra ==" not in r}
    dev = {r.split(";")[0].strip() for r in requires if "extra ==" in r}
    names = lambda reqs: {r.split("=")[0].split(">")[0].split("<")[0].strip().lower() for r in reqs}  # noqa: E731
    assert {"torch", "torchaudio", "kaldiio", "numpy", "onnxruntime", "pyroomacoustics"} <= names(runtime)
    assert {"pytest", "hypothesis", "ruff"} <= names(dev)
    assert names(runtime) & {"pytest", "hypothesis", "ruff", "setuptools"} == set()


def test_the_default_fbank_options_ship_with_the_package(installed: Path) -> None:
    """Model dirs without fbank.conf fall back on pyfunc/conf/fbank.conf: an install has no conf/ of the checkout."""
    shipped = installed / "pyfunc" / "conf" / "fbank.conf"
    assert shipped.is_file() and shipped.read_text() == (REPO / "pyfunc" / "conf" / "fbank.conf").read_text()
