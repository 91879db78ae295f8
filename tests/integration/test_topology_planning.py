"""The planner on the topology language's features: platform subsets, pins, sync deletions,
plan-time conflicts, the catalog, and the per-registry request rate."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from regtopo.apply.executor import Executor
from regtopo.errors import RegtopoError
from regtopo.plan.actions import ActionKind, Plan
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.registry.client import RegistryClient
from regtopo.render.text import render_plan
from regtopo.topology.loader import TopologyError, load
from tests.support.registries import Registry, push_random_image

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def plan_text(tmp_path: Path, text: str, *, apply: bool = False) -> Plan:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    loaded = load(path)
    session = Session(loaded.topology, base_dir=tmp_path)
    try:
        plan = Planner(loaded, session).plan()
        if apply:
            report = Executor(session, allow_delete=True).apply(plan)
            assert [r.message for r in report.results if not r.ok] == []
        return plan
    finally:
        session.close()


def tagged_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for entry in index["manifests"]:
        if (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            return str(entry["digest"])
    raise AssertionError(f"no tag {tag} in {layout}")


def layouts(fixtures_dir: Path, extra: str = "") -> str:
    return f"""\
registries:
  fixtures: {{path: {fixtures_dir}}}
  out: {{path: ./out}}
{extra}"""


def test_a_platform_subset_copies_a_new_index_and_says_its_digest_differs(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """platforms: a subset makes a new index of the wanted children (another digest, said
    plainly); all platforms copy digest-exact; a later hop carries the new index unchanged;
    the next plan finds everything in sync."""
    source_digest = tagged_digest(fixtures_dir / "regclient-testrepo", "b1")
    text = (
        layouts(fixtures_dir)
        + """\
replications:
  - source: fixtures/regclient-testrepo
    targets: [out/subset]
    tags: [b1]
    platforms: [linux/amd64, linux/arm64]
  - source: out/subset
    targets: [out/next]
    tags: [b1]
  - source: fixtures/regclient-testrepo
    targets: [out/every]
    tags: [b1]
    platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]
"""
    )

    plan = plan_text(tmp_path, text, apply=True)
    again = plan_text(tmp_path, text)

    subset, every, following = (
        next(a for a in plan.actions if str(a.target) == name)
        for name in ("out/subset:b1", "out/every:b1", "out/next:b1")
    )
    assert subset.kind is ActionKind.COPY and subset.content is not None
    new_digest = subset.content.digest
    assert new_digest != source_digest
    assert subset.source_digest == source_digest
    assert subset.content.platforms == ["linux/amd64", "linux/arm64"]
    assert subset.warnings == [
        f"platforms linux/amd64, linux/arm64 of the source index {source_digest[:19]}: the "
        f"target gets a new index {new_digest[:19]} with another digest; signatures made on "
        "the source index do not apply to it"
    ]
    assert every.kind is ActionKind.COPY and every.content is not None
    assert every.content.digest == source_digest
    assert following.content is not None and following.content.digest == new_digest

    built = tmp_path / "out" / "subset"
    assert tagged_digest(built, "b1") == new_digest
    assert tagged_digest(tmp_path / "out" / "next", "b1") == new_digest
    index = json.loads((built / "blobs" / "sha256" / new_digest.split(":")[1]).read_bytes())
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    assert {a.kind for a in again.actions} == {ActionKind.IN_SYNC}


def test_build_attestations_of_any_reference_type_follow_their_platform(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """v1's unknown/unknown children say `vnd.docker.reference.type: builder` (not BuildKit's
    `attestation-manifest`): they are attestations, not platforms, and a subset keeps the one
    that describes a kept platform."""
    text = (
        layouts(fixtures_dir)
        + """\
replications:
  - source: fixtures/regclient-testrepo
    targets: [out/all]
    tags: [v1]
  - source: fixtures/regclient-testrepo
    targets: [out/amd64]
    tags: [v1]
    platforms: [linux/amd64]
"""
    )

    plan = plan_text(tmp_path, text, apply=True)

    every, subset = (
        next(a for a in plan.actions if str(a.target) == name)
        for name in ("out/all:v1", "out/amd64:v1")
    )
    assert every.content is not None and subset.content is not None
    assert every.content.platforms == ["linux/amd64", "linux/arm64"]
    assert every.content.attestations == 2
    assert subset.content.platforms == ["linux/amd64"]
    assert subset.content.attestations == 1
    built = tmp_path / "out" / "amd64"
    index = json.loads(
        (built / "blobs" / "sha256" / subset.content.digest.split(":")[1]).read_bytes()
    )
    assert [m["digest"][7:19] for m in index["manifests"]] == ["1effc9d48232", "43089316cfee"]


def test_a_pinned_tag_gets_the_pinned_digest_wherever_the_source_tag_points(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    b1 = tagged_digest(fixtures_dir / "regclient-testrepo", "b1")

    plan = plan_text(
        tmp_path,
        layouts(fixtures_dir)
        + f"""\
