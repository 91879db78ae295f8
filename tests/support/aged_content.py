"""Content of known ages in real registries, for retention tests.

Each image's config carries a `created` time the test chooses (or none, or the epoch that
reproducible builds write), so rules that judge by age see exactly the ages the test meant.
Pushed with httpx directly, not with regtopo, so a bug in regtopo's client cannot hide itself;
an OCI layout is written through the same helpers' bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.registries import Registry, _auth_headers, _upload_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
COSIGN_SIG = "application/vnd.dev.cosign.simplesigning.v1+json"
SBOM_TYPE = "application/spdx+json"

Descriptor = dict[str, Any]


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


class Pusher:
    """Pushes blobs and manifests to one repository of a real registry."""

    def __init__(self, registry: Registry, repo: str) -> None:
        self.registry = registry
        self.repo = repo
        self.client = httpx.Client(timeout=30)
        self.client.headers.update(_auth_headers(self.client, registry, repo))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Pusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = _upload_blob(self.client, self.registry.url, self.repo, data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, document: dict[str, Any], reference: str | None = None) -> Descriptor:
        body = json.dumps(document, indent=2).encode()
        digest = digest_of(body)
        response = self.client.put(
            f"{self.registry.url}/v2/{self.repo}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": document["mediaType"]},
        )
        response.raise_for_status()
        return {"mediaType": document["mediaType"], "digest": digest, "size": len(body)}

    def image(
        self,
        tag: str | None,
        created: datetime | str | None,
        *,
        annotations: dict[str, str] | None = None,
        platform: str = "linux/amd64",
    ) -> Descriptor:
        """An image whose config says `created` (a datetime, a raw string, or absent)."""
        return self.manifest(image_document(self, created, annotations, platform), tag)

    def index(
        self,
        tag: str | None,
        children: list[Descriptor],
        *,
        annotations: dict[str, str] | None = None,
    ) -> Descriptor:
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": children,
        }
        if annotations:
            document["annotations"] = annotations
        return self.manifest(document, tag)

    def cosign_signature(self, subject: Descriptor) -> Descriptor:
        """cosign's tag-based attachment: `sha256-<hex>.sig` holding a signature manifest."""
        payload = json.dumps(
            {"critical": {"image": {"docker-manifest-digest": subject["digest"]}}}
        ).encode()
        layer = self.blob(payload, COSIGN_SIG)
        layer["annotations"] = {"dev.cosignproject.cosign/signature": "c2lnbmF0dXJl"}
        config = self.blob(b"{}", OCI_CONFIG)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        }
        return self.manifest(document, fallback_tag(subject["digest"]) + ".sig")

    def sbom_referrer(self, subject: Descriptor) -> tuple[Descriptor, Descriptor]:
        """An SBOM with `subject`, found through the referrers tag schema (Distribution has no
        referrers API): returns (the referrer, the fallback index)."""
        config = self.blob(b"{}", OCI_EMPTY)
        layer = self.blob(os.urandom(64), SBOM_TYPE)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SBOM_TYPE,
            "config": config,
            "layers": [layer],
            "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
        }
        referrer = self.manifest(document)
        referrer["artifactType"] = SBOM_TYPE
        index = self.index(fallback_tag(subject["digest"]), [referrer])
        return referrer, index


def image_document(
    pusher: Pusher | None,
    created: datetime | str | None,
    annotations: dict[str, str] | None,
    platform: str = "linux/amd64",
    blob: Any = None,
) -> dict[str, Any]:
    """An image manifest with a fresh random layer; `blob(data, media_type)` stores blobs."""
    store = blob or (pusher.blob if pusher else None)
    assert store is not None
    os_name, architecture = platform.split("/")
    layer = os.urandom(256)
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
    }
    if isinstance(created, datetime):
        config["created"] = rfc3339(created)
    elif isinstance(created, str):
        config["created"] = created
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": store(json.dumps(config).encode(), OCI_CONFIG),
        "layers": [store(layer, LAYER)],
    }
    if annotations:
        document["annotations"] = annotations
    return document


def tags_of(registry: Registry, repo: str) -> list[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list", timeout=30)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return sorted(response.json().get("tags") or [])


def manifest_exists(registry: Registry, repo: str, reference: str) -> bool:
    response = httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{reference}",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
        timeout=30,
    )
    return response.status_code == 200


def write_layout_image(
    root: Path, tag: str | None, created: datetime, *, platform: str = "linux/amd64"
) -> str:
    """An image in an OCI layout directory, tagged or listed untagged in `index.json`."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def store(data: bytes, media_type: str) -> Descriptor:
        digest = digest_of(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    document = image_document(None, created, None, platform, blob=store)
    entry = store(json.dumps(document, indent=2).encode(), OCI_MANIFEST)
    if tag is not None:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index_path = root / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    )
    index["manifests"].append(entry)
    index_path.write_text(json.dumps(index, indent=2))
    return str(entry["digest"])
