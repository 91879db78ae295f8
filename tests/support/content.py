"""Hand-built content pushed with plain httpx: the shapes the failure cases need.

Independent of regtopo's client on purpose (like `push_random_image`): a bug in regtopo's
uploads cannot make its own source content look right.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from regtopo.oci.digest import Digest
from tests.support.registries import Registry, _auth_headers

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


class Pusher:
    """Uploads blobs and manifests to one repository of a test registry."""

    def __init__(self, registry: Registry, repository: str) -> None:
        self.registry = registry
        self.repository = repository
        self.client = httpx.Client(timeout=30)
        self.client.headers.update(_auth_headers(self.client, registry, repository))

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        base = f"{self.registry.url}/v2/{self.repository}"
        start = self.client.post(f"{base}/blobs/uploads/")
        start.raise_for_status()
        location = urljoin(f"{self.registry.url}/", start.headers["Location"])
        separator = "&" if urlsplit(location).query else "?"
        done = self.client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        done.raise_for_status()
        return digest

    def stream_blob(self, chunks: Iterable[bytes]) -> tuple[str, int]:
        """Upload a blob of any size without holding it: one PATCH streams `chunks` (chunked
        transfer coding, hashed on the way), then the PUT names the digest. (digest, size)"""
        hasher = hashlib.sha256()
        size = 0

        def body() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        start = self.client.post(f"{self.registry.url}/v2/{self.repository}/blobs/uploads/")
        start.raise_for_status()
        location = urljoin(f"{self.registry.url}/", start.headers["Location"])
        sent = self.client.patch(
            location, content=body(), headers={"Content-Type": "application/octet-stream"}
        )
        sent.raise_for_status()
        location = urljoin(f"{self.registry.url}/", sent.headers["Location"])
        digest = "sha256:" + hasher.hexdigest()
        separator = "&" if urlsplit(location).query else "?"
        done = self.client.put(f"{location}{separator}digest={digest}")
        done.raise_for_status()
        return digest, size

    def manifest(self, body: bytes, media_type: str, reference: str | None = None) -> str:
        digest = sha256(body)
        response = self.client.put(
            f"{self.registry.url}/v2/{self.repository}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": media_type},
        )
        response.raise_for_status()
        return digest


def image(
    pusher: Pusher,
    layers: list[tuple[str, bytes]],
    *,
    media_type: str = OCI_MANIFEST,
    config_type: str = OCI_CONFIG,
    tag: str | None = None,
    config: bytes | None = None,
    extra_layers: list[dict[str, Any]] | None = None,
    upload: bool = True,
) -> tuple[str, bytes]:
    """Push an image manifest over (media type, bytes) layers; returns (digest, raw bytes)."""
    config = config or json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    if upload:
        pusher.blob(config)
        for _, data in layers:
            pusher.blob(data)
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(t, data) for t, data in layers] + (extra_layers or []),
    }
    raw = json.dumps(document, indent=3).encode()
    digest = pusher.manifest(raw, media_type, tag)
    if tag:
        pusher.manifest(raw, media_type, digest)
    return digest, raw


def index(
    pusher: Pusher, children: list[dict[str, Any]], *, media_type: str = OCI_INDEX, tag: str
) -> tuple[str, bytes]:
    document = {"schemaVersion": 2, "mediaType": media_type, "manifests": children}
    raw = json.dumps(document, indent=2).encode()
    return pusher.manifest(raw, media_type, tag), raw


def copy_once(source: Any, target: Any, digest: str | Digest, tags: list[str]) -> Any:
    """Copy one tree with a fresh :class:`CopyEngine`, closed afterwards."""
    from regtopo.apply.copy import CopyEngine

    engine = CopyEngine()
    try:
        return engine.copy(source, target, Digest.parse(str(digest)), tags)
    finally:
        engine.close()
