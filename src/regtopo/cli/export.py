"""`regtopo export kyverno TOPOLOGY`: the admission policy matching the topology's signers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regtopo.cli.validate import TopologyArg
from regtopo.render.kyverno import dump_yaml, kyverno_policy
from regtopo.topology.loader import load

export_app = typer.Typer(help="Write what other tools need to enforce the topology.")


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @export_app.command()
    @handle_errors
    def kyverno(
        topology: TopologyArg,
        out: Annotated[
            Path | None, typer.Option("--out", "-o", help="write here instead of stdout")
        ] = None,
        name: Annotated[
            str, typer.Option("--name", help="the ClusterPolicy's name")
        ] = "regtopo-signing",
    ) -> None:
        """A Kyverno verifyImages ClusterPolicy for the target registries."""
        loaded = load(topology)
        text = dump_yaml(kyverno_policy(loaded.topology, topology.resolve().parent, name))
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text)

    app.add_typer(export_app, name="export")
