"""A plan is data: typed actions, each with the rule that produced it.

Plans are rendered for people, saved as JSON for `apply`, and compared in tests. Nothing in
here touches a registry. The JSON form is a versioned format (docs/plan-format.md); its JSON
Schema is generated from these models (`plan_json_schema`, committed as docs/plan-schema.json).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, computed_field

from regtopo import __version__
from regtopo.errors import RegtopoError

PLAN_FORMAT_VERSION = 1

# Every field is written, defaults included: the schema says so, so readers may rely on it.
WRITTEN = ConfigDict(json_schema_serialization_defaults_required=True)


class ActionKind(StrEnum):
    COPY = "copy"  # content missing at the target
    RETAG = "retag"  # content present at the target, the tag points elsewhere or nowhere
    COPY_REFERRERS = "copy-referrers"  # subject in sync, some of its referrers missing
    IN_SYNC = "in-sync"  # nothing to do
    SKIPPED = "skipped"  # cannot or will not be done, with the reason
    BLOCKED = "blocked"  # a signing requirement is not met; `policy` names it
    DELETE = "delete"  # a retention rule or a sync replication removes a manifest


CHANGES = frozenset(
    {ActionKind.COPY, ActionKind.RETAG, ActionKind.COPY_REFERRERS, ActionKind.DELETE}
)


class TagRef(BaseModel):
    """A tag in a repository of a registry named in the topology."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    registry: str = Field(description="the registry's name in the topology")
    repository: str
    tag: str

    @property
    def repository_key(self) -> str:
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        # A note about a whole repository (a selector that chose nothing) has no tag.
        where = f"{self.registry}/{self.repository}"
        return f"{where}:{self.tag}" if self.tag else where


class Content(BaseModel):
    """What the source tag resolves to, as the planner saw it."""

    model_config = WRITTEN

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


class ReferrerRef(BaseModel):
    """Something that comes along with the tag's content, listed under its subject.

    `via` says how the source holds it: `referrers-api`, `fallback-tag` (the `sha256-<hex>`
    index), `tag` (a cosign `sha256-<hex>.sig|.att|.sbom` tag, named in `tag`), or `index` (a
    build attestation inside the subject index, copied with the index itself).
    """

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    subject: str
    digest: str
    media_type: str
    size: int
    kind: str = Field(description="signature, sbom, attestation or artifact")
    artifact_type: str | None = None
    via: str
    tag: str | None = None
    in_tree: bool = Field(
        False,
        description="the referrer is the tagged manifest or one of its children (an index "
        "naming its own child as subject, an attestation inside the index that also names its "
        "subject): it is copied with that content, and only listed under its subject",
    )

    @property
    def travels_with_index(self) -> bool:
        return self.via == "index"


class PlannedReferrer(BaseModel):
    """A referrer (signature, SBOM, attestation) deleted together with its subject."""

    digest: str
    artifact_type: str | None = None
    found_by: str = Field(description="referrers API, fallback tag, or cosign tag")
    tag: str | None = Field(None, description="the tag that holds it, when found by a tag")


class Deletion(BaseModel):
    """What a `delete` action removes, the rule behind it, and the age it was judged by."""

    rule: str = Field(description="the retention rule (or sync replication) and its clause")
    digest: str = Field(description="the manifest deleted, by digest (and so every tag on it)")
    tags: list[str] = Field(default_factory=list, description="tags that go with it")
    created: str | None = Field(None, description="when the content was made, if known")
    age_days: float | None = None
    age_source: str = Field("", description="where the age came from")
    children: list[str] = Field(
        default_factory=list, description="child manifests of an index deleted after it"
    )
    referrers: list[PlannedReferrer] = Field(
        default_factory=list, description="referrers deleted after their subject"
    )


