"""Running regtopo's CLI in tests, and writing topologies for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from regtopo.cli.main import app
from tests.support.registries import Registry


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Invoke `regtopo ARGS` in-process, with stdout and stderr kept apart."""
    result = CliRunner(env=env).invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def registry_entry(registry: Registry) -> dict[str, Any]:
    """A topology registry entry for a test registry, credentials inline."""
    entry: dict[str, Any] = {"host": f"http://{registry.host}"}
    if registry.credentials:
        username, password = registry.credentials
        entry["credentials"] = {"username": username, "password": password}
    return entry


def write_topology(
    path: Path, registries: dict[str, dict[str, Any]], replications: list[dict[str, Any]]
) -> Path:
    """Write a topology file; JSON is valid YAML, and exact about types."""
    path.write_text(
        json.dumps({"registries": registries, "replications": replications}, indent=2) + "\n"
    )
    return path


def write_url_topology(
    directory: Path, registries: dict[str, str], replications: list[dict[str, Any]]
) -> Path:
    """`registries` maps names to `http://host:port` URLs or to layout paths (`path:DIR`)."""
    specs: dict[str, dict[str, Any]] = {
        name: {"path": value.removeprefix("path:")}
        if value.startswith("path:")
        else {"host": value}
        for name, value in registries.items()
    }
    return write_topology(directory / "topology.yaml", specs, replications)


def regtopo(topology: Path, *args: str, expect: tuple[int, ...] = (0,)) -> str:
    """`regtopo ARGS TOPOLOGY`; the output, after checking the exit code."""
    result = CliRunner().invoke(app, [*args, str(topology)], catch_exceptions=False)
    assert result.exit_code in expect, result.output
    return result.output
