"""`regtopo validate TOPOLOGY`: check a topology file without touching a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regtopo.cli.logs import VerboseOption
from regtopo.topology.loader import load

TopologyArg = Annotated[Path, typer.Argument(help="the topology YAML file", show_default=False)]


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def validate(
        topology: TopologyArg,
        verbose: VerboseOption = 0,
    ) -> None:
        """Check a topology file: every error at once, with file, line and column."""
        loaded = load(topology)
        count = len(loaded.topology.replications)
        registries = len(loaded.topology.registries)
        typer.echo(
            f"{topology}: valid ({registries} registr{'ies' if registries != 1 else 'y'}, "
            f"{count} replication{'s' if count != 1 else ''})"
        )
