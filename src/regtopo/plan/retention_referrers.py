"""Finding the referrers of a subject before it is deleted: signatures, SBOMs, attestations.

Three places hold them, and a registry may use all three at once: the referrers API, the
referrers tag schema (`sha256-<hex>`, an index of referrers, for registries without the API),
and cosign's tag-based attachments (`sha256-<hex>.sig`, `.att`, `.sbom`). Deleting a subject
leaves all of them dangling, so retention plans them with it.

TODO(#6): `registry/referrers.py`'s `ReferrerFinder` (the copy path's discovery) should serve
here too; it does not yet report the fallback tag and cosign tags as things to delete.
"""

from __future__ import annotations

import re

from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.reference import fallback_tag
from regtopo.plan.actions import PlannedReferrer
from regtopo.plan.observe import Observer
from regtopo.registry.store import Repository

COSIGN_SUFFIXES = ("sig", "att", "sbom")
# Tags that belong to a subject rather than being content of their own: the fallback tag and
# cosign's attachments. Retention rules never select them; they follow their subject.
ATTACHMENT_TAG = re.compile(r"^[a-z0-9]+-[0-9a-f]{32,64}(\.(sig|att|sbom))?$")
MAX_DEPTH = 4


def is_attachment_tag(tag: str) -> bool:
    return bool(ATTACHMENT_TAG.match(tag))


def discover(
    repository: Repository, subject: Manifest, tags: set[str], observer: Observer
) -> list[PlannedReferrer]:
    """Every referrer of `subject` in `repository`, and of those referrers, depth first."""
    found: dict[str, PlannedReferrer] = {}
    _discover(repository, subject, tags, observer, found, depth=0)
    return list(found.values())


def _discover(
    repository: Repository,
    subject: Manifest,
    tags: set[str],
    observer: Observer,
    found: dict[str, PlannedReferrer],
    depth: int,
) -> None:
    if depth >= MAX_DEPTH:
        return
    new: list[Digest] = []

    def add(entry: PlannedReferrer) -> None:
        if entry.digest not in found and entry.digest != str(subject.digest):
            found[entry.digest] = entry
            new.append(Digest.parse(entry.digest))

    listed = repository.referrers(subject.digest)
    for descriptor in listed or []:
        add(
            PlannedReferrer(
                digest=str(descriptor.digest),
                artifact_type=descriptor.artifact_type,
                found_by="referrers API",
            )
        )

    fallback = fallback_tag(subject.digest)
    if fallback in tags:
        index = repository.get_manifest(fallback)
        # The fallback index must be an index other than the subject (and not one of its
        # children): GitLab answers the tag with the subject itself (cases.md C26).
        own = {str(c.digest) for c in subject.children}
        if index is not None and index.kind == "index" and index.digest != subject.digest:
            add(PlannedReferrer(digest=str(index.digest), found_by="fallback tag", tag=fallback))
            for descriptor in index.children:
                if str(descriptor.digest) not in own:
                    add(
                        PlannedReferrer(
                            digest=str(descriptor.digest),
                            artifact_type=descriptor.artifact_type,
                            found_by="fallback tag",
                        )
                    )

    for suffix in COSIGN_SUFFIXES:
        tag = f"{fallback}.{suffix}"
        if tag in tags:
            head = repository.head_manifest(tag)
            if head is not None:
                add(PlannedReferrer(digest=str(head.digest), found_by="cosign tag", tag=tag))

    # Referrers may have referrers of their own (a signature on an SBOM).
    for digest in new:
        manifest = observer.manifest(repository, digest)
        if manifest is not None and manifest.kind != "index":
            _discover(repository, manifest, tags, observer, found, depth + 1)
