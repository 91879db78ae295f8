"""The interface every repository backend offers: a remote registry or an OCI layout.

The copy engine and the planner speak only this interface, so a directory on disk and a
registry across the world are interchangeable as source or target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest

# Opens the source of a blob's bytes; called again for each attempt of an upload.
BlobOpener = Callable[[], AbstractContextManager[Iterator[bytes]]]


@dataclass(frozen=True)
class PushResult:
    """What a manifest push told us. `subject_recorded` is the `OCI-Subject` signal."""

    digest: Digest
    subject_recorded: bool = False


class Repository(ABC):
    """One repository in one registry (or one layout directory)."""

    #: the registry's name in the topology, for messages and plans
    registry_name: str
    #: the repository's name within its registry
    name: str
    #: identifies the registry for mount decisions: equal ids share blob storage
    registry_id: str

    #: whether a blob can be mounted here from another repository of the same registry
    mounts: bool = True

    def __str__(self) -> str:
        return f"{self.registry_name}/{self.name}"

    def mount_source(self, source: Repository) -> str | None:
        """The repository a blob from `source` is mounted from here, or None: it is uploaded.

        Apply asks this for every blob it moves and the plan prices by it, so that what the
        plan calls "to mount" is what apply mounts. A registry may still refuse a mount (an
        unknown blob, a missing pull grant on the source); apply then uploads the blob.
        """
        if not self.mounts or source.registry_id != self.registry_id:
            return None
        return source.name

    @abstractmethod
    def head_manifest(self, reference: str) -> Descriptor | None:
        """The descriptor a tag or digest resolves to, or None when absent."""

    @abstractmethod
    def get_manifest(self, reference: str, expected: Digest | None = None) -> Manifest | None:
        """The manifest's exact bytes, verified against `expected` (or the digest reference)."""

    @abstractmethod
    def put_manifest(self, manifest: Manifest, reference: str) -> PushResult:
        """Store the manifest's exact bytes under a tag or under its digest."""

    @abstractmethod
    def blob_exists(self, descriptor: Descriptor) -> bool:
        """Whether the blob is present (and of the descriptor's size, where the store says)."""

    @abstractmethod
    def open_blob(self, descriptor: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        """Stream the blob's bytes. The caller verifies them against the descriptor."""

    @abstractmethod
    def push_blob(
        self, descriptor: Descriptor, opener: BlobOpener, *, mount_from: str | None = None
    ) -> str:
        """Upload a blob, streaming; returns "mounted" or "uploaded".

        `mount_from` names a repository of the same registry to mount from first.
        """

    @abstractmethod
    def exists(self) -> bool:
        """Whether the repository is there at all (a registry's `NAME_UNKNOWN` says not)."""

    @abstractmethod
    def list_tags(self) -> list[str]:
        """Every valid tag, sorted. Entries that break the tag grammar are skipped."""

    @abstractmethod
    def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """The referrers API's answer, or None where the backend has no referrers API."""

    @abstractmethod
    def delete_manifest(self, digest: Digest) -> None:
        """Delete a manifest by digest (and so every tag on it)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections; the default has none."""
