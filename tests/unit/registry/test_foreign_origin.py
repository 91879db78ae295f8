"""Another origin's 401 is never answered with the registry's credentials (C21's rule, for
upload sessions handed elsewhere), against a scripted transport."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.registry.auth import Credentials
from regtopo.registry.client import RegistryClient
from regtopo.registry.errors import AuthError

DATA = b"layer bytes"
LAYER = Descriptor(
    media_type="application/vnd.oci.image.layer.v1.tar",
    digest=Digest.parse("sha256:" + hashlib.sha256(DATA).hexdigest()),
    size=len(DATA),
)


def test_a_challenge_from_another_origin_gets_no_credentials_and_changes_no_auth_state() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "registry.test":
            if "authorization" not in request.headers:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            if request.method == "HEAD":
                return httpx.Response(404)
            return httpx.Response(202, headers={"Location": "https://elsewhere.test/upload/1"})
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://elsewhere.test/token"'}
        )

    @contextmanager
    def opener() -> Iterator[Iterator[bytes]]:
        yield iter([DATA])

    client = RegistryClient(
        "r",
        "registry.test",
        credentials=Credentials("user", "s3cret"),
        transport=httpx.MockTransport(handler),
    )
    try:
        with pytest.raises(AuthError) as refused:
            client.repository("a/b").push_blob(LAYER, opener)
    finally:
        client.close()

    assert "https://elsewhere.test asks for credentials (HTTP 401)" in refused.value.message
    elsewhere = [r for r in seen if r.url.host == "elsewhere.test"]
    assert {r.url.path for r in elsewhere} == {"/upload/1"}  # never its token endpoint
    assert all("authorization" not in r.headers for r in elsewhere)
    assert client.auth.realm != "https://elsewhere.test/token"
