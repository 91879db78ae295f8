"""Manifest reads stop at the 4 MiB limit, and a body within it reads as usual."""

from __future__ import annotations

import gzip
import hashlib
import json

import httpx
import pytest

from regtopo.errors import ManifestError
from regtopo.oci import mediatype as mt
from regtopo.registry.client import RegistryClient

MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode()


def client(handler: httpx.MockTransport) -> RegistryClient:
    return RegistryClient("r", "registry.test", scheme="http", transport=handler)


def test_a_gzip_encoded_manifest_is_hashed_as_decoded_bytes() -> None:
    def serve(request: httpx.Request) -> httpx.Response:
        body = gzip.compress(MANIFEST)
        headers = {"Content-Type": mt.OCI_INDEX, "Content-Encoding": "gzip"}
        return httpx.Response(200, headers=headers, content=body)

    repository = client(httpx.MockTransport(serve)).repository("a/b")

    manifest = repository.get_manifest("v1")

    assert manifest is not None and manifest.raw == MANIFEST
    assert str(manifest.digest) == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


def test_a_declared_length_above_the_limit_is_refused_and_not_retried() -> None:
    calls = []

    def serve(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        headers = {"Content-Type": mt.OCI_INDEX, "Content-Length": str(5 * 2**20)}
        return httpx.Response(200, headers=headers, content=b"{}")

    repository = client(httpx.MockTransport(serve)).repository("a/b")

    with pytest.raises(ManifestError, match=r"a/b:v1: the registry serves 5242880 bytes"):
        repository.get_manifest("v1")
    assert len(calls) == 1
