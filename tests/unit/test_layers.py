"""The package's layering holds: no module imports from a layer above its own.

The layers are declared in pyproject.toml (``[tool.importlinter]``) and drawn
in doc/source/reference/architecture.rst; import-linter reads the imports of
every module of the installed package.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest

pytest.importorskip("importlinter.cli")

ROOT = pathlib.Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"


def lint(config: pathlib.Path) -> subprocess.CompletedProcess[str]:
    # In a process of its own: import-linter configures logging as it runs.
    script = (
        "import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_module_imports_from_a_layer_above_its_own():
    result = lint(PYPROJECT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_fails_when_a_lower_layer_imports_a_higher_one(tmp_path):
    # The same contract with two layers swapped: the transport imports the
    # drivers, so declaring the drivers above it must break the contract.
    text = PYPROJECT.read_text()
    layers = tomllib.loads(text)["tool"]["importlinter"]["contracts"][0]["layers"]
    assert layers.index("rpcframe.transport") < layers.index("rpcframe.drivers")
    swapped = text.replace('    "rpcframe.transport",\n', "\0").replace(
        '    "rpcframe.drivers",\n', '    "rpcframe.transport",\n'
    )
    swapped = swapped.replace("\0", '    "rpcframe.drivers",\n')
    config = tmp_path / "pyproject.toml"
    config.write_text(swapped)

    result = lint(config)

    assert result.returncode != 0
    assert "rpcframe.transport is not allowed to import rpcframe.drivers" in result.stdout
