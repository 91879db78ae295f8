"""Manifests that broke other copiers: foreign layers, zstd, sha512 references, schema1.

Planned and applied through the topology, session, planner and executor, against real
registries (with `tests.support.proxy` where Distribution cannot play the vendor).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from regtopo.apply.copy import CopyEngine, CopyError
from regtopo.apply.executor import Executor, Outcome
from regtopo.errors import ManifestError
from regtopo.oci import mediatype as mt
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest, schema1_payload
from regtopo.plan.actions import ActionKind, Plan
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.registry.client import RegistryClient
from regtopo.registry.layout import LayoutRepository
from regtopo.render.text import render_plan
from regtopo.topology.loader import load
from tests.support.cli import run
from tests.support.content import (
    DOCKER_CONFIG,
    DOCKER_FOREIGN,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    Pusher,
    descriptor,
    image,
    index,
    sha256,
)
from tests.support.proxy import (
    MakeProxy,
    Proxy,
    ProxyRequest,
    Reply,
    refuse_schema1,
    refuse_sha512_manifests,
    require_foreign_blobs,
)
from tests.support.registries import MakeRegistry, Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

FOREIGN_URLS = {"validation": {"manifests": {"urls": {"allow": ["^https?://"]}}}}


def topology(tmp_path: Path, registries: dict[str, str], replication: dict[str, Any]) -> Path:
    document = {
        "version": 1,
        "registries": {name: {"host": f"http://{host}"} for name, host in registries.items()},
        "replications": [replication],
    }
    path = tmp_path / "topology.yaml"
    path.write_text(json.dumps(document))
    return path


def plan_and_apply(path: Path) -> tuple[Plan, Any]:
    loaded = load(path)
    session = Session(loaded.topology, base_dir=path.parent)
    try:
        plan = Planner(loaded, session).plan()
        report = Executor(session).apply(plan)
    finally:
        session.close()
    return plan, report


def registry_digest(registry: Registry | Proxy, repository: str, reference: str) -> str | None:
    client = RegistryClient("check", registry.host, scheme="http")
    try:
        head = client.repository(repository).head_manifest(reference)
    finally:
        client.close()
    return str(head.digest) if head else None


def foreign_image(registry: Registry) -> tuple[str, str]:
    """A Windows-style image: one foreign layer (its blob also at the source), one normal."""
    foreign, normal = os.urandom(3000), os.urandom(1000)
    with Pusher(registry, "win/app") as pusher:
        pusher.blob(foreign)
        digest, _ = image(
            pusher,
            [(DOCKER_LAYER, normal)],
            media_type=DOCKER_MANIFEST,
            config_type=DOCKER_CONFIG,
            extra_layers=[
                descriptor(
                    DOCKER_FOREIGN,
                    foreign,
                    urls=[f"https://foreign.example/blobs/{sha256(foreign)}"],
                )
            ],
            tag="ltsc",
        )
    return digest, sha256(foreign)


def test_c04_foreign_layer_is_flagged_and_skipped_by_default_manifest_unchanged(
    make_registry: MakeRegistry, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    """C04 default: the plan flags the layer, the blob is not sent, the bytes stay the same;
    a target that demands the blob gets the specific "requires non-distributable" error."""
    source = make_registry(extra_config=FOREIGN_URLS)
    relaxed = make_registry(extra_config=FOREIGN_URLS)
    strict_registry = make_registry(extra_config=FOREIGN_URLS)
    strict = make_proxy(strict_registry.url)
    strict.add(require_foreign_blobs(strict))
    digest, foreign = foreign_image(source)
    path = topology(
        tmp_path,
        {"src": source.host, "relaxed": relaxed.host, "strict": strict.host},
        {
            "source": "src/win/app",
            "targets": ["relaxed/win/app", "strict/win/app"],
            "tags": ["ltsc"],
        },
    )

    plan, report = plan_and_apply(path)

    assert [a.kind for a in plan.actions] == [ActionKind.COPY, ActionKind.COPY]
    assert all(a.non_distributable == [foreign] for a in plan.actions)
    assert all("1 non-distributable layer(s) are not sent" in a.reason for a in plan.actions)
    outcomes = {r.action.target.registry: r for r in report.results}
    assert outcomes["relaxed"].outcome is Outcome.DONE
    assert registry_digest(relaxed, "win/app", "ltsc") == digest
    assert relaxed.count_requests("HEAD", rf"/v2/win/app/blobs/{foreign}") == 0
    assert outcomes["strict"].outcome is Outcome.FAILED
    assert "the target requires non-distributable blobs" in outcomes["strict"].message
    assert foreign[:19] in outcomes["strict"].message
    assert registry_digest(strict, "win/app", "ltsc") is None
    # The refusal names the foreign digest: nothing to wait for, one PUT and no retries.
    assert strict.count("PUT", r"/v2/win/app/manifests/.*") == 1


def test_c04_include_non_distributable_uploads_the_blob_and_keeps_the_digest(
    make_registry: MakeRegistry, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = make_registry(extra_config=FOREIGN_URLS)
    strict_registry = make_registry(extra_config=FOREIGN_URLS)
    strict = make_proxy(strict_registry.url)
    strict.add(require_foreign_blobs(strict))
    digest, foreign = foreign_image(source)
    path = topology(
        tmp_path,
        {"src": source.host, "strict": strict.host},
        {
            "source": "src/win/app",
            "targets": ["strict/win/app"],
            "tags": ["ltsc"],
            "include_non_distributable": True,
        },
    )

    plan, report = plan_and_apply(path)

    (action,) = plan.actions
    assert "are sent (include_non_distributable)" in action.reason
    assert action.blobs_to_send == 3
    assert [r.outcome for r in report.results] == [Outcome.DONE]
    assert registry_digest(strict, "win/app", "ltsc") == digest
    assert strict.count("PUT", r"/v2/win/app/blobs/uploads/.+") == 3
    assert strict_registry.count_requests("HEAD", rf"/v2/win/app/blobs/{foreign}") >= 1


def test_c06_zstd_layers_in_docker_and_oci_manifests_copy_with_identical_digests(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """C06: unusual layer types are opaque: bytes and digests unchanged, types shown verbatim."""
    source, target = make_registry(), make_registry()
    docker_zstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
    oci_zstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    with Pusher(source, "org/app") as pusher:
        docker_digest, _ = image(
            pusher,
            [(DOCKER_LAYER, os.urandom(500)), (docker_zstd, os.urandom(600))],
            media_type=DOCKER_MANIFEST,
            config_type=DOCKER_CONFIG,
            tag="docker",
        )
        oci_digest, _ = image(pusher, [(oci_zstd, os.urandom(700))], tag="oci")
    path = topology(
        tmp_path,
        {"src": source.host, "dst": target.host},
        {"source": "src/org/app", "targets": ["dst/org/app"], "tags": ["docker", "oci"]},
    )

    plan, report = plan_and_apply(path)

    layers = {a.source.tag: a.content.layer_media_types for a in plan.actions if a.content}
    assert layers == {"docker": [DOCKER_LAYER, docker_zstd], "oci": [oci_zstd]}
    text = render_plan(plan)
    assert f"layers: {DOCKER_LAYER}, {docker_zstd}" in text
    assert f"layers: {oci_zstd}" in text
    assert [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]
    assert registry_digest(target, "org/app", "docker") == docker_digest
    assert registry_digest(target, "org/app", "oci") == oci_digest


def sha512_layout(root: Path) -> tuple[Digest, bytes]:
    """An OCI layout whose tag `v1` names its manifest by sha512 (its blobs are sha256)."""
    repository = root / "org" / "app"
    (repository / "blobs" / "sha256").mkdir(parents=True)
    (repository / "blobs" / "sha512").mkdir(parents=True)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    layer = os.urandom(800)
    for blob in (config, layer):
        (repository / "blobs" / "sha256" / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": descriptor(mt.OCI_CONFIG, config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        }
    ).encode()
    digest = Digest("sha512", hashlib.sha512(manifest).hexdigest())
    (repository / "blobs" / "sha512" / digest.encoded).write_bytes(manifest)
    (repository / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": str(digest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "v1"},
    }
    (repository / "index.json").write_text(
        json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [entry]})
    )
    return digest, manifest


def test_c07_sha512_manifest_is_pushed_under_sha512_and_a_refusal_stops_without_a_tag(
    registry: Registry, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    """C07: the sha512 reference is kept; "does not accept sha512 manifest references" when
    refused, and no silent tag-only push."""
    digest, raw = sha512_layout(tmp_path / "layout")
    assert len(digest.encoded) == 128
    assert Digest.parse(str(digest)) == digest
    source = LayoutRepository("layout", tmp_path / "layout", "org/app")
    manifest = source.get_manifest("v1")
    assert manifest is not None and manifest.digest == digest and manifest.raw == raw

    proxy = make_proxy(registry.url).add(refuse_sha512_manifests())
    client = RegistryClient("target", proxy.host, scheme="http")
    engine = CopyEngine()
    try:
        with pytest.raises(CopyError) as caught:
            engine.copy(source, client.repository("org/app"), digest, ["v1"])
    finally:
        engine.close()
        client.close()

    assert "the target does not accept sha512 manifest references" in caught.value.message
    puts = proxy.seen("PUT", r"/v2/org/app/manifests/.*")
    assert [p.path for p in puts] == [f"/v2/org/app/manifests/{digest}"]
    assert proxy.count("PUT", r"/v2/org/app/manifests/v1") == 0
    assert registry_digest(registry, "org/app", "v1") is None


# -- schema1 ---------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_kid(key: ec.EllipticCurvePublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


def signed_schema1(name: str, tag: str, layer_digest: str) -> bytes:
    """A signed schema1 manifest the way libtrust writes one (docker 1.x `push`)."""
    payload = json.dumps(
        {
            "schemaVersion": 1,
            "name": name,
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": layer_digest}],
            "history": [
                {"v1Compatibility": json.dumps({"id": "a" * 64, "created": "2016-01-01T00:00:00Z"})}
            ],
        },
        indent=3,
    ).encode()
    close = payload.rstrip().rfind(b"}")
    format_length = len(payload[:close].rstrip())
    tail = payload[format_length:]
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    protected = _b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": _b64url(tail),
                "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()
    )
    der = key.sign(f"{protected}.{_b64url(payload)}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = {
        "header": {
            "jwk": {
                "crv": "P-256",
                "kid": _libtrust_kid(key.public_key()),
                "kty": "EC",
                "x": _b64url(numbers.x.to_bytes(32, "big")),
                "y": _b64url(numbers.y.to_bytes(32, "big")),
            },
            "alg": "ES256",
        },
        "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    signatures = json.dumps([signature], indent=3).replace("\n", "\n   ")
    return payload[:format_length] + b',\n   "signatures": ' + signatures.encode() + b"\n}"


SCHEMA1_ENABLED = {"compatibility": {"schema1": {"enabled": True}}}


def test_c09_signed_schema1_digest_covers_the_payload_without_signatures(
    make_registry: MakeRegistry,
) -> None:
    """C09 fixture check: Distribution (schema1 enabled) verifies our signed manifest and
    names it by a digest equal to regtopo's, computed without the JWS signature block."""
    source = make_registry(extra_config=SCHEMA1_ENABLED)
    layer = os.urandom(400)
    with Pusher(source, "old/app") as pusher:
        pusher.blob(layer)
        raw = signed_schema1("old/app", "v1", sha256(layer))
        response = pusher.client.put(
            f"{source.url}/v2/old/app/manifests/v1",
            content=raw,
            headers={"Content-Type": mt.DOCKER_SCHEMA1_SIGNED},
        )
    assert response.status_code == 201, response.text
    served = response.headers["Docker-Content-Digest"]

    assert served == sha256(schema1_payload(raw)) != sha256(raw)
    client = RegistryClient("old", source.host, scheme="http")
    try:
        manifest = client.repository("old/app").get_manifest("v1")
        by_digest = client.repository("old/app").get_manifest(served)
    finally:
        client.close()
    assert manifest is not None and by_digest is not None
    assert str(manifest.digest) == served and manifest.kind == "schema1"
    # 2.8 serves a freshly assembled signature block; the payload and so the digest hold
    assert schema1_payload(manifest.raw) == schema1_payload(by_digest.raw)
    assert str(by_digest.digest) == served
    assert Manifest.parse(raw, mt.DOCKER_SCHEMA1_SIGNED).digest == Digest.parse(served)


