"""Saved plans, drift and --target between real registries (issue 5).

A saved plan is applied exactly, against the topology it was made from, and refuses the
actions the registries have moved away from since; drift reports what differs and what no
replication wrote; --target plans only what the named replications need.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import registry_entry, run, write_topology
from tests.support.registries import MakeRegistry, Registry, push_random_image, skopeo_digest

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def manifest_of(registry: Registry, repository: str, reference: str) -> dict[str, Any]:
    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": OCI_MANIFEST},
    )
    response.raise_for_status()
    return dict(response.json())


def tag_digest(registry: Registry, repository: str, tag: str) -> str | None:
    response = httpx.head(
        f"{registry.url}/v2/{repository}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
    )
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None


def two_registries(tmp_path: Path, source: Registry, target: Registry, tags: list[str]) -> Path:
    return write_topology(
        tmp_path / "topology.yaml",
        {"a": registry_entry(source), "b": registry_entry(target)},
        [{"name": "mirror", "source": "a/app", "targets": ["b/app"], "tags": tags}],
    )


def test_saved_plan_records_its_topology_and_each_actions_why_what_and_cost(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    new = push_random_image(registry, "app", "v1", layers=[3000, 5000])
    old = push_random_image(target, "app", "v1", layers=[100])
    topology = two_registries(tmp_path, registry, target, ["v1"])
    out = tmp_path / "plan.json"

    result = run("plan", "-o", str(out), str(topology))

    assert result.exit_code == 0, result.stderr
    plan = json.loads(out.read_text())
    assert plan["format_version"] == 1
    assert plan["topology_source"] == {
        "path": str(topology),
        "sha256": hashlib.sha256(topology.read_bytes()).hexdigest(),
    }
    [action] = plan["actions"]
    manifest = manifest_of(registry, "app", "v1")
    blob_bytes = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert action["kind"] == "copy"
    assert (action["replication"], action["rule"]) == ("mirror", "tags: v1")
    assert action["target"] == {"registry": "b", "repository": "app", "tag": "v1"}
    assert (action["target_digest_before"], action["target_digest_after"]) == (old, new)
    assert (action["bytes_to_send"], action["bytes_present"]) == (blob_bytes, 0)
    assert action["blobs_to_send"] == 3


def test_applying_a_saved_plan_does_exactly_that_plan_without_asking(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    v1 = push_random_image(registry, "app", "v1", layers=[1000])
    topology = two_registries(tmp_path, registry, target, ["v1", "v2"])
    out = tmp_path / "plan.json"
    assert run("plan", "-o", str(out), str(topology)).exit_code == 0
    push_random_image(registry, "app", "v2", layers=[1000])  # after the plan: not in it

    result = run("apply", str(out))

    assert result.exit_code == 0, result.stderr
    assert "Apply complete: 1 done, 0 failed, 0 stale" in result.stdout
    assert skopeo_digest(target, "app:v1") == v1
    assert tag_digest(target, "app", "v2") is None


def test_a_saved_plan_refuses_the_actions_whose_source_moved_and_names_them(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    v2 = push_random_image(registry, "app", "v2", layers=[1000])
    topology = two_registries(tmp_path, registry, target, ["v1", "v2"])
    out = tmp_path / "plan.json"
    assert run("plan", "-o", str(out), str(topology)).exit_code == 0
    moved = push_random_image(registry, "app", "v1", layers=[1200])

    result = run("apply", str(out))

    assert result.exit_code == 1
    assert "Apply complete: 1 done, 0 failed, 1 stale" in result.stdout
    stale = result.stdout.split("Refused as stale")[1]
    assert f"b/app:v1: a/app:v1 now points at {moved}" in stale
    assert tag_digest(target, "app", "v1") is None
    assert tag_digest(target, "app", "v2") == v2


def test_a_saved_plan_refuses_a_target_changed_since_the_plan(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    topology = two_registries(tmp_path, registry, target, ["v1"])
    out = tmp_path / "plan.json"
    assert run("plan", "-o", str(out), str(topology)).exit_code == 0
    someone_else = push_random_image(target, "app", "v1", layers=[10])

    result = run("apply", str(out))

    assert result.exit_code == 1
    assert "b/app:v1: b/app:v1 changed since the plan (now " + someone_else in result.stdout
    assert tag_digest(target, "app", "v1") == someone_else


def test_a_saved_plan_is_refused_whole_when_its_topology_changed(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    topology = two_registries(tmp_path, registry, target, ["v1"])
    out = tmp_path / "plan.json"
    assert run("plan", "-o", str(out), str(topology)).exit_code == 0
    two_registries(tmp_path, registry, target, ["v1", "v2"])

    result = run("apply", str(out))

    assert result.exit_code == 1
    assert f"the topology {topology} changed since the plan was made" in result.stderr
    assert f"plan again: regtopo plan {topology} -o {out}" in result.stderr
    assert target.count_requests("PUT") == 0


def test_a_saved_plan_applied_from_another_directory_says_where_its_topology_is_read(
    registry: Registry,
    make_registry: MakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    two_registries(tmp_path, registry, target, ["v1"])
    monkeypatch.chdir(tmp_path)
    assert run("plan", "-o", "plan.json", "topology.yaml").exit_code == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    result = run("apply", "../plan.json")

    assert result.exit_code == 1
    assert "its topology topology.yaml is not in" in result.stderr
    assert "run apply from the directory plan ran in" in result.stderr
    assert target.count_requests("PUT") == 0


def test_a_hand_edited_or_broken_plan_file_is_one_clear_refusal(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[100])
    topology = two_registries(tmp_path, registry, target, ["v1"])
    out = tmp_path / "plan.json"
    assert run("plan", "-o", str(out), str(topology)).exit_code == 0
    edited = json.loads(out.read_text())
    edited["actions"][0]["target"]["registry"] = "zzz"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    (tmp_path / "broken.json").write_text('{"format_version": 1, "actions": "x"}')

    unknown = run("apply", str(tmp_path / "edited.json"))
    broken = run("apply", str(tmp_path / "broken.json"))
    missing = run("apply", str(tmp_path / "nonexistent.json"))

    assert unknown.exit_code == 1
    assert "names registries its topology" in unknown.stderr and "zzz" in unknown.stderr
    assert broken.exit_code == 1
    assert "not a regtopo plan as written by `regtopo plan -o`: " in broken.stderr
    assert "actions: Input should be a valid list" in broken.stderr
    assert "pydantic" not in broken.stderr
    assert missing.exit_code == 1
    assert "no such file; apply takes a topology or a plan file" in missing.stderr
    assert all("Traceback" not in r.stderr for r in (unknown, broken, missing))
    assert target.count_requests("PUT") == 0


def test_plan_detailed_exitcode_and_formats(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    topology = two_registries(tmp_path, registry, target, ["v1"])

    as_json = run("plan", "--detailed-exitcode", "--format", "json", str(topology))
    as_markdown = run("plan", "--format", "markdown", str(topology))
    as_text = run("plan", str(topology))

    assert as_json.exit_code == 2
    assert [a["kind"] for a in json.loads(as_json.stdout)["actions"]] == ["copy"]
    assert as_markdown.stdout.startswith("### regtopo plan: 1 to copy, 0 to retag")
    assert "| copy | `b/app:v1` | `a/app:v1` |" in as_markdown.stdout
    assert "  + copy     b/app:v1  <- a/app:v1\n" in as_text.stdout
    assert "\x1b[" not in as_text.stdout  # not a terminal: no colour codes

    assert run("apply", "--auto-approve", str(topology)).exit_code == 0
    assert run("plan", "--detailed-exitcode", str(topology)).exit_code == 0


def test_drift_exits_2_on_drift_and_lists_unmanaged_tags(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    push_random_image(target, "app", "hotfix", layers=[10])
    push_random_image(target, "other", "latest", layers=[10])  # not a target repository
    topology = two_registries(tmp_path, registry, target, ["v1"])

    drifted = run("drift", str(topology))
    drifted_json = run("drift", "--format", "json", str(topology))

    assert drifted.exit_code == 2
    assert "  ? b/app:hotfix\n" in drifted.stdout
    assert "Drift: 1 target tag differs from the topology." in drifted.stdout
    assert json.loads(drifted_json.stdout)["unmanaged"] == [
        {"registry": "b", "repository": "app", "tag": "hotfix"}
    ]

    assert run("apply", "--auto-approve", str(topology)).exit_code == 0
    clean = run("drift", "--format", "markdown", str(topology))
    strict = run("drift", "--fail-on-unmanaged", str(topology))

    assert clean.exit_code == 0
    assert clean.stdout.startswith("### regtopo drift: no drift, 1 unmanaged")
    assert "| `b/app` | `hotfix` |" in clean.stdout
    assert strict.exit_code == 2


def test_drift_counts_source_content_the_topology_names_and_the_source_lacks(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """A typo in a source repository, or a declared tag gone from the source, plans nothing:
    the nightly check must not stay green on it."""
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[100])
    push_random_image(target, "app", "v1", layers=[100])  # so the only difference is missing
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"a": registry_entry(registry), "b": registry_entry(target)},
        [
            {"name": "gone", "source": "a/app", "targets": ["b/app"], "tags": ["9.9.9"]},
            {"name": "typo", "source": "a/ap", "targets": ["b/app"], "tags": {"include": [".*"]}},
            {"name": "none", "source": "a/app", "targets": ["b/app"], "tags": {"semver": ">=2"}},
        ],
    )

    plan = run("plan", "--detailed-exitcode", str(topology))
    drift = run("drift", str(topology))
    markdown = run("drift", "--format", "markdown", str(topology))
    actions = json.loads(run("drift", "--format", "json", str(topology)).stdout)["plan"]["actions"]

    assert plan.exit_code == 0, plan.output  # nothing to apply
    assert "  ! skipped  b/app  <- a/ap\n" in plan.stdout
    assert drift.exit_code == 2, drift.output
    assert "Drift: 2 sources the topology names are missing. Nothing for apply to do:" in (
        drift.stdout
    )
    assert markdown.stdout.startswith("### regtopo drift: drift, 2 missing at the source")
    assert sorted((a["replication"], a["source_missing"], a["reason"]) for a in actions) == [
        ("gone", True, "the source tag does not exist"),
        ("none", False, "the selector chose none of the 1 source tags"),
        ("typo", True, "the source repository has no tags, or does not exist"),
    ]


def test_target_plans_the_upstream_hop_it_reads_but_not_unrelated_replications(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    a, b, c = make_registry(), make_registry(), make_registry()
    digest = push_random_image(a, "app", "v1", layers=[1000])
    push_random_image(a, "unrelated", "v1", layers=[1000])
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"a": registry_entry(a), "b": registry_entry(b), "c": registry_entry(c)},
        [
            {"name": "promote", "source": "b/app", "targets": ["c/app"], "tags": ["v1"]},
            {"name": "seed", "source": "a/app", "targets": ["b/app"], "tags": ["v1"]},
            {"name": "other", "source": "a/unrelated", "targets": ["c/unrelated"], "tags": ["v1"]},
        ],
    )
    before = len(a.access_log())

    result = run("plan", "--target", "promote", "--format", "json", str(topology))

    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["targets"] == ["promote"]
    [action] = plan["actions"]
    # Its source b/app:v1 is what `seed` would write: not there until seed is applied.
    assert (action["replication"], action["kind"], action["hop"]) == ("promote", "skipped", 1)
    assert action["reason"] == (
        "its source is written by replication 'seed', which this run does not apply: "
        "add --target seed, or apply it first"
    )
    read_at_a = [e.path for e in a.access_log()[before:]]
    assert read_at_a and all(path.startswith("/v2/app/") for path in read_at_a), read_at_a
    assert c.count_requests(None, r"/v2/unrelated/.*") == 0

    # Once seed has been applied, promote alone plans and applies the copy.
    assert run("apply", "--auto-approve", "--target", "seed", str(topology)).exit_code == 0
    applied = run("apply", "--auto-approve", "--target", "promote", str(topology))
    assert applied.exit_code == 0, applied.output
    assert tag_digest(c, "app", "v1") == digest


def test_an_unknown_target_is_refused_with_the_known_names(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    topology = two_registries(tmp_path, registry, make_registry(), ["v1"])

    result = run("plan", "--target", "nope", str(topology))

    assert result.exit_code == 1
    assert "selecting --target nope: no such replication" in result.stderr
    assert "replications: mirror" in result.stderr


def test_shards_together_are_the_whole_plan_and_disjoint(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    repositories = [f"team{i}/app" for i in range(8)]
    for repository in repositories:
        push_random_image(registry, repository, "v1", layers=[100])
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"a": registry_entry(registry), "b": registry_entry(target)},
        [
            {"name": f"r{i}", "source": f"a/{repo}", "targets": [f"b/{repo}"], "tags": ["v1"]}
            for i, repo in enumerate(repositories)
        ],
    )

    def targets(*args: str) -> list[str]:
        result = run("plan", "--format", "json", *args, str(topology))
        assert result.exit_code == 0, result.stderr
        return [
            f"{a['target']['repository']}:{a['target']['tag']}"
            for a in json.loads(result.stdout)["actions"]
        ]

    whole = targets()
    shards = [targets("--shard", f"{i}/3") for i in (1, 2, 3)]

    assert sorted(t for shard in shards for t in shard) == sorted(whole)
    assert len(whole) == 8
    assert all(shards), "8 repositories over 3 shards: the hash leaves none empty here"


def test_applying_a_topology_off_a_terminal_needs_auto_approve(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    topology = two_registries(tmp_path, registry, target, ["v1"])

    result = run("apply", str(topology))

    assert result.exit_code == 1
    assert "not a terminal; pass --auto-approve to apply without asking" in result.stderr
    assert tag_digest(target, "app", "v1") is None


def test_a_saved_plan_can_be_applied_one_shard_at_a_time(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    repositories = [f"team{i}/app" for i in range(6)]  # team4 falls in shard 2 of 2
    digests = {repo: push_random_image(registry, repo, "v1", layers=[100]) for repo in repositories}
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"a": registry_entry(registry), "b": registry_entry(target)},
        [
            {"name": f"r{i}", "source": f"a/{repo}", "targets": [f"b/{repo}"], "tags": ["v1"]}
            for i, repo in enumerate(repositories)
        ],
    )
    out = tmp_path / "plan.json"
    assert run("plan", "-o", str(out), str(topology)).exit_code == 0

    first = run("apply", "--shard", "1/2", str(out))
    copied_by_first = {repo for repo in repositories if tag_digest(target, repo, "v1")}
    second = run("apply", "--shard", "2/2", str(out))

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert 0 < len(copied_by_first) < len(repositories)
    assert {repo: tag_digest(target, repo, "v1") for repo in repositories} == digests
    assert "(shard 2/2)" in second.stdout


def test_a_target_on_the_source_registry_is_planned_as_a_mount_and_apply_sends_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    """Apply mounts blobs across repositories of one registry: the plan said "to send" for
    bytes that never travel. Counted on the wire, through a proxy in front of the registry."""
    from regtopo.render.text import human_bytes
    from tests.support.proxy import Proxy

    push_random_image(registry, "app", "v1", layers=[3000, 5000])
    manifest = manifest_of(registry, "app", "v1")
    blob_bytes = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    with Proxy(registry.url) as proxy:
        topology = write_topology(
            tmp_path / "topology.yaml",
            {"r": {"host": proxy.url}},
            [{"name": "mirror", "source": "r/app", "targets": ["r/mirror"], "tags": ["v1"]}],
        )
        out = tmp_path / "plan.json"
        assert run("plan", "-o", str(out), str(topology)).exit_code == 0
        [action] = json.loads(out.read_text())["actions"]
        shown = run("plan", str(topology)).stdout
        applied = run("apply", str(out))
        uploads = proxy.seen(path=r"/v2/mirror/blobs/uploads/.*")

    assert applied.exit_code == 0, applied.stderr
    assert (action["bytes_to_send"], action["blobs_to_send"]) == (0, 0)
    assert (action["bytes_to_mount"], action["blobs_to_mount"]) == (blob_bytes, 3)
    assert (
        f"0 B to send in 0 blobs, {human_bytes(blob_bytes)} to mount from r/app in 3 blobs (not sent)"
        in shown
    )
    # Each blob: one POST with mount=, answered 201; no PATCH or PUT carries a byte.
    assert [(s.method, s.status, "mount" in s.query) for s in uploads] == [("POST", 201, True)] * 3
    assert f"{human_bytes(blob_bytes)} mounted in 3 blobs (not sent)" in applied.stderr
    assert f"; 0 B sent, {human_bytes(blob_bytes)} mounted (not sent) in" in applied.stdout
