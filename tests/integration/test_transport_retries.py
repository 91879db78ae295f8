"""Retries (429, 5xx, dropped connections on every method), tag list paging, concurrency.

The faults come from `tests.support.proxy` in front of a real registry.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from regtopo.apply.copy import CopyEngine, CopyError
from regtopo.oci.digest import Digest
from regtopo.registry.errors import RateLimitedError
from tests.support.content import Pusher, image
from tests.support.content import copy_once as copy
from tests.support.proxy import (
    MakeProxy,
    ProxyRequest,
    Reply,
    drop,
    error_reply,
    inject,
    rewrite_realm,
    tag_pages,
)
from tests.support.registries import MakeRegistry, Registry, push_random_image

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


def too_many(retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return error_reply(429, "TOOMANYREQUESTS", "slow down", headers)


def test_c15_manifest_put_answered_429_is_retried_honouring_retry_after(
    registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    """C15: 429 + Retry-After: 1, then 429 without it, then 201: three PUTs, >= ~1 s waited."""
    digest = push_random_image(registry, "org/app", "v1")
    target_registry = make_registry()
    proxy = make_proxy(target_registry.url).add(
        inject("PUT", rf"/v2/org/app/manifests/{digest}", too_many("1"), too_many())
    )

    copy(
        clients(registry.host).repository("org/app"),
        clients(proxy.host).repository("org/app"),
        digest,
        ["v1"],
    )

    puts = proxy.seen("PUT", rf"/v2/org/app/manifests/{digest}")
    assert [p.status for p in puts] == [429, 429, 201]
    assert puts[1].at - puts[0].at >= 0.95  # Retry-After: 1 honoured
    assert len({p.body_size for p in puts}) == 1  # the identical bytes each time
    assert target_registry.count_requests("PUT", r"/v2/org/app/manifests/v1") == 1


def test_c15_always_429_fails_after_the_configured_attempts_saying_rate_limited(
    registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    digest = push_random_image(registry, "org/app", "v1")
    target_registry = make_registry()
    proxy = make_proxy(target_registry.url)

    def always(request: ProxyRequest) -> Reply | None:
        if request.method == "PUT" and "/manifests/" in request.path:
            return too_many("0")
        return None

    proxy.add(always)
    with pytest.raises(CopyError) as caught:
        copy(
            clients(registry.host).repository("org/app"),
            clients(proxy.host, retry_attempts=3).repository("org/app"),
            digest,
            ["v1"],
        )

    assert "rate limited" in caught.value.message
    assert "still rate limited after 3 attempts" in caught.value.message
    assert isinstance(caught.value.__cause__, RateLimitedError)
    assert proxy.count("PUT", r"/v2/org/app/manifests/.*") == 3


def test_c15_token_endpoint_always_429_stops_after_the_configured_attempts(
    token_registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    """C15's kind at the token endpoint: the always-429 variant gives up after the configured
    attempts (3) in all, saying "rate limited": the token's retries do not nest in the request's."""
    push_random_image(token_registry, "org/app", "v1")
    assert token_registry.issuer is not None
    issuer = make_proxy(f"http://127.0.0.1:{token_registry.issuer.port}")
    front = make_proxy(token_registry.url).rewrite(rewrite_realm(f"{issuer.url}/token"))

    def always(request: ProxyRequest) -> Reply | None:
        return too_many("0") if request.path == "/token" else None

    issuer.add(always)
    client = clients(front.host, token_registry.credentials, retry_attempts=3)

    with pytest.raises(RateLimitedError) as caught:
        client.repository("org/app").list_tags()

    assert "still rate limited after 3 attempts" in caught.value.message
    assert issuer.count("GET", "/token") == 3


# every method a copy uses: a fault on each, once, must not stop the copy
EVERY_METHOD = [
    ("HEAD", r"/v2/org/app/manifests/.*"),
    ("GET", r"/v2/src/app/manifests/.*"),
    ("HEAD", r"/v2/org/app/blobs/.*"),
    ("GET", r"/v2/src/app/blobs/.*"),
    ("POST", r"/v2/org/app/blobs/uploads/"),
    ("PATCH", r"/v2/org/app/blobs/uploads/.+"),
    ("PUT", r"/v2/org/app/blobs/uploads/.+"),
    ("PUT", r"/v2/org/app/manifests/.*"),
    ("GET", r"/v2/org/app/tags/list"),
]


@pytest.mark.parametrize("fault", ["dropped", "503", "429"])
def test_faults_on_every_method_are_retried_and_the_copy_lands(
    registry: Registry, make_proxy: MakeProxy, clients: Any, fault: str
) -> None:
    data = os.urandom(2500)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", data)], tag="v1")
    proxy = make_proxy(registry.url)
    for method, path in EVERY_METHOD:
        if fault == "dropped":
            proxy.add(drop(method, path))
        elif fault == "503":
            proxy.add(inject(method, path, error_reply(503, "UNAVAILABLE", "busy")))
        else:
            proxy.add(inject(method, path, too_many("0")))
    # One proxy, two names for it: as two registries regtopo streams instead of mounting.
    source = clients(proxy.host).repository("src/app")
    target = clients(f"localhost:{proxy.port}", chunk_size=1000).repository("org/app")

    copy(source, target, digest, ["v1"])
    tags = target.list_tags()

    assert tags == ["v1"]
    failed_status = {"dropped": 0, "503": 503, "429": 429}[fault]
    for method, path in EVERY_METHOD:
        statuses = [s.status for s in proxy.seen(method, path)]
        assert statuses[0] == failed_status, (method, path, statuses)
        assert statuses[1] in (200, 201, 202, 204, 404), (method, path, statuses)


def test_tag_list_follows_link_headers_verbatim(
    registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    proxy = make_proxy(registry.url).add(
        tag_pages("org/app", ["v5", "v1", "v3", "v2", "v4"], page_size=2)
    )

    tags = clients(proxy.host).repository("org/app").list_tags()

    assert tags == ["v1", "v2", "v3", "v4", "v5"]
    assert [s.target for s in proxy.seen("GET")] == [
        "/v2/org/app/tags/list",
        "/v2/org/app/tags/list?n=2&last=v1&cursor=2",
        "/v2/org/app/tags/list?n=2&last=v2&cursor=4",
    ]


def test_c14_invalid_tag_entries_are_skipped_with_one_warning_giving_the_count(
    registry: Registry, make_proxy: MakeProxy, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """C14: Artifactory lists child digests as tags: `1.0` and `latest` survive, one warning: 2."""
    listed = ["1.0", "latest", "sha256:" + "a" * 64, "-beta"]
    proxy = make_proxy(registry.url).add(tag_pages("org/app", listed, page_size=3))

    with caplog.at_level(logging.WARNING, logger="regtopo.registry.client"):
        client = clients(proxy.host)
        tags = client.repository("org/app").list_tags()
        # Planning and referrer discovery both list a repository; the user hears it once.
        again = client.repository("org/app").list_tags()

    assert tags == again == ["1.0", "latest"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].args is not None and warnings[0].args[0] == 2
    assert "skipped 2 entries" in warnings[0].getMessage()


def test_c14_entries_of_every_invalid_shape_are_skipped_across_pages(
    registry: Registry, make_proxy: MakeProxy, clients: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """C14's kind beyond digests: too long, a trailing newline (which `$` alone would let
    through), a slash, empty, a leading dot; spread over pages of three."""
    longest = "ok_" + "b" * 125  # 128 characters, the most the grammar allows
    listed = ["v1", "a" * 129, "v1\n", "with/slash", "", longest, "sha512:" + "c" * 128, ".dot"]
    proxy = make_proxy(registry.url).add(tag_pages("org/app", listed, page_size=3))

    with caplog.at_level(logging.WARNING, logger="regtopo.registry.client"):
        tags = clients(proxy.host).repository("org/app").list_tags()

    assert tags == [longest, "v1"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 6 entries" in warnings[0].getMessage()


def test_concurrent_copies_never_exceed_max_connections_per_registry(
    registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    """Images copied in parallel share one client; its pool bounds requests in flight."""
    digests = [push_random_image(registry, f"src/app{i}", "v1", layers=[3000]) for i in range(6)]
    target_registry = make_registry()
    proxy = make_proxy(target_registry.url)

    def slow(request: ProxyRequest) -> None:
        time.sleep(0.05)

    proxy.add(slow)
    source_client = clients(registry.host)
    target_client = clients(proxy.host, max_connections=2)
    engine = CopyEngine(blob_workers=8)
    lock = threading.Lock()
    done: list[str] = []

    def one(i: int) -> None:
        engine.copy(
            source_client.repository(f"src/app{i}"),
            target_client.repository(f"org/app{i}"),
            Digest.parse(digests[i]),
            ["v1"],
        )
        with lock:
            done.append(digests[i])

    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(one, range(6)))
    finally:
        engine.close()

    assert sorted(done) == sorted(digests)
    assert proxy.max_in_flight == 2
    assert proxy.count("PUT", r"/v2/org/app\d/manifests/v1") == 6
