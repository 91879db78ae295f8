"""The planner: desired state (each target tag has its source tag's digest) against observed.

Replications are visited in the graph's topological order. A tag that an earlier hop will
write is taken at the digest that hop plans, so a whole chain is planned before anything is
applied.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.oci import mediatype as mt
from regtopo.oci.attachments import (
    Selection,
    described_digest,
    index_attachment_kind,
    is_attachment_tag,
)
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.mediatype import INDEX_TYPES, SCHEMA1_TYPES
from regtopo.plan.actions import Action, ActionKind, Content, Plan, ReferrerRef, TagRef
from regtopo.plan.observe import Observer, in_algorithm
from regtopo.plan.referrers import ReferrerPlan, ReferrerPlanner
from regtopo.plan.session import Session
from regtopo.plan.signing.discovery import RegistrySignatureSource
from regtopo.plan.signing.policy import PolicyResult, PolicySet
from regtopo.registry.store import Repository
from regtopo.topology.expand import expand_patterns
from regtopo.topology.graph import replication_order
from regtopo.topology.loader import LoadedTopology
from regtopo.topology.models import ReplicationSpec, TagSelector
from regtopo.topology.selectors import select_tags

log = logging.getLogger(__name__)

PLAN_WORKERS = 16
MAX_CONFIG_BYTES = 4 * 1024 * 1024
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


@dataclass(frozen=True)
class PlannedTag:
    """A tag whose digest this plan decides, and where that content can be read now."""

    digest: Digest
    origin: Repository
    hop: int
    #: the `referrers:` selections of every hop up to this tag: only what all of them take
    #: reaches it, so a later hop must not expect more at its source
    selections: tuple[Selection, ...] = ()


def summarise(manifest: Manifest) -> Content:
    children = manifest.children
    attestations = sum(1 for c in children if index_attachment_kind(c) is not None)
    platforms = [
        str(c.platform) for c in children if c.platform and index_attachment_kind(c) is None
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
        layer_media_types=[layer.media_type for layer in manifest.layers],
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
        self.referrers = ReferrerPlanner(self.observer)
        self.planned: dict[tuple[str, str, str], PlannedTag] = {}
        # One finder for the run: a repository's tag list and a registry's referrers API probe
        # are read once, whether replication, signing or retention asks.
        self.policies = PolicySet(
            loaded.topology,
            loaded.path.resolve().parent,
            RegistrySignatureSource(self.referrers.finder),
        )
        self._tag_lists: dict[tuple[str, str], list[str]] = {}
        self._writers: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        self._absent: dict[tuple[str, str], bool] = {}
        self._absent_lock = threading.Lock()

    def plan(self, only: set[str] | None = None) -> Plan:
        """Plan every replication, or only the named ones and the upstream hops they read."""
        plan = Plan(topology=str(self.loaded.path))
        topology = expand_patterns(self.loaded.topology, self.session.list_repositories)
        ordered = replication_order(topology)
        if only is not None:
            ordered = needed_for(ordered, only)

        # Which replication reads each source tag and writes each target tag, over every hop
        # planned (upstream hops of a `--target` run included): retention deletes none of it.
        reads: dict[tuple[str, str, str], str] = {}
        writes: dict[tuple[str, str, str], str] = {}
        unselected_changes: dict[tuple[str, str, str], str] = {}
        planned_replications: set[str] = set()

        # Replications of one hop are independent of each other; hops run in order, so a
        # selector reading a repository an earlier hop writes sees the tags that hop plans.
        for group in _by_hop(ordered):
            items = []
            for _, replication in group:
                chosen = self._select(replication)
                log.info(
                    "replication %s: %d tag(s) of %s to %s",
                    replication.label,
                    len(chosen),
                    replication.source,
                    ", ".join(str(t) for t in replication.targets),
                )
                if not chosen and (only is None or replication.label in only):
                    plan.actions.extend(self._nothing_selected(replication))
                items += [
                    (replication, tag, target_index)
                    for tag in chosen
                    for target_index in range(len(replication.targets))
                ]
            self._check_writers(items)
            with ThreadPoolExecutor(PLAN_WORKERS) as pool:
                results = list(pool.map(lambda item: self._plan_tag(*item), items))
            for action in results:
                if action.source is not None and action.source.tag:
                    key = (action.source.registry, action.source.repository, action.source.tag)
                    reads.setdefault(key, action.replication)
                if action.target.tag:
                    target = (action.target.registry, action.target.repository, action.target.tag)
                    writes.setdefault(target, action.replication)
                if only is None or action.replication in only:
                    plan.actions.append(_waiting(action, unselected_changes))
                elif action.is_change and action.target.tag:
                    unselected_changes[target] = action.replication
            planned_replications.update(replication.label for _, replication in group)

        # Retention and sync deletions come last: they must see everything the plan reads or
        # writes, so that none of it is deleted.
        from regtopo.plan.retention import RetentionPlanner

        selected = {(a.target.registry, a.target.repository, a.target.tag) for a in plan.actions}
        deletions = RetentionPlanner(
            self.loaded,
            self.session,
            self.observer,
            self.planned,
            topology=topology,
            selected=selected,
            reads=reads,
            writes=writes,
            planned_replications=planned_replications,
            finder=self.referrers.finder,
        ).plan(only)
        removed = {(a.replication, str(a.target)) for a in deletions if a.kind is ActionKind.DELETE}
        plan.actions = [
            a
            for a in plan.actions
            if not (a.kind is ActionKind.SKIPPED and (a.replication, str(a.target)) in removed)
        ]
        plan.actions.extend(deletions)

        copied_into = {
            (a.target.registry, a.target.repository)
            for a in plan.actions
            if a.is_change and a.kind is not ActionKind.DELETE
        }
        log.info(
            "planned %d action(s) over %d replication(s) with %d registry request(s)",
            len(plan.actions),
            len(planned_replications),
            self.session.request_count(),
        )
        plan._absent_at_plan = self.observer.absent()
        plan.blob_bytes_to_send = sum(
            size for key in copied_into for size in self.observer.sending.get(key, {}).values()
        )
        return plan

    # tag selection

    def _select(self, replication: ReplicationSpec) -> list[str]:
        exact = replication.exact_tags
        if exact is not None:
            return select_tags(exact, ())
        registry, repository = replication.source.registry, replication.source.repository
        available = set(self._listed_tags(registry, repository)) | {
            tag for (r, repo, tag) in self.planned if (r, repo) == (registry, repository)
        }
        # Fallback-tag indexes and cosign's tag-based attachments travel with their subject,
        # merged at the target; a selector copying them as tags would overwrite the target's
        # entries written by others. Exact names still may name them.
        available = {tag for tag in available if not is_attachment_tag(tag)}
        return select_tags(
            replication.tags, available, lambda tag: self._created(registry, repository, tag)
        )

    def _nothing_selected(self, replication: ReplicationSpec) -> list[Action]:
        """A selector that chose no tag says so, once per target: a typo in the source
        repository would otherwise plan nothing, silently, night after night."""
        source = replication.source
        listed = self._listed_tags(source.registry, source.repository)
        if listed:
            reason, missing = f"the selector chose none of the {len(listed)} source tags", False
        else:
            reason, missing = "the source repository has no tags, or does not exist", True
        where = TagRef(registry=source.registry, repository=source.repository, tag="")
        return [
            Action(
                kind=ActionKind.SKIPPED,
                replication=replication.label,
                source=where,
                target=TagRef(registry=target.registry, repository=target.repository, tag=""),
                reason=reason,
                source_missing=missing,
            )
            for target in replication.targets
        ]

    def _listed_tags(self, registry: str, repository: str) -> list[str]:
        # Listed once per source repository, however many replications read it.
        key = (registry, repository)
        if key not in self._tag_lists:
            self._tag_lists[key] = self.session.repository(registry, repository).list_tags()
        return self._tag_lists[key]

    def _created(self, registry: str, repository: str, tag: str) -> datetime | None:
        """The image config's `created` time of a tag (an index: its first platform's)."""
        upstream = self.planned.get((registry, repository, tag))
        origin = upstream.origin if upstream else self.session.repository(registry, repository)
        digest = upstream.digest if upstream else None
        if digest is None:
            head = origin.head_manifest(tag)
            if head is None:
                return None
            digest = head.digest
        manifest = self.observer.manifest(origin, digest)
        if manifest is not None and manifest.kind == "index":
            first = next((c for c in manifest.children if c.platform), None)
            manifest = self.observer.manifest(origin, first.digest) if first else None
        config = _config_json(origin, manifest) if manifest is not None else None
        return _parse_time(config.get("created")) if config else None

    def _check_writers(self, items: list[tuple[ReplicationSpec, str, int]]) -> None:
        for replication, tag, target_index in items:
            target = replication.targets[target_index]
            topology = self.loaded.topology
            key = (*topology.identity(target.registry, target.repository), tag)
            source = "/".join(
                topology.identity(replication.source.registry, replication.source.repository)
            )
            other = self._writers.setdefault(
                key, (replication.label, source, str(replication.source))
            )
            if other[1] != source:
                raise RegtopoError(
                    f"replications {other[0]} and {replication.label} both write "
                    f"{target}:{tag}, from {other[2]} and from {replication.source}",
                    hint="a target tag needs exactly one source; narrow one of the selectors",
                )

    def _repository_absent(self, ref: TagRef) -> bool:
        """Asked once per target repository: absent where the registry cannot create it."""
        key = _absent_key(ref)
        with self._absent_lock:
            known = self._absent.get(key)
        if known is None:
            known = self.session.repository_absent(ref.registry, ref.repository)
            with self._absent_lock:
                self._absent[key] = known
        return known

    def _plan_tag(self, replication: ReplicationSpec, tag: str, target_index: int) -> Action:
        target_spec = replication.targets[target_index]
        # A pinned tag is read by digest: the source tag may point elsewhere.
        pin = (
            replication.tags.digests.get(tag) if isinstance(replication.tags, TagSelector) else None
        )
        source_ref = TagRef(
            registry=replication.source.registry,
            repository=replication.source.repository,
            tag=pin or tag,
        )
        target_ref = TagRef(
            registry=target_spec.registry, repository=target_spec.repository, tag=tag
        )
        base = {
            "replication": replication.label,
            "rule": selection_rule(replication.tags, tag),
            "source": source_ref,
            "target": target_ref,
        }

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
        narrowed: tuple[Selection, ...] = ()
        if upstream is not None:
            digest, origin, hop = upstream.digest, upstream.origin, upstream.hop + 1
            narrowed = upstream.selections
        else:
            head = source.head_manifest(source_ref.tag)
            if head is None:
                if not self.session.once(("exists", str(source)), lambda: _exists(source)):
                    reason = "the source repository does not exist"
                elif ":" in source_ref.tag:
                    reason = "the pinned digest is not in the source repository"
                else:
                    reason = "the source tag does not exist"
                return Action(kind=ActionKind.SKIPPED, reason=reason, source_missing=True, **base)
            digest, origin, hop = head.digest, source, 0

        # The target first: a tag already at the digest, with all platforms and no referrers
        # that could be missing, needs nothing more read. Skipping the source manifest there
        # takes "nothing changed" from 3 requests per tag to 2 (benchmarks/README.md).
        current = in_algorithm(
            target, target_ref.tag, target.head_manifest(target_ref.tag), digest.algorithm
        )
        if (
            current is not None
            and current.digest == digest
            and replication.platforms == "all"
            and self.referrers.none_possible(origin, digest, replication.referrers, narrowed)
        ):
            self.planned[(target_ref.registry, target_ref.repository, target_ref.tag)] = PlannedTag(
                digest, origin, hop, (*narrowed, replication.referrers)
            )
            return Action(
                kind=ActionKind.IN_SYNC,
                content=_summarise_descriptor(current),
                target_digest_before=str(current.digest),
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
        # What was signed: the source manifest, as its registry serves it.
        signed = manifest.descriptor()
        if replication.platforms != "all":
            selected, refused = self._select_platforms(replication.platforms, origin, manifest)
            if selected is None:
                return Action(
                    kind=ActionKind.SKIPPED, content=content, hop=hop, reason=refused, **base
                )
            if selected.digest != manifest.digest:
                if replication.verify and replication.enforce == "block":
                    # Nothing has signed the new index: the check at the target cannot pass.
                    return Action(
                        kind=ActionKind.BLOCKED,
                        content=summarise(selected),
                        hop=hop,
                        policy=", ".join(replication.verify),
                        reason=f"a platform subset makes a new index {selected.digest.short}, "
                        f"which the signatures of the source index {digest.short} do not "
                        "cover: the signing policies could not hold at the target; select all "
                        "platforms, or sign the subset where it is built",
                        **base,
                    )
                # The target gets a new index: another digest than the source's. Later hops
                # read it from the observer's cache; apply pushes these exact bytes.
                self.observer.remember(selected)
                base = {
                    **base,
                    "source_digest": str(digest),
                    "rewritten_index": selected.raw.decode(),
                    "warnings": [
                        f"platforms {', '.join(summarise(selected).platforms)} of the source "
                        f"index {digest.short}: the target gets a new index "
                        f"{selected.digest.short} "
                        "with another digest; signatures made on the source index do not apply "
                        "to it"
                    ],
                }
                digest, manifest = selected.digest, selected
                content = summarise(selected)
                if current is not None and current.digest == digest:
                    self.planned[(target_ref.registry, target_ref.repository, target_ref.tag)] = (
                        PlannedTag(digest, origin, hop, (*narrowed, replication.referrers))
                    )
                    return Action(
                        kind=ActionKind.IN_SYNC,
                        content=content,
                        target_digest_before=str(current.digest),
                        hop=hop,
                        **{k: v for k, v in base.items() if k != "rewritten_index"},
                    )
        self.planned[(target_ref.registry, target_ref.repository, target_ref.tag)] = PlannedTag(
            digest, origin, hop, (*narrowed, replication.referrers)
        )

        schema1 = manifest.schema1_part()
        if schema1 is not None:
            part = "" if schema1 == manifest.digest else f"its child {schema1.short} is schema1; "
            return Action(
                kind=ActionKind.SKIPPED,
                content=content,
                hop=hop,
                reason=f"cannot be replicated by digest: {part}Docker schema1 manifests are "
                "refused by current registries, and converting one changes its digest",
                **base,
            )

        def plan_referrers(*, target_has_subject: bool) -> ReferrerPlan:
            return self.referrers.plan(
                origin,
                target,
                manifest,
                replication.referrers,
                narrowed_by=narrowed,
                target_has_subject=target_has_subject,
            )

        include = replication.include_non_distributable

        def price(root: Manifest | None, referrers: list[ReferrerRef]) -> dict[str, Any]:
            """What apply sends for this action: `root`'s tree (None: the target has it) and
            the referrers it copies after it, priced by one walk, each blob once."""
            manifests = []
            for ref in referrers:
                if ref.travels_with_index:
                    continue
                found = self.observer.manifest(origin, Digest.parse(ref.digest))
                if found is not None:
                    manifests.append(found)
            cost = self.observer.cost(
                origin,
                target,
                root,
                referrers=manifests,
                include_non_distributable=include,
                copied_from=source,
            )
            return {
                "bytes_to_send": cost.bytes_to_send,
                "bytes_present": cost.bytes_present,
                "blobs_to_send": cost.blobs_to_send,
                "bytes_to_mount": cost.bytes_to_mount,
                "blobs_to_mount": cost.blobs_to_mount,
                "manifests_to_send": cost.manifests_to_send,
                "non_distributable": cost.non_distributable,
            }

        # `current` was read before the manifest: the target is asked once per tag.
        before = str(current.digest) if current else None
        if current is not None and current.digest == digest:
            referrers = plan_referrers(target_has_subject=True)
            if referrers.missing:
                return Action(
                    kind=ActionKind.COPY_REFERRERS,
                    content=content,
                    target_digest_before=before,
                    hop=hop,
                    reason=f"{len(referrers.missing)} referrer(s) missing at the target",
                    referrers=referrers.missing,
                    **price(None, referrers.missing),
                    **base,
                )
            return Action(
                kind=ActionKind.IN_SYNC,
                content=content,
                target_digest_before=before,
                hop=hop,
                referrers=referrers.found,
                **base,
            )

        # What was signed is the source's content, whatever the target gets.
        verdict = self._verify(replication, origin, signed, target_ref)
        if isinstance(verdict, PolicyResult):
            return Action(
                kind=ActionKind.BLOCKED,
                content=content,
                target_digest_before=before,
                hop=hop,
                policy=verdict.policy,
                reason=str(verdict),
                **base,
            )
        verified, warnings = verdict
        base = {**base, "verified": verified, "warnings": [*base.get("warnings", []), *warnings]}

        create_repository = False
        if current is None and self._repository_absent(target_ref):
            spec = self.session.spec(target_ref.registry)
            if not spec.create_repositories:
                return Action(
                    kind=ActionKind.SKIPPED,
                    content=content,
                    hop=hop,
                    reason=f"the target repository {target_ref.repository} does not exist and "
                    f"registry {target_ref.registry!r} does not create repositories on push: "
                    "create it, or set `create_repositories: true` on the registry",
                    **base,
                )
            create_repository = True

        if not create_repository and self.observer.manifest_present(target, digest):
            referrers = plan_referrers(target_has_subject=True)
            return Action(
                kind=ActionKind.RETAG,
                content=content,
                target_digest_before=before,
                hop=hop,
                reason="the content is at the target already",
                referrers=referrers.missing,
                **price(None, referrers.missing),
                **base,
            )

        referrers = plan_referrers(target_has_subject=False)
        cost = price(manifest, referrers.missing)
        reason = "the content is missing at the target"
        if create_repository:
            reason = "create-repository first; " + reason
        if cost["non_distributable"]:
            reason += f"; {len(cost['non_distributable'])} non-distributable layer(s) " + (
                "are sent (include_non_distributable)" if include else "are not sent"
            )
        return Action(
            kind=ActionKind.COPY,
            content=content,
            target_digest_before=before,
            **cost,
            create_repository=create_repository,
            hop=hop,
            reason=reason,
            referrers=referrers.found,
            **base,
        )

    def _verify(
        self, replication: ReplicationSpec, origin: Repository, signed: Descriptor, target: TagRef
    ) -> PolicyResult | tuple[list[str], list[str]]:
        """The replication's signing policies on the manifest about to be copied.

        Returns the failed result when an `enforce: block` policy fails, else the names of the
        policies that held and a warning per failed `enforce: warn` policy.
        """
        if not replication.verify:
            return [], []
        verified: list[str] = []
        warnings: list[str] = []
        for result in self.policies.evaluate(replication, origin, signed):
            if result.ok:
                verified.append(result.policy)
            elif replication.enforce == "block":
                # Later hops must not read this digest as if it had been copied.
                self.planned.pop((target.registry, target.repository, target.tag), None)
                return result
            else:
                warnings.append(str(result))
        return verified, warnings

    def _select_platforms(
        self, wanted: list[str], origin: Repository, manifest: Manifest
    ) -> tuple[Manifest | None, str | None]:
        """The content to copy for a platform subset: the manifest itself when it has only
        wanted platforms, a new index of the wanted children otherwise, or None and why.

        The new index keeps every field of the source index and the wanted entries as they
        were written, in order; a build attestation goes along with the platform it describes.
        Its bytes are deterministic (compact JSON), so the next plan finds it in sync.
        """
        if manifest.kind == "index":
            entries = manifest.document.get("manifests") or []
            platforms = {
                str(c.digest): str(c.platform)
                for c in manifest.children
                if c.platform and index_attachment_kind(c) is None
            }
            kept_digests = {d for d, p in platforms.items() if p in wanted}
            if set(platforms) <= kept_digests:
                return manifest, None
            if not kept_digests:
                return None, (
                    f"none of the selected platforms ({', '.join(wanted)}) is in the index "
                    f"({', '.join(sorted(set(platforms.values())))})"
                )
            kept = []
            for entry, child in zip(entries, manifest.children, strict=True):
                if str(child.digest) in kept_digests or (
                    index_attachment_kind(child) is not None
                    and described_digest(child) in kept_digests
                ):
                    kept.append(entry)
            document = {**manifest.document, "manifests": kept}
            raw = json.dumps(document, separators=(",", ":")).encode()
            return Manifest.parse(raw, manifest.media_type), None
        config = _config_json(origin, manifest)
        if not config or not config.get("os"):
            return manifest, None
        platform = f"{config.get('os')}/{config.get('architecture')}"
        if config.get("variant"):
            platform += f"/{config['variant']}"
        if platform in wanted:
            return manifest, None
        return None, (
            f"the image is for {platform}, not one of the selected platforms ({', '.join(wanted)})"
        )


def selection_rule(selector: list[str] | TagSelector, tag: str) -> str:
    """Which part of a replication's `tags` chose `tag`, for the plan's `rule`."""
    if isinstance(selector, list) or tag in selector.names:
        return f"tags: {tag}"
    if tag in selector.digests:
        return f"tags.digests: {tag} pinned to {selector.digests[tag]}"
    parts = []
    if selector.include:
        parts.append(f"include {', '.join(selector.include)}")
    if selector.exclude:
        parts.append(f"exclude {', '.join(selector.exclude)}")
    if selector.semver:
        parts.append(f"semver {selector.semver}")
    if selector.latest is not None:
        order = selector.order.value if selector.order is not None else "semver"
        parts.append(f"latest {selector.latest} by {order}")
    return f"tags: {tag} selected by {'; '.join(parts) or 'the selector'}"


def _config_json(origin: Repository, manifest: Manifest) -> dict[str, Any] | None:
    """The image config as JSON, or None for an artifact or an unreadable config."""
    config = manifest.config
    if config is None or config.media_type not in (mt.OCI_CONFIG, DOCKER_CONFIG):
        return None
    if config.size > MAX_CONFIG_BYTES:
        return None
    with origin.open_blob(config) as chunks:
        data = b"".join(chunks)
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    # Configs carry nanoseconds; datetime keeps microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _absent_key(ref: TagRef) -> tuple[str, str]:
    return (ref.registry, ref.repository)


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


def needed_for(
    ordered: list[tuple[int, ReplicationSpec]], only: set[str]
) -> list[tuple[int, ReplicationSpec]]:
    """The named replications and, transitively, those writing a repository they read from.

    Upstream hops are planned (not applied) so that a later hop reads the digest its upstream
    will write, exactly as in a full plan; the caller keeps only the named replications' actions.
    """
    needed: set[int] = set()
    wanted: set[tuple[str, str]] = set()
    for index, replication in reversed(ordered):
        writes = {(t.registry, t.repository) for t in replication.targets}
        if replication.label in only or writes & wanted:
            needed.add(index)
            wanted.add((replication.source.registry, replication.source.repository))
    return [(index, replication) for index, replication in ordered if index in needed]


def _exists(repository: Repository) -> bool:
    """Whether a repository is there; a registry that will not say (Docker Hub answers 401
    for what it does not show) counts as yes, and the tag's own absence is reported."""
    try:
        return repository.exists()
    except RegtopoError:
        return True


def _waiting(action: Action, unselected_changes: dict[tuple[str, str, str], str]) -> Action:
    """A change whose source tag an unselected replication has yet to write (`--target`) is
    skipped: its source is not there until that replication is applied."""
    if not action.is_change or action.source is None:
        return action
    key = (action.source.registry, action.source.repository, action.source.tag)
    upstream = unselected_changes.get(key)
    if upstream is None:
        return action
    return action.model_copy(
        update={
            "kind": ActionKind.SKIPPED,
            "reason": f"its source is written by replication {upstream!r}, which this run "
            f"does not apply: add --target {upstream}, or apply it first",
        }
    )
