"""Finding the referrers of a subject before it is deleted: signatures, SBOMs, attestations.

A registry may hold them in all three places `ReferrerFinder` reads (the referrers API, the
fallback tag `sha256-<hex>`, cosign's `.sig`/`.att`/`.sbom` tags). Deleting a subject leaves
every one of them dangling, so retention plans them with it, the fallback index included.
"""

from __future__ import annotations

from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.reference import fallback_tag
from regtopo.plan.actions import PlannedReferrer
from regtopo.plan.observe import Observer
from regtopo.registry.referrers import ReferrerFinder
from regtopo.registry.store import Repository

# Referrers of referrers (a signature on an SBOM) are followed this deep and no deeper: content
# that refers to itself through a cycle of subjects must not keep discovery running.
MAX_DEPTH = 4

FOUND_BY = {"referrers-api": "referrers API", "fallback-tag": "fallback tag", "tag": "cosign tag"}


def discover(
    finder: ReferrerFinder, repository: Repository, subject: Manifest, observer: Observer
) -> list[PlannedReferrer]:
    """Every referrer of `subject` in `repository`, and of those referrers, depth first."""
    found: dict[str, PlannedReferrer] = {}
    _discover(finder, repository, subject, observer, found, depth=0)
    return list(found.values())


def _discover(
    finder: ReferrerFinder,
    repository: Repository,
    subject: Manifest,
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

    discovery = finder.discover(
        repository, subject.digest, [child.digest for child in subject.children]
    )
    if discovery.fallback_index is not None:
        add(
            PlannedReferrer(
                digest=str(discovery.fallback_index.digest),
                found_by=FOUND_BY["fallback-tag"],
                tag=fallback_tag(subject.digest),
            )
        )
    for referrer in discovery.referrers:
        add(
            PlannedReferrer(
                digest=str(referrer.descriptor.digest),
                artifact_type=referrer.descriptor.artifact_type if referrer.tag is None else None,
                found_by=FOUND_BY[referrer.via],
                tag=referrer.tag,
            )
        )

    for digest in new:
        manifest = observer.manifest(repository, digest)
        if manifest is not None and manifest.kind != "index":
            _discover(finder, repository, manifest, observer, found, depth + 1)