replications:
  - source: fixtures/regclient-testrepo
    targets: [out/app]
    tags:
      digests: {{b2: "{b1}", stable: "sha256:{"0" * 64}"}}
""",
    )

    assert [(a.kind, str(a.source), str(a.target), a.reason) for a in plan.actions] == [
        (
            ActionKind.COPY,
            f"fixtures/regclient-testrepo:{b1}",
            "out/app:b2",
            "the content is missing at the target",
        ),
        (
            ActionKind.SKIPPED,
            f"fixtures/regclient-testrepo:sha256:{'0' * 64}",
            "out/app:stable",
            "the pinned digest is not in the source repository",
        ),
    ]
    assert plan.actions[0].content is not None and plan.actions[0].content.digest == b1


def test_selectors_from_two_sources_writing_one_target_tag_are_refused_at_plan(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    text = layouts(fixtures_dir) + (
        "replications:\n"
        "  - {name: one, source: fixtures/regclient-testrepo, targets: [out/app], "
        "tags: {include: ['b.']}}\n"
        "  - {name: two, source: out/other, targets: [out/app], tags: {include: ['b1', 'x']}}\n"
    )
    # out/other holds b1 too (a copy of the whole layout), so both selectors pick out/app:b1.
    shutil.copytree(fixtures_dir / "regclient-testrepo", tmp_path / "out" / "other")

    with pytest.raises(RegtopoError) as caught:
        plan_text(tmp_path, text)

    assert caught.value.message == (
        "replications one and two both write out/app:b1, from fixtures/regclient-testrepo "
        "and from out/other"
    )


@pytest.mark.registry
def test_sync_deletes_only_what_the_selector_matches_and_no_longer_selects(
    tmp_path: Path, registry: Registry
) -> None:
    """sync with a selector: a matching tag the source lost goes; a tag the selector never
    matched (pushed to the target by hand) stays, and so does a matching tag whose manifest a
    kept tag shares (registries delete manifests, not tags)."""
    # source: 1.0.0 is image S, 1.0.1 is image K.
    # target: 1.0.0 and 1.9.0 are K, 1.5.0 is G, hotfix is H (never matched by the selector).
    push_random_image(registry, "source", "1.0.0")
    kept = push_random_image(registry, "source", "1.0.1")
    gone = push_random_image(registry, "target", "1.5.0")
    hotfix = push_random_image(registry, "target", "hotfix")
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with httpx.Client(base_url=registry.url) as client:
        manifest = client.get("/v2/source/manifests/1.0.1", headers=accept)
        document = manifest.json()
        for blob in [document["config"], *document["layers"]]:
            client.post(
                "/v2/target/blobs/uploads/", params={"mount": blob["digest"], "from": "source"}
            ).raise_for_status()
        for tag in ("1.0.0", "1.9.0"):
            client.put(
                f"/v2/target/manifests/{tag}",
                content=manifest.content,
                headers={"Content-Type": manifest.headers["content-type"]},
            ).raise_for_status()

    text = f"""\
registries:
  local: {{host: "{registry.url}"}}
replications:
  - source: local/source
    targets: [local/target]
    tags: {{semver: ">=1.0"}}
    mode: sync
"""
    plan = plan_text(tmp_path, text, apply=True)
    again = plan_text(tmp_path, text)
    rendered = render_plan(plan)

    assert [(a.kind, str(a.target)) for a in plan.actions] == [
        (ActionKind.COPY, "local/target:1.0.0"),
        (ActionKind.RETAG, "local/target:1.0.1"),
        (ActionKind.DELETE, "local/target:1.5.0"),
        (ActionKind.SKIPPED, "local/target:1.9.0"),
    ]
    delete, shared = plan.actions[2], plan.actions[3]
    assert delete.deletion is not None and delete.deletion.digest == gone
    assert shared.deletion is not None and shared.deletion.digest == kept
    assert shared.reason.startswith("not deleted: tag(s) ")
    assert f"  - delete   local/target:1.5.0@{gone[:19]}" in rendered
    assert "the selector matches this tag but no longer selects it at local/source" in rendered
    assert "hotfix" not in rendered
    assert "1 to delete" in rendered
    assert [(a.kind, str(a.target)) for a in again.actions] == [
        (ActionKind.IN_SYNC, "local/target:1.0.0"),
        (ActionKind.IN_SYNC, "local/target:1.0.1"),
        (ActionKind.SKIPPED, "local/target:1.9.0"),
    ]
    with httpx.Client(base_url=registry.url) as client:
        still = client.head("/v2/target/manifests/hotfix", headers=accept)
    assert still.headers.get("docker-content-digest") == hotfix


@pytest.mark.registry
def test_patterns_expand_over_the_catalog_into_templates(
    tmp_path: Path, registry: Registry
) -> None:
    for repository in ("team/api", "team/tools/cli", "other/app"):
        push_random_image(registry, repository, "1.0.0")

    plan = plan_text(
        tmp_path,
        f"""\