def test_c09_schema1_source_is_planned_as_not_replicable_and_never_pushed(
    make_registry: MakeRegistry, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    """C09: detected before pushing; the plan says it cannot be replicated by digest; a copy
    attempt stops before any PUT (so a target's opaque 500 cannot start a retry loop)."""
    source = make_registry(extra_config=SCHEMA1_ENABLED)
    target_registry = make_registry()
    target = make_proxy(target_registry.url).add(refuse_schema1(500))
    layer = os.urandom(400)
    with Pusher(source, "old/app") as pusher:
        pusher.blob(layer)
        raw = signed_schema1("old/app", "v1", sha256(layer))
        pusher.client.put(
            f"{source.url}/v2/old/app/manifests/v1",
            content=raw,
            headers={"Content-Type": mt.DOCKER_SCHEMA1_SIGNED},
        ).raise_for_status()
    path = topology(
        tmp_path,
        {"src": source.host, "dst": target.host},
        {"source": "src/old/app", "targets": ["dst/old/app"], "tags": ["v1"]},
    )

    plan, report = plan_and_apply(path)

    (action,) = plan.actions
    assert action.kind is ActionKind.SKIPPED
    assert action.content is not None and action.content.kind == "schema1"
    assert action.reason.startswith("cannot be replicated by digest")
    assert report.results == []

    source_client = RegistryClient("src", source.host, scheme="http")
    target_client = RegistryClient("dst", target.host, scheme="http")
    engine = CopyEngine()
    try:
        with pytest.raises(ManifestError) as caught:
            engine.copy(
                source_client.repository("old/app"),
                target_client.repository("old/app"),
                Digest.parse(sha256(schema1_payload(raw))),
                ["v1"],
            )
    finally:
        engine.close()
        source_client.close()
        target_client.close()
    assert "cannot be replicated by digest" in caught.value.message
    assert target.count("PUT") == 0


def test_c09_a_schema1_child_of_a_manifest_list_stops_the_copy_before_any_push(
    make_registry: MakeRegistry, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    """C09's kind one level down: a manifest list whose amd64 child is signed schema1. The
    plan names the child; a copy attempt pushes nothing, not even the list's other child."""
    source = make_registry(extra_config=SCHEMA1_ENABLED)
    target = make_proxy(make_registry().url)
    layer = os.urandom(400)
    with Pusher(source, "old/app") as pusher:
        pusher.blob(layer)
        raw = signed_schema1("old/app", "amd64", sha256(layer))
        response = pusher.client.put(
            f"{source.url}/v2/old/app/manifests/amd64",
            content=raw,
            headers={"Content-Type": mt.DOCKER_SCHEMA1_SIGNED},
        )
        response.raise_for_status()
        old = response.headers["Docker-Content-Digest"]
        good, good_raw = image(
            pusher,
            [(DOCKER_LAYER, os.urandom(300))],
            media_type=DOCKER_MANIFEST,
            config_type=DOCKER_CONFIG,
        )
        listed, _ = index(
            pusher,
            [
                {"mediaType": DOCKER_MANIFEST, "digest": good, "size": len(good_raw)},
                {"mediaType": mt.DOCKER_SCHEMA1_SIGNED, "digest": old, "size": len(raw)},
            ],
            media_type=mt.DOCKER_MANIFEST_LIST,
            tag="v1",
        )
    path = topology(
        tmp_path,
        {"src": source.host, "dst": target.host},
        {"source": "src/old/app", "targets": ["dst/old/app"], "tags": ["v1"]},
    )

    plan, report = plan_and_apply(path)

    (action,) = plan.actions
    assert action.kind is ActionKind.SKIPPED
    assert action.reason == (
        f"cannot be replicated by digest: its child {Digest.parse(old).short} is schema1; "
        "Docker schema1 manifests are refused by current registries, and converting one "
        "changes its digest"
    )
    assert report.results == []

    source_client = RegistryClient("src", source.host, scheme="http")
    target_client = RegistryClient("dst", target.host, scheme="http")
    engine = CopyEngine()
    try:
        with pytest.raises(ManifestError) as caught:
            engine.copy(
                source_client.repository("old/app"),
                target_client.repository("old/app"),
                Digest.parse(listed),
                ["v1"],
            )
    finally:
        engine.close()
        source_client.close()
        target_client.close()
    assert f"its child {old} is Docker schema1" in caught.value.message
    assert target.count("PUT") == target.count("POST") == 0


def test_c07_plan_compares_digests_in_the_source_algorithm(
    registry: Registry, tmp_path: Path
) -> None:
    """C07: a target naming the same bytes by sha256 is in sync with a sha512 source."""
    digest, raw = sha512_layout(tmp_path / "layout")
    document = json.loads(raw)
    blobs = tmp_path / "layout" / "org" / "app" / "blobs" / "sha256"
    with Pusher(registry, "org/app") as pusher:
        for entry in [document["config"], *document["layers"]]:
            pusher.blob((blobs / entry["digest"].split(":")[1]).read_bytes())
        pusher.manifest(raw, mt.OCI_MANIFEST, "v1")
    path = tmp_path / "topology.yaml"
    path.write_text(
        json.dumps(
            {
                "registries": {
                    "layout": {"path": str(tmp_path / "layout")},
                    "dst": {"host": f"http://{registry.host}"},
                },
                "replications": [
                    {"source": "layout/org/app", "targets": ["dst/org/app"], "tags": ["v1"]}
                ],
            }
        )
    )

    plan, report = plan_and_apply(path)

    (action,) = plan.actions
    assert action.kind is ActionKind.IN_SYNC
    assert action.content is not None and action.content.digest == str(digest)
    assert action.target_digest_before == str(digest)
    assert report.results == []


class _ForeignHost:
    """A plain HTTP server standing in for the host a foreign layer's `urls` name."""

    def __init__(self, root: Path) -> None:
        import functools
        import http.server
        import threading

        self.authorization_seen: list[str] = []
        seen = self.authorization_seen

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if "Authorization" in self.headers:
                    seen.append(self.headers["Authorization"])
                super().do_GET()

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("served", ["exact", "corrupted"])
def test_c04_an_included_foreign_layer_the_source_lacks_comes_from_its_urls_verified(
    make_registry: MakeRegistry, make_proxy: MakeProxy, tmp_path: Path, served: str
) -> None:
    """C04 opt-in: the source does not hold the foreign blob; regtopo fetches it from the
    descriptor's `urls` (sending no credentials there), verifies digest and size, uploads it,
    and the manifest digest is unchanged. Bytes that do not match are refused, nothing tagged."""
    source = make_registry(extra_config=FOREIGN_URLS)
    strict_registry = make_registry(extra_config=FOREIGN_URLS)
    strict = make_proxy(strict_registry.url)
    strict.add(require_foreign_blobs(strict))
    foreign, normal = os.urandom(3000), os.urandom(1000)
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "layer").write_bytes(
        foreign if served == "exact" else foreign[:-1] + b"\x00"
    )
    host = _ForeignHost(tmp_path / "blobs")
    try:
        with Pusher(source, "win/app") as pusher:
            digest, _ = image(
                pusher,
                [(DOCKER_LAYER, normal)],
                media_type=DOCKER_MANIFEST,
                config_type=DOCKER_CONFIG,
                extra_layers=[
                    descriptor(
                        DOCKER_FOREIGN,
                        foreign,
                        urls=[f"{host.url}/missing", f"{host.url}/layer"],
                    )
                ],
                tag="ltsc",
            )
        path = topology(
            tmp_path,
            {"src": source.host, "strict": strict.host},
            {
                "source": "src/win/app",
                "targets": ["strict/win/app"],
                "tags": ["ltsc"],
                "include_non_distributable": True,
            },
        )

        _, report = plan_and_apply(path)
    finally:
        host.close()

    [result] = report.results
    assert host.authorization_seen == []
    if served == "exact":
        assert result.outcome is Outcome.DONE, result.message
        assert registry_digest(strict, "win/app", "ltsc") == digest
    else:
        assert result.outcome is Outcome.FAILED
        assert f"foreign blob {sha256(foreign)}" in result.message
        assert registry_digest(strict, "win/app", "ltsc") is None


def oversize_manifest(registry: Registry, repository: str) -> tuple[bytes, str]:
    """A valid OCI manifest of 5 MiB (annotations pad it), its blobs pushed, itself not."""
    layer = os.urandom(500)
    with Pusher(registry, repository) as pusher:
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        pusher.blob(config)
        pusher.blob(layer)
    document = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        "annotations": {"padding": ""},
    }
    skeleton = len(json.dumps(document).encode())
    document["annotations"] = {"padding": "x" * (5 * 1024 * 1024 - skeleton)}
    raw = json.dumps(document).encode()
    assert len(raw) == 5 * 1024 * 1024
    return raw, sha256(raw)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_an_oversize_source_manifest_is_refused_unread_and_nothing_is_pushed(
    make_registry: MakeRegistry, make_proxy: MakeProxy, tmp_path: Path, framing: str
) -> None:
    """A source serving a 5 MiB manifest (above the 4 MiB every registry must accept): plan
    and copy stop naming the manifest, its size and the limit; the target sees no request
    that writes. regtopo never reads such a body whole: a declared Content-Length is refused
    before the body, and a body without one (chunked, here endless) is cut off past the
    limit, so the server cannot send much more than the limit before regtopo hangs up."""
    source_registry = make_registry()
    target_registry = make_registry()
    raw, digest = oversize_manifest(source_registry, "src/app")
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        piece = raw[: 64 * 1024]
        yield raw
        while sum(sent) < 256 * 1024 * 1024:  # a bound, so a failing test ends
            sent.append(len(piece))
            yield piece

    def serve_oversize(request: ProxyRequest) -> Reply | None:
        if request.method not in ("GET", "HEAD") or not re.fullmatch(
            rf"/v2/src/app/manifests/(v1|{digest})", request.path
        ):
            return None
        headers = {"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": digest}
        if framing == "chunked":
            # No length anywhere: HEAD has none, so regtopo reads the manifest to hash it.
            del headers["Docker-Content-Digest"]
            if request.method == "HEAD":
                return Reply(200, headers)
            return Reply(200, headers, stream=endless())
        return Reply(200, headers, raw)

    source = make_proxy(source_registry.url).add(serve_oversize)
    target = make_proxy(target_registry.url)
    path = topology(
        tmp_path,
        {"src": source.host, "dst": target.host},
        {"source": "src/src/app", "targets": ["dst/src/app"], "tags": ["v1"]},
    )

    result = run("apply", "--auto-approve", str(path))

    assert result.exit_code != 0
    message = " ".join((result.stdout + result.stderr).split())
    assert "src/src/app:v1" in message, message
    assert "4194304" in message and "4 MiB" in message
    if framing == "content-length":
        assert f"{len(raw)} bytes" in message
    else:
        assert "more than 4194304 bytes" in message
    assert [s.method for s in target.seen() if s.method not in ("GET", "HEAD")] == []

    source_client = RegistryClient("src", source.host, scheme="http")
    target_client = RegistryClient("dst", target.host, scheme="http")
    engine = CopyEngine()
    try:
        with pytest.raises(ManifestError) as caught:
            engine.copy(
                source_client.repository("src/app"),
                target_client.repository("src/app"),
                Digest.parse(digest),
                ["v1"],
            )
    finally:
        engine.close()
        source_client.close()
        target_client.close()
    assert f"src/src/app:{digest}" in caught.value.message
    assert "exceeds the 4194304-byte (4 MiB) limit" in caught.value.message
    assert [s.method for s in target.seen() if s.method not in ("GET", "HEAD")] == []
    if framing == "chunked":
        # One request in all, never retried: the limit, plus what socket buffers took.
        assert len(source.seen("GET", r"/v2/src/app/manifests/.*")) == 2  # plan, then copy
        assert sum(sent) < 32 * 1024 * 1024
