"""Writing content into OCI layout repositories for unit tests (no registry process needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.registry.layout import LayoutRepository

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = {
    "mediaType": "application/vnd.oci.empty.v1+json",
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}


def blob(repository: LayoutRepository, data: bytes, media_type: str) -> dict[str, Any]:
    descriptor = Descriptor(media_type, Digest.of(data), len(data))

    @contextmanager
    def opener() -> Iterator[Iterator[bytes]]:
        yield iter([data])

    repository.push_blob(descriptor, opener)
    return {"mediaType": media_type, "digest": str(descriptor.digest), "size": len(data)}


def store(
    repository: LayoutRepository, document: dict[str, Any], tag: str | None = None
) -> Manifest:
    manifest = Manifest.parse(json.dumps(document).encode(), None)
    repository.put_manifest(manifest, tag or str(manifest.digest))
    return manifest


def image(repository: LayoutRepository, payload: bytes, tag: str | None = None) -> Manifest:
    layer = blob(repository, payload, "application/vnd.oci.image.layer.v1.tar")
    config = blob(repository, b'{"os":"linux"}', "application/vnd.oci.image.config.v1+json")
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
    return store(repository, document, tag)


def referrer(
    repository: LayoutRepository, subject: Manifest, artifact_type: str, payload: bytes
) -> Manifest:
    blob(repository, b"{}", EMPTY["mediaType"])
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": EMPTY,
        "layers": [blob(repository, payload, artifact_type)],
        "subject": {
            "mediaType": subject.media_type,
            "digest": str(subject.digest),
            "size": subject.size,
        },
    }
    return store(repository, document)


def index(
    repository: LayoutRepository, children: list[Manifest], tag: str | None = None, **extra: Any
) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": c.media_type, "digest": str(c.digest), "size": c.size} for c in children
        ],
        **extra,
    }
    return store(repository, document, tag)