class Action(BaseModel):
    """One target tag: why it is in the plan, what it changes, and what that costs."""

    model_config = WRITTEN

    kind: ActionKind
    replication: str = Field(description="why: the replication that produced this action")
    rule: str = Field("", description="why: the rule of that replication that selected the tag")
    source: TagRef
    target: TagRef
    content: Content | None = Field(
        None, description="what the source tag resolves to (absent when it does not exist)"
    )
    target_digest_before: str | None = Field(
        None, description="what the target tag pointed at when planned (null: absent)"
    )
    bytes_to_send: int = Field(
        0,
        description="cost: blob bytes the target lacks, of the content and of the referrers "
        "apply copies with it, each blob once: what apply uploads for this tag on its own "
        "(bytes shared with another copy of the plan are sent once, by whichever goes first)",
    )
    bytes_present: int = Field(0, description="cost: blob bytes the target has already")
    blobs_to_send: int = 0
    bytes_to_mount: int = Field(
        0,
        description="cost: blob bytes the target lacks that apply mounts from the source "
        "repository of the same registry (cross-repository mount): not sent, and not in "
        "bytes_to_send; a registry refusing the mount gets them uploaded",
    )
    blobs_to_mount: int = 0
    manifests_to_send: int = 0
    non_distributable: list[str] = Field(
        default_factory=list, description="digests of non-distributable (foreign) layers"
    )
    create_repository: bool = Field(
        False, description="the target repository is created (provider API) before the copy"
    )
    hop: int = Field(0, description="0 reads an original source; n reads what hop n-1 writes")
    source_digest: str | None = Field(
        None,
        description="set when the target gets other content than the source tag's (a platform "
        "subset): the source digest the plan read, which apply checks the source still has",
    )
    rewritten_index: str | None = Field(
        None,
        description="the exact bytes of the index this plan builds (a platform subset of the "
        "source index), pushed after its children; its digest is content.digest",
    )
    reason: str = Field("", description="why the kind was chosen, in words")
    source_missing: bool = Field(
        False,
        description="skipped: the topology names source content that the source does not "
        "have (a tag, a pinned digest, or any tag at all); `drift` reports it as drift",
    )
    policy: str | None = Field(None, description="blocked: the signing policy that failed")
    warnings: list[str] = Field(default_factory=list, description="e.g. a failed `warn` policy")
    verified: list[str] = Field(
        default_factory=list, description="signing policies the source digest satisfied"
    )
    deletion: Deletion | None = Field(None, description="set on delete actions")
    referrers: list[ReferrerRef] = Field(
        default_factory=list,
        description="referrers to bring along, subjects before the referrers that name them",
    )

    # mypy does not know pydantic's computed_field over a property.
    @computed_field(  # type: ignore[prop-decorator]
        description="what the target tag points at once applied"
    )
    @property
    def target_digest_after(self) -> str | None:
        if self.kind is ActionKind.DELETE:
            return None
        if self.kind in (ActionKind.SKIPPED, ActionKind.BLOCKED) or self.content is None:
            return self.target_digest_before
        return self.content.digest

    @property
    def referrers_to_apply(self) -> list[ReferrerRef]:
        """The referrers apply handles after the subject: each is copied, or (inside the
        tagged content already) listed under its subject. The attestations inside an index
        come with the index."""
        return [r for r in self.referrers if not r.travels_with_index]

    @property
    def referrers_to_copy(self) -> list[ReferrerRef]:
        """The referrers apply copies: the ones it reports as copied on a fresh target."""
        return [r for r in self.referrers_to_apply if not r.in_tree]

    @property
    def referrers_in_tree(self) -> list[ReferrerRef]:
        """Referrers that are the tagged content or its children: only listed by apply."""
        return [r for r in self.referrers_to_apply if r.in_tree]

    @property
    def is_change(self) -> bool:
        return self.kind in CHANGES


class TopologySource(BaseModel):
    """The topology file a plan was made from, so apply can re-open exactly those registries."""

    model_config = WRITTEN

    path: str = Field(description="as given to `regtopo plan` (relative to its working directory)")
    sha256: str = Field(description="hex SHA-256 of the file's bytes when planned")


class Plan(BaseModel):
    """A plan file: what `regtopo apply PLAN` will do, against which topology."""

    model_config = WRITTEN

    format_version: int = Field(
        PLAN_FORMAT_VERSION, description="bumped on any change a reader must know about"
    )
    regtopo_version: str = __version__
    topology: str = Field(description="path of the topology file (same as topology_source.path)")
    topology_source: TopologySource | None = None
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    targets: list[str] | None = Field(
        None, description="the replications named with --target (null: all)"
    )
    shard: str | None = Field(None, description="`I/N` when the plan is one shard of the work")
    blob_bytes_to_send: int | None = Field(
        None,
        description="blob bytes the whole plan sends, each blob once per target repository "
        "(copies sharing layers each price them in bytes_to_send); null: not computed",
    )
    actions: list[Action] = Field(default_factory=list)
    # Not written to plan files: what the planning run saw missing at the targets, so an
    # apply in the same process need not ask again. A saved plan is applied without it.
    _absent_at_plan: frozenset[tuple[str, str, Any]] = PrivateAttr(default=frozenset())

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.is_change]

    def counts(self) -> Counter[str]:
        return Counter(a.kind.value for a in self.actions)

    def bytes_to_send(self) -> int:
        if self.blob_bytes_to_send is not None:
            return self.blob_bytes_to_send
        return sum(a.bytes_to_send for a in self.actions if a.is_change)

    def summary(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "copy": counts.get(ActionKind.COPY, 0),
            "retag": counts.get(ActionKind.RETAG, 0),
            "copy_referrers": counts.get(ActionKind.COPY_REFERRERS, 0),
            "in_sync": counts.get(ActionKind.IN_SYNC, 0),
            "skipped": counts.get(ActionKind.SKIPPED, 0),
            "referrers": sum(len(a.referrers_to_copy) for a in self.actions if a.is_change),
            "blocked": counts.get(ActionKind.BLOCKED, 0),
            "delete": counts.get(ActionKind.DELETE, 0),
            "bytes_to_send": self.bytes_to_send(),
            "bytes_to_mount": sum(a.bytes_to_mount for a in self.actions if a.is_change),
        }

    def only(self, replications: set[str]) -> Plan:
        """The same plan restricted to the named replications' actions."""
        kept = [a for a in self.actions if a.replication in replications]
        return self.model_copy(
            update={"actions": kept, "targets": sorted(replications), "blob_bytes_to_send": None}
        )

    def shard_of(self, shard: Shard) -> Plan:
        """The actions of one shard; see `Shard` for how actions are assigned."""
        keys = chain_keys(self.actions)
        kept = [a for a, key in zip(self.actions, keys, strict=True) if shard.owns(key)]
        return self.model_copy(
            update={"actions": kept, "shard": str(shard), "blob_bytes_to_send": None}
        )

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


