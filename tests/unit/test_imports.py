"""Each layer imports on its own, in a fresh interpreter.

An import cycle can hide behind the order a test session happens to import things in (the
CLI imported first masks it); a library user importing `regtopo.topology.loader` first would
meet it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

ENTRY_POINTS = [
    "regtopo.oci.manifest",
    "regtopo.registry.client",
    "regtopo.providers",
    "regtopo.topology.loader",
    "regtopo.plan.planner",
    "regtopo.apply.executor",
    "regtopo.render.text",
    "regtopo.cli.main",
]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_module_imports_alone(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
