"""After a copy: verify again at the target.

The planner verified the source digest before copying, and the executor's referrer copy
brought the signatures, attestations and SBOMs along (apply/referrers.py); this proves the
target holds a digest that verifies under the same policies, as a consumer pulling from the
target would see it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from regtopo.apply.copy import CopyEngine, CopyStats
from regtopo.oci.descriptor import Descriptor
from regtopo.plan.actions import Action
from regtopo.plan.session import Session
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
        subject: Descriptor,
    ) -> TargetVerification:
        """The replication's policies on `subject`, the copied manifest, now at the target."""
        report = TargetVerification()
        # What the target held before this apply may be cached from planning: read it afresh.
        self.policies.forget(target)
        report.results = self.policies.evaluate(replication, target, subject)
        return report
