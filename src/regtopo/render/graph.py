"""The topology drawn: registries as groups, repositories as nodes, replications as edges
labelled with their tag selection, as Mermaid or Graphviz dot text."""

from __future__ import annotations

import hashlib
import json
import re

from regtopo.topology.models import ReplicationSpec, TagSelector, Topology


def describe_tags(replication: ReplicationSpec) -> str:
    """A short label of what a replication selects."""
    tags = replication.tags
    parts: list[str] = []
    if isinstance(tags, list):
        shown = ", ".join(tags[:4]) + (f" +{len(tags) - 4}" if len(tags) > 4 else "")
        parts.append(shown)
    else:
        parts.extend(_selector_parts(tags))
    if replication.platforms != "all":
        parts.append("platforms " + ", ".join(replication.platforms))
    if replication.mode.value != "mirror":
        parts.append(replication.mode.value)
    return "; ".join(parts)


def _selector_parts(selector: TagSelector) -> list[str]:
    parts = []
    if selector.names:
        parts.append(", ".join(selector.names))
    if selector.include:
        parts.append("include " + " ".join(selector.include))
    if selector.exclude:
        parts.append("exclude " + " ".join(selector.exclude))
    if selector.semver:
        parts.append(f"semver {selector.semver}")
    if selector.latest:
        parts.append(f"latest {selector.latest} by {(selector.order or 'semver')}")
    if selector.digests:
        parts.append(f"{len(selector.digests)} pinned")
    return parts


def _registry_label(topology: Topology, name: str) -> str:
    spec = topology.registries[name]
    if spec.path is not None:
        return f"{name} (OCI layout {spec.path})"
    profile = spec.profile
    return f"{name} ({spec.host}, {profile.name})" if profile else f"{name} ({spec.host})"


def _nodes(topology: Topology) -> dict[str, list[str]]:
    """Repositories per registry, in order of first mention."""
    nodes: dict[str, list[str]] = {name: [] for name in topology.registries}
    for replication in topology.replications:
        refs = [(replication.source.registry, replication.source.repository)] + [
            (t.registry, t.repository) for t in replication.targets
        ]
        for registry, repository in refs:
            if repository not in nodes.setdefault(registry, []):
                nodes[registry].append(repository)
    return nodes


def _ident(registry: str, repository: str | None = None) -> str:
    raw = registry if repository is None else f"{registry}__{repository}"
    ident = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", raw)
    if ident[2:] != raw:
        # `a-b` and `a_b` would share an identifier: a short hash of the name keeps them apart.
        ident += "_" + hashlib.sha256(raw.encode()).hexdigest()[:6]
    return ident


def _mermaid_text(text: str) -> str:
    # Mermaid labels are quoted; a quote inside is written as an entity.
    return text.replace('"', "#quot;")


def mermaid(topology: Topology) -> str:
    lines = ["flowchart LR"]
    for registry, repositories in _nodes(topology).items():
        label = _mermaid_text(_registry_label(topology, registry))
        lines.append(f'  subgraph {_ident(registry)}["{label}"]')
        for repository in repositories:
            lines.append(f'    {_ident(registry, repository)}["{_mermaid_text(repository)}"]')
        lines.append("  end")
    for replication in topology.replications:
        source = _ident(replication.source.registry, replication.source.repository)
        label = _mermaid_text(describe_tags(replication))
        for target in replication.targets:
            lines.append(f'  {source} -->|"{label}"| {_ident(target.registry, target.repository)}')
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return json.dumps(text)  # a double-quoted string with escapes, as dot reads it


def dot(topology: Topology) -> str:
    lines = ["digraph topology {", "  rankdir=LR;", "  node [shape=box];"]
    for registry, repositories in _nodes(topology).items():
        lines.append(f"  subgraph cluster_{_ident(registry)} {{")
        lines.append(f"    label={_dot_text(_registry_label(topology, registry))};")
        for repository in repositories:
            lines.append(f"    {_ident(registry, repository)} [label={_dot_text(repository)}];")
        lines.append("  }")
    for replication in topology.replications:
        source = _ident(replication.source.registry, replication.source.repository)
        label = _dot_text(describe_tags(replication))
        for target in replication.targets:
            lines.append(
                f"  {source} -> {_ident(target.registry, target.repository)} [label={label}];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"
