"""The main job end to end: plan and apply a topology between real registries.

Content is real (the regclient test repository, built by docker buildx and regctl), the
registries are real Distribution processes, and skopeo checks the result independently.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.cli import registry_entry, run, write_topology
from tests.support.registries import MakeRegistry, Registry, push_random_image, skopeo_digest

pytestmark = [pytest.mark.registry]

REF_NAME = "org.opencontainers.image.ref.name"


def _fixture_tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {
        m["annotations"][REF_NAME]: m["digest"]
        for m in index["manifests"]
        if REF_NAME in m.get("annotations", {})
    }


@pytest.fixture
def source_layout(fixtures_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the regclient test repository, as repository `testrepo`."""
    root = tmp_path / "layouts"
    shutil.copytree(fixtures_dir / "regclient-testrepo", root / "testrepo")
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


@pytest.mark.skopeo
def test_every_fixture_tag_reaches_the_second_registry_with_its_digest(
    source_layout: Path, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """Layout -> registry A -> registry B (basic auth), checked with skopeo.

    skopeo 1.9 fails six of these tags (the referrers fallback indexes and the looping index).
    """
    first = make_registry()
    second = make_registry(auth="basic")
    expected = _fixture_tags(source_layout / "testrepo")
    tags = sorted(expected)
    topology = write_topology(
        tmp_path / "topology.yaml",
        {
            "layout": {"path": str(source_layout)},
            "a": registry_entry(first),
            "b": registry_entry(second),
        },
        [
            {"name": "seed", "source": "layout/testrepo", "targets": ["a/testrepo"], "tags": tags},
            {
                "name": "mirror",
                "source": "a/testrepo",
                "targets": ["b/mirror/testrepo"],
                "tags": tags,
            },
        ],
    )

    applied = run("apply", "--auto-approve", str(topology))
    assert applied.exit_code == 0, applied.stderr
    assert f"Apply complete: {2 * len(tags)} done, 0 failed" in applied.stdout

    for tag, digest in expected.items():
        assert skopeo_digest(first, f"testrepo:{tag}") == digest, tag
        assert skopeo_digest(second, f"mirror/testrepo:{tag}") == digest, tag

    again = run("plan", "--detailed-exitcode", str(topology))
    assert again.exit_code == 0
    assert f"No changes. {2 * len(tags)} in sync." in again.stdout


def test_plan_before_apply_uses_the_digest_the_first_hop_will_write(
    source_layout: Path, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    first, second = make_registry(), make_registry()
    expected = _fixture_tags(source_layout / "testrepo")
    topology = write_topology(
        tmp_path / "topology.yaml",
        {
            "layout": {"path": str(source_layout)},
            "a": registry_entry(first),
            "b": registry_entry(second),
        },
        [
            {"name": "promote", "source": "a/app", "targets": ["b/app"], "tags": ["v2"]},
            {"name": "seed", "source": "layout/testrepo", "targets": ["a/app"], "tags": ["v2"]},
        ],
    )
    out = tmp_path / "plan.json"

    result = run("plan", "--detailed-exitcode", "-o", str(out), str(topology))

    assert result.exit_code == 2
    plan = json.loads(out.read_text())
    by_replication = {a["replication"]: a for a in plan["actions"]}
    assert by_replication["seed"]["kind"] == "copy"
    assert by_replication["promote"]["kind"] == "copy"
    assert by_replication["promote"]["content"]["digest"] == expected["v2"]
    assert (by_replication["seed"]["hop"], by_replication["promote"]["hop"]) == (0, 1)


def test_plan_distinguishes_copy_retag_and_in_sync(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    digest = push_random_image(registry, "app", "v1", layers=[2048, 4096])
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"source": registry_entry(registry), "target": registry_entry(target)},
        [{"source": "source/app", "targets": ["target/app"], "tags": ["v1"]}],
    )

    planned = run("plan", str(topology))
    assert "+ copy     target/app:v1  <- source/app:v1" in planned.stdout
    assert f"{digest[:19]} image" in planned.stdout
    assert "Plan: 1 to copy, 0 to retag, 0 in sync, 0 skipped" in planned.stdout

    assert run("apply", "--auto-approve", str(topology)).exit_code == 0
    assert skopeo_digest(target, "app:v1") == digest

    # The same content under a second tag at the source is a retag at the target: no bytes move.
    push_random_image(registry, "app", "v2", layers=[16])
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"source": registry_entry(registry), "target": registry_entry(target)},
        [{"source": "source/app", "targets": ["target/app"], "tags": ["v1", "v1-alias"]}],
    )
    _tag_alias(registry, "app", digest, "v1-alias")
    planned = run("plan", str(topology))
    assert "~ retag    target/app:v1-alias" in planned.stdout
    assert "= in-sync  target/app:v1" in planned.stdout

    uploads_before = target.count_requests("PUT", r"/v2/app/blobs/uploads/.*")
    assert run("apply", "--auto-approve", str(topology)).exit_code == 0
    assert target.count_requests("PUT", r"/v2/app/blobs/uploads/.*") == uploads_before
    assert skopeo_digest(target, "app:v1-alias") == digest


