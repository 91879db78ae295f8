"""Planning referrers: recursion, loops, selection, and what the target lacks."""

from __future__ import annotations

from pathlib import Path

from regtopo.oci.reference import fallback_tag
from regtopo.plan.observe import Observer
from regtopo.plan.referrers import ReferrerPlanner
from regtopo.registry.layout import LayoutRepository
from tests.unit.layouts import image, index, referrer


def pairs(refs: list[object]) -> list[tuple[str, str]]:
    return [(r.subject, r.digest) for r in refs]  # type: ignore[attr-defined]


def test_a_signature_of_an_sbom_comes_after_the_sbom_it_signs(tmp_path: Path) -> None:
    source = LayoutRepository("layout", tmp_path, "app")
    subject = image(source, b"app", tag="v1")
    sbom = referrer(source, subject, "application/spdx+json", b"sbom")
    signature = referrer(source, sbom, "application/vnd.cncf.notary.signature", b"sig")

    found = ReferrerPlanner(Observer()).discover(source, subject, "all")

    assert pairs(found) == [
        (str(subject.digest), str(sbom.digest)),
        (str(sbom.digest), str(signature.digest)),
    ]
    assert [r.kind for r in found] == ["sbom", "signature"]


def test_an_index_whose_child_is_also_its_subject_is_listed_once_and_the_walk_ends(
    tmp_path: Path,
) -> None:
    """The fixture's `loop`: the index refers to its own child, which it contains."""
    source = LayoutRepository("layout", tmp_path, "app")
    child = image(source, b"child")
    loop = index(
        source,
        [child],
        tag="loop",
        subject={"mediaType": child.media_type, "digest": str(child.digest), "size": child.size},
    )
    index(source, [loop], tag=fallback_tag(child.digest))

    found = ReferrerPlanner(Observer()).discover(source, loop, "all")

    assert pairs(found) == [(str(child.digest), str(loop.digest))]


def test_a_selection_of_signatures_leaves_sboms_and_what_signs_them_behind(tmp_path: Path) -> None:
    source = LayoutRepository("layout", tmp_path, "app")
    subject = image(source, b"app", tag="v1")
    sbom = referrer(source, subject, "application/spdx+json", b"sbom")
    referrer(source, sbom, "application/vnd.cncf.notary.signature", b"sig of sbom")
    signature = referrer(source, subject, "application/vnd.cncf.notary.signature", b"sig")

    found = ReferrerPlanner(Observer()).discover(source, subject, ["signatures"])

    assert pairs(found) == [(str(subject.digest), str(signature.digest))]
    assert ReferrerPlanner(Observer()).discover(source, subject, "none") == []


def test_only_the_referrers_the_target_does_not_list_are_missing(tmp_path: Path) -> None:
    source = LayoutRepository("source", tmp_path / "source", "app")
    target = LayoutRepository("target", tmp_path / "target", "app")
    subject = image(source, b"app", tag="v1")
    sbom = referrer(source, subject, "application/spdx+json", b"sbom")
    signature = referrer(source, sbom, "application/vnd.cncf.notary.signature", b"sig")
    image(target, b"app", tag="v1")
    referrer(target, subject, "application/spdx+json", b"sbom")

    planner = ReferrerPlanner(Observer())
    plan = planner.plan(source, target, subject, "all", target_has_subject=True)

    assert pairs(plan.missing) == [(str(sbom.digest), str(signature.digest))]


def test_a_referrer_without_artifact_type_is_typed_by_its_config_as_the_referrers_api_would(
    tmp_path: Path,
) -> None:
    """The fixture's v1: a build record naming its image as subject, with an image config and
    no `artifactType`. Its artifact type is the config's media type (image-spec, and the
    distribution-spec's referrers list), not the manifest's own media type."""
    from regtopo.plan.actions import Action, ActionKind, TagRef
    from regtopo.render.text import render_referrers
    from tests.unit.layouts import OCI_MANIFEST, blob, store

    source = LayoutRepository("layout", tmp_path, "app")
    subject = image(source, b"app", tag="v1")
    config = blob(source, b'{"os":"linux"}', "application/vnd.oci.image.config.v1+json")
    record = store(
        source,
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [blob(source, b"build", "application/vnd.example.build-type+json")],
            "subject": {
                "mediaType": subject.media_type,
                "digest": str(subject.digest),
                "size": subject.size,
            },
        },
    )

    [found] = ReferrerPlanner(Observer()).discover(source, subject, "all")

    assert found.digest == str(record.digest)
    assert found.artifact_type == "application/vnd.oci.image.config.v1+json"
    where = TagRef(registry="layout", repository="app", tag="v1")
    action = Action(
        kind=ActionKind.COPY, replication="r", source=where, target=where, referrers=[found]
    )
    [line] = render_referrers(action)
    assert "(application/vnd.oci.image.config.v1+json; referrers-api)" in line
