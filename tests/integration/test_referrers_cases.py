"""Field cases C01, C10, C26, C28 and C30 (shared/cases/cases.md), against real registries.

Where a case needs a registry behaviour Distribution does not have, a small proxy in front of a
real process adds exactly that behaviour, and is named after it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from regtopo.oci.digest import Digest
from regtopo.registry.client import RegistryClient
from regtopo.registry.referrers import ReferrerFinder
from tests.support.artifacts import (
    EMPTY_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    fallback_index,
    get_manifest,
    push_cosign_signature,
    push_image,
    push_referrer,
    put_manifest,
    sha256,
    tag_digest,
    upload_blob,
)
from tests.support.cli import regtopo
from tests.support.cli import write_url_topology as write_topology
from tests.support.referrers_api import Answer, ForwardingProxy, ReferrersAPIProxy, Request
from tests.support.registries import MakeRegistry, Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

IN_TOTO = "application/vnd.in-toto+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def replicate(tmp_path: Path, source: str, target: str, tags: list[str], **extra: Any) -> Path:
    return write_topology(
        tmp_path,
        {"source": source, "target": target},
        [{"source": "source/app", "targets": "target/app", "tags": tags, **extra}],
    )


def planned(topology: Path) -> dict[str, Any]:
    out = topology.parent / "plan.json"
    regtopo(topology, "plan", "--out", str(out))
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def remote(url: str, repository: str = "app") -> Any:
    return RegistryClient("test", url.removeprefix("http://"), scheme="http").repository(repository)


# C01 -----------------------------------------------------------------------------------------


def test_c01_attestation_child_with_in_toto_layer_is_copied_as_opaque_bytes(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    """C01: an index with a platform child and a BuildKit attestation child (in-toto layer)."""
    source, target = make_registry(), make_registry()
    image = push_image(source.url, "app", None)
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1"}).encode()
    layer = {
        "mediaType": IN_TOTO,
        **upload_blob(source.url, "app", statement),
        "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
    }
    config = {"mediaType": OCI_CONFIG, **upload_blob(source.url, "app", b'{"os":"unknown"}')}
    attestation = put_manifest(
        source.url,
        "app",
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]},
    )
    index = put_manifest(
        source.url,
        "app",
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {**image.descriptor(), "platform": {"os": "linux", "architecture": "amd64"}},
                {
                    **attestation.descriptor(),
                    "platform": {"os": "unknown", "architecture": "unknown"},
                    "annotations": {
                        "vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": image.digest,
                    },
                },
            ],
        },
        tag="v1",
    )
    topology = replicate(tmp_path, source.url, target.url, ["v1"])

    plan = planned(topology)
    regtopo(topology, "apply", "--auto-approve")

    listed = plan["actions"][0]["referrers"]
    assert [(r["digest"], r["kind"], r["via"], r["subject"]) for r in listed] == [
        (attestation.digest, "attestation", "index", image.digest)
    ]
    assert tag_digest(target.url, "app", "v1") == index.digest
    blob = httpx.head(f"{target.url}/v2/app/blobs/{layer['digest']}")
    assert blob.status_code == 200
    assert blob.headers["docker-content-digest"] == layer["digest"]
    assert int(blob.headers["content-length"]) == layer["size"] == len(statement)


# C10 -----------------------------------------------------------------------------------------

THING = "application/vnd.example.thing.v1"


def thing_manifest(layer: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": THING,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
        "layers": [layer],
    }


def assert_holds_empty_config(registry: Registry) -> None:
    head = httpx.head(f"{registry.url}/v2/app/blobs/{EMPTY_DIGEST}")
    assert head.status_code == 200
    assert head.headers["docker-content-digest"] == EMPTY_DIGEST
    assert head.headers["content-length"] == "2"
    assert httpx.get(f"{registry.url}/v2/app/blobs/{EMPTY_DIGEST}").content == b"{}"


def test_c10_the_empty_config_blob_is_uploaded_even_though_the_manifest_inlines_it(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    """C10: inline `data` does not mean the target has the blob; artifactType and bytes kept."""
    source, target = make_registry(), make_registry()
    upload_blob(source.url, "app", b"{}")
    layer = {"mediaType": THING, **upload_blob(source.url, "app", b"twelve bytes")}
    artifact = put_manifest(source.url, "app", thing_manifest(layer), tag="thing")

    regtopo(replicate(tmp_path, source.url, target.url, ["thing"]), "apply", "--auto-approve")

    assert_holds_empty_config(target)
    copied = get_manifest(target.url, "app", "thing")
    assert copied.content == artifact.raw
    assert copied.json()["artifactType"] == THING


def test_c10_a_source_without_the_empty_blob_is_served_from_verified_inline_data(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    """C10: an OCI layout that never stored `{}`: the inline data hashes right, so it is sent."""
    layout = tmp_path / "layout" / "app"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    payload = b"twelve bytes"
    layer = {"mediaType": THING, "digest": sha256(payload), "size": len(payload)}
    raw = json.dumps(thing_manifest(layer), separators=(",", ":")).encode()
    for data in (payload, raw):
        (layout / "blobs" / "sha256" / sha256(data).split(":")[1]).write_bytes(data)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": OCI_MANIFEST,
        "digest": sha256(raw),
        "size": len(raw),
        "annotations": {"org.opencontainers.image.ref.name": "thing"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    target = make_registry()

    regtopo(replicate(tmp_path, "path:layout", target.url, ["thing"]), "apply", "--auto-approve")

    assert_holds_empty_config(target)
    assert tag_digest(target.url, "app", "thing") == sha256(raw)


class EmptyBlobServedAsZeroBytes(ForwardingProxy):
    """A source registry that serves the `{}` blob with no bytes at all (one vendor's bug)."""

    def intercept(self, request: Request) -> Answer | None:
        if request.method == "GET" and request.path.endswith(f"/blobs/{EMPTY_DIGEST}"):
            return Answer(200, {"content-type": "application/octet-stream"}, b"")
        return None


def test_c10_a_blob_shorter_than_its_descriptor_is_an_error_and_nothing_is_tagged(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    backend, target = make_registry(), make_registry()
    upload_blob(backend.url, "app", b"{}")
    layer = {"mediaType": THING, **upload_blob(backend.url, "app", b"twelve bytes")}
    artifact = put_manifest(backend.url, "app", thing_manifest(layer), tag="thing")

    with EmptyBlobServedAsZeroBytes(backend) as source:
        output = regtopo(
            replicate(tmp_path, source.url, target.url, ["thing"]),
            "apply",
            "--auto-approve",
            expect=(1,),
        )

    assert f"blob {EMPTY_DIGEST}" in output
    assert "received 0 bytes, descriptor says 2" in output
    assert tag_digest(target.url, "app", "thing") is None
    assert tag_digest(target.url, "app", artifact.digest) is None


class RefusesManifestsWithoutLayers(ForwardingProxy):
    """A target that answers 400 MANIFEST_INVALID to a manifest with no layers (C10 survey)."""

    def intercept(self, request: Request) -> Answer | None:
        if request.method == "PUT" and "/manifests/" in request.path:
            if json.loads(request.body).get("layers") == []:
                body = {"errors": [{"code": "MANIFEST_INVALID", "message": "no layers"}]}
                return Answer(400, {"content-type": "application/json"}, json.dumps(body).encode())
        return None


def test_c10_a_target_rejection_names_the_artifact_and_the_server_error_code(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    source, backend = make_registry(), make_registry()
    upload_blob(source.url, "app", b"{}")
    document = thing_manifest({})
    document["layers"] = []
    artifact = put_manifest(source.url, "app", document, tag="thing")

    with RefusesManifestsWithoutLayers(backend) as target:
        output = regtopo(
            replicate(tmp_path, source.url, target.url, ["thing"]),
            "apply",
            "--auto-approve",
            expect=(1,),
        )

    assert f"pushing manifest {artifact.digest}" in output
    assert "400 MANIFEST_INVALID: no layers" in output


# C26 -----------------------------------------------------------------------------------------


class FallbackTagResolvesToSubject(ForwardingProxy):
    """GitLab's quirk: reading `manifests/sha256-<hex>` resolves it as the digest `sha256:<hex>`;
    a PUT under that tag stores the tag as sent.

    Worse than GitLab, the tag list also names `sha256-<hex>` for each digest in `listed`, so
    the client really does fetch it (regtopo reads fallback tags the tag list names).
    """

    def __init__(self, backend: Registry, listed: list[str]) -> None:
        self.listed = listed
        super().__init__(backend)

    def intercept(self, request: Request) -> Answer | None:
        name = request.path.rsplit("/", 1)[-1]
        reads = request.method in ("GET", "HEAD")
        if reads and "/manifests/sha256-" in request.path and len(name) == len("sha256-") + 64:
            request.path = request.path.replace("/manifests/sha256-", "/manifests/sha256:")
            return self.forward(request)
        if request.path.endswith("/tags/list"):
            answer = self.forward(request)
            document = json.loads(answer.body)
            document["tags"] += ["sha256-" + d.split(":", 1)[1] for d in self.listed]
            return Answer(200, {"content-type": "application/json"}, json.dumps(document).encode())
        return None


def test_c26_a_fallback_tag_that_resolves_to_the_subject_lists_no_referrers(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    backend, target = make_registry(), make_registry()
    amd64 = push_image(backend.url, "app", None, payload=b"amd64")
    arm64 = push_image(backend.url, "app", None, payload=b"arm64")
    index = put_manifest(
        backend.url,
        "app",
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [amd64.descriptor(), arm64.descriptor()],
        },
        tag="v1",
    )

    with FallbackTagResolvesToSubject(backend, [index.digest]) as source:
        served = get_manifest(source.url, "app", f"sha256-{index.hex}")
        assert served.headers["docker-content-digest"] == index.digest  # the quirk is live

        found = ReferrerFinder().find(
            remote(source.url), Digest.parse(index.digest), [Digest.parse(amd64.digest)]
        )
        topology = replicate(tmp_path, source.url, target.url, ["v1"])
        plan = planned(topology)
        regtopo(topology, "apply", "--auto-approve")

    assert found == []
    assert plan["actions"][0]["referrers"] == []
    assert tag_digest(target.url, "app", "v1") == index.digest
    tags = httpx.get(f"{target.url}/v2/app/tags/list").json()["tags"]
    assert tags == ["v1"]


def test_c26_at_a_target_with_the_quirk_the_fallback_tag_lists_only_the_referrers(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    """The same quirk at the target while regtopo writes the fallback tag: reading the tag
    back serves the subject index, whose children must never be merged in as referrers."""
    backend = make_registry()
    with ReferrersAPIProxy(make_registry()) as source:
        amd64 = push_image(source.url, "app", None, payload=b"amd64")
        arm64 = push_image(source.url, "app", None, payload=b"arm64")
        index = put_manifest(
            source.url,
            "app",
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [amd64.descriptor(), arm64.descriptor()],
            },
            tag="v1",
        )
        sbom = push_referrer(
            source.url, "app", index, artifact_type="application/spdx+json", payload=b"{}"
        )
        with FallbackTagResolvesToSubject(backend, []) as target:
            regtopo(replicate(tmp_path, source.url, target.url, ["v1"]), "apply", "--auto-approve")

    assert tag_digest(backend.url, "app", "v1") == index.digest
    written = fallback_index(backend.url, "app", index)
    assert written is not None
    assert [entry["digest"] for entry in written["manifests"]] == [sbom.digest]


def test_c26_a_listed_fallback_tag_the_target_cannot_serve_is_refused_not_overwritten(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    """Another writer's entries under a tag that cannot be read back would be lost by a
    write: the copy of the referrer is refused, and the tag keeps what it held."""
    backend = make_registry()
    with ReferrersAPIProxy(make_registry()) as source:
        image = push_image(source.url, "app", "v1")
        push_referrer(source.url, "app", image, artifact_type="application/spdx+json", payload=b"1")
        theirs = push_referrer(
            backend.url, "app", image, artifact_type="application/example", payload=b"2"
        )
        put_manifest(
            backend.url,
            "app",
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [theirs.descriptor()]},
            tag=f"sha256-{image.hex}",
        )
        with FallbackTagResolvesToSubject(backend, []) as target:
            output = regtopo(
                replicate(tmp_path, source.url, target.url, ["v1"]),
                "apply",
                "--auto-approve",
                expect=(1,),
            )

    assert (
        "the registry answers this tag with the subject itself, so the entries others stored "
        "there cannot be read and merged" in output
    )
    written = fallback_index(backend.url, "app", image)
    assert written is not None
    assert [entry["digest"] for entry in written["manifests"]] == [theirs.digest]


# C28 -----------------------------------------------------------------------------------------


def test_c28_fallback_entries_carry_artifact_type_and_all_annotations_and_keep_others(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    target = make_registry()
    with ReferrersAPIProxy(make_registry()) as source:
        image = push_image(source.url, "app", "v1")
        annotations = {
            "dev.sigstore.bundle.content": "x",
            "org.opencontainers.image.created": "2026-12-03T10:00:00Z",
        }
        bundle = push_referrer(
            source.url,
            "app",
            image,
            artifact_type=BUNDLE,
            payload=b'{"bundle":1}',
            annotations=annotations,
        )
        # Another tool already listed its own referrer at the target.
        push_image(target.url, "app", "v1")
        other = push_referrer(
            target.url, "app", image, artifact_type="application/other", payload=b"o"
        )
        other_entry = {**other.descriptor(), "artifactType": "application/other"}
        put_manifest(
            target.url,
            "app",
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [other_entry]},
            tag=f"sha256-{image.hex}",
        )

        regtopo(replicate(tmp_path, source.url, target.url, ["v1"]), "apply", "--auto-approve")

    index = fallback_index(target.url, "app", image)
    assert index is not None
    assert index["manifests"] == [
        other_entry,
        {
            "mediaType": OCI_MANIFEST,
            "digest": bundle.digest,
            "size": bundle.size,
            "artifactType": BUNDLE,
            "annotations": annotations,
        },
    ]
    filtered = ReferrerFinder().find(
        remote(target.url), Digest.parse(image.digest), artifact_types=[BUNDLE]
    )
    assert [str(r.descriptor.digest) for r in filtered] == [bundle.digest]


# C30 -----------------------------------------------------------------------------------------


def test_c30_cosign_sig_tags_in_docker_and_oci_media_types_arrive_with_the_same_digests(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    source, target = make_registry(), make_registry()
    docker_image = push_image(source.url, "app", "docker", payload=b"d")
    oci_image = push_image(source.url, "app", "oci", payload=b"o")
    docker_sig = push_cosign_signature(source.url, "app", docker_image, docker=True)
    oci_sig = push_cosign_signature(source.url, "app", oci_image, docker=False)
    topology = replicate(tmp_path, source.url, target.url, ["docker", "oci"])

    plan = planned(topology)
    regtopo(topology, "apply", "--auto-approve")

    for image, signature in ((docker_image, docker_sig), (oci_image, oci_sig)):
        tag = f"sha256-{image.hex}.sig"
        assert tag_digest(target.url, "app", tag) == tag_digest(source.url, "app", tag)
        assert tag_digest(target.url, "app", tag) == signature.digest
        copied = get_manifest(target.url, "app", tag)
        assert copied.content == signature.raw
        assert copied.headers["content-type"] == signature.media_type
        action = next(a for a in plan["actions"] if a["content"]["digest"] == image.digest)
        assert [(r["subject"], r["digest"], r["tag"], r["kind"]) for r in action["referrers"]] == [
            (image.digest, signature.digest, tag, "signature")
        ]
