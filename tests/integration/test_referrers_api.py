"""The referrers API path, against a handler that speaks it in front of real registries, and
the paths of a source without it (fallback tags, cosign tags).

Distribution 2.8 has no referrers API, so `ReferrersAPIProxy` (tests/support/referrers_api.py)
adds it, with `artifactType` filtering and `OCI-Subject` on PUT, in front of a real process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.artifacts import (
    Pushed,
    fallback_index,
    get_manifest,
    push_cosign_signature,
    push_image,
    push_referrer,
    tag_digest,
    write_fallback_index,
)
from tests.support.cli import regtopo
from tests.support.cli import write_url_topology as write_topology
from tests.support.referrers_api import ReferrersAPIProxy
from tests.support.registries import MakeRegistry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

SBOM = "application/vnd.example.sbom.v1+json"
SIGNATURE = "application/vnd.example.signature.v1+json"


@pytest.fixture
def api_source(make_registry: MakeRegistry) -> Iterator[ReferrersAPIProxy]:
    with ReferrersAPIProxy(make_registry()) as proxy:
        yield proxy


def attach(proxy: ReferrersAPIProxy) -> tuple[Pushed, Pushed, Pushed, Pushed]:
    """An image with an SBOM and a signature, and a signature of the SBOM."""
    image = push_image(proxy.url, "app", "v1")
    sbom = push_referrer(proxy.url, "app", image, artifact_type=SBOM, payload=b"sbom")
    signature = push_referrer(proxy.url, "app", image, artifact_type=SIGNATURE, payload=b"sig")
    sbom_signature = push_referrer(
        proxy.url, "app", sbom, artifact_type=SIGNATURE, payload=b"sig of sbom"
    )
    return image, sbom, signature, sbom_signature


def listed(base_url: str, subject: Pushed) -> set[str]:
    index = fallback_index(base_url, "app", subject)
    return {e["digest"] for e in index["manifests"]} if index else set()


def test_referrers_the_source_api_lists_reach_a_target_without_it_through_the_fallback_tag(
    tmp_path: Path, api_source: ReferrersAPIProxy, make_registry: MakeRegistry
) -> None:
    image, sbom, signature, sbom_signature = attach(api_source)
    target = make_registry()
    topology = write_topology(
        tmp_path,
        {"source": api_source.url, "target": target.url},
        [{"source": "source/app", "targets": "target/app", "tags": ["v1"]}],
    )

    output = regtopo(topology, "apply", "--auto-approve")

    assert "3 referrer(s) to bring along" in output
    assert listed(target.url, image) == {sbom.digest, signature.digest}
    assert listed(target.url, sbom) == {sbom_signature.digest}
    asked = {r.path for r in api_source.seen("GET", r"/v2/app/referrers/.*")}
    assert f"/v2/app/referrers/{image.digest}" in asked
    assert f"/v2/app/referrers/{sbom.digest}" in asked


@pytest.mark.parametrize("apply_filters", [True, False], ids=["server-filters", "client-filters"])
def test_an_artifact_type_selection_is_asked_as_a_filter_and_only_that_type_arrives(
    tmp_path: Path, make_registry: MakeRegistry, apply_filters: bool
) -> None:
    """Without `OCI-Filters-Applied` in the answer, regtopo filters the list itself."""
    with ReferrersAPIProxy(make_registry(), apply_filters=apply_filters) as source:
        image, sbom, _signature, _ = attach(source)
        target = make_registry()
        topology = write_topology(
            tmp_path,
            {"source": source.url, "target": target.url},
            [
                {
                    "source": "source/app",
                    "targets": "target/app",
                    "tags": ["v1"],
                    "referrers": [SBOM],
                }
            ],
        )

        regtopo(topology, "apply", "--auto-approve")

        filters = [r.query.get("artifactType") for r in source.seen("GET", r"/v2/app/referrers/.*")]
        assert filters and all(f == [SBOM] for f in filters)
    assert listed(target.url, image) == {sbom.digest}
    # The SBOM's own signature is not an SBOM: not selected, so not copied.
    assert listed(target.url, sbom) == set()


def test_a_target_with_the_api_records_the_subject_itself_and_gets_no_fallback_tag(
    tmp_path: Path, api_source: ReferrersAPIProxy, make_registry: MakeRegistry
) -> None:
    image, sbom, signature, sbom_signature = attach(api_source)
    backend = make_registry()
    with ReferrersAPIProxy(backend) as target:
        topology = write_topology(
            tmp_path,
            {"source": api_source.url, "target": target.url},
            [{"source": "source/app", "targets": "target/app", "tags": ["v1"]}],
        )

        regtopo(topology, "apply", "--auto-approve")
        second = regtopo(topology, "plan")

        recorded = {subject: set(entries) for (_, subject), entries in target.referrers.items()}
        assert recorded == {
            image.digest: {sbom.digest, signature.digest},
            sbom.digest: {sbom_signature.digest},
        }
        assert "No changes. 1 in sync." in second
        # The second plan checked the target through its API, not through a fallback tag.
        assert target.seen("GET", rf"/v2/app/referrers/{image.digest}")
    tags = httpx.get(f"{backend.url}/v2/app/tags/list").json()["tags"]
    assert sorted(tags) == ["v1"]


@pytest.mark.parametrize("signed_by", ["fallback-tag", "cosign-sig-tag"])
def test_a_signature_of_an_sbom_reaches_a_target_without_the_api_from_a_source_without_it(
    tmp_path: Path, make_registry: MakeRegistry, signed_by: str
) -> None:
    """Plain Distribution at both ends: the source lists the SBOM in the image's fallback tag,
    and the SBOM's signature in the SBOM's fallback tag or as a cosign `sha256-<sbom>.sig` tag.
    The signature, a referrer of a referrer, arrives and is discoverable the same way."""
    source, target = make_registry(), make_registry()
    image = push_image(source.url, "app", "v1")
    sbom = push_referrer(source.url, "app", image, artifact_type=SBOM, payload=b"sbom")
    write_fallback_index(source.url, "app", image, [sbom])
    sig_tag = f"sha256-{sbom.hex}.sig"
    if signed_by == "fallback-tag":
        signature = push_referrer(
            source.url, "app", sbom, artifact_type=SIGNATURE, payload=b"sig of sbom"
        )
        write_fallback_index(source.url, "app", sbom, [signature])
    else:
        signature = push_cosign_signature(source.url, "app", sbom)
    topology = write_topology(
        tmp_path,
        {"source": source.url, "target": target.url},
        [{"source": "source/app", "targets": "target/app", "tags": ["v1"]}],
    )

    output = regtopo(topology, "apply", "--auto-approve")

    assert "2 referrer(s) to bring along" in output
    assert listed(target.url, image) == {sbom.digest}
    for pushed in (sbom, signature):
        assert get_manifest(target.url, "app", pushed.digest).content == pushed.raw
    if signed_by == "fallback-tag":
        assert listed(target.url, sbom) == {signature.digest}
    else:
        assert tag_digest(target.url, "app", sig_tag) == signature.digest
        assert fallback_index(target.url, "app", sbom) is None
    assert "No changes. 1 in sync." in regtopo(topology, "plan")
