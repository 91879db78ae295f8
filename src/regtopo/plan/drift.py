"""Drift: a plan read as a report, plus what sits at the targets that no replication wrote.

A tag is managed when some replication of the topology names it for that target repository;
every other tag listed in a target repository is unmanaged. Unmanaged tags are reported, not
touched: regtopo never deletes what it did not write.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from regtopo.plan.actions import PLAN_FORMAT_VERSION, ActionKind, Plan
from regtopo.plan.session import Session
from regtopo.topology.models import Topology

# The referrers tag schema (`sha256-<hex>`) holds an index of a digest's referrers; those tags
# come with the content a replication copies, so they are not unmanaged.
REFERRERS_TAG = re.compile(r"^sha(256|512)-[0-9a-f]{64,128}$")


class UnmanagedTag(BaseModel):
    registry: str
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


class DriftReport(BaseModel):
    format_version: int = PLAN_FORMAT_VERSION
    plan: Plan
    unmanaged: list[UnmanagedTag] = Field(
        default_factory=list, description="tags at target repositories no replication writes"
    )

    @property
    def drifted(self) -> bool:
        """Targets differ from the topology: changes to make, tags a signing policy keeps
        from their targets, or source content the topology names that is not there (a tag, a
        pin, a whole repository). A nightly check must say so, though there is nothing to
        apply: the registries no longer have the shape the file declares."""
        return bool(self.plan.changes) or any(
            a.kind is ActionKind.BLOCKED or a.source_missing for a in self.plan.actions
        )


def managed_tags(topology: Topology, plan: Plan) -> dict[tuple[str, str], set[str]]:
    """Target repository -> tags some replication writes there (every replication counts).

    Exact names count even when their source tag is gone; a selector's choice is what the
    plan's actions name.
    """
    managed: dict[tuple[str, str], set[str]] = {}
    for replication in topology.replications:
        for target in replication.targets:
            managed.setdefault((target.registry, target.repository), set()).update(
                replication.exact_tags or ()
            )
    for action in plan.actions:
        managed.setdefault((action.target.registry, action.target.repository), set()).add(
            action.target.tag
        )
    return managed


def find_unmanaged(topology: Topology, plan: Plan, session: Session) -> list[UnmanagedTag]:
    """Tags listed in the plan's target repositories that no replication writes."""
    managed = managed_tags(topology, plan)
    repositories = sorted({(a.target.registry, a.target.repository) for a in plan.actions})
    found: list[UnmanagedTag] = []
    for registry, name in repositories:
        listed = session.repository(registry, name).list_tags()
        found.extend(
            UnmanagedTag(registry=registry, repository=name, tag=tag)
            for tag in listed
            if tag not in managed.get((registry, name), set()) and not REFERRERS_TAG.fullmatch(tag)
        )
    return found
