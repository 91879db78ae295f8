"""`regtopo plan TOPOLOGY`: what apply would do, and nothing else."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from regtopo.cli.logs import VerboseOption
from regtopo.cli.validate import TopologyArg
from regtopo.errors import RegtopoError
from regtopo.plan.actions import Plan, Shard, TopologySource, topology_digest
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.render.markdown import render_plan_markdown
from regtopo.render.text import emit, plan_text
from regtopo.topology.loader import LoadedTopology, load

EXIT_CHANGES = 2


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help="text (colour on a terminal), json (docs/plan-format.md) or markdown (PR comment)",
    ),
]
TargetOption = Annotated[
    list[str] | None,
    typer.Option("--target", help="only the named replication (repeatable)"),
]
ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="I/N",
        help="only shard I of N (1-based), split by target repository",
    ),
]


def check_targets(loaded: LoadedTopology, only: list[str] | None) -> set[str] | None:
    if not only:
        return None
    known = {r.label for r in loaded.topology.replications}
    unknown = sorted(set(only) - known)
    if unknown:
        raise RegtopoError(
            f"selecting --target {', '.join(unknown)}: no such replication in {loaded.path}",
            hint="replications: " + ", ".join(sorted(known)),
        )
    return set(only)


def make_plan(
    topology: Path, only: list[str] | None, shard: str | None = None
) -> tuple[Plan, Session, LoadedTopology]:
    """Plan the topology (restricted to --target and --shard), with its source recorded."""
    selected_shard = Shard.parse(shard) if shard else None
    sha256 = topology_digest(topology)
    loaded = load(topology)
    selected = check_targets(loaded, only)
    session = Session(loaded.topology, base_dir=topology.resolve().parent)
    try:
        plan = Planner(loaded, session).plan(only=selected)
    except BaseException:
        session.close()
        raise
    plan.topology_source = TopologySource(path=str(topology), sha256=sha256)
    if selected is not None:
        plan.targets = sorted(selected)
    if selected_shard is not None:
        plan = plan.shard_of(selected_shard)
    return plan, session, loaded


def print_plan(plan: Plan, output: OutputFormat, *, show_in_sync: bool = True) -> None:
    if output is OutputFormat.JSON:
        typer.echo(plan.to_json(), nl=False)
    elif output is OutputFormat.MARKDOWN:
        typer.echo(render_plan_markdown(plan), nl=False)
    else:
        emit(plan_text(plan, show_in_sync=show_in_sync))


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def plan(
        topology: TopologyArg,
        out: Annotated[
            Path | None,
            typer.Option("--out", "-o", help="also save the plan file (JSON) for `regtopo apply`"),
        ] = None,
        output: FormatOption = OutputFormat.TEXT,
        target: TargetOption = None,
        shard: ShardOption = None,
        detailed_exitcode: Annotated[
            bool,
            typer.Option(
                "--detailed-exitcode", help="exit 2 when changes are planned, 0 when none"
            ),
        ] = False,
        verbose: VerboseOption = 0,
    ) -> None:
        """Read live state and print what apply would change."""
        result, session, _ = make_plan(topology, target, shard)
        session.close()
        print_plan(result, output)
        if out is not None:
            try:
                out.write_text(result.to_json())
            except OSError as err:
                raise RegtopoError(f"writing plan {out}: {err.strerror or err}") from err
        if detailed_exitcode and result.changes:
            raise typer.Exit(EXIT_CHANGES)
