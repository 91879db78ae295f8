from __future__ import annotations

import json

import pytest

from regtopo.errors import DigestMismatchError, ManifestError
from regtopo.oci import mediatype as mt
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest

EMPTY = {"mediaType": mt.OCI_EMPTY, "digest": mt.EMPTY_DIGEST, "size": 2}


def _layer(
    byte: str, size: int = 10, media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip"
) -> dict:
    return {"mediaType": media_type, "digest": "sha256:" + byte * 64, "size": size}


def test_manifest_keeps_exact_bytes_and_hashes_them_unchanged() -> None:
    # Odd whitespace and key order would change under any re-serialisation.
    raw = b'{ "schemaVersion":2,\n   "mediaType":"application/vnd.oci.image.manifest.v1+json",' + (
        b'"config":' + json.dumps(EMPTY).encode() + b',"layers":[]}'
    )
    manifest = Manifest.parse(raw, mt.OCI_MANIFEST)
    assert manifest.raw == raw
    assert manifest.digest == Digest.of(raw)
    assert manifest.kind == "image"


def test_manifest_parse_refuses_bytes_that_do_not_match_the_expected_digest() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(DigestMismatchError):
        Manifest.parse(raw, mt.OCI_INDEX, expected=Digest.of(b"other"))


def test_manifest_parse_refuses_a_media_type_that_disagrees_with_content_type() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()
    with pytest.raises(ManifestError, match="served as"):
        Manifest.parse(raw, mt.OCI_MANIFEST)


def test_index_children_and_attestation_entries_are_listed_in_order() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                **_layer("a", 500),
                "mediaType": mt.OCI_MANIFEST,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                **_layer("b", 800),
                "mediaType": mt.OCI_MANIFEST,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    }
    manifest = Manifest.parse(json.dumps(document).encode(), None)
    assert manifest.kind == "index"
    assert [str(c.platform) for c in manifest.children] == ["linux/amd64", "unknown/unknown"]
    assert manifest.children[1].annotations["vnd.docker.reference.type"] == "attestation-manifest"


def test_artifact_type_falls_back_to_the_config_media_type() -> None:
    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {**EMPTY, "mediaType": "application/vnd.cncf.notary.signature"},
        "layers": [_layer("c", 12, "application/jose+json")],
        "subject": {**_layer("d", 500), "mediaType": mt.OCI_MANIFEST},
    }
    manifest = Manifest.parse(json.dumps(document).encode(), None)
    assert manifest.artifact_type == "application/vnd.cncf.notary.signature"
    assert manifest.subject is not None and manifest.subject.digest.encoded == "d" * 64
    assert [b.media_type for b in manifest.blobs] == [
        "application/vnd.cncf.notary.signature",
        "application/jose+json",
    ]


def test_oversize_manifests_are_reported_not_parsed() -> None:
    raw = b'{"schemaVersion":2,"x":"' + b"a" * (4 * 1024 * 1024) + b'"}'
    with pytest.raises(ManifestError, match="exceeds the 4194304 bytes"):
        Manifest.parse(raw, mt.OCI_MANIFEST)


def test_non_json_manifests_are_reported() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        Manifest.parse(b"\x00\x01", mt.OCI_MANIFEST)
