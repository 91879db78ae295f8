"""`regtopo schema`: the JSON Schema of the topology file, for editors to complete and check."""

from __future__ import annotations

import json
from typing import Any

import typer

from regtopo import __version__
from regtopo.topology.models import Topology

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def topology_schema() -> dict[str, Any]:
    schema = Topology.model_json_schema()
    return {
        "$schema": SCHEMA_DIALECT,
        "title": f"regtopo topology (regtopo {__version__})",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def schema() -> None:
        """Print the JSON Schema of the topology file (for yaml-language-server and editors)."""
        typer.echo(json.dumps(topology_schema(), indent=2))