registries:
  local: {{host: "{registry.url}"}}
  disk: {{path: ./disk}}
replications:
  - source: local/team/*
    targets: ["disk/mirror/{{name}}", "local/copy/{{repository}}"]
    tags: [1.0.0]
""",
    )

    assert sorted(str(a.target) for a in plan.actions if a.kind is ActionKind.COPY) == [
        "disk/mirror/api:1.0.0",
        "disk/mirror/tools/cli:1.0.0",
        "local/copy/team/api:1.0.0",
        "local/copy/team/tools/cli:1.0.0",
    ]


@pytest.mark.registry
def test_the_catalog_is_read_page_by_page(registry: Registry) -> None:
    for repository in ("a", "b/c", "d"):
        push_random_image(registry, repository, "t")
    client = RegistryClient("local", registry.host, scheme="http")

    names = client.list_repositories(page_size=2)
    client.close()

    assert names == ["a", "b/c", "d"]
    assert registry.count_requests("GET", r"^/v2/_catalog") == 2


@pytest.mark.registry
def test_requests_per_second_spaces_the_requests(registry: Registry) -> None:
    client = RegistryClient("local", registry.host, scheme="http", requests_per_second=20)
    repository = client.repository("nothing")

    started = time.monotonic()
    for _ in range(11):
        repository.head_manifest("latest")
    elapsed = time.monotonic() - started
    client.close()

    assert elapsed >= 0.5
    assert client.request_count == 11


def test_selectors_leave_fallback_and_cosign_tags_to_their_subjects(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """`include: ['.*']` does not copy `sha256-<hex>` fallback indexes as tags: those travel
    with their subject and are merged at the target, never overwritten."""
    plan = plan_text(
        tmp_path,
        layouts(fixtures_dir)
        + """\
replications:
  - source: fixtures/regclient-testrepo
    targets: [out/all]
    tags: {include: ['.*']}
""",
    )

    tags = sorted(a.target.tag for a in plan.actions)
    assert "v2" in tags and "b1" in tags
    fallback_or_cosign = re.compile(r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$")
    assert [t for t in tags if fallback_or_cosign.match(t)] == []
    # regclient's `.meta` digest tag is an ordinary tag: it is selected like any other.
    assert [t for t in tags if t.endswith(".meta")] != []


def test_a_platform_subset_under_a_blocking_signing_policy_is_blocked_at_plan(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """The new index is signed by nobody: the check at the target could never pass, so the
    plan blocks the tag instead of letting apply push it and fail."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "release.pub").write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    plan = plan_text(
        tmp_path,
        layouts(fixtures_dir)
        + """\
signing:
  policies:
    - {name: release, kind: cosign-key, keys: [release.pub]}
replications:
  - source: fixtures/regclient-testrepo
    targets: [out/subset]
    tags: [b1]
    platforms: [linux/amd64]
    verify: [release]
""",
    )

    [action] = plan.actions
    assert action.kind is ActionKind.BLOCKED
    assert action.policy == "release"
    assert "which the signatures of the source index" in action.reason


def test_verify_with_referrers_that_leave_signatures_behind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    (tmp_path / "release.pub").write_text("unused")
    path.write_text(
        """\
registries:
  a: {path: ./a}
  b: {path: ./b}
signing:
  policies:
    - {name: release, kind: cosign-key, keys: [release.pub]}
replications:
  - source: a/app
    targets: [b/app]
    tags: [v1]
    verify: [release]
    referrers: none
"""
    )
    with pytest.raises(TopologyError) as caught:
        load(path)
    assert any(
        p.message.startswith("verify checks the signatures again at the target")
        for p in caught.value.problems
    )


def test_drift_reports_tags_a_signing_policy_keeps_from_their_targets(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    """Nothing to apply, but the target lacks what the topology declares: drift exits 2."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.cli import run

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "release.pub").write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    path = tmp_path / "topology.yaml"
    path.write_text(
        layouts(fixtures_dir)
        + """\
signing:
  policies:
    - {name: release, kind: cosign-key, keys: [release.pub]}
replications:
  - source: fixtures/regclient-testrepo
    targets: [out/signed-only]
    tags: [b1]
    verify: [release]
"""
    )

    result = run("drift", str(path))

    assert result.exit_code == 2
    assert "x blocked  out/signed-only:b1" in result.stdout
    assert "Drift: 1 tag kept from the targets by signing policies." in result.stdout
