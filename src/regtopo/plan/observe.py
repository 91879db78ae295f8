"""Reading live state for the planner, each fact read once per run.

Manifests are immutable by digest, so they are cached by digest; blob and manifest presence at
a target is cached per repository. Tag heads are read fresh each time they are asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.registry.store import Repository


@dataclass
class TreeCost:
    """What copying a manifest tree to a target would send, and what is there already."""

    bytes_to_send: int = 0
    bytes_present: int = 0
    blobs_to_send: int = 0
    #: blobs the target lacks that apply mounts from the source repository (same registry)
    bytes_to_mount: int = 0
    blobs_to_mount: int = 0
    manifests_to_send: int = 0
    non_distributable: list[str] = field(default_factory=list)


class Observer:
    def __init__(self) -> None:
        #: blobs some copy of this plan sends, per target (registry name, repository): two
        #: tags sharing layers each price them, but they travel once
        self.sending: dict[tuple[str, str], dict[Digest, int]] = {}
        self._manifests: dict[Digest, Manifest] = {}
        self._present: dict[tuple[str, str, Digest], bool] = {}
        self._lock = threading.Lock()

    def remember(self, manifest: Manifest) -> None:
        """A manifest this plan builds (a platform subset's index): readable by digest here."""
        with self._lock:
            self._manifests[manifest.digest] = manifest

    def manifest(self, repository: Repository, digest: Digest) -> Manifest | None:
        with self._lock:
            cached = self._manifests.get(digest)
        if cached is not None:
            return cached
        manifest = repository.get_manifest(str(digest), expected=digest)
        if manifest is not None:
            with self._lock:
                self._manifests[digest] = manifest
        return manifest

    def _cached_presence(self, repository: Repository, digest: Digest) -> bool | None:
        with self._lock:
            return self._present.get((repository.registry_id, repository.name, digest))

    def _remember(self, repository: Repository, digest: Digest, present: bool) -> None:
        with self._lock:
            self._present[(repository.registry_id, repository.name, digest)] = present

    def absent(self) -> frozenset[tuple[str, str, Digest]]:
        """What this plan saw missing at targets: (registry id, repository, digest)."""
        with self._lock:
            return frozenset(key for key, present in self._present.items() if not present)

    def manifest_present(self, repository: Repository, digest: Digest) -> bool:
        known = self._cached_presence(repository, digest)
        if known is None:
            known = repository.head_manifest(str(digest)) is not None
            self._remember(repository, digest, known)
        return known

    def blob_present(self, repository: Repository, descriptor: Descriptor) -> bool:
        known = self._cached_presence(repository, descriptor.digest)
        if known is None:
            known = repository.blob_exists(descriptor)
            self._remember(repository, descriptor.digest, known)
        return known

    def cost(
        self,
        source: Repository,
        target: Repository,
        root: Manifest | None,
        *,
        referrers: Sequence[Manifest] = (),
        include_non_distributable: bool = False,
        copied_from: Repository | None = None,
    ) -> TreeCost:
        """Walk the tree under `root` at the source and price what the target lacks.

        `root` (None: the target has it) is taken as missing; then each of `referrers`, the
        referrer manifests apply copies after it, is walked like a tree of its own, unless the
        target has it: what apply sends for an action is its content and its referrers, each
        blob once. A referrer inside `root`'s tree (an index that is its own child's referrer)
        travels with the tree and costs nothing more.

        Non-distributable layers are listed; they count as bytes to send only when the
        replication includes them. A blob apply will mount (`Repository.mount_source` of the
        repository apply copies from, `copied_from`, default `source`) is priced as a mount.
        """
        mount_from = target.mount_source(copied_from or source)
        cost = TreeCost()
        seen: set[Digest] = set()
        counted_blobs: set[Digest] = set()

        def walk(manifest: Manifest) -> None:
            if manifest.digest in seen:
                return
            seen.add(manifest.digest)
            if manifest is not root and self.manifest_present(target, manifest.digest):
                return
            cost.manifests_to_send += 1
            for child in manifest.children:
                child_manifest = self.manifest(source, child.digest)
                if child_manifest is not None:
                    walk(child_manifest)
            for blob in manifest.blobs:
                if blob.digest in counted_blobs:
                    continue
                counted_blobs.add(blob.digest)
                if blob.urls or _non_distributable(blob):
                    cost.non_distributable.append(str(blob.digest))
                    if not include_non_distributable:
                        continue
                if self.blob_present(target, blob):
                    cost.bytes_present += blob.size
                elif mount_from is not None:
                    cost.bytes_to_mount += blob.size
                    cost.blobs_to_mount += 1
                else:
                    cost.bytes_to_send += blob.size
                    cost.blobs_to_send += 1
                    with self._lock:
                        self.sending.setdefault((target.registry_name, target.name), {})[
                            blob.digest
                        ] = blob.size

        if root is not None:
            walk(root)
        for referrer in referrers:
            walk(referrer)
        return cost


def _non_distributable(descriptor: Descriptor) -> bool:
    from regtopo.oci.mediatype import is_non_distributable

    return is_non_distributable(descriptor.media_type)


def in_algorithm(
    repository: Repository, reference: str, found: Descriptor | None, algorithm: str
) -> Descriptor | None:
    """`found` (what `reference` resolves to) with its digest in `algorithm`.

    A target that names content by sha256 while the source uses sha512 (C07) would otherwise
    never look in sync: the bytes are read and hashed with the source's algorithm instead.
    """
    if found is None or found.digest.algorithm == algorithm:
        return found
    manifest = repository.get_manifest(reference, expected=found.digest)
    if manifest is None:
        return None
    return Descriptor(found.media_type, Digest.of(manifest.raw, algorithm), found.size)
