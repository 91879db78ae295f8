"""`regtopo verify TOPOLOGY`: audit signatures at the targets (or one registry)."""

from __future__ import annotations

from typing import Annotated

import typer

from regtopo.cli.logs import VerboseOption
from regtopo.cli.validate import TopologyArg
from regtopo.errors import RegtopoError
from regtopo.plan.session import Session
from regtopo.plan.signing.audit import audit, render_audit
from regtopo.topology.loader import load


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def verify(
        topology: TopologyArg,
        registry: Annotated[
            str | None,
            typer.Option("--registry", help="audit this registry (its sources and targets)"),
        ] = None,
        all_tags: Annotated[
            bool,
            typer.Option(
                "--all-tags",
                help="audit every tag of the audited repositories, not only the selected ones "
                "(signature and attachment tags aside)",
            ),
        ] = False,
        verbose: VerboseOption = 0,
    ) -> None:
        """Check what the targets hold against the signing policies; exit 1 on a failure."""
        loaded = load(topology)
        if registry is not None and registry not in loaded.topology.registries:
            known = ", ".join(sorted(loaded.topology.registries))
            raise RegtopoError(
                f"verifying: unknown registry {registry!r}; expected one of: {known}"
            )
        session = Session(loaded.topology, base_dir=topology.resolve().parent)
        try:
            entries = audit(loaded, session, registry, all_tags=all_tags)
        finally:
            session.close()
        typer.echo(f"regtopo verify for {topology}\n")
        typer.echo(render_audit(entries))
        if any(e.failed for e in entries):
            raise typer.Exit(1)
