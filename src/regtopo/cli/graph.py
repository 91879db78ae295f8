"""`regtopo graph TOPOLOGY`: draw registries, replications and their tag selection."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from regtopo.cli.logs import VerboseOption
from regtopo.cli.validate import TopologyArg
from regtopo.render.graph import dot, mermaid
from regtopo.topology.loader import load


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def graph(
        topology: TopologyArg,
        format: Annotated[
            GraphFormat, typer.Option("--format", "-f", help="mermaid or dot (Graphviz)")
        ] = GraphFormat.MERMAID,
        verbose: VerboseOption = 0,
    ) -> None:
        """Draw the topology as Mermaid or Graphviz text; touches no registry."""
        loaded = load(topology)
        render = mermaid if format is GraphFormat.MERMAID else dot
        typer.echo(render(loaded.topology), nl=False)
