"""`regtopo apply TOPOLOGY`: plan, confirm, then copy by digest."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from regtopo.apply.executor import ActionResult, Executor
from regtopo.cli.plan import make_plan
from regtopo.cli.validate import TopologyArg
from regtopo.plan.actions import ActionKind
from regtopo.render.text import render_plan, render_report, render_result


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def apply(
        topology: TopologyArg,
        auto_approve: Annotated[
            bool,
            typer.Option("--auto-approve", help="apply without asking (needed off a terminal)"),
        ] = False,
        target: Annotated[
            list[str] | None,
            typer.Option("--target", help="apply only the named replication (repeatable)"),
        ] = None,
        parallelism: Annotated[
            int, typer.Option("--parallelism", min=1, max=64, help="images copied at once")
        ] = 4,
        fail_fast: Annotated[
            bool, typer.Option("--fail-fast", help="stop at the first failed action")
        ] = False,
        allow_delete: Annotated[
            bool,
            typer.Option(
                "--allow-delete",
                help="perform the plan's deletions too (a saved plan file implies consent)",
            ),
        ] = False,
    ) -> None:
        """Plan, show the plan, and apply it once approved."""
        plan, session = make_plan(topology, target)
        try:
            typer.echo(render_plan(plan, show_in_sync=False))
            if not plan.changes:
                return
            if not auto_approve:
                if not sys.stdin.isatty():
                    typer.echo(
                        "error: not a terminal; pass --auto-approve to apply without asking",
                        err=True,
                    )
                    raise typer.Exit(1)
                if not typer.confirm("\nApply these changes?", default=False):
                    typer.echo("Apply cancelled.")
                    raise typer.Exit(1)

            def progress(result: ActionResult) -> None:
                typer.echo(render_result(result), err=True)

            typer.echo("")
            deletions = sum(1 for a in plan.changes if a.kind is ActionKind.DELETE)
            if deletions and not allow_delete:
                typer.echo(
                    f"note: {deletions} planned deletion(s) are skipped: pass --allow-delete "
                    "to perform them",
                    err=True,
                )
            executor = Executor(
                session,
                parallelism=parallelism,
                fail_fast=fail_fast,
                allow_delete=allow_delete,
                on_result=progress,
            )
            report = executor.apply(plan)
            typer.echo(render_report(report))
        finally:
            session.close()
        if report.failed:
            raise typer.Exit(1)
