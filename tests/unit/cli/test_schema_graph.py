"""`regtopo schema` and `regtopo graph`: text that editors and renderers read."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from regtopo.cli.main import app

ROOT = Path(__file__).resolve().parents[3]


def test_schema_is_json_schema_of_the_file_and_matches_the_shipped_copy() -> None:
    result = CliRunner().invoke(app, ["schema"])
    schema = json.loads(result.output)

    assert result.exit_code == 0
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert sorted(schema["properties"]) == [
        "defaults",
        "registries",
        "replications",
        "retention",
        "signing",
        "version",
    ]
    assert schema["patternProperties"] == {"^x-": {}}
    assert "ecr" in schema["$defs"]["RegistrySpec"]["properties"]["provider"]["enum"]
    assert schema == json.loads((ROOT / "docs" / "topology.schema.json").read_text())


def test_graph_draws_registries_edges_and_selectors_as_mermaid() -> None:
    result = CliRunner().invoke(app, ["graph", str(ROOT / "topologies" / "promotion-chain.yaml")])

    assert result.exit_code == 0
    assert result.output.splitlines()[0] == "flowchart LR"
    assert '  subgraph n_prod["prod (123456789012.dkr.ecr.us-east-1.amazonaws.com, ecr)"]' in (
        result.output.splitlines()
    )
    assert (
        '  n_staging__shop_web_ef2077 -->|"semver >=1.0; latest 3 by semver"| '
        "n_prod__shop_web_c4c952" in result.output.splitlines()
    )


def test_graph_as_dot_quotes_labels() -> None:
    result = CliRunner().invoke(
        app, ["graph", "--format", "dot", str(ROOT / "topologies" / "air-gapped.yaml")]
    )

    assert result.exit_code == 0
    assert result.output.startswith("digraph topology {\n")
    assert (
        "  n_harbor__platform___6c9b8e -> n_transfer__platform__name__4efafa "
        '[label="semver >=2.0; latest 2 by semver"];' in result.output.splitlines()
    )


def test_graph_identifiers_keep_similar_names_apart(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "registries: {a: {host: ghcr.io}, b: {path: ./b}}\n"
        "replications:\n"
        "  - {source: a/x-y, targets: [b/x-y], tags: [latest]}\n"
        "  - {source: a/x_y, targets: [b/x_y], tags: [latest]}\n"
    )

    result = CliRunner().invoke(app, ["graph", str(path)])
    edges = [line for line in result.output.splitlines() if "-->" in line]

    assert len(edges) == 2
    assert len({line.split()[0] for line in edges}) == 2


def test_every_shipped_topology_is_valid_under_the_schema_editors_use() -> None:
    """The schema must accept what the loader accepts (the `registry/repository` shorthand,
    one target without a list, fields from `defaults`), or editors mark valid files red."""
    import jsonschema
    from ruamel.yaml import YAML

    root = Path(__file__).resolve().parents[3]
    schema = json.loads((root / "docs" / "topology.schema.json").read_text())
    files = sorted((root / "topologies").glob("*.yaml")) + [
        root / "examples" / "quickstart" / "topology.yaml"
    ]
    validator = jsonschema.Draft202012Validator(schema)
    for path in files:
        document = json.loads(json.dumps(YAML(typ="safe").load(path.read_text())))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], path.name
