"""`regtopo export ...`: the topology in another tool's own language.

- `export kyverno TOPOLOGY`: the admission policy matching the topology's signers.
- `export retention --provider ecr|gar|acr|gitlab|harbor TOPOLOGY`: the native retention
  policy as JSON on stdout, and on stderr each rule or clause it could not express.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from regtopo.cli.logs import VerboseOption
from regtopo.cli.validate import TopologyArg
from regtopo.render.kyverno import dump_yaml, kyverno_policy
from regtopo.render.retention_export import PROVIDERS, export_retention
from regtopo.topology.loader import load

export_app = typer.Typer(
    name="export",
    help="Write the topology in another tool's own language.",
    no_args_is_help=True,
)


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
        verbose: VerboseOption = 0,
    ) -> None:
        """A Kyverno verifyImages ClusterPolicy for the target registries."""
        loaded = load(topology)
        text = dump_yaml(kyverno_policy(loaded.topology, topology.resolve().parent, name))
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text)

    @export_app.command("retention")
    @handle_errors
    def retention(
        topology: TopologyArg,
        provider: Annotated[
            str,
            typer.Option(
                "--provider", help=f"the product's policy to write: {', '.join(PROVIDERS)}"
            ),
        ],
        registry: Annotated[
            str | None,
            typer.Option("--registry", help="whose rules (needed when rules cover several)"),
        ] = None,
        verbose: VerboseOption = 0,
    ) -> None:
        """The retention rules as the product's native policy; never deletes more than regtopo."""
        loaded = load(topology)
        result = export_retention(loaded.topology, provider, registry)
        typer.echo(json.dumps(result.document, indent=2))
        for line in result.unexpressed:
            typer.echo(f"cannot express: {line}", err=True)

    app.add_typer(export_app)
