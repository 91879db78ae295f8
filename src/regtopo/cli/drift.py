"""`regtopo drift TOPOLOGY`: the nightly check. Exit 0 in sync, 2 drifted, 1 error.

Drift is a plan with changes, plus the unmanaged tags at the targets (reported; with
`--fail-on-unmanaged` they count as drift).
"""

from __future__ import annotations

from typing import Annotated

import typer

from regtopo.cli.logs import VerboseOption
from regtopo.cli.plan import (
    EXIT_CHANGES,
    FormatOption,
    OutputFormat,
    ShardOption,
    TargetOption,
    make_plan,
)
from regtopo.cli.validate import TopologyArg
from regtopo.plan.drift import DriftReport, find_unmanaged
from regtopo.render.markdown import render_drift_markdown
from regtopo.render.text import drift_text, emit


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def drift(
        topology: TopologyArg,
        output: FormatOption = OutputFormat.TEXT,
        target: TargetOption = None,
        shard: ShardOption = None,
        fail_on_unmanaged: Annotated[
            bool,
            typer.Option(
                "--fail-on-unmanaged", help="exit 2 on unmanaged tags too, not only on drift"
            ),
        ] = False,
        verbose: VerboseOption = 0,
    ) -> None:
        """Compare the registries with the topology: exit 2 on drift, 0 when in sync."""
        plan, session, loaded = make_plan(topology, target, shard)
        try:
            report = DriftReport(
                plan=plan, unmanaged=find_unmanaged(loaded.topology, plan, session)
            )
        finally:
            session.close()

        if output is OutputFormat.JSON:
            typer.echo(report.model_dump_json(indent=2))
        elif output is OutputFormat.MARKDOWN:
            typer.echo(render_drift_markdown(report), nl=False)
        else:
            emit(drift_text(report))
        if report.drifted or (fail_on_unmanaged and report.unmanaged):
            raise typer.Exit(EXIT_CHANGES)
