"""`regtopo apply TOPOLOGY | PLAN`: apply a saved plan exactly, or plan, confirm and apply.

A saved plan (from `regtopo plan -o`) is the approval: it is applied without asking, but only
against the topology it was made from (same bytes, by SHA-256), and each action only while
the registries still look as planned; stale actions are refused and listed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from regtopo.apply.executor import ActionResult, ApplyReport, Executor
from regtopo.cli.logs import VerboseOption
from regtopo.cli.plan import ShardOption, TargetOption, check_targets, make_plan
from regtopo.errors import RegtopoError
from regtopo.plan.actions import (
    ActionKind,
    Plan,
    PlanFileError,
    Shard,
    looks_like_plan,
    read_plan,
    topology_digest,
)
from regtopo.plan.session import Session
from regtopo.render.text import emit, human_bytes, plan_text, render_report, render_result
from regtopo.topology.loader import load


def open_plan_file(path: Path, only: list[str] | None, shard: str | None) -> tuple[Plan, Session]:
    """Read a saved plan and re-open the registries of the topology it names."""
    plan = read_plan(path)
    source = plan.topology_source
    if source is None:
        raise PlanFileError(f"applying plan {path}: it does not record its topology's hash")
    topology = Path(source.path)
    if not topology.is_absolute() and not topology.is_file():
        raise PlanFileError(
            f"applying plan {path}: its topology {topology} is not in {Path.cwd()}",
            hint="a plan names its topology as `plan` was given it: run apply from the "
            "directory plan ran in, or plan with an absolute topology path",
        )
    now = topology_digest(topology)
    if now != source.sha256:
        raise PlanFileError(
            f"applying plan {path}: the topology {topology} changed since the plan was made "
            f"(sha256 {now[:12]}, planned from {source.sha256[:12]})",
            hint=f"plan again: regtopo plan {topology} -o {path}",
        )
    loaded = load(topology)
    unknown = sorted(
        {
            ref.registry
            for action in plan.actions
            for ref in (action.source, action.target)
            if ref is not None and ref.registry not in loaded.topology.registries
        }
    )
    if unknown:
        raise PlanFileError(
            f"applying plan {path}: it names registries its topology {topology} does not "
            f"define: {', '.join(unknown)}",
            hint=f"make the plan again: regtopo plan {topology} -o {path}",
        )
    selected = check_targets(loaded, only)
    if selected is not None:
        plan = plan.only(selected)
    if shard:
        plan = plan.shard_of(Shard.parse(shard))
    return plan, Session(loaded.topology, base_dir=topology.resolve().parent)


@contextmanager
def progress_reporter(plan: Plan) -> Iterator[Callable[[ActionResult], None]]:
    """A progress bar on a terminal; one line per finished action anywhere else."""
    if not sys.stderr.isatty():

        def line(result: ActionResult) -> None:
            typer.echo(render_result(result), err=True)

        yield line
        return

    console = Console(stderr=True, highlight=False)
    sent = 0
    columns = (
        TextColumn("[bold]applying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[sent]} sent"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("apply", total=len(plan.changes), sent=human_bytes(0))

        def advance(result: ActionResult) -> None:
            nonlocal sent
            sent += result.stats.bytes_sent
            style = "green" if result.ok else "red"
            progress.console.print(render_result(result), style=style, soft_wrap=True)
            progress.update(task, advance=1, sent=human_bytes(sent))

        yield advance


def on_terminal() -> bool:
    return sys.stdin.isatty()


def confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not on_terminal():
        typer.echo("error: not a terminal; pass --auto-approve to apply without asking", err=True)
        raise typer.Exit(1)
    if not typer.confirm("\nApply these changes?", default=False):
        typer.echo("Apply cancelled.")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def apply(
        topology: Annotated[
            Path,
            typer.Argument(
                metavar="TOPOLOGY|PLAN",
                help="a topology YAML (plan, confirm, apply) or a plan file from `plan -o`",
                show_default=False,
            ),
        ],
        auto_approve: Annotated[
            bool,
            typer.Option("--auto-approve", help="apply without asking (needed off a terminal)"),
        ] = False,
        target: TargetOption = None,
        shard: ShardOption = None,
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
        verbose: VerboseOption = 0,
    ) -> None:
        """Apply a saved plan exactly, or plan a topology, show it, and apply once approved."""
        if not topology.exists():
            raise RegtopoError(
                f"applying {topology}: no such file; apply takes a topology or a plan file "
                "saved with `regtopo plan -o`"
            )
        saved = looks_like_plan(topology)
        if saved:
            plan, session = open_plan_file(topology, target, shard)
        else:
            plan, session, _ = make_plan(topology, target, shard)
        blocked = plan.counts().get(ActionKind.BLOCKED, 0)
        try:
            emit(plan_text(plan, show_in_sync=False))
            if not plan.changes:
                if blocked:
                    typer.echo(f"{blocked} tag(s) blocked by signing policies.", err=True)
                    raise typer.Exit(1)
                return
            if not saved:
                confirm(auto_approve)
            typer.echo("")
            deletions = sum(1 for a in plan.changes if a.kind is ActionKind.DELETE)
            # A saved plan was reviewed, deletions included: applying it is the consent.
            consent = allow_delete or saved
            if deletions and not consent:
                typer.echo(
                    f"note: {deletions} planned deletion(s) are skipped: pass --allow-delete "
                    "to perform them",
                    err=True,
                )
            with progress_reporter(plan) as on_result:
                executor = Executor(
                    session,
                    parallelism=parallelism,
                    fail_fast=fail_fast,
                    allow_delete=consent,
                    on_result=on_result,
                )
                report: ApplyReport = executor.apply(plan)
            emit(render_report(report))
        finally:
            session.close()
        if blocked:
            # A tag a signing policy blocked is a failure to reach the declared state.
            typer.echo(f"{blocked} tag(s) blocked by signing policies.", err=True)
        if report.failed or blocked:
            raise typer.Exit(1)
