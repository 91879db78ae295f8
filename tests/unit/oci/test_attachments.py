"""Classifying what comes along with a manifest, and the fallback index entry it gets."""

from __future__ import annotations

import json

import pytest

from regtopo.oci.attachments import (
    classify,
    classify_manifest,
    cosign_tag,
    explicit_artifact_types,
    fallback_entry,
    index_attachment_kind,
    is_selected,
    referrer_artifact_type,
)
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest

EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
SUBJECT = Digest.parse("sha256:" + "ab" * 32)


def manifest(**fields: object) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY, "size": 2},
        "layers": [],
        **fields,
    }
    return Manifest.parse(json.dumps(document).encode(), None)


def test_c28_fallback_entry_has_exactly_media_type_digest_size_artifact_type_annotations() -> None:
    annotations = {"dev.sigstore.bundle.content": "x", "org.opencontainers.image.created": "t"}
    bundle = manifest(
        artifactType="application/vnd.dev.sigstore.bundle.v0.3+json", annotations=annotations
    )

    assert fallback_entry(bundle) == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": str(bundle.digest),
        "size": bundle.size,
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "annotations": annotations,
    }


def test_c28_without_artifact_type_the_entry_takes_the_config_media_type_even_an_image_config() -> (
    None
):
    legacy = manifest(
        config={"mediaType": "application/vnd.oci.image.config.v1+json", "digest": EMPTY, "size": 2}
    )

    assert referrer_artifact_type(legacy) == "application/vnd.oci.image.config.v1+json"
    assert fallback_entry(legacy)["artifactType"] == "application/vnd.oci.image.config.v1+json"
    assert "annotations" not in fallback_entry(legacy)


def test_cosign_tags_are_the_digest_with_a_dash_and_the_suffix() -> None:
    assert cosign_tag(SUBJECT, "sig") == "sha256-" + "ab" * 32 + ".sig"


@pytest.mark.parametrize(
    ("artifact_type", "annotations", "layers", "kind"),
    [
        ("application/vnd.cncf.notary.signature", {}, [], "signature"),
        ("application/example.signature", {}, [], "signature"),
        ("application/spdx+json", {}, [], "sbom"),
        ("application/example.sbom", {}, [], "sbom"),
        (
            "application/vnd.oci.image.config.v1+json",
            {},
            ["application/vnd.in-toto+json"],
            "attestation",
        ),
        (
            "application/vnd.oci.image.config.v1+json",
            {},
            ["application/vnd.dev.cosign.simplesigning.v1+json"],
            "signature",
        ),
        (
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            {"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
            [],
            "signature",
        ),
        (
            "application/vnd.dev.sigstore.bundle.v0.3+json",
            {"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"},
            [],
            "attestation",
        ),
        ("application/example.arms", {}, [], "artifact"),
        (None, {}, [], "artifact"),
    ],
)
def test_referrers_are_classified_by_type_then_bundle_annotations_then_layers(
    artifact_type: str | None, annotations: dict[str, str], layers: list[str], kind: str
) -> None:
    assert classify(artifact_type, annotations, layers) == kind


def test_a_manifest_is_classified_by_its_own_fields() -> None:
    sbom = manifest(artifactType="application/vnd.cyclonedx+json")
    assert classify_manifest(sbom) == "sbom"


def test_c01_entries_that_describe_another_entry_are_attestations() -> None:
    attestation = Descriptor.from_json(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(SUBJECT),
            "size": 800,
            "annotations": {
                "vnd.docker.reference.type": "attestation-manifest",
                "vnd.docker.reference.digest": str(SUBJECT),
            },
        }
    )
    platform = Descriptor.from_json(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(SUBJECT),
            "size": 1,
        }
    )

    builder = Descriptor.from_json(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": str(SUBJECT),
            "size": 394,
            "annotations": {
                "vnd.docker.reference.type": "builder",
                "vnd.docker.reference.digest": str(SUBJECT),
            },
        }
    )

    assert index_attachment_kind(attestation) == "attestation"
    assert index_attachment_kind(builder) == "attestation"
    assert index_attachment_kind(platform) is None


def test_a_selection_takes_kinds_by_name_and_artifact_types_exactly() -> None:
    assert is_selected("all", "artifact", None)
    assert not is_selected("none", "signature", None)
    assert is_selected(["signatures"], "signature", "application/x")
    assert not is_selected(["signatures"], "sbom", "application/spdx+json")
    assert is_selected(["application/example.arms"], "artifact", "application/example.arms")
    assert not is_selected(["application/example.arms"], "artifact", "application/other")


def test_only_a_selection_of_artifact_types_alone_is_sent_as_server_filters() -> None:
    assert explicit_artifact_types(["application/a", "application/b"]) == [
        "application/a",
        "application/b",
    ]
    assert explicit_artifact_types(["sboms", "application/a"]) is None
    assert explicit_artifact_types("all") is None
