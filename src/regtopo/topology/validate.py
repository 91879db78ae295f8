"""Checks across the whole topology that no single field can make."""

from __future__ import annotations

from typing import TYPE_CHECKING

from regtopo.topology import graph as topology_graph

if TYPE_CHECKING:
    from regtopo.topology.loader import LoadedTopology, Problem


def cross_check(loaded: LoadedTopology) -> list[Problem]:
    from regtopo.topology.loader import Problem

    topology = loaded.topology
    path = str(loaded.path)
    problems: list[Problem] = []

    def problem(location: tuple[object, ...], message: str) -> None:
        line, column = loaded.position(location)
        problems.append(Problem(path, line, column, message))

    known = sorted(topology.registries)
    for index, replication in enumerate(topology.replications):
        refs = [("source", replication.source)] + [
            (("targets", i), target) for i, target in enumerate(replication.targets)
        ]
        for where, ref in refs:
            location = ("replications", index, *(where if isinstance(where, tuple) else (where,)))
            if ref.registry not in topology.registries:
                problem(
                    location,
                    f"unknown registry {ref.registry!r}; expected one of: {', '.join(known)}",
                )
        for i, target in enumerate(replication.targets):
            if (target.registry, target.repository) == (
                replication.source.registry,
                replication.source.repository,
            ):
                problem(("replications", index, "targets", i), "a target equals the source")

    # Two replications may not write the same target tag from different sources.
    writers: dict[tuple[str, str, str], tuple[int, str]] = {}
    for index, replication in enumerate(topology.replications):
        for i, target in enumerate(replication.targets):
            for tag in replication.tags:
                key = (target.registry, target.repository, tag)
                source = str(replication.source)
                if key in writers and writers[key][1] != source:
                    other = writers[key][0]
                    problem(
                        ("replications", index, "targets", i),
                        f"{target}:{tag} is also written by replication {other + 1} "
                        f"from {writers[key][1]}; a target tag needs exactly one source",
                    )
                writers.setdefault(key, (index, source))

    from regtopo.topology.retention import retention_problems

    for location, message in retention_problems(topology.retention, set(topology.registries)):
        problem(location, message)

    if not problems:
        for cycle in topology_graph.tag_cycles(topology_graph.build(topology)):
            names = " -> ".join(f"{r}/{repo}" for r, repo in cycle + cycle[:1])
            problem(("replications",), f"replication cycle: {names}")
    return problems
