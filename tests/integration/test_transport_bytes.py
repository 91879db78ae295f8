"""Moving bytes between real registries: uploads, locations, redirects, manifests as bytes.

Behaviours Distribution 2.8 cannot show come from `tests.support.proxy` in front of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from regtopo.apply.copy import CopyEngine, CopyError
from regtopo.errors import DigestMismatchError, RegtopoError
from regtopo.oci import mediatype as mt
from regtopo.oci.digest import Digest
from tests.support.content import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_INDEX,
    Pusher,
    image,
    index,
)
from tests.support.proxy import (
    DROP,
    BlobStore,
    MakeProxy,
    Proxy,
    Reply,
    corrupt_blob,
    error_reply,
    gar_locations,
    inject,
    redirect_blobs,
    redirect_uploads,
    relative_locations,
    short_patch,
    strip_header,
)
from tests.support.registries import MakeRegistry, Registry, push_random_image, skopeo_digest

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]


@pytest.fixture
def engine() -> Iterator[CopyEngine]:
    engine = CopyEngine()
    yield engine
    engine.close()


def upload_paths(proxy: Proxy, method: str) -> list[str]:
    return [s.target for s in proxy.seen(method) if "upload" in s.path]


def test_c18_relative_location_is_resolved_against_the_response_url(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """C18: a relative upload Location is joined to the URL that sent it, query kept, `&digest=`."""
    source = make_registry_image(registry, "src/app")
    proxy = make_proxy(registry.url).rewrite(relative_locations())
    target = clients(proxy.host).repository("org/app")

    engine.copy(clients(registry.host).repository("src/app"), target, source, ["v1"])

    puts = upload_paths(proxy, "PUT")
    assert len(puts) == 2  # config and one layer
    for put in puts:
        path, _, query = put.partition("?")
        assert path.startswith("/v2/org/app/blobs/uploads/")
        assert query.startswith("_state=") and "&digest=sha256:" in query
    assert skopeo_or_http_digest(registry, "org/app:v1") == str(source)


def test_c18_relative_location_after_a_307_resolves_against_the_redirected_host(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """C18 variant: the POST is redirected to another host whose relative Location wins."""
    source = make_registry_image(registry, "src/app")
    second = make_proxy(registry.url).rewrite(relative_locations())
    first = make_proxy(registry.url).add(redirect_uploads(second))

    engine.copy(
        clients(registry.host).repository("src/app"),
        clients(first.host).repository("org/app"),
        source,
        ["v1"],
    )

    assert first.count("PUT", r"/v2/org/app/blobs/uploads/.*") == 0
    puts = upload_paths(second, "PUT")
    assert len(puts) == 2
    assert all("?_state=" in p and "&digest=sha256:" in p for p in puts)
    assert skopeo_or_http_digest(registry, "org/app:v1") == str(source)


def test_c18_chunked_locations_after_a_307_stay_on_the_redirected_host(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """C18's kind, chunked: every PATCH and the final PUT go to the host that sent the relative
    Location, its query kept and `&digest=` appended."""
    data = os.urandom(3500)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", data)], tag="v1")
    second = make_proxy(registry.url).rewrite(relative_locations())
    first = make_proxy(registry.url).add(redirect_uploads(second))

    engine.copy(
        clients(registry.host).repository("src/app"),
        clients(first.host, chunk_size=1000).repository("org/app"),
        Digest.parse(digest),
        ["v1"],
    )

    assert first.count("PATCH") == first.count("PUT", r".*/blobs/uploads/.*") == 0
    patches = second.seen("PATCH")
    assert len(patches) == 4 and all(p.status == 202 for p in patches)
    assert all("_state=" in p.target for p in patches)
    finals = upload_paths(second, "PUT")
    assert finals and all("?_state=" in p and "&digest=sha256:" in p for p in finals)


def test_c18_credentials_do_not_follow_an_upload_to_another_origin(
    basic_registry: Registry,
    make_registry: MakeRegistry,
    make_proxy: MakeProxy,
    clients: Any,
    engine: CopyEngine,
) -> None:
    """C18 variant under C19's and C21's rule: the upload POST is redirected to another origin
    that hands out the session; the registry's credentials go only to the registry's origin."""
    source = make_registry()
    digest = push_random_image(source, "src/app", "v1", layers=[700])
    creds = basic_registry.credentials
    # The other origin holds its own access, as a storage front end would.
    second = make_proxy(basic_registry.url, upstream_auth=creds).rewrite(relative_locations())
    first = make_proxy(basic_registry.url).add(redirect_uploads(second))

    engine.copy(
        clients(source.host).repository("src/app"),
        clients(first.host, creds).repository("org/app"),
        Digest.parse(digest),
        ["v1"],
    )

    at_second = second.seen()
    assert [s.method for s in at_second if s.method == "PUT"], "no upload reached the other host"
    assert [(s.method, s.path) for s in at_second if "authorization" in s.headers] == []
    assert any("authorization" in s.headers for s in first.seen("POST"))  # the registry has them


def test_c19_location_outside_v2_is_used_verbatim_with_credentials(
    basic_registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """C19: a GAR-style `/artifacts-uploads/...` Location is opaque; same origin keeps auth."""
    source = make_registry_image(basic_registry, "src/app")
    rule, rewrite = gar_locations()
    proxy = make_proxy(basic_registry.url).add(rule).rewrite(rewrite)
    creds = basic_registry.credentials

    engine.copy(
        clients(basic_registry.host, creds).repository("src/app"),
        clients(proxy.host, creds).repository("org/app"),
        source,
        ["v1"],
    )

    puts = proxy.seen("PUT", r"/artifacts-uploads/.*")
    assert len(puts) == 2
    for put in puts:
        assert put.path.startswith("/artifacts-uploads/namespaces/p/repositories/r/uploads/u")
        assert put.target.split("?", 1)[1].startswith("x=1&digest=sha256:")
        assert put.headers["authorization"].startswith("Basic ")
        assert put.status == 201
    assert proxy.count("PUT", r"/v2/.*/blobs/uploads/.*") == 0


def test_chunked_upload_sends_ranges_in_order_and_tracks_the_location(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """A blob above the chunk size goes up in PATCHes with Content-Range, then one PUT."""
    data = os.urandom(3500)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [(mt.OCI_MANIFEST.replace("manifest", "layer"), data)], tag="v1")
    proxy = make_proxy(registry.url)
    target = clients(proxy.host, chunk_size=1000).repository("org/app")

    engine.copy(clients(registry.host).repository("src/app"), target, Digest.parse(digest), ["v1"])

    ranges = [s.headers["content-range"] for s in proxy.seen("PATCH")]
    assert ranges == ["0-999", "1000-1999", "2000-2999", "3000-3499"]
    assert all(s.headers["content-type"] == "application/octet-stream" for s in proxy.seen("PATCH"))
    # each PATCH goes to the Location the previous answer gave (its _state changes)
    patch_targets = [s.target for s in proxy.seen("PATCH")]
    assert len(set(patch_targets)) == 4
    assert skopeo_or_http_digest(registry, "org/app:v1") == digest


def test_mount_answered_202_continues_with_that_upload_session(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """Within one registry regtopo mounts; a 202 means "not mounted": upload into that session."""
    source = make_registry_image(registry, "src/app")
    proxy = make_proxy(registry.url)

    def refuse_mounts(request: Any) -> Any:
        if request.method == "POST" and "mount" in request.query:
            return proxy.forward(request, request.path)  # plain POST: a new session, 202
        return None

    proxy.add(refuse_mounts)
    client = clients(proxy.host)
    stats = engine.copy(client.repository("src/app"), client.repository("org/app"), source, ["v1"])

    posts = proxy.seen("POST", r"/v2/org/app/blobs/uploads/")
    assert len(posts) == 2 and all(p.query["from"] == ["src/app"] for p in posts)
    assert all(p.status == 202 for p in posts)
    assert len(upload_paths(proxy, "PUT")) == 2
    assert (stats.blobs_mounted, stats.blobs_uploaded) == (0, 2)


def test_a_refused_mount_never_waits_on_its_own_pool(
    registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    """A copy inside one registry holds a blob's GET open while its upload goes up on the same
    connection pool. With every connection held by such a GET, the uploads would wait for the
    pool timeout: blob reads leave one connection free for them."""
    layers = [(mt.OCI_MANIFEST.replace("manifest", "layer"), os.urandom(2000)) for _ in range(6)]
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, layers, tag="v1")
    proxy = make_proxy(registry.url)

    def refuse_mounts(request: Any) -> Any:
        if request.method == "POST" and "mount" in request.query:
            return proxy.forward(request, request.path)
        return None

    proxy.add(refuse_mounts)
    client = clients(proxy.host, max_connections=2, timeout=5.0, retry_attempts=1)
    engine = CopyEngine(blob_workers=4)
    try:
        stats = engine.copy(
            client.repository("src/app"), client.repository("org/app"), Digest.parse(digest), ["v1"]
        )
    finally:
        engine.close()

    assert (stats.blobs_mounted, stats.blobs_uploaded) == (0, 7)
    assert skopeo_or_http_digest(registry, "org/app:v1") == digest


def test_mount_within_one_registry_sends_no_bytes(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    source = make_registry_image(registry, "src/app")
    proxy = make_proxy(registry.url)
    client = clients(proxy.host)

    stats = engine.copy(client.repository("src/app"), client.repository("org/app"), source, ["v1"])

    assert (stats.blobs_mounted, stats.blobs_uploaded, stats.bytes_sent) == (2, 0, 0)
    assert proxy.count("GET", r"/v2/src/app/blobs/.*") == 0
    assert proxy.count("PUT", r".*/blobs/uploads/.*") == 0


def test_blobs_present_at_the_target_are_skipped(
    registry: Registry, make_registry: MakeRegistry, clients: Any, engine: CopyEngine
) -> None:
    target_registry = make_registry()
    shared = os.urandom(2048)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", shared)], tag="v1")
    with Pusher(target_registry, "org/app") as pusher:
        pusher.blob(shared)

    stats = engine.copy(
        clients(registry.host).repository("src/app"),
        clients(target_registry.host).repository("org/app"),
        Digest.parse(digest),
        ["v1"],
    )

    assert (stats.blobs_present, stats.blobs_uploaded) == (1, 1)
    assert target_registry.count_requests("POST", r"/v2/org/app/blobs/uploads/") == 2  # 1 + ours


def test_corrupted_blob_aborts_the_image_and_tags_nothing(
    registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    """Size and digest are checked while streaming; a mismatch stops that image, untagged."""
    target_registry = make_registry()
    data = os.urandom(4096)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", data)], tag="v1")
    layer = "sha256:" + __import__("hashlib").sha256(data).hexdigest()
    source_proxy = make_proxy(registry.url).rewrite(corrupt_blob(layer))
    engine = CopyEngine()
    try:
        with pytest.raises(DigestMismatchError) as caught:
            engine.copy(
                clients(source_proxy.host).repository("src/app"),
                clients(target_registry.host).repository("org/app"),
                Digest.parse(digest),
                ["v1"],
            )
    finally:
        engine.close()

    assert f"expected {layer}" in caught.value.message
    target = clients(target_registry.host).repository("org/app")
    assert target.head_manifest("v1") is None
    assert target.head_manifest(digest) is None
    assert target_registry.count_requests("PUT", r"/v2/org/app/manifests/.*") == 0


def test_c21_blob_redirect_to_storage_drops_authorization(
    basic_registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    """C21: blob GET/HEAD 307 to another origin; no Authorization reaches it; copy succeeds."""
    source = make_registry_image(basic_registry, "org/app")
    creds = basic_registry.credentials
    store = make_proxy(basic_registry.url, cls=BlobStore, upstream_auth=creds)
    proxy = make_proxy(basic_registry.url).add(redirect_blobs(store))
    target_registry = make_registry()
    engine = CopyEngine()
    try:
        engine.copy(
            clients(proxy.host, creds).repository("org/app"),
            clients(target_registry.host).repository("mirror/app"),
            source,
            ["v1"],
        )
    finally:
        engine.close()

    assert store.count("GET") == 2  # config and layer, read from storage
    assert all("authorization" not in s.headers for s in store.seen())
    assert all(s.status == 200 for s in store.seen())
    redirected = [s for s in proxy.seen() if s.status == 307]
    assert len(redirected) == 2
    assert all(s.headers["authorization"].startswith("Basic ") for s in redirected)
    assert skopeo_or_http_digest(target_registry, "mirror/app:v1") == str(source)


def test_manifest_reads_send_the_full_accept_set(
    registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    make_registry_image(registry, "org/app")
    proxy = make_proxy(registry.url)
    repository = clients(proxy.host).repository("org/app")

    repository.head_manifest("v1")
    repository.get_manifest("v1")

    for seen in proxy.seen(path=r"/v2/org/app/manifests/v1"):
        accepted = {a.strip() for a in seen.headers["accept"].split(",")}
        assert {mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST} <= (
            accepted
        )


@pytest.mark.parametrize("head_has_digest", [True, False], ids=["head-keeps", "head-strips"])
def test_c16_missing_docker_content_digest_is_computed_from_the_bytes(
    registry: Registry,
    make_registry: MakeRegistry,
    make_proxy: MakeProxy,
    clients: Any,
    head_has_digest: bool,
) -> None:
    """C16: GET and PUT without Docker-Content-Digest (HEAD with or without): digests still right."""
    digest = make_registry_image(registry, "org/app")
    target_registry = make_registry()
    source_proxy = make_proxy(registry.url).rewrite(
        strip_header("Docker-Content-Digest", "GET"), strip_header("Docker-Content-Digest", "PUT")
    )
    target_proxy = make_proxy(target_registry.url).rewrite(
        strip_header("Docker-Content-Digest", "GET"), strip_header("Docker-Content-Digest", "PUT")
    )
    if not head_has_digest:
        source_proxy.rewrite(strip_header("Docker-Content-Digest", "HEAD"))
        target_proxy.rewrite(strip_header("Docker-Content-Digest", "HEAD"))
    source = clients(source_proxy.host).repository("org/app")
    target = clients(target_proxy.host).repository("org/app")

    head = source.head_manifest("v1")
    assert head is not None and head.digest == digest
    engine = CopyEngine()
    try:
        engine.copy(source, target, head.digest, ["v1"])
    finally:
        engine.close()

    landed = target.head_manifest("v1")
    assert landed is not None and landed.digest == digest
    assert all("docker-content-digest" not in s.headers for s in target_proxy.seen("PUT"))
    assert source_proxy.count("GET", r"/v2/org/app/manifests/v1") == (0 if head_has_digest else 1)


def test_c16_a_digest_header_that_disagrees_with_the_bytes_is_an_error(
    registry: Registry, make_proxy: MakeProxy, clients: Any
) -> None:
    make_registry_image(registry, "org/app")
    wrong = "sha256:" + "0" * 64

    def lie(request: Any, reply: Reply) -> Reply:
        reply.headers = {
            k: (wrong if k.lower() == "docker-content-digest" else v)
            for k, v in reply.headers.items()
        }
        return reply

    proxy = make_proxy(registry.url).rewrite(lie)
    with pytest.raises(RegtopoError) as caught:
        clients(proxy.host).repository("org/app").get_manifest("v1")
    assert f"the registry says {wrong} but the bytes hash to sha256:" in caught.value.message


def test_c03_mixed_index_children_keep_their_own_media_type_and_rejection_names_the_child(
    registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    """C03: OCI index over Docker schema2 children; each PUT carries the child's own type; a
    target refusing schema2 gets an error naming the child digest and type; no index pushed."""
    children = []
    with Pusher(registry, "org/app") as pusher:
        for arch in ("amd64", "arm64"):
            config = json.dumps({"architecture": arch, "os": "linux"}).encode()
            digest, raw = image(
                pusher,
                [(DOCKER_LAYER, os.urandom(300))],
                media_type=DOCKER_MANIFEST,
                config_type=DOCKER_CONFIG,
                config=config,
            )
            children.append(
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": digest,
                    "size": len(raw),
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        index_digest, _ = index(pusher, children, tag="v1")

    # First a target that accepts both: every PUT's Content-Type is that manifest's own type.
    good_registry = make_registry()
    good = make_proxy(good_registry.url)
    engine = CopyEngine()
    try:
        engine.copy(
            clients(registry.host).repository("org/app"),
            clients(good.host).repository("org/app"),
            Digest.parse(index_digest),
            ["v1"],
        )
        types = {s.path.rsplit("/", 1)[1]: s.headers["content-type"] for s in good.seen("PUT")}
        assert types[children[0]["digest"]] == DOCKER_MANIFEST
        assert types[children[1]["digest"]] == DOCKER_MANIFEST
        assert types[index_digest] == OCI_INDEX
        assert types["v1"] == OCI_INDEX
        assert skopeo_or_http_digest(good_registry, "org/app:v1") == index_digest

        # Then a target refusing Docker schema2 (Zot without docker2s2).
        strict_registry = make_registry()
        strict = make_proxy(strict_registry.url)

        def refuse_schema2(request: Any) -> Reply | None:
            if request.method == "PUT" and request.headers.get("content-type") == DOCKER_MANIFEST:
                return error_reply(400, "MANIFEST_INVALID", "manifest invalid")
            return None

        strict.add(refuse_schema2)
        with pytest.raises(CopyError) as caught:
            engine.copy(
                clients(registry.host).repository("org/app"),
                clients(strict.host).repository("org/app"),
                Digest.parse(index_digest),
                ["v1"],
            )
    finally:
        engine.close()

    message = caught.value.message
    assert children[0]["digest"] in message
    assert DOCKER_MANIFEST in message
    assert "org/app" in message and "MANIFEST_INVALID" in message
    assert strict.count("PUT", rf"/v2/org/app/manifests/({index_digest}|v1)") == 0


def test_oversize_manifest_refused_by_the_target_is_reported_clearly(
    registry: Registry, make_registry: MakeRegistry, make_proxy: MakeProxy, clients: Any
) -> None:
    digest = make_registry_image(registry, "org/app")
    target_registry = make_registry()
    proxy = make_proxy(target_registry.url).add(
        inject("PUT", r"/v2/.*/manifests/.*", Reply(413, {}, b"request entity too large"))
    )
    engine = CopyEngine()
    try:
        with pytest.raises(CopyError) as caught:
            engine.copy(
                clients(registry.host).repository("org/app"),
                clients(proxy.host).repository("org/app"),
                digest,
                ["v1"],
            )
    finally:
        engine.close()
    assert "the target refuses a manifest this large (413)" in caught.value.message
    assert str(digest) in caught.value.message
    assert proxy.count("PUT", r"/v2/.*/manifests/.*") == 1


# helpers


def make_registry_image(registry: Registry, repository: str) -> Digest:
    return Digest.parse(push_random_image(registry, repository, "v1", layers=[700]))


def skopeo_or_http_digest(registry: Registry, reference: str) -> str:
    """The digest at the registry per skopeo (an independent client) when installed."""
    from tests.support.registries import skopeo_binary

    if skopeo_binary():
        return skopeo_digest(registry, reference)
    import httpx

    repository, _, tag = reference.partition(":")
    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        headers={"Accept": mt.ACCEPT},
        auth=registry.credentials,
    )
    return "sha256:" + __import__("hashlib").sha256(response.content).hexdigest()


def test_chunk_whose_answer_was_lost_restarts_the_upload_once(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """The second chunk lands but its answer is dropped; the retry hits a stale session
    (2.8: BLOB_UPLOAD_INVALID), so the blob is uploaded again in a new session, once."""
    data = os.urandom(3500)
    with Pusher(registry, "src/app") as pusher:
        digest, _ = image(pusher, [("application/vnd.oci.image.layer.v1.tar", data)], tag="v1")
    proxy = make_proxy(registry.url)
    lost = iter(range(10))

    def second_patch(request: Any) -> Any:
        if request.method == "PATCH" and next(lost) == 1:
            proxy.forward(request)
            return DROP
        return None

    proxy.add(second_patch)
    target = clients(proxy.host, chunk_size=1000).repository("org/app")

    engine.copy(clients(registry.host).repository("src/app"), target, Digest.parse(digest), ["v1"])

    statuses = [(s.headers["content-range"], s.status) for s in proxy.seen("PATCH")]
    assert statuses[:3] == [("0-999", 202), ("1000-1999", 0), ("1000-1999", 404)]
    assert [r for r, _ in statuses[3:]] == ["0-999", "1000-1999", "2000-2999", "3000-3499"]
    assert proxy.count("POST", r"/v2/org/app/blobs/uploads/") == 3  # config, layer, restart
    assert skopeo_or_http_digest(registry, "org/app:v1") == digest


def test_a_chunk_the_registry_kept_only_part_of_is_resumed_from_the_confirmed_range(
    registry: Registry, make_proxy: MakeProxy, clients: Any, engine: CopyEngine
) -> None:
    """The registry confirms `Range: 0-1399` for the chunk sent as 1000-1999 (it kept 400 of
    its bytes): per the spec the client goes on from byte 1400, the rest of that chunk, and
    the blob lands with the right digest."""
    data = os.urandom(3500)
    with Pusher(registry, "src/app") as pusher:
        digest, raw = image(pusher, [("application/vnd.oci.image.layer.v1.tar", data)], tag="v1")
    proxy = make_proxy(registry.url)
    proxy.add(short_patch(proxy, which=1, keep=400))
    target = clients(proxy.host, chunk_size=1000).repository("org/app")

    engine.copy(clients(registry.host).repository("src/app"), target, Digest.parse(digest), ["v1"])

    patches = proxy.seen("PATCH")
    assert [(p.headers["content-range"], p.body_size) for p in patches] == [
        ("0-999", 1000),
        ("1000-1999", 1000),  # forwarded as 1000-1399
        ("1400-1999", 600),
        ("2000-2999", 1000),
        ("3000-3499", 500),
    ]
    assert all(p.status == 202 for p in patches)
    assert proxy.count("POST", r"/v2/org/app/blobs/uploads/") == 2  # no restart
    layer = json.loads(raw)["layers"][0]["digest"]
    blob = __import__("httpx").get(f"{registry.url}/v2/org/app/blobs/{layer}")
    assert blob.content == data
    assert skopeo_or_http_digest(registry, "org/app:v1") == digest
