"""Planning referrers: what comes along with a tag's content, and what the target lacks.

For each manifest of the tree (the tagged manifest and, for an index, its children), the
source is asked what refers to it (`ReferrerFinder.find`); each referrer the replication
selects is listed, and is itself asked in turn (a signature of an SBOM comes too). A digest is
visited once, so content that refers to itself, or to its own index, ends the walk.

The target is asked only about subjects that have referrers at the source, once per subject,
so an unchanged tag without referrers costs no request beyond the shared tag list and the
one probe for the referrers API per registry.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from regtopo.oci import mediatype as mt
from regtopo.oci.attachments import (
    COSIGN_SUFFIXES,
    Selection,
    classify,
    classify_manifest,
    described_digest,
    explicit_artifact_types,
    index_attachment_kind,
    is_attachment_tag,
    is_selected,
    referrer_artifact_type,
)
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.plan.actions import ReferrerRef
from regtopo.plan.observe import Observer
from regtopo.registry.referrers import Referrer, ReferrerFinder
from regtopo.registry.store import Repository

log = logging.getLogger(__name__)


@dataclass
class ReferrerPlan:
    """The referrers of one tree: all that the replication takes, and those the target lacks."""

    found: list[ReferrerRef] = field(default_factory=list)
    missing: list[ReferrerRef] = field(default_factory=list)


class ReferrerPlanner:
    def __init__(self, observer: Observer, finder: ReferrerFinder | None = None) -> None:
        self.observer = observer
        self.finder = finder or ReferrerFinder()

    def none_possible(
        self,
        source: Repository,
        subject: Digest,
        selection: Selection,
        narrowed_by: tuple[Selection, ...] = (),
    ) -> bool:
        """True when nothing at `source` can refer to `subject`'s tree: no referrers are
        selected, or the registry has no referrers API and the repository holds no
        `sha256-<hex>` fallback or cosign tags. Costs one tag list per repository and one API
        probe per registry, both cached for the run."""
        if "none" in (*narrowed_by, selection):
            return True
        if self.finder.has_api(source, subject):
            return False
        return not any(is_attachment_tag(tag) for tag in self.finder.tags(source))

    def discover(
        self,
        source: Repository,
        root: Manifest,
        selection: Selection,
        narrowed_by: tuple[Selection, ...] = (),
    ) -> list[ReferrerRef]:
        """The referrers of `root`'s tree at `source` that `selection` takes, subjects first.

        `narrowed_by` are the selections of earlier hops: a referrer they left behind is not
        at this hop's source, so it is not expected here either.
        """
        selections = (*narrowed_by, selection)
        found: list[ReferrerRef] = []
        for child in root.children:
            kind = index_attachment_kind(child)
            if kind is not None:
                described = described_digest(child) or str(root.digest)
                found.append(
                    ReferrerRef(
                        subject=described,
                        digest=str(child.digest),
                        media_type=child.media_type,
                        size=child.size,
                        kind=kind,
                        artifact_type=child.artifact_type,
                        via="index",
                    )
                )
        if "none" in selections:
            return found

        artifact_types = explicit_artifact_types(selection)
        visited: set[Digest] = set()
        queue: deque[tuple[Digest, tuple[Digest, ...]]] = deque()

        def enqueue(manifest_digest: Digest, media_type: str) -> None:
            """Visit a manifest once; an index brings its children, which travel with it."""
            if manifest_digest in visited:
                return
            visited.add(manifest_digest)
            children: tuple[Digest, ...] = ()
            if media_type in mt.INDEX_TYPES:
                manifest = self.observer.manifest(source, manifest_digest)
                if manifest is not None:
                    children = tuple(c.digest for c in manifest.children)
            queue.append((manifest_digest, children))
            for child in children:
                if child not in visited:
                    visited.add(child)
                    queue.append((child, ()))

        enqueue(root.digest, root.media_type)
        # What the tagged content itself brings: a referrer among it needs no copy of its own.
        tree = {root.digest, *(c.digest for c in root.children)}
        while queue:
            subject, own_children = queue.popleft()
            for referrer in self.finder.find(
                source, subject, own_children, artifact_types=artifact_types
            ):
                ref = self._describe(source, referrer, selections)
                if referrer.descriptor.digest in tree:
                    ref = ref.model_copy(update={"in_tree": True})
                if not all(is_selected(s, ref.kind, ref.artifact_type) for s in selections):
                    continue
                found.append(ref)
                enqueue(referrer.descriptor.digest, referrer.descriptor.media_type)
        return found

    def _describe(
        self, source: Repository, referrer: Referrer, selections: tuple[Selection, ...]
    ) -> ReferrerRef:
        descriptor = referrer.descriptor
        artifact_type = descriptor.artifact_type
        if referrer.tag is not None:
            kind = COSIGN_SUFFIXES[referrer.tag.rsplit(".", 1)[1]]
        elif any(isinstance(s, list) for s in selections):
            # Index entries written by other tools may mislabel a referrer; when the choice
            # depends on it, the manifest itself decides.
            manifest = self.observer.manifest(source, descriptor.digest)
            if manifest is not None:
                kind = classify_manifest(manifest)
                artifact_type = referrer_artifact_type(manifest)
            else:
                kind = classify(artifact_type, descriptor.annotations)
        else:
            kind = classify(artifact_type, descriptor.annotations)
        return ReferrerRef(
            subject=str(referrer.subject),
            digest=str(descriptor.digest),
            media_type=descriptor.media_type,
            size=descriptor.size,
            kind=kind,
            artifact_type=artifact_type,
            via=referrer.via,
            tag=referrer.tag,
        )

    def missing(self, target: Repository, found: list[ReferrerRef]) -> list[ReferrerRef]:
        """The referrers in `found` that the target does not list under their subject."""
        subjects: dict[str, list[ReferrerRef]] = {}
        for ref in found:
            if not ref.travels_with_index:
                subjects.setdefault(ref.subject, []).append(ref)
        absent: set[ReferrerRef] = set()
        for subject, refs in subjects.items():
            present = {
                (str(r.descriptor.digest), r.tag)
                for r in self.finder.find(target, Digest.parse(subject))
            }
            untagged = {digest for digest, tag in present if tag is None}
            for ref in refs:
                if ref.tag is not None:
                    if (ref.digest, ref.tag) not in present:
                        absent.add(ref)
                elif ref.digest not in untagged:
                    absent.add(ref)
        return [ref for ref in found if ref in absent]

    def plan(
        self,
        source: Repository,
        target: Repository,
        root: Manifest,
        selection: Selection,
        *,
        narrowed_by: tuple[Selection, ...] = (),
        target_has_subject: bool,
    ) -> ReferrerPlan:
        found = self.discover(source, root, selection, narrowed_by)
        if not target_has_subject:
            return ReferrerPlan(found, [r for r in found if not r.travels_with_index])
        return ReferrerPlan(found, self.missing(target, found))
