"""`regtopo plan TOPOLOGY`: what apply would do, and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regtopo.cli.validate import TopologyArg
from regtopo.plan.actions import Plan
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.render.text import render_plan
from regtopo.topology.loader import load

EXIT_CHANGES = 2


def make_plan(topology: Path, only: list[str] | None) -> tuple[Plan, Session]:
    loaded = load(topology)
    session = Session(loaded.topology, base_dir=topology.resolve().parent)
    plan = Planner(loaded, session).plan(only=set(only) if only else None)
    return plan, session


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def plan(
        topology: TopologyArg,
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="also save the plan as JSON here")
        ] = None,
        target: Annotated[
            list[str] | None,
            typer.Option("--target", help="plan only the named replication (repeatable)"),
        ] = None,
        detailed_exitcode: Annotated[
            bool,
            typer.Option(
                "--detailed-exitcode", help="exit 2 when changes are planned, 0 when none"
            ),
        ] = False,
    ) -> None:
        """Read live state and print what apply would change."""
        result, session = make_plan(topology, target)
        try:
            typer.echo(render_plan(result))
            if out is not None:
                out.write_text(result.model_dump_json(indent=2) + "\n")
        finally:
            session.close()
        if detailed_exitcode and result.changes:
            raise typer.Exit(EXIT_CHANGES)
