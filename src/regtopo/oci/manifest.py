"""Manifests and indexes, kept with the exact bytes they were read as.

regtopo never re-serialises a manifest: the bytes read are the bytes pushed, so the target's
digest equals the source's. Parsing only enumerates descriptors; unknown fields and media types
pass through untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from regtopo.errors import ManifestError
from regtopo.oci import mediatype as mt
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest

# Registries should accept manifests of at least 4 MiB (distribution-spec "Pushing Manifests").
MAX_MANIFEST_SIZE = 4 * 1024 * 1024

Kind = Literal["index", "image", "schema1"]


@dataclass(frozen=True)
class Manifest:
    """A manifest or index: its raw bytes, its media type and its digest."""

    raw: bytes
    media_type: str
    digest: Digest
    document: dict[str, Any] = field(compare=False, repr=False)

    @classmethod
    def parse(
        cls, raw: bytes, content_type: str | None, *, expected: Digest | None = None
    ) -> Manifest:
        """Parse `raw`, verifying it against `expected` when the caller knows the digest.

        The media type is the document's `mediaType` field, else the Content-Type it was served
        with. A document whose field disagrees with its Content-Type is refused (distribution-spec
        "Pulling manifests").
        """
        if len(raw) > MAX_MANIFEST_SIZE:
            raise ManifestError(
                f"manifest of {len(raw)} bytes exceeds the {MAX_MANIFEST_SIZE} bytes "
                "registries accept"
            )
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"parsing manifest: not JSON ({err})") from err
        if not isinstance(document, dict):
            raise ManifestError("parsing manifest: the document is not a JSON object")

        served = (content_type or "").split(";")[0].strip()
        declared = document.get("mediaType")
        if document.get("schemaVersion") == 1 or served in mt.SCHEMA1_TYPES:
            media_type = served if served in mt.SCHEMA1_TYPES else mt.DOCKER_SCHEMA1_SIGNED
        elif isinstance(declared, str) and declared:
            if served and served in mt.MANIFEST_TYPES and served != declared:
                raise ManifestError(
                    f"parsing manifest: served as {served} but its mediaType says {declared}"
                )
            media_type = declared
        elif served:
            media_type = served
        elif "manifests" in document:
            media_type = mt.OCI_INDEX
        else:
            media_type = mt.OCI_MANIFEST

        algorithm = expected.algorithm if expected else "sha256"
        if media_type in mt.SCHEMA1_TYPES:
            digest = Digest.of(schema1_payload(raw), algorithm)
        else:
            digest = Digest.of(raw, algorithm)
        if expected is not None and digest != expected:
            from regtopo.errors import DigestMismatchError

            raise DigestMismatchError(f"verifying manifest: expected {expected}, got {digest}")
        return cls(raw=raw, media_type=media_type, digest=digest, document=document)

    @property
    def kind(self) -> Kind:
        if self.media_type in mt.SCHEMA1_TYPES:
            return "schema1"
        if self.media_type in mt.INDEX_TYPES or "manifests" in self.document:
            return "index"
        return "image"

    @property
    def size(self) -> int:
        return len(self.raw)

    def schema1_part(self) -> Digest | None:
        """This manifest's digest if it is Docker schema1, else the first child an index lists
        as schema1: either makes the tree impossible to replicate by digest, and saying so
        before anything is pushed leaves nothing half-copied."""
        if self.kind == "schema1":
            return self.digest
        return next((c.digest for c in self.children if c.media_type in mt.SCHEMA1_TYPES), None)

    def descriptor(self) -> Descriptor:
        """This manifest as a descriptor, with the fields a referrers list carries."""
        annotations = self.document.get("annotations") or {}
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size,
            artifact_type=self.artifact_type,
            annotations={str(k): str(v) for k, v in annotations.items()},
        )

    @cached_property
    def children(self) -> tuple[Descriptor, ...]:
        """An index's `manifests`, in order. Empty for an image manifest."""
        if self.kind != "index":
            return ()
        entries = self.document.get("manifests") or []
        if not isinstance(entries, list):
            raise ManifestError(f"parsing index {self.digest}: 'manifests' is not a list")
        return tuple(
            Descriptor.from_json(entry, where=f"index {self.digest.short} manifests[{i}]")
            for i, entry in enumerate(entries)
        )

    @cached_property
    def config(self) -> Descriptor | None:
        if self.kind != "image" or "config" not in self.document:
            return None
        return Descriptor.from_json(
            self.document["config"], where=f"manifest {self.digest.short} config"
        )

    @cached_property
    def layers(self) -> tuple[Descriptor, ...]:
        if self.kind != "image":
            return ()
        entries = self.document.get("layers") or []
        if not isinstance(entries, list):
            raise ManifestError(f"parsing manifest {self.digest}: 'layers' is not a list")
        return tuple(
            Descriptor.from_json(entry, where=f"manifest {self.digest.short} layers[{i}]")
            for i, entry in enumerate(entries)
        )

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config first, then layers: what must exist at the target before this manifest."""
        return ((self.config,) if self.config else ()) + self.layers

    @cached_property
    def subject(self) -> Descriptor | None:
        subject = self.document.get("subject")
        if subject is None:
            return None
        return Descriptor.from_json(subject, where=f"manifest {self.digest.short} subject")

    @property
    def artifact_type(self) -> str | None:
        """`artifactType`, else the config's media type for an image manifest (referrers rule)."""
        declared = self.document.get("artifactType")
        if isinstance(declared, str) and declared:
            return declared
        if self.config is not None and self.config.media_type not in (
            mt.OCI_CONFIG,
            "application/vnd.docker.container.image.v1+json",
        ):
            return self.config.media_type
        return None

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.document.get("annotations") or {}).items()}


def schema1_payload(raw: bytes) -> bytes:
    """The bytes a signed schema1 manifest's digest covers: the JWS signatures removed.

    Each signature's protected header carries `formatLength` (bytes of the payload before the
    signatures) and `formatTail` (base64url of what follows them).
    """
    import base64

    try:
        document = json.loads(raw)
        signatures = document.get("signatures")
        if not signatures:
            return raw
        protected = signatures[0]["protected"]
        header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        length = int(header["formatLength"])
        tail = header["formatTail"]
        return raw[:length] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise ManifestError(f"parsing schema1 signatures: {err}") from err
