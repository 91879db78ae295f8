"""Running the `regtopo` command in-process on a topology written by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from regtopo.cli.main import app


def write_topology(
    directory: Path, registries: dict[str, str], replications: list[dict[str, Any]]
) -> Path:
    """`registries` maps names to `http://host:port` URLs or to layout paths (`path:DIR`)."""
    specs = {
        name: {"path": value.removeprefix("path:")}
        if value.startswith("path:")
        else {"host": value}
        for name, value in registries.items()
    }
    path = directory / "topology.yaml"
    # JSON is YAML: the loader reads it with positions like any topology.
    path.write_text(json.dumps({"registries": specs, "replications": replications}, indent=2))
    return path


def regtopo(topology: Path, *args: str, expect: tuple[int, ...] = (0,)) -> str:
    """`regtopo ARGS TOPOLOGY`; the output, after checking the exit code."""
    result = CliRunner().invoke(app, [*args, str(topology)], catch_exceptions=False)
    assert result.exit_code in expect, result.output
    return result.output
