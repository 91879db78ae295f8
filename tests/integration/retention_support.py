"""Shared pieces of the retention tests: topology files, plans, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from regtopo.cli.main import app
from regtopo.plan.actions import Action, ActionKind, Plan
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.topology.loader import load
from tests.support.registries import Registry


def write_topology(
    directory: Path,
    registries: dict[str, Registry | Path],
    *,
    replications: list[dict[str, Any]] | None = None,
    retention: dict[str, Any] | None = None,
) -> Path:
    """A topology file (JSON is YAML) naming real registries and layout directories."""
    document: dict[str, Any] = {
        "registries": {
            name: {"path": str(r)} if isinstance(r, Path) else {"host": f"http://{r.host}"}
            for name, r in registries.items()
        },
        "replications": replications or [],
    }
    if retention is not None:
        document["retention"] = retention
    path = directory / "topology.yaml"
    path.write_text(json.dumps(document, indent=2))
    return path


def plan_of(path: Path) -> Plan:
    loaded = load(path)
    session = Session(loaded.topology, base_dir=path.parent)
    try:
        return Planner(loaded, session).plan()
    finally:
        session.close()


def deletes(plan: Plan) -> list[Action]:
    return [a for a in plan.actions if a.kind is ActionKind.DELETE]


def deleted(plan: Plan) -> dict[str, list[str]]:
    """Planned deletions as digest -> tags, the shape tests compare."""
    return {a.deletion.digest: a.deletion.tags for a in deletes(plan) if a.deletion}


def skipped_deletions(plan: Plan) -> dict[str, str]:
    """Deletions the plan refused, as digest -> reason."""
    return {
        a.deletion.digest: a.reason
        for a in plan.actions
        if a.kind is ActionKind.SKIPPED and a.deletion is not None
    }


def regtopo(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)
