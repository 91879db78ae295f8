"""`regtopo verify`: what is at the targets (or one registry), checked against the policies."""

from __future__ import annotations

from dataclasses import dataclass

from regtopo.oci.attachments import is_attachment_tag
from regtopo.plan.session import Session
from regtopo.plan.signing.policy import PolicyResult, PolicySet
from regtopo.topology.loader import LoadedTopology
from regtopo.topology.selectors import select_tags


@dataclass(frozen=True)
class AuditEntry:
    """One tag of one repository, and the policies checked on the digest it points at."""

    registry: str
    repository: str
    tag: str
    digest: str | None  # None: the tag is absent
    results: tuple[PolicyResult, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def failed(self) -> bool:
        return any(not r.ok for r in self.results)


def audit(
    loaded: LoadedTopology,
    session: Session,
    registry: str | None = None,
    *,
    all_tags: bool = False,
) -> list[AuditEntry]:
    """Every tag a replication with `verify` writes; with `registry`, every such tag there.

    With a registry named, its source repositories are audited too: a registry that feeds
    others is where unsigned content should be caught first. With `all_tags`, every tag the
    audited repositories hold is checked too (attachment tags aside), not only the selected
    ones: a tag pushed there by hand is then caught as well.
    """
    topology = loaded.topology
    policies = PolicySet(topology, loaded.path.resolve().parent)
    entries: list[AuditEntry] = []
    seen: set[tuple[str, str, str, str]] = set()
    for replication in topology.replications:
        if not replication.verify:
            continue
        places = [(t.registry, t.repository) for t in replication.targets]
        if registry is not None:
            source = (replication.source.registry, replication.source.repository)
            places = [p for p in [source, *places] if p[0] == registry]
        for place_registry, place_repository in places:
            repository = session.repository(place_registry, place_repository)
            exact = replication.exact_tags
            # A selector is applied to what the place holds now.
            tags = (
                exact
                if exact is not None
                else select_tags(replication.tags, repository.list_tags())
            )
            if all_tags:
                held = [t for t in repository.list_tags() if not is_attachment_tag(t)]
                tags = [*tags, *sorted(set(held) - set(tags))]
            for tag in tags:
                key = (place_registry, place_repository, tag, replication.label)
                if key in seen:
                    continue
                seen.add(key)
                head = repository.head_manifest(tag)
                if head is None:
                    entries.append(AuditEntry(place_registry, place_repository, tag, None))
                    continue
                results = policies.evaluate(replication, repository, head)
                entries.append(
                    AuditEntry(
                        place_registry, place_repository, tag, str(head.digest), tuple(results)
                    )
                )
    return entries


def render_audit(entries: list[AuditEntry]) -> str:
    if not entries:
        return "Nothing to verify: no replication names signing policies (`verify:`)."
    lines: list[str] = []
    for entry in entries:
        if entry.digest is None:
            lines.append(f"  ? {entry.reference}: absent")
            continue
        mark = "FAIL" if entry.failed else "ok"
        lines.append(f"  {mark:<4} {entry.reference} {entry.digest[:19]}")
        lines += [f"       {result}" for result in entry.results]
    failed = sum(1 for e in entries if e.failed)
    absent = sum(1 for e in entries if e.digest is None)
    passed = len(entries) - failed - absent
    lines.append("")
    lines.append(
        f"Verified {len(entries)} tag{'s' if len(entries) != 1 else ''}: {passed} satisfied, "
        f"{failed} failed, {absent} absent."
    )
    return "\n".join(lines)
