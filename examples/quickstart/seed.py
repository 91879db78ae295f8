"""Build the quickstart's source registry: an OCI layout holding a real multi-platform image.

Each platform gets a real gzipped tar layer and an image config whose `rootfs.diff_ids` are the
uncompressed tar digests, so any OCI tool can unpack what regtopo copies. The bytes are
deterministic: running this twice yields the same digests.

Usage: python seed.py LAYOUT_ROOT
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

CREATED = "2026-11-02T09:00:00Z"
PLATFORMS = [("linux", "amd64", None), ("linux", "arm64", "v8")]
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.entries: list[dict] = []

    def blob(self, data: bytes) -> str:
        digest = digest_of(data)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return digest

    def tag(self, descriptor: dict, name: str) -> None:
        annotations = {"org.opencontainers.image.ref.name": name}
        self.entries.append({**descriptor, "annotations": annotations})

    def save(self) -> None:
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(index, indent=2))


def layer_for(text: str) -> tuple[bytes, str]:
    """A gzipped tar holding /etc/demo-release; returns it and its diff_id."""
    payload = text.encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("etc/demo-release")
        info.size, info.mtime, info.mode = len(payload), 1_700_000_000, 0o644
        tar.addfile(info, io.BytesIO(payload))
    uncompressed = raw.getvalue()
    return gzip.compress(uncompressed, mtime=0), digest_of(uncompressed)


def image(layout: Layout, version: str, os: str, arch: str, variant: str | None) -> dict:
    layer, diff_id = layer_for(f"demo {version} for {os}/{arch}\n")
    config = {
        "created": CREATED,
        "architecture": arch,
        "os": os,
        "config": {"Cmd": ["cat", "/etc/demo-release"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    if variant:
        config["variant"] = variant
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": layout.blob(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layout.blob(layer),
                "size": len(layer),
            }
        ],
        "annotations": {"org.opencontainers.image.created": CREATED},
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode()
    platform = {"os": os, "architecture": arch, **({"variant": variant} if variant else {})}
    return {
        "mediaType": MANIFEST,
        "digest": layout.blob(manifest_bytes),
        "size": len(manifest_bytes),
        "platform": platform,
    }


def main(root: Path) -> None:
    layout = Layout(root / "demo" / "app")
    for version in ("1.0", "1.1"):
        children = [image(layout, version, *platform) for platform in PLATFORMS]
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": children,
            "annotations": {"org.opencontainers.image.version": version},
        }
        index_bytes = json.dumps(index, indent=2).encode()
        descriptor = {
            "mediaType": INDEX,
            "digest": layout.blob(index_bytes),
            "size": len(index_bytes),
        }
        layout.tag(descriptor, version)
        if version == "1.1":
            layout.tag(descriptor, "latest")
    layout.save()
    print(f"seeded {layout.root}: demo/app:1.0, 1.1 and latest (linux/amd64, linux/arm64/v8)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
