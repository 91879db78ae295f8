"""A plan is data: typed actions, each with the rule that produced it.

Plans are rendered for people, saved as JSON for `apply`, and compared in tests. Nothing in
here touches a registry.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from regtopo import __version__

PLAN_FORMAT_VERSION = 1


class ActionKind(StrEnum):
    COPY = "copy"  # content missing at the target
    RETAG = "retag"  # content present at the target, the tag points elsewhere or nowhere
    IN_SYNC = "in-sync"  # nothing to do
    SKIPPED = "skipped"  # cannot or will not be done, with the reason


CHANGES = frozenset({ActionKind.COPY, ActionKind.RETAG})


class TagRef(BaseModel):
    """A tag in a repository of a registry named in the topology."""

    model_config = ConfigDict(frozen=True)

    registry: str
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"


class Content(BaseModel):
    """What the source tag resolves to, as the planner saw it."""

    digest: str
    media_type: str
    size: int
    kind: str = Field(description="index, image, schema1 or artifact")
    children: int = 0
    platforms: list[str] = Field(default_factory=list)
    attestations: int = 0
    layer_media_types: list[str] = Field(
        default_factory=list, description="an image's layer media types, verbatim, in order"
    )


class Action(BaseModel):
    kind: ActionKind
    replication: str = Field(description="the replication that produced this action")
    source: TagRef
    target: TagRef
    content: Content | None = None
    target_digest_before: str | None = Field(
        None, description="what the target tag pointed at when planned (None: absent)"
    )
    bytes_to_send: int = 0
    bytes_present: int = 0
    blobs_to_send: int = 0
    manifests_to_send: int = 0
    non_distributable: list[str] = Field(
        default_factory=list, description="digests of non-distributable (foreign) layers"
    )
    create_repository: bool = Field(
        False, description="the target repository is created (provider API) before the copy"
    )
    hop: int = Field(0, description="0 reads an original source; n reads what hop n-1 writes")
    reason: str = ""

    @property
    def is_change(self) -> bool:
        return self.kind in CHANGES


class Plan(BaseModel):
    format_version: int = PLAN_FORMAT_VERSION
    regtopo_version: str = __version__
    topology: str
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    actions: list[Action] = Field(default_factory=list)

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.is_change]

    def counts(self) -> Counter[str]:
        return Counter(a.kind.value for a in self.actions)

    def bytes_to_send(self) -> int:
        return sum(a.bytes_to_send for a in self.actions if a.is_change)

    def summary(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "copy": counts.get(ActionKind.COPY, 0),
            "retag": counts.get(ActionKind.RETAG, 0),
            "in_sync": counts.get(ActionKind.IN_SYNC, 0),
            "skipped": counts.get(ActionKind.SKIPPED, 0),
            "bytes_to_send": self.bytes_to_send(),
        }
