"""Authentication against real registries: anonymous, Basic, Bearer tokens from the issuer.

The token issuer records every request, so scopes are asserted exactly. Expiry in the middle of
an upload and faults at the token endpoint come from `tests.support.proxy`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from regtopo.oci.reference import Reference
from regtopo.registry.auth import DEFAULT_TOKEN_LIFETIME, Credentials
from regtopo.registry.client import RegistryClient
from regtopo.registry.errors import AuthError
from tests.support.content import Pusher, image
from tests.support.content import copy_once as copy
from tests.support.proxy import (
    MakeProxy,
    Proxy,
    ProxyRequest,
    Reply,
    drop,
    error_reply,
    expire_tokens_after,
    inject,
    rewrite_realm,
)
from tests.support.registries import MakeRegistry, Registry, push_random_image

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


def test_anonymous_registry_gets_no_authorization_header(
    registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    push_random_image(registry, "org/app", "v1")
    proxy = make_proxy(registry.url)
    repository = clients(proxy.host).repository("org/app")

    assert repository.list_tags() == ["v1"]
    assert repository.head_manifest("v1") is not None
    assert all("authorization" not in s.headers for s in proxy.seen())


def test_basic_challenge_is_answered_once_then_credentials_go_up_front(
    basic_registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    digest = push_random_image(basic_registry, "org/app", "v1")
    proxy = make_proxy(basic_registry.url)
    repository = clients(proxy.host, basic_registry.credentials).repository("org/app")

    assert repository.list_tags() == ["v1"]
    head = repository.head_manifest("v1")
    manifest = repository.get_manifest(digest)

    assert head is not None and str(head.digest) == digest
    assert manifest is not None and str(manifest.digest) == digest
    assert [s.status for s in proxy.seen()] == [401, 200, 200, 200]
    assert all(s.headers["authorization"].startswith("Basic ") for s in proxy.seen()[1:])


def test_basic_registry_without_credentials_says_so(basic_registry: Registry, clients: Any) -> None:
    with pytest.raises(AuthError) as caught:
        clients(basic_registry.host).repository("org/app").list_tags()
    assert "requires credentials and none are configured" in caught.value.message


def test_bearer_token_requested_with_service_and_cached_per_scope_set(
    token_registry: Registry, clients: Any
) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    push_random_image(token_registry, "org/app", "v1")
    issuer.requests.clear()
    repository = clients(token_registry.host, token_registry.credentials).repository("org/app")

    for _ in range(3):
        assert repository.list_tags() == ["v1"]
        assert repository.head_manifest("v1") is not None

    assert [r.query for r in issuer.requests] == [
        {"service": "regtopo-test", "scope": ["repository:org/app:pull"]}
    ]
    assert all(r.had_basic_auth for r in issuer.requests)
    # Only the very first request met a challenge; the rest carried the cached token.
    assert token_registry.count_requests("GET", r"/v2/org/app/tags/list") == 4


def test_cross_repository_mount_asks_one_token_for_both_scopes_push_first(
    token_registry: Registry, clients: Any
) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    digest = push_random_image(token_registry, "src/app", "v1")
    issuer.requests.clear()
    client = clients(token_registry.host, token_registry.credentials)

    stats = copy(client.repository("src/app"), client.repository("org/app"), digest, ["v1"])

    assert stats.blobs_mounted == 2
    scopes = [r.query["scope"] for r in issuer.requests]
    assert ["repository:org/app:pull,push", "repository:src/app:pull"] in scopes
    assert all(len(s) == len(set(s)) for s in scopes)


def test_expires_in_is_honoured_and_the_token_renewed_before_it_lapses(
    token_registry: Registry, clients: Any
) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    push_random_image(token_registry, "org/app", "v1")
    issuer.requests.clear()
    issuer.lifetime = 3  # expires_in: 3; regtopo renews at half that for such short tokens
    repository = clients(token_registry.host, token_registry.credentials).repository("org/app")

    repository.list_tags()
    repository.list_tags()
    time.sleep(2.0)
    repository.list_tags()

    assert len(issuer.requests) == 2
    # the renewal happened up front: no request after the first met a 401
    statuses = [e.status for e in token_registry.access_log() if "tags/list" in e.path]
    assert statuses == [401, 200, 200, 200]


def test_token_without_expires_in_lives_sixty_seconds_from_receipt(
    token_registry: Registry, clients: Any
) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    issuer.omit_expires_in = True
    client = clients(token_registry.host, token_registry.credentials)
    before = time.monotonic()

    client.repository("org/app").list_tags()

    (token,) = client.auth._tokens.values()
    remaining = token.expires_at - before
    assert DEFAULT_TOKEN_LIFETIME == 60.0
    assert 50.0 <= remaining <= 60.0


def test_c13_token_expiring_mid_upload_is_renewed_once_per_expiry_with_constant_scopes(
    registry: Registry, token_registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    """C13: tokens without expires_in that die after 1 s at the registry, a 5 s chunked upload:
    each 401 costs one renewal with the same scope set, the chunk is resent, the copy lands."""
    issuer = token_registry.issuer
    assert issuer is not None
    issuer.omit_expires_in = True
    data = os.urandom(10_000)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", data)], tag="v1")

    def slow_chunks(request: ProxyRequest) -> None:
        if request.method == "PATCH":
            time.sleep(0.45)

    proxy = make_proxy(token_registry.url).add(
        slow_chunks, expire_tokens_after(1.0, issuer.realm, issuer.service)
    )
    issuer.requests.clear()
    target = clients(proxy.host, token_registry.credentials, chunk_size=1000)
    started = time.monotonic()

    copy(clients(registry.host).repository("src/app"), target.repository("org/app"), digest, ["v1"])

    duration = time.monotonic() - started
    pushes = [r for r in issuer.requests if r.query["scope"] == ["repository:org/app:pull,push"]]
    scope_counts = {len(r.query["scope"]) for r in issuer.requests}
    expired = proxy.seen(path=r"/v2/.*")
    unauthorized = [s for s in expired if s.status == 401 and "authorization" in s.headers]
    http_requests = len(expired)

    assert duration >= 4.5
    assert scope_counts == {1}
    assert len(unauthorized) >= 3  # the token really expired mid-upload, more than once
    assert len(pushes) <= duration / 1.0 + 2  # about one renewal per lifetime ...
    assert len(issuer.requests) < http_requests / 2  # ... never one per request
    assert proxy.count("PATCH") == 10 + sum(1 for s in unauthorized if s.method == "PATCH")
    landed = target.repository("org/app").head_manifest("v1")
    assert landed is not None and str(landed.digest) == digest


def test_c13_a_challenge_spelling_the_actions_otherwise_adds_no_scope_on_renewal(
    registry: Registry, token_registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    """C13's kind: a 401 on the final PUT of a chunked upload whose challenge writes the scope
    `push,pull`; the renewal asks for one scope, as before, and the same PUT is retried."""
    issuer = token_registry.issuer
    assert issuer is not None
    issuer.omit_expires_in = True
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", os.urandom(3500))])
    proxy = make_proxy(token_registry.url)
    fired: list[bool] = []

    def expire_on_final_put(request: ProxyRequest) -> Reply | None:
        final = request.method == "PUT" and "/blobs/uploads/" in request.path
        if final and "digest" in request.query and not fired:
            fired.append(True)
            challenge = (
                f'Bearer realm="{issuer.realm}",service="{issuer.service}",'
                'scope="repository:org/app:push,pull",error="invalid_token"'
            )
            return error_reply(401, "UNAUTHORIZED", "expired", {"WWW-Authenticate": challenge})
        return None

    proxy.add(expire_on_final_put)
    target = clients(proxy.host, token_registry.credentials, chunk_size=1000)
    issuer.requests.clear()

    copy(clients(registry.host).repository("src/app"), target.repository("org/app"), digest, [])

    finals = [s for s in proxy.seen("PUT") if "/blobs/uploads/" in s.path]
    assert [s.status for s in finals][:2] == [401, 201]
    asked = [r.query["scope"] for r in issuer.requests]
    assert {len(scopes) for scopes in asked} == {1}
    assert asked[-2:] == [["repository:org/app:pull,push"], ["repository:org/app:pull,push"]]


def test_refused_scope_gives_a_clear_denied_error(
    registry: Registry, token_registry: Registry, clients: Any
) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    issuer.denied_repositories.add("blocked/app")
    digest = push_random_image(registry, "src/app", "v1")

    with pytest.raises(AuthError) as caught:
        copy(
            clients(registry.host).repository("src/app"),
            clients(token_registry.host, token_registry.credentials).repository("blocked/app"),
            digest,
            ["v1"],
        )

    assert caught.value.codes == ("DENIED",)
    assert "access denied (DENIED)" in caught.value.message
    assert "repository:blocked/app:pull" in caught.value.message
    assert token_registry.count_requests("PUT") == 0


def issuer_front(make_proxy: MakeProxy, token_registry: Registry) -> tuple[Proxy, Proxy]:
    """A proxy before the issuer, and one before the registry that points challenges at it."""
    assert token_registry.issuer is not None
    front = make_proxy(f"http://127.0.0.1:{token_registry.issuer.port}")
    registry_proxy = make_proxy(token_registry.url).rewrite(rewrite_realm(f"{front.url}/token"))
    return front, registry_proxy


@pytest.mark.parametrize(
    "fault",
    [
        drop("GET", r"/token"),
        inject("GET", r"/token", error_reply(503, "UNAVAILABLE")),
        inject("GET", r"/token", error_reply(429, "TOOMANYREQUESTS", headers={"Retry-After": "0"})),
    ],
    ids=["dropped", "503", "429"],
)
def test_token_endpoint_faults_are_retried(
    token_registry: Registry, make_proxy: MakeProxy, clients: Any, fault: Any
) -> None:
    push_random_image(token_registry, "org/app", "v1")
    front, registry_proxy = issuer_front(make_proxy, token_registry)
    front.add(fault)

    tags = clients(registry_proxy.host, token_registry.credentials).repository("org/app")
    assert tags.list_tags() == ["v1"]
    assert [s.status for s in front.seen("GET", "/token")][1:] == [200]
    assert front.count("GET", "/token") == 2


def test_identity_token_is_exchanged_with_an_oauth2_refresh_token_post(
    token_registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    """An `identitytoken` (docker config) goes to the realm as `grant_type=refresh_token`."""
    issuer = token_registry.issuer
    assert issuer is not None
    push_random_image(token_registry, "org/app", "v1")
    front, registry_proxy = issuer_front(make_proxy, token_registry)
    forms: list[dict[str, list[str]]] = []

    def oauth2(request: ProxyRequest) -> Reply | None:
        if request.method != "POST":
            return None
        form = parse_qs(request.body.decode())
        forms.append(form)
        if form.get("refresh_token") != ["the-refresh-token"]:
            return Reply(401, {}, b"bad refresh token")
        query = urlencode(
            [("service", form["service"][0])] + [("scope", s) for s in form["scope"][0].split()]
        )
        assert issuer.username and issuer.password
        answer = httpx.get(f"{issuer.realm}?{query}", auth=(issuer.username, issuer.password))
        token = answer.json()["token"]
        body = json.dumps({"access_token": token, "expires_in": 300}).encode()
        return Reply(200, {"Content-Type": "application/json"}, body)

    front.add(oauth2)
    credentials = Credentials("<token>", "", identity_token="the-refresh-token")
    client = RegistryClient("r", registry_proxy.host, scheme="http", credentials=credentials)
    try:
        assert client.repository("org/app").list_tags() == ["v1"]
    finally:
        client.close()

    assert len(forms) == 1
    assert forms[0]["grant_type"] == ["refresh_token"]
    assert forms[0]["scope"] == ["repository:org/app:pull"]
    assert forms[0]["service"] == ["regtopo-test"]
    assert front.count("GET") == 0


class DockerHubOnLoopback(httpx.HTTPTransport):
    """Sends what regtopo addresses to registry-1.docker.io to a loopback registry instead."""

    def __init__(self, registry: Registry) -> None:
        super().__init__()
        self.registry = registry

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "registry-1.docker.io":
            return super().handle_request(request)
        # A copy goes to loopback; the client's own request keeps Docker Hub's URL, as it
        # would against the real registry (regtopo compares origins by it).
        headers = httpx.Headers(request.headers)
        headers["Host"] = self.registry.host
        loopback = httpx.Request(
            request.method,
            request.url.copy_with(scheme="http", host="127.0.0.1", port=self.registry.port),
            headers=headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return super().handle_request(loopback)


@pytest.mark.parametrize(
    "spelling",
    [
        "org/hello-world",
        "docker.io/org/hello-world",
        "index.docker.io/org/hello-world",
        "registry-1.docker.io/org/hello-world",
    ],
)
def test_c11_every_docker_hub_spelling_asks_the_same_scopes_and_mounts_from_library(
    make_registry: MakeRegistry, spelling: str
) -> None:
    """C11: copying `hello-world` into each spelling of docker.io/org/hello-world requests
    `repository:org/hello-world:pull,push` + `repository:library/hello-world:pull` and sends
    the same `POST .../blobs/uploads/?mount=<digest>&from=library/hello-world`."""
    hub = make_registry("token")
    assert hub.issuer is not None
    with Pusher(hub, "library/hello-world") as pusher:
        # the same bytes for every spelling, so the mount requests are comparable verbatim
        digest, _ = image(
            pusher,
            [("application/vnd.oci.image.layer.v1.tar", b"hello from docker hub")],
            tag="latest",
        )
    hub.issuer.requests.clear()
    source_ref, target_ref = Reference.parse("hello-world"), Reference.parse(spelling)
    assert (source_ref.host, target_ref.host) == ("docker.io", "docker.io")

    source_client = RegistryClient(
        "hub",
        source_ref.host,
        credentials=Credentials(*hub.credentials),
        transport=DockerHubOnLoopback(hub),  # type: ignore[misc]
    )
    target_client = RegistryClient(
        "hub-again",
        target_ref.host,
        credentials=Credentials(*hub.credentials),
        transport=DockerHubOnLoopback(hub),  # type: ignore[misc]
    )
    try:
        stats = copy(
            source_client.repository(source_ref.repository),
            target_client.repository(target_ref.repository),
            digest,
            ["latest"],
        )
    finally:
        source_client.close()
        target_client.close()

    assert stats.blobs_mounted == 2
    scopes = [r.query["scope"] for r in hub.issuer.requests]
    assert ["repository:org/hello-world:pull,push", "repository:library/hello-world:pull"] in scopes
    mounts = [e.target for e in hub.access_log() if e.method == "POST" and "mount=" in e.target]
    layer = "sha256%3A" + hashlib.sha256(b"hello from docker hub").hexdigest()
    # verbatim, so all four spellings send the identical request
    assert f"/v2/org/hello-world/blobs/uploads/?mount={layer}&from=library%2Fhello-world" in mounts
    assert len(mounts) == 2
    assert all(parse_qs(urlsplit(m).query)["from"] == ["library/hello-world"] for m in mounts)
