"""The signature material attached to a subject, with its bytes, for the verifiers.

What is attached is found by the copy path's `ReferrerFinder` (referrers API, fallback tag,
cosign tags), so a signature that replication would carry is the signature verified. This
module reads the carriers it finds and the small layers they hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from regtopo.errors import RegtopoError
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest, DigestVerifier
from regtopo.oci.manifest import Manifest
from regtopo.registry.referrers import ReferrerFinder
from regtopo.registry.store import Repository

log = logging.getLogger(__name__)

#: signature envelopes and payloads are small; a larger blob is not read into memory
MAX_ATTACHMENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Carrier:
    """A manifest that carries attachments, and the tag it was found under (None: a referrer)."""

    manifest: Manifest
    tag: str | None

    @property
    def origin(self) -> str:
        return f"tag {self.tag}" if self.tag else f"referrer {self.manifest.digest.short}"


@dataclass(frozen=True)
class Attachment:
    """One layer of a carrier: an envelope, a signature payload or an SBOM, with its bytes."""

    carrier: Carrier
    layer: Descriptor
    content: bytes

    @property
    def media_type(self) -> str:
        return self.layer.media_type

    @property
    def artifact_type(self) -> str | None:
        return self.carrier.manifest.artifact_type

    @property
    def origin(self) -> str:
        return f"{self.carrier.origin} ({self.layer.media_type})"


@dataclass
class Attachments:
    """Everything found for one subject; `carriers` are what a copy must bring along."""

    subject: Digest
    items: list[Attachment] = field(default_factory=list)
    carriers: list[Carrier] = field(default_factory=list)


class SignatureSource(Protocol):
    def attachments(self, repository: Repository, digest: Digest) -> Attachments: ...

    def forget(self, repository: Repository) -> None: ...


class RegistrySignatureSource:
    """Reads every carrier the referrer finder lists for a subject, and their layers."""

    def __init__(self, finder: ReferrerFinder | None = None) -> None:
        self.finder = finder or ReferrerFinder()

    def attachments(self, repository: Repository, digest: Digest) -> Attachments:
        found = Attachments(digest)
        seen: set[Digest] = set()
        for referrer in self.finder.find(repository, digest):
            listed = referrer.descriptor
            # One manifest may be both a referrer and a cosign tag's target; read it once.
            if listed.digest in seen:
                continue
            seen.add(listed.digest)
            manifest = repository.get_manifest(str(listed.digest), expected=listed.digest)
            if manifest is None:
                log.info("%s: referrer %s is listed but missing", repository, listed.digest)
                continue
            self._add(repository, Carrier(manifest, referrer.tag), found)
        return found

    def forget(self, repository: Repository) -> None:
        self.finder.forget(repository)

    def _add(self, repository: Repository, carrier: Carrier, found: Attachments) -> None:
        found.carriers.append(carrier)
        if carrier.manifest.kind != "image":
            return
        for layer in carrier.manifest.layers:
            content = read_blob(repository, layer)
            if content is not None:
                found.items.append(Attachment(carrier, layer, content))


def read_blob(repository: Repository, descriptor: Descriptor) -> bytes | None:
    """A small blob's bytes, checked against its digest; None when too large or unreadable."""
    inline = descriptor.inline_data()
    if inline is not None:
        return inline
    if descriptor.size > MAX_ATTACHMENT_BYTES:
        log.info(
            "%s: skipping attachment %s of %d bytes", repository, descriptor.digest, descriptor.size
        )
        return None
    verifier = DigestVerifier(descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}")
    chunks: list[bytes] = []
    try:
        with repository.open_blob(descriptor) as stream:
            for chunk in stream:
                verifier.update(chunk)
                chunks.append(chunk)
        verifier.finish()
    except RegtopoError as err:
        log.warning("%s: reading attachment %s: %s", repository, descriptor.digest, err.message)
        return None
    return b"".join(chunks)
