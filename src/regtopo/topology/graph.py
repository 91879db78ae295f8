"""The replication graph: repositories are nodes, replications are edges.

A later hop reads what an earlier hop writes, so replications are planned and applied in
topological order of this graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from regtopo.topology.models import ReplicationSpec, Topology

Node = tuple[str, str]  # (registry name, repository)


@dataclass(frozen=True)
class Edge:
    replication: int  # index into Topology.replications
    source: Node
    target: Node
    tags: frozenset[str] | None  # None: a selector, decided against the source at plan time


def build(topology: Topology) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    for index, replication in enumerate(topology.replications):
        source = (replication.source.registry, replication.source.repository)
        graph.add_node(source)
        for target in replication.targets:
            node = (target.registry, target.repository)
            graph.add_edge(
                source,
                node,
                edge=Edge(index, source, node, _tags(replication)),
            )
    return graph


def _tags(replication: ReplicationSpec) -> frozenset[str] | None:
    exact = replication.exact_tags
    return frozenset(exact) if exact is not None else None


def tag_cycles(graph: nx.MultiDiGraph) -> list[list[Node]]:
    """Cycles of repositories that some tag would flow around forever."""
    cycles = []
    for cycle in nx.simple_cycles(nx.DiGraph(graph)):
        hops = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        # A selector may pick any tag, so it shares every tag with the other hops.
        shared: frozenset[str] | None = None
        for source, target in hops:
            edges = [data["edge"].tags for data in graph.get_edge_data(source, target).values()]
            if any(tags is None for tags in edges):
                continue
            tags: frozenset[str] = frozenset().union(*edges)
            shared = tags if shared is None else shared & tags
        if shared is None or shared:
            # Start at the smallest node, so the message is the same on every run.
            start = cycle.index(min(cycle))
            cycles.append(cycle[start:] + cycle[:start])
    return cycles


def replication_order(topology: Topology) -> list[tuple[int, ReplicationSpec]]:
    """Replications ordered so that each one's source is written before it is read."""
    graph = build(topology)
    depth: dict[Node, int] = {}
    for node in nx.topological_sort(nx.DiGraph(graph)):
        predecessors = list(graph.predecessors(node))
        depth[node] = 1 + max((depth[p] for p in predecessors), default=-1)
    ordered = sorted(
        enumerate(topology.replications),
        key=lambda item: (
            depth.get((item[1].source.registry, item[1].source.repository), 0),
            item[0],
        ),
    )
    return ordered
