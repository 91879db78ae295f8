"""What comes along with a manifest: referrers, cosign's tag-based attachments, and the build
attestations BuildKit puts inside an index. Pure data rules, no I/O.

Three ways content attaches to a subject:
  - a manifest whose `subject` names it, listed by the referrers API or the fallback tag
    `sha256-<hex>` (distribution-spec "Listing Referrers", "Referrers Tag Schema");
  - cosign's legacy tags `sha256-<hex>.sig`, `.att` and `.sbom` in the subject's repository;
  - build attestations inside the image's index (annotation `vnd.docker.reference.type`,
    BuildKit's `attestation-manifest` among others), which travel with the index anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from regtopo.oci import mediatype as mt
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.reference import fallback_tag

ReferrerKind = Literal["signature", "sbom", "attestation", "artifact"]

#: the selection names a replication may use, and the kind each one selects
SELECTION_KINDS: dict[str, ReferrerKind] = {
    "signatures": "signature",
    "sboms": "sbom",
    "attestations": "attestation",
}

#: cosign's tag suffixes and what each holds (cosign `pkg/oci/remote/options.go`)
COSIGN_SUFFIXES: dict[str, ReferrerKind] = {
    "sig": "signature",
    "att": "attestation",
    "sbom": "sbom",
}

DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"
DOCKER_REFERENCE_DIGEST = "vnd.docker.reference.digest"
DOCKER_ATTESTATION = "attestation-manifest"

SIGSTORE_BUNDLE_PREFIX = "application/vnd.dev.sigstore.bundle"
SIGSTORE_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"

_SIGNATURE_TYPES = frozenset(
    {
        "application/vnd.cncf.notary.signature",
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        mt.COSIGN_SIMPLESIGNING,
    }
)
_SBOM_MARKERS = ("sbom", "spdx", "cyclonedx", "syft")
_ATTESTATION_MARKERS = ("in-toto", "attestation", "provenance", "dsse", "slsa", "vex")


# The fallback tag and cosign's tags belong to a subject rather than being content of their
# own: tag selectors and retention rules never choose them; they follow their subject.
_ATTACHMENT_TAG = re.compile(
    r"^[a-z0-9]+-[0-9a-f]{32,128}(\.(" + "|".join(COSIGN_SUFFIXES) + r"))?$"
)


def is_attachment_tag(tag: str) -> bool:
    """Whether `tag` is a fallback tag (`sha256-<hex>`) or a cosign tag (`sha256-<hex>.sig`)."""
    return bool(_ATTACHMENT_TAG.fullmatch(tag))


def cosign_tag(subject: Digest, suffix: str) -> str:
    """`sha256-<hex>.sig` and its siblings: the subject digest with `:` as `-`, then the suffix."""
    return f"{fallback_tag(subject)}.{suffix}"


def referrer_artifact_type(manifest: Manifest) -> str | None:
    """The `artifactType` a referrers list gives a manifest: its own, else its config's type.

    Unlike `Manifest.artifact_type` this keeps the image config type: the spec's rule has no
    exception, and the fallback index must say exactly what the referrers API would.
    """
    declared = manifest.document.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    if manifest.config is not None and manifest.config.media_type:
        return manifest.config.media_type
    return None


def fallback_entry(manifest: Manifest) -> dict[str, Any]:
    """A referrers index entry `{mediaType, digest, size, artifactType, annotations}` (C28).

    `annotations` are all of the manifest's annotations; consumers filter on them (sigstore
    bundles carry their content type there). Absent values are left out, not written empty.
    """
    entry: dict[str, Any] = {
        "mediaType": manifest.media_type,
        "digest": str(manifest.digest),
        "size": manifest.size,
    }
    artifact_type = referrer_artifact_type(manifest)
    if artifact_type:
        entry["artifactType"] = artifact_type
    if manifest.annotations:
        entry["annotations"] = manifest.annotations
    return entry


def classify(
    artifact_type: str | None,
    annotations: Mapping[str, str] | None = None,
    layer_types: Sequence[str] = (),
) -> ReferrerKind:
    """Signature, SBOM, attestation, or some other artifact.

    Order: `artifactType` (or the config type standing in for it), then the annotations a
    sigstore bundle carries, then the layer media types. Anything unrecognised is "artifact"
    and is still copied when a replication takes all referrers.
    """
    annotations = annotations or {}
    candidates = [artifact_type or "", *layer_types]
    for value in candidates:
        lowered = value.lower()
        if value.startswith(SIGSTORE_BUNDLE_PREFIX):
            predicate = annotations.get("dev.sigstore.bundle.predicateType", "")
            content = annotations.get("dev.sigstore.bundle.content", "")
            if content == "message-signature" or predicate == SIGSTORE_SIGN_PREDICATE:
                return "signature"
            if any(m in predicate.lower() for m in _SBOM_MARKERS):
                return "sbom"
            return "attestation"
        if value in _SIGNATURE_TYPES or "signature" in lowered:
            return "signature"
        if any(marker in lowered for marker in _SBOM_MARKERS):
            return "sbom"
        if any(marker in lowered for marker in _ATTESTATION_MARKERS):
            return "attestation"
    return "artifact"


def classify_manifest(manifest: Manifest) -> ReferrerKind:
    return classify(
        referrer_artifact_type(manifest),
        manifest.annotations,
        [layer.media_type for layer in manifest.layers],
    )


def index_attachment_kind(child: Descriptor) -> ReferrerKind | None:
    """An index entry a build attached to a platform image, or None for a runnable child (C01).

    BuildKit writes `attestation-manifest`; other builders (buildx's older releases, regclient's
    test data) other values, such as `builder`. Whatever the type, an entry that says which entry
    it describes is about that image, not an image of its own.
    """
    kind = child.annotations.get(DOCKER_REFERENCE_TYPE)
    if kind == DOCKER_ATTESTATION or (kind and child.annotations.get(DOCKER_REFERENCE_DIGEST)):
        return "attestation"
    return None


def described_digest(child: Descriptor) -> str | None:
    """The digest of the index entry a build attachment describes, when it names one."""
    return child.annotations.get(DOCKER_REFERENCE_DIGEST)


Selection = Literal["all", "none"] | list[str]


def is_selected(selection: Selection, kind: str, artifact_type: str | None) -> bool:
    """Whether a replication's `referrers:` setting takes a referrer of this kind and type."""
    if selection == "all":
        return True
    if selection == "none":
        return False
    for item in selection:
        if SELECTION_KINDS.get(item) == kind:
            return True
        if artifact_type is not None and item == artifact_type:
            return True
    return False


def explicit_artifact_types(selection: Selection) -> list[str] | None:
    """The artifact types a selection names when it names nothing else, for server filtering."""
    if not isinstance(selection, list) or not selection:
        return None
    if any(item in SELECTION_KINDS for item in selection):
        return None
    return list(selection)
