"""`regtopo schema`: the JSON Schema of the topology file, for editors to complete and check."""

from __future__ import annotations

import json
from typing import Any

import typer

from regtopo import __version__
from regtopo.cli.logs import VerboseOption
from regtopo.topology.models import Topology

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def topology_schema() -> dict[str, Any]:
    schema = Topology.model_json_schema()
    _accept_shorthands(schema)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": f"regtopo topology (regtopo {__version__})",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def _accept_shorthands(schema: dict[str, Any]) -> None:
    """Say in the schema what the loader accepts before validating: pydantic describes the
    validated shape only, and an editor would mark every `registry/repository` string red.

    - `source` and each target may be written `registry/repository`;
    - `targets` may be one target instead of a list;
    - a field the `defaults` block can supply is not required of each replication.
    """
    definitions = schema["$defs"]
    replication = definitions["ReplicationSpec"]
    shorthand = {
        "type": "string",
        "pattern": "^[^/]+/.+$",
        "description": "registry/repository, a registry of this topology and a repository in it",
    }
    properties = replication["properties"]
    properties["source"] = {"anyOf": [shorthand, {"$ref": "#/$defs/SourceRef"}]}
    target = {"anyOf": [shorthand, {"$ref": "#/$defs/TargetRef"}]}
    targets = properties["targets"]
    properties["targets"] = {
        "anyOf": [target, {**targets, "items": target}],
        "description": "one target, or a list of them",
    }
    defaults = set(definitions.get("ReplicationDefaults", {}).get("properties", {}))
    replication["required"] = [f for f in replication.get("required", []) if f not in defaults]


def register(app: typer.Typer) -> None:
    from regtopo.cli.main import handle_errors

    @app.command()
    @handle_errors
    def schema(
        verbose: VerboseOption = 0,
    ) -> None:
        """Print the JSON Schema of the topology file (for yaml-language-server and editors)."""
        typer.echo(json.dumps(topology_schema(), indent=2))
