"""The registry fixtures work end to end, so later failures point at regtopo, not the test bed.

Each auth variant is checked with two independent clients: our plain-httpx pusher writes an
image, skopeo reads it back, and the digests must agree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.support.registries import (
    AuthMode,
    MakeRegistry,
    Registry,
    push_random_image,
    skopeo_copy,
    skopeo_digest,
    skopeo_inspect_raw,
)

pytestmark = [pytest.mark.registry, pytest.mark.skopeo, pytest.mark.timeout(60)]


@pytest.mark.parametrize("auth", ["none", "basic", "token"])
def test_push_then_skopeo_reads_same_digest(make_registry: MakeRegistry, auth: AuthMode) -> None:
    """Our pusher and skopeo agree byte for byte, whatever the auth in between."""
    reg = make_registry(auth)
    digest = push_random_image(reg, "team/app", "v1", layers=[512, 2048])

    raw = skopeo_inspect_raw(reg, "team/app:v1")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert skopeo_digest(reg, f"team/app@{digest}") == digest


def test_basic_registry_refuses_anonymous(basic_registry: Registry) -> None:
    """Without credentials the htpasswd registry challenges with Basic, with them it answers."""
    response = httpx.get(f"{basic_registry.url}/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")

    assert basic_registry.credentials is not None
    assert (
        httpx.get(f"{basic_registry.url}/v2/", auth=basic_registry.credentials).status_code == 200
    )


def test_token_registry_bearer_challenge(token_registry: Registry) -> None:
    """The 401 names our issuer's realm and service; a token from it opens ``/v2/``."""
    issuer = token_registry.issuer
    assert issuer is not None
    response = httpx.get(f"{token_registry.url}/v2/")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{issuer.realm}"' in challenge
    assert 'service="regtopo-test"' in challenge

    grant = httpx.get(
        issuer.realm, params={"service": issuer.service}, auth=token_registry.credentials
    ).json()
    assert grant["token"] == grant["access_token"]
    assert grant["expires_in"] == 300
    assert grant["issued_at"].endswith("Z")
    headers = {"Authorization": f"Bearer {grant['token']}"}
    assert httpx.get(f"{token_registry.url}/v2/", headers=headers).status_code == 200


def test_token_issuer_records_and_knobs(token_registry: Registry) -> None:
    """Requests are recorded; ``omit_expires_in`` trims the JSON; wrong passwords get 401."""
    issuer = token_registry.issuer
    assert issuer is not None
    issuer.omit_expires_in = True
    scopes = ["repository:a/b:pull,push", "registry:catalog:*"]
    body = httpx.get(
        issuer.realm,
        params={"service": issuer.service, "scope": scopes},
        auth=token_registry.credentials,
    ).json()
    assert set(body) == {"token"}
    assert httpx.get(issuer.realm, auth=("regtopo", "wrong")).status_code == 401
    assert issuer.requests[0].query == {"service": "regtopo-test", "scope": scopes}
    assert [r.had_basic_auth for r in issuer.requests] == [True, True]

    # Anonymous callers get a token, with no actions: the registry refuses the pull itself.
    token = httpx.get(issuer.realm, params={"scope": "repository:a/b:pull"}).json()["token"]
    response = httpx.get(
        f"{token_registry.url}/v2/a/b/tags/list", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_denied_repository_push_gets_401(token_registry: Registry) -> None:
    """A repository the issuer denies gets a token without actions; the push is refused."""
    assert token_registry.issuer is not None
    token_registry.issuer.denied_repositories.add("blocked/app")
    with pytest.raises(httpx.HTTPStatusError) as excinfo:
        push_random_image(token_registry, "blocked/app", "v1")
    assert excinfo.value.response.status_code == 401
    assert 'error="insufficient_scope"' in excinfo.value.response.headers["WWW-Authenticate"]
    # Other repositories are unaffected.
    push_random_image(token_registry, "open/app", "v1")


def test_access_log_counts_requests(registry: Registry) -> None:
    """Counts are exact right after the calls: one manifest PUT, one upload per blob."""
    push_random_image(registry, "app", "v1", layers=[100, 200])
    assert registry.count_requests("PUT", r"/v2/app/manifests/.*") == 1
    assert registry.count_requests("POST", r"/v2/app/blobs/uploads/") == 3  # 2 layers + config
    assert registry.count_requests("GET", r"/v2/") == 1  # readiness probe; markers excluded

    # Without an OCI Accept header 2.8 answers 404 for an OCI manifest.
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    httpx.head(f"{registry.url}/v2/app/manifests/v1", headers=accept)
    entries = registry.access_log()
    assert (entries[-1].method, entries[-1].path, entries[-1].status) == (
        "HEAD",
        "/v2/app/manifests/v1",
        200,
    )
    assert len(registry.request_lines()) == len(entries)
    assert registry.log_path.is_file()


def test_delete_disabled_answers_405(make_registry: MakeRegistry) -> None:
    """``delete_enabled=False`` plays GHCR/Docker Hub: manifest DELETE is UNSUPPORTED."""
    reg = make_registry(delete_enabled=False)
    digest = push_random_image(reg, "app", "v1")
    response = httpx.delete(f"{reg.url}/v2/app/manifests/{digest}")
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_skopeo_copy_between_registries(make_registry: MakeRegistry, tmp_path: Path) -> None:
    """``skopeo_copy`` takes (registry, ref) pairs across auth kinds and plain transport strings."""
    src = make_registry("basic")
    dst = make_registry("token")
    digest = push_random_image(src, "app", "v1")
    skopeo_copy((src, "app:v1"), (dst, "mirror/app:v1"), "--preserve-digests")
    assert skopeo_digest(dst, "mirror/app:v1") == digest
    skopeo_copy((dst, "mirror/app:v1"), f"oci:{tmp_path / 'layout'}:v1")
    assert (tmp_path / "layout" / "index.json").is_file()


def test_fixtures_dir(fixtures_dir: Path) -> None:
    """The shared corpus is found relative to the repository, not the working directory."""
    assert (fixtures_dir / "regclient-testrepo" / "index.json").is_file()
