"""The planner: desired state (each target tag has its source tag's digest) against observed.

Replications are visited in the graph's topological order. A tag that an earlier hop will
write is taken at the digest that hop plans, so a whole chain is planned before anything is
applied.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.mediatype import INDEX_TYPES, SCHEMA1_TYPES
from regtopo.plan.actions import Action, ActionKind, Content, Plan, TagRef
from regtopo.plan.observe import Observer
from regtopo.plan.session import Session
from regtopo.registry.store import Repository
from regtopo.topology.graph import replication_order
from regtopo.topology.loader import LoadedTopology
from regtopo.topology.models import ReplicationSpec

log = logging.getLogger(__name__)

PLAN_WORKERS = 16


@dataclass(frozen=True)
class PlannedTag:
    """A tag whose digest this plan decides, and where that content can be read now."""

    digest: Digest
    origin: Repository
    hop: int


def summarise(manifest: Manifest) -> Content:
    children = manifest.children
    attestations = sum(
        1
        for c in children
        if c.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
    )
    platforms = [
        str(c.platform)
        for c in children
        if c.platform and c.annotations.get("vnd.docker.reference.type") != "attestation-manifest"
    ]
    kind: str = manifest.kind
    if kind == "image" and manifest.artifact_type:
        kind = "artifact"
    return Content(
        digest=str(manifest.digest),
        media_type=manifest.media_type,
        size=manifest.size,
        kind=kind,
        children=len(children),
        platforms=platforms,
        attestations=attestations,
    )


def _summarise_descriptor(descriptor: Descriptor) -> Content:
    """What a HEAD tells of in-sync content: digest, media type, size; the kind by media type.

    Platforms and children would need the manifest itself, one more request per tag.
    """
    kind = (
        "index"
        if descriptor.media_type in INDEX_TYPES
        else "schema1"
        if descriptor.media_type in SCHEMA1_TYPES
        else "image"
    )
    return Content(
        digest=str(descriptor.digest),
        media_type=descriptor.media_type,
        size=descriptor.size,
        kind=kind,
    )


class Planner:
    def __init__(self, loaded: LoadedTopology, session: Session) -> None:
        self.loaded = loaded
        self.session = session
        self.observer = Observer()
        self.planned: dict[tuple[str, str, str], PlannedTag] = {}

    def plan(self, only: set[str] | None = None) -> Plan:
        plan = Plan(topology=str(self.loaded.path))
        ordered = replication_order(self.loaded.topology)

        # Replications of one hop are independent of each other; hops run in order.
        for group in _by_hop(ordered):
            items = [
                (replication, tag, target_index)
                for _, replication in group
                for tag in replication.tags
                for target_index in range(len(replication.targets))
            ]
            with ThreadPoolExecutor(PLAN_WORKERS) as pool:
                results = list(pool.map(lambda item: self._plan_tag(*item), items))
            for action in results:
                if only is None or action.replication in only:
                    plan.actions.append(action)
        return plan

    def _plan_tag(self, replication: ReplicationSpec, tag: str, target_index: int) -> Action:
        target_spec = replication.targets[target_index]
        source_ref = TagRef(
            registry=replication.source.registry,
            repository=replication.source.repository,
            tag=tag,
        )
        target_ref = TagRef(
            registry=target_spec.registry, repository=target_spec.repository, tag=tag
        )
        base = {"replication": replication.label, "source": source_ref, "target": target_ref}

        try:
            return self._decide(replication, source_ref, target_ref, base)
        except RegtopoError as err:
            raise RegtopoError(
                f"planning {source_ref} -> {target_ref}: {err.message}", hint=err.hint
            ) from err

    def _decide(
        self,
        replication: ReplicationSpec,
        source_ref: TagRef,
        target_ref: TagRef,
        base: dict[str, Any],
    ) -> Action:
        source = self.session.repository(source_ref.registry, source_ref.repository)
        target = self.session.repository(target_ref.registry, target_ref.repository)

        upstream = self.planned.get((source_ref.registry, source_ref.repository, source_ref.tag))
        if upstream is not None:
            digest, origin, hop = upstream.digest, upstream.origin, upstream.hop + 1
        else:
            head = source.head_manifest(source_ref.tag)
            if head is None:
                return Action(
                    kind=ActionKind.SKIPPED, reason="the source tag does not exist", **base
                )
            digest, origin, hop = head.digest, source, 0

        # The target first: a tag already at the digest needs nothing more read. Skipping the
        # source manifest there takes "nothing changed" from 3 requests per tag to 2.
        current = target.head_manifest(target_ref.tag)
        before = str(current.digest) if current else None
        if current is not None and current.digest == digest:
            self.planned[(target_ref.registry, target_ref.repository, target_ref.tag)] = PlannedTag(
                digest, origin, hop
            )
            return Action(
                kind=ActionKind.IN_SYNC,
                content=_summarise_descriptor(current),
                target_digest_before=before,
                hop=hop,
                **base,
            )

        manifest = self.observer.manifest(origin, digest)
        if manifest is None:
            return Action(
                kind=ActionKind.SKIPPED,
                reason=f"the source manifest {digest} vanished while planning",
                hop=hop,
                **base,
            )
        content = summarise(manifest)
        self.planned[(target_ref.registry, target_ref.repository, target_ref.tag)] = PlannedTag(
            digest, origin, hop
        )

        if manifest.kind == "schema1":
            return Action(
                kind=ActionKind.SKIPPED,
                content=content,
                hop=hop,
                reason="cannot be replicated by digest: Docker schema1 manifests are refused by "
                "current registries, and converting one changes its digest",
                **base,
            )

        if self.observer.manifest_present(target, digest):
            return Action(
                kind=ActionKind.RETAG,
                content=content,
                target_digest_before=before,
                hop=hop,
                reason="the content is at the target already",
                **base,
            )

        cost = self.observer.cost(origin, target, manifest)
        reason = "the content is missing at the target"
        if cost.non_distributable:
            reason += f"; {len(cost.non_distributable)} non-distributable layer(s) are not sent"
        return Action(
            kind=ActionKind.COPY,
            content=content,
            target_digest_before=before,
            bytes_to_send=cost.bytes_to_send,
            bytes_present=cost.bytes_present,
            blobs_to_send=cost.blobs_to_send,
            manifests_to_send=cost.manifests_to_send,
            hop=hop,
            reason=reason,
            **base,
        )


def _by_hop(
    ordered: list[tuple[int, ReplicationSpec]],
) -> list[list[tuple[int, ReplicationSpec]]]:
    """Split the ordered replications where one reads what an earlier one in the group writes."""
    groups: list[list[tuple[int, ReplicationSpec]]] = []
    current: list[tuple[int, ReplicationSpec]] = []
    written: set[tuple[str, str]] = set()
    for index, replication in ordered:
        source = (replication.source.registry, replication.source.repository)
        if source in written:
            groups.append(current)
            current, written = [], set()
        current.append((index, replication))
        written |= {(t.registry, t.repository) for t in replication.targets}
    if current:
        groups.append(current)
    return groups
