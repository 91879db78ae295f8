"""Repository patterns made concrete: one replication per source repository a pattern covers.

A source `team/*` covers every repository of its registry whose name starts with `team/`; the
repositories are found by listing the registry (the catalog, or the layout's directories),
plus those an earlier replication of this topology writes there, so a pattern can read what
an earlier hop will create. Targets are rendered from their templates.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from regtopo.errors import RegtopoError
from regtopo.topology.graph import build as build_graph
from regtopo.topology.graph import tag_cycles
from regtopo.topology.models import ReplicationSpec, SourceRef, TargetRef, Topology

# Lists the repositories of a registry named in the topology.
RepositoryLister = Callable[[str], list[str]]


class ExpansionError(RegtopoError):
    """What the patterns expand to breaks a rule the concrete topology must keep."""


def expand_patterns(topology: Topology, list_repositories: RepositoryLister) -> Topology:
    """The topology with every pattern replication replaced by concrete ones, in file order."""
    if not any(r.source.is_pattern for r in topology.replications):
        return topology

    listed: dict[str, list[str]] = {}

    def repositories(registry: str) -> list[str]:
        if registry not in listed:
            listed[registry] = list_repositories(registry)
        return listed[registry]

    # Patterns may read what other replications write: repeat until nothing new appears.
    # Each round adds at least one replication, and names are finite, so this ends; the
    # bound only guards against a template that grows names without end.
    expanded: list[list[ReplicationSpec]] = [
        [] if r.source.is_pattern else [r] for r in topology.replications
    ]
    for _ in range(16):
        written = {
            (t.registry, t.repository) for group in expanded for r in group for t in r.targets
        }
        changed = False
        for index, replication in enumerate(topology.replications):
            if not replication.source.is_pattern:
                continue
            source = replication.source
            names = set(repositories(source.registry)) | {
                repo for registry, repo in written if registry == source.registry
            }
            known = {r.source.repository for r in expanded[index]}
            for repository in sorted(names):
                if repository in known or not repository.startswith(source.prefix):
                    continue
                if repository == source.prefix.rstrip("/"):
                    continue
                expanded[index].append(_concrete(replication, repository))
                changed = True
        if not changed:
            break
    else:
        raise ExpansionError(
            "expanding repository patterns did not settle after 16 rounds",
            hint="a target template feeds its own source pattern; narrow the pattern",
        )

    concrete = [r for group in expanded for r in group]
    result = topology.model_copy(update={"replications": concrete})
    check_concrete(result)
    return result


def _concrete(replication: ReplicationSpec, repository: str) -> ReplicationSpec:
    name = repository[len(replication.source.prefix) :]
    try:
        source = SourceRef(registry=replication.source.registry, repository=repository)
        targets = [
            TargetRef(registry=t.registry, repository=t.render(repository, name))
            for t in replication.targets
        ]
    except ValidationError as err:
        reason = err.errors()[0].get("msg", "invalid").removeprefix("Value error, ")
        raise ExpansionError(
            f"replication {replication.label}: source repository {repository!r} gives an "
            f"invalid target: {reason}"
        ) from None
    return replication.model_copy(
        update={"source": source, "targets": targets, "name": replication.name}
    )


def check_concrete(topology: Topology) -> None:
    """The checks that need concrete repositories: no target is its own source, no cycle."""
    for replication in topology.replications:
        for target in replication.targets:
            if (target.registry, target.repository) == (
                replication.source.registry,
                replication.source.repository,
            ):
                raise ExpansionError(
                    f"replication {replication.label}: target {target} equals its source"
                )
    for cycle in tag_cycles(build_graph(topology)):
        names = " -> ".join(f"{r}/{repo}" for r, repo in cycle + cycle[:1])
        raise ExpansionError(f"the repository patterns make a replication cycle: {names}")
