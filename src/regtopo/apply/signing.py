"""After a copy: bring the signature material along, then verify again at the target.

The planner verified the source digest before copying; this proves the target holds a digest
that verifies under the same policies, as a consumer pulling from the target would see it.

TODO(#3): copying the attachments here is a stand-in until the shared referrer copy lands;
it copies cosign's tags and referrers as they are and does not merge a fallback-tag index that
the target already has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from regtopo.apply.copy import CopyEngine, CopyStats
from regtopo.oci.digest import Digest
from regtopo.oci.reference import fallback_tag
from regtopo.plan.actions import Action
from regtopo.plan.session import Session
from regtopo.plan.signing.discovery import Attachments
from regtopo.plan.signing.policy import PolicyResult, PolicySet
from regtopo.registry.store import Repository
from regtopo.topology.models import ReplicationSpec

log = logging.getLogger(__name__)


@dataclass
class TargetVerification:
    results: list[PolicyResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: CopyStats = field(default_factory=CopyStats)

    @property
    def failed(self) -> list[PolicyResult]:
        return [r for r in self.results if not r.ok]


def replication_of(session: Session, action: Action) -> ReplicationSpec | None:
    for replication in session.topology.replications:
        if replication.label != action.replication:
            continue
        if any(
            (t.registry, t.repository) == (action.target.registry, action.target.repository)
            for t in replication.targets
        ):
            return replication
    return None


class SignatureFollower:
    def __init__(self, session: Session, engine: CopyEngine) -> None:
        self.session = session
        self.engine = engine
        self._policies: PolicySet | None = None

    @property
    def policies(self) -> PolicySet:
        if self._policies is None:
            self._policies = PolicySet(self.session.topology, self.session.base_dir)
        return self._policies

    def follow(
        self,
        replication: ReplicationSpec,
        source: Repository,
        target: Repository,
        digest: Digest,
    ) -> TargetVerification:
        report = TargetVerification()
        found = self.policies.attachments(source, digest)
        self._copy_attachments(source, target, found, report, depth=0)
        self.policies.forget(target)
        report.results = self.policies.evaluate(replication, target, digest)
        return report

    def _copy_attachments(
        self,
        source: Repository,
        target: Repository,
        found: Attachments,
        report: TargetVerification,
        depth: int,
    ) -> None:
        for carrier in found.carriers:
            manifest = carrier.manifest
            tags = [carrier.tag] if carrier.tag else []
            if carrier.tag:
                current = target.head_manifest(carrier.tag)
                if current is not None and current.digest != manifest.digest:
                    report.notes.append(
                        f"replaced {target}:{carrier.tag} ({current.digest.short}) with the "
                        f"source's {manifest.digest.short}"
                    )
            stats = self.engine.copy(source, target, manifest.digest, tags)
            report.stats.add(manifests_pushed=stats.manifests_pushed, bytes_sent=stats.bytes_sent)
            # An attached SBOM or statement is itself signed: bring its signatures too.
            attached = carrier.tag is None or carrier.tag.endswith(".sbom")
            if attached and depth == 0:
                inner = self.policies.attachments(source, manifest.digest)
                self._copy_attachments(source, target, inner, report, depth + 1)

        index = found.fallback_index
        if index is None or target.referrers(found.subject) is not None:
            return
        tag = fallback_tag(found.subject)
        current = target.head_manifest(tag)
        if current is None:
            self.engine.copy(source, target, index.digest, [tag])
        elif current.digest != index.digest:
            report.notes.append(
                f"{target}:{tag} already lists other referrers; not merged (TODO(#3))"
            )