def test_a_missing_source_tag_is_skipped_with_its_reason(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[16])
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"source": registry_entry(registry), "target": registry_entry(target)},
        [
            {"source": "source/app", "targets": ["target/app"], "tags": ["nope"]},
            {"source": "source/typo", "targets": ["target/typo"], "tags": ["v1", "v2"]},
        ],
    )
    result = run("plan", str(topology))
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "the source tag does not exist; by source/app (tags: nope)" in lines
    # A repository that is not there is said as such, and asked about once.
    assert "the source repository does not exist; by source/typo (tags: v1)" in lines
    assert "the source repository does not exist; by source/typo (tags: v2)" in lines
    assert registry.count_requests("GET", r"/v2/typo/tags/list.*") == 1


def test_an_unreachable_registry_is_one_line_naming_it(tmp_path: Path, registry: Registry) -> None:
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"gone": {"host": "http://127.0.0.1:9"}, "target": registry_entry(registry)},
        [{"source": "gone/app", "targets": ["target/app"], "tags": ["v1"]}],
    )
    result = run("plan", str(topology))
    assert result.exit_code == 1
    first_line = result.stderr.splitlines()[0]
    assert "registry 'gone' (127.0.0.1:9) unreachable: ConnectError" in first_line
    assert "Traceback" not in result.stderr


def test_wrong_credentials_are_refused_clearly_without_the_secret(
    basic_registry: Registry, registry: Registry, tmp_path: Path
) -> None:
    topology = write_topology(
        tmp_path / "topology.yaml",
        {
            "source": {
                "host": f"http://{basic_registry.host}",
                "credentials": {"username": "nobody", "password": "wrong-secret-123"},
            },
            "target": registry_entry(registry),
        },
        [{"source": "source/app", "targets": ["target/app"], "tags": ["v1"]}],
    )
    result = run("plan", str(topology))
    assert result.exit_code == 1
    assert "credentials (from the topology) refused (UNAUTHORIZED): 401" in result.stderr
    # The action is named once, not repeated inside its own cause.
    assert result.stderr.count("checking manifest source/app:v1") == 1
    assert "wrong-secret-123" not in result.stderr + result.stdout


def test_a_refused_login_at_a_cloud_registry_says_how_its_credentials_are_made(
    basic_registry: Registry, registry: Registry, tmp_path: Path
) -> None:
    """The profile's auth flavour gives the hint: an Artifact Registry wants an access token."""
    topology = write_topology(
        tmp_path / "topology.yaml",
        {
            "source": {
                "host": f"http://{basic_registry.host}",
                "provider": "gar",
                "credentials": {"username": "oauth2accesstoken", "password": "expired-token"},
            },
            "target": registry_entry(registry),
        },
        [{"source": "source/p/r/app", "targets": ["target/app"], "tags": ["v1"]}],
    )
    result = run("plan", str(topology))
    assert result.exit_code == 1
    assert "hint: Artifact Registry takes a Google access token" in result.stderr
    assert "expired-token" not in result.stderr


def _tag_alias(registry: Registry, repository: str, digest: str, tag: str) -> None:
    import httpx

    accept = "application/vnd.oci.image.manifest.v1+json"
    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{digest}", headers={"Accept": accept}
    )
    response.raise_for_status()
    put = httpx.put(
        f"{registry.url}/v2/{repository}/manifests/{tag}",
        content=response.content,
        headers={"Content-Type": response.headers["content-type"]},
    )
    put.raise_for_status()


def test_apply_after_planning_in_the_same_run_does_not_ask_again_what_the_plan_saw_missing(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """The plan HEADs each blob at the target once to price the copy; apply trusts that
    absence instead of asking again (benchmarks: about one request in six of a cold copy)."""
    target = make_registry()
    digest = push_random_image(registry, "app", "v1", layers=[2048, 4096, 512])
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"source": registry_entry(registry), "target": registry_entry(target)},
        [{"source": "source/app", "targets": ["target/app"], "tags": ["v1"]}],
    )

    assert run("apply", "--auto-approve", str(topology)).exit_code == 0

    assert skopeo_digest(target, "app:v1") == digest
    # Three layers and a config: each asked about once, by the plan.
    assert target.count_requests("HEAD", r"/v2/app/blobs/.+") == 4
    assert target.count_requests("PUT", r"/v2/app/blobs/uploads/.+") == 4
