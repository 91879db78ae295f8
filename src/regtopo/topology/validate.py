"""Checks across the whole topology that no single field can make."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from regtopo.topology import graph as topology_graph
from regtopo.topology.models import Mode

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

    # Names are how --target, plans and reports refer to a replication: a name given is
    # one replication's. Unnamed replications go by their source, which several may share
    # (`--target` with it selects them all).
    named: dict[str, int] = {}
    for index, replication in enumerate(topology.replications):
        if replication.name is None:
            continue
        if replication.name in named:
            problem(
                ("replications", index, "name"),
                f"replication name {replication.name!r} is already used by replication "
                f"{_which(None, named[replication.name])}; names must be unique",
            )
        named.setdefault(replication.name, index)

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
        source_spec = topology.registries.get(replication.source.registry)
        profile = source_spec.profile if source_spec is not None else None
        if (
            replication.source.is_pattern
            and profile is not None
            and not profile.capabilities.catalog
        ):
            problem(
                ("replications", index, "source"),
                f"the source pattern {replication.source} needs the repository list, and "
                f"{profile.title} serves no catalog; name the repositories one by one",
            )
        if replication.mode is Mode.SYNC:
            for target in replication.targets:
                spec = topology.registries.get(target.registry)
                target_profile = spec.profile if spec is not None else None
                if target_profile is not None and target_profile.capabilities.delete is False:
                    problem(
                        ("replications", index, "mode"),
                        f"mode sync deletes tags at {target}, and {target_profile.title} "
                        "does not delete through the registry API; use mode mirror",
                    )
        for i, target in enumerate(replication.targets):
            spec = topology.registries.get(target.registry)
            target_profile = spec.profile if spec is not None else None
            depth = target_profile.capabilities.max_repository_depth if target_profile else None
            components = target.repository.count("/") + 1
            if depth is not None and "{" not in target.repository and components > depth:
                problem(
                    ("replications", index, "targets", i),
                    f"{target_profile.title if target_profile else target.registry} takes "
                    f"repository names of at most {depth} components; "
                    f"{target.repository!r} has {components}",
                )
        source_identity = topology.identity(
            replication.source.registry, replication.source.repository
        )
        for i, target in enumerate(replication.targets):
            if topology.identity(target.registry, target.repository) == source_identity:
                problem(("replications", index, "targets", i), "a target equals the source")

    # Two replications may not write the same target tag from different sources.
    writers: dict[tuple[str, str, str], tuple[int, str, str]] = {}
    # Selectors and patterns are checked again at plan time, against the listed tags.
    for index, replication in enumerate(topology.replications):
        for i, target in enumerate(replication.targets):
            for tag in replication.exact_tags or []:
                # Keyed by identity: two spellings of one registry are one target (cases C11).
                key = (*topology.identity(target.registry, target.repository), tag)
                source = "/".join(
                    topology.identity(replication.source.registry, replication.source.repository)
                )
                if key in writers and writers[key][1] != source:
                    other, _, written_from = writers[key]
                    problem(
                        ("replications", index, "targets", i),
                        f"{target}:{tag} is also written by replication "
                        f"{_which(topology.replications[other].name, other)} from "
                        f"{written_from}; a target tag needs exactly one source",
                    )
                writers.setdefault(key, (index, source, str(replication.source)))

    _check_signing(loaded, problem)

    # Signatures are checked again at the target; a replication that leaves them behind
    # would fail every check there.
    for index, replication in enumerate(topology.replications):
        selection = replication.referrers
        if replication.verify and (
            selection == "none" or (isinstance(selection, list) and "signatures" not in selection)
        ):
            problem(
                ("replications", index, "referrers"),
                "verify checks the signatures again at the target, so referrers must bring "
                "them: use referrers: all, or a list with signatures",
            )
    from regtopo.topology.retention import retention_problems

    for location, message in retention_problems(topology.retention, set(topology.registries)):
        problem(location, message)

    # In the same pass as the rest, so one run of validate reports every error. A target
    # that equals its source is said above; its self-loop is not said again.
    for cycle in topology_graph.tag_cycles(topology_graph.build(topology)):
        if len(cycle) > 1:
            names = " -> ".join(f"{r}/{repo}" for r, repo in cycle + cycle[:1])
            hops = set(zip(cycle, cycle[1:] + cycle[:1], strict=True))
            # Pointed at the first replication of the cycle, where a reader can break it.
            first = next(
                index
                for index, replication in enumerate(topology.replications)
                for target in replication.targets
                if (
                    (replication.source.registry, replication.source.repository),
                    (target.registry, target.repository),
                )
                in hops
            )
            problem(("replications", first), f"replication cycle: {names}")
    # In file order, as field errors are: a reader fixes them top to bottom.
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))


def _which(name: str | None, index: int) -> str:
    """A replication as a reader finds it in the file: by its name, else by its position."""
    return repr(name) if name else str(index + 1)


def _check_signing(
    loaded: LoadedTopology, problem: Callable[[tuple[object, ...], str], None]
) -> None:
    """Policy names are unique, replications name known policies, trust files exist."""
    topology = loaded.topology
    policies = topology.signing.policies if topology.signing else []
    names: set[str] = set()
    for index, policy in enumerate(policies):
        where = ("signing", "policies", index)
        if policy.name in names:
            problem((*where, "name"), f"policy {policy.name!r} is defined twice")
        names.add(policy.name)
        files: list[tuple[tuple[object, ...], str, str]] = [
            ((*where, field, i), field[:-1].replace("_", " "), name)
            for field in ("keys", "roots", "rekor_keys")
            for i, name in enumerate(getattr(policy, field))
        ]
        if policy.trusted_root is not None:
            files.append(((*where, "trusted_root"), "trusted root", policy.trusted_root))
        for location, what, name in files:
            path = Path(name)
            if not path.is_absolute():
                path = loaded.path.resolve().parent / path
            if not path.is_file():
                problem(location, f"{what} file {name} does not exist")
    for index, replication in enumerate(topology.replications):
        for i, name in enumerate(replication.verify):
            if name not in names:
                known = ", ".join(sorted(names)) or "none defined under signing.policies"
                problem(
                    ("replications", index, "verify", i),
                    f"unknown policy {name!r}; expected one of: {known}",
                )
