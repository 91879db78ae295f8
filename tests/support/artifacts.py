"""Writing artifacts, referrers and indexes into a registry with plain httpx (a test oracle).

Like `push_random_image`, nothing here uses regtopo's client: content written by these helpers
is what another tool (cosign, oras, buildx) would have left in the source registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ACCEPT = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        DOCKER_MANIFEST,
    ]
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    """A manifest written to a registry: its digest, bytes and media type."""

    digest: str
    raw: bytes
    media_type: str

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


def upload_blob(base_url: str, repo: str, data: bytes) -> dict[str, Any]:
    """POST then PUT one blob; returns a descriptor without mediaType."""
    digest = sha256(data)
    with httpx.Client(timeout=30) as client:
        start = client.post(f"{base_url}/v2/{repo}/blobs/uploads/")
        start.raise_for_status()
        location = urljoin(f"{base_url}/", start.headers["Location"])
        separator = "&" if urlsplit(location).query else "?"
        done = client.put(
            f"{location}{separator}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        done.raise_for_status()
    return {"digest": digest, "size": len(data)}


def put_manifest(
    base_url: str, repo: str, document: dict[str, Any], *, tag: str | None = None
) -> Pushed:
    """PUT a manifest as compact JSON, by tag or else by digest."""
    raw = json.dumps(document, separators=(",", ":")).encode()
    media_type = str(document["mediaType"])
    digest = sha256(raw)
    response = httpx.put(
        f"{base_url}/v2/{repo}/manifests/{tag or digest}",
        content=raw,
        headers={"Content-Type": media_type},
        timeout=30,
    )
    response.raise_for_status()
    return Pushed(digest, raw, media_type)


def push_image(base_url: str, repo: str, tag: str | None, *, payload: bytes = b"layer") -> Pushed:
    """A small OCI image (a real config, one opaque layer)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "payload": payload.hex()})
    config_desc = {"mediaType": OCI_CONFIG, **upload_blob(base_url, repo, config.encode())}
    layer = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar",
        **upload_blob(base_url, repo, payload),
    }
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer],
    }
    return put_manifest(base_url, repo, document, tag=tag)


def push_referrer(
    base_url: str,
    repo: str,
    subject: Pushed,
    *,
    artifact_type: str,
    payload: bytes,
    layer_media_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Pushed:
    """An OCI 1.1 artifact (empty config, one layer) whose `subject` is `subject`, by digest."""
    upload_blob(base_url, repo, b"{}")
    layer = {
        "mediaType": layer_media_type or artifact_type,
        **upload_blob(base_url, repo, payload),
    }
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [layer],
        "subject": subject.descriptor(),
    }
    if annotations:
        document["annotations"] = annotations
    return put_manifest(base_url, repo, document)


def push_cosign_signature(
    base_url: str, repo: str, subject: Pushed, *, docker: bool = False
) -> Pushed:
    """A legacy cosign `.sig` manifest, in Docker schema2 or OCI media types, tagged by digest."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{urlsplit(base_url).netloc}/{repo}"},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    config = json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            **upload_blob(base_url, repo, config),
        },
        "layers": [
            {
                "mediaType": SIMPLESIGNING,
                **upload_blob(base_url, repo, payload),
                "annotations": {
                    "dev.cosignproject.cosign/signature": base64.b64encode(b"sig").decode()
                },
            }
        ],
    }
    return put_manifest(base_url, repo, document, tag=f"sha256-{subject.hex}.sig")


def write_fallback_index(
    base_url: str, repo: str, subject: Pushed, referrers: list[Pushed]
) -> Pushed:
    """The `sha256-<hex>` index a tool without the referrers API writes for `subject`."""
    entries = []
    for referrer in referrers:
        document = json.loads(referrer.raw)
        entry = referrer.descriptor()
        artifact_type = document.get("artifactType") or document.get("config", {}).get("mediaType")
        if artifact_type:
            entry["artifactType"] = artifact_type
        entries.append(entry)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return put_manifest(base_url, repo, index, tag="sha256-" + subject.hex)


def get_manifest(base_url: str, repo: str, reference: str) -> httpx.Response:
    return httpx.get(
        f"{base_url}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}, timeout=30
    )


def fallback_index(base_url: str, repo: str, subject: Pushed | str) -> dict[str, Any] | None:
    """The `sha256-<hex>` referrers index at a registry, or None when the tag is absent."""
    digest = subject.digest if isinstance(subject, Pushed) else subject
    response = get_manifest(base_url, repo, "sha256-" + digest.split(":", 1)[1])
    if response.status_code == 404:
        return None
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def tag_digest(base_url: str, repo: str, reference: str) -> str | None:
    response = httpx.head(
        f"{base_url}/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}, timeout=30
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.headers["docker-content-digest"]