class PlanFileError(RegtopoError):
    """A plan file that cannot be applied as it is."""


def topology_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise RegtopoError(f"reading topology {path}: {err.strerror or err}") from err


def looks_like_plan(path: Path) -> bool:
    """A plan file is a JSON object with `format_version` and `actions`; a topology is not.

    YAML is a superset of JSON, so the suffix decides nothing: the content does.
    """
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "format_version" in data and "actions" in data


def read_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_bytes())
    except OSError as err:
        raise PlanFileError(f"reading plan {path}: {err.strerror or err}") from err
    except ValueError as err:
        raise PlanFileError(f"reading plan {path}: not JSON: {err}") from err
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"reading plan {path}: format version {version!r} is not supported "
            f"(this regtopo reads version {PLAN_FORMAT_VERSION})",
            hint="make the plan again with this regtopo version",
        )
    try:
        return Plan.model_validate(data)
    except ValidationError as err:
        problems = [
            f"{'.'.join(str(part) for part in e['loc']) or 'the plan'}: {e['msg']}"
            for e in err.errors(include_url=False)
        ]
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        raise PlanFileError(
            f"reading plan {path}: not a regtopo plan as written by `regtopo plan -o`: {shown}",
            hint="make the plan again; a plan file is not meant to be edited by hand",
        ) from None


def plan_json_schema() -> dict[str, Any]:
    """The JSON Schema of the plan file as written (serialization mode includes computed fields)."""
    schema = Plan.model_json_schema(mode="serialization")
    schema["$id"] = f"https://regtopo.dev/schemas/plan-v{PLAN_FORMAT_VERSION}.json"
    schema["title"] = f"regtopo plan, format version {PLAN_FORMAT_VERSION}"
    return schema


# sharding


class Shard(BaseModel):
    """Shard `index` of `count` (1-based, like GitLab's CI_NODE_INDEX/CI_NODE_TOTAL).

    An action belongs to the shard chosen by a stable hash (SHA-256) of its chain's target
    repository, `registry/repository`: for a first-hop action its own target, for a later hop
    the target of the first-hop action it descends from. A chain of hops therefore stays in one
    shard, where the executor runs its hops in order.
    """

    model_config = ConfigDict(frozen=True)

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index_text, slash, count_text = text.partition("/")
        try:
            index, count = int(index_text), int(count_text)
        except ValueError:
            index = count = 0
        if not slash or count < 1 or not 1 <= index <= count:
            raise RegtopoError(
                f"parsing --shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4",
                hint="in GitLab CI: --shard $CI_NODE_INDEX/$CI_NODE_TOTAL",
            )
        return cls(index=index, count=count)

    def owns(self, key: str) -> bool:
        return shard_number(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_number(key: str, count: int) -> int:
    """1-based shard of `key`; the same on every machine and Python version."""
    value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return value % count + 1


def chain_keys(actions: list[Action]) -> list[str]:
    """For each action, the target repository of the first hop of its chain."""
    by_target = {(a.target.registry, a.target.repository, a.target.tag): a for a in actions}
    keys = []
    for action in actions:
        root = action
        seen = {id(root)}
        while root.hop > 0:
            upstream = by_target.get(
                (root.source.registry, root.source.repository, root.source.tag)
            )
            if upstream is None or id(upstream) in seen:
                break
            seen.add(id(upstream))
            root = upstream
        keys.append(root.target.repository_key)
    return keys
