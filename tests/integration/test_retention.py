"""Retention against real registries holding content of known ages (issue #6).

Every image here has a config `created` chosen by the test, so each rule sees the ages the test
meant; the oracle for what is left is the registry itself, read with plain httpx.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from regtopo.plan.actions import ActionKind
from tests.integration.retention_support import (
    deleted,
    deletes,
    plan_of,
    regtopo,
    skipped_deletions,
    write_topology,
)
from tests.support.aged_content import (
    Pusher,
    days_ago,
    fallback_tag,
    manifest_exists,
    tags_of,
    write_layout_image,
)
from tests.support.registries import MakeRegistry, Registry

pytestmark = pytest.mark.registry


def rule(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "prune", "registry": "hub", "repositories": ["app"]}
    return base | fields


def retention(*rules: dict[str, Any], **limits: Any) -> dict[str, Any]:
    return {"max_percent": 100} | limits | {"rules": list(rules)}


@pytest.fixture
def hub(make_registry: MakeRegistry) -> Registry:
    return make_registry()


# Rule kinds


def test_delete_tags_older_than_deletes_only_old_matching_tags_and_apply_removes_them(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        old_ci = push.image("ci-1", days_ago(40))
        young_ci = push.image("ci-2", days_ago(5))
        old_release = push.image("release", days_ago(90))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    plan = plan_of(path)

    assert deleted(plan) == {old_ci["digest"]: ["ci-1"]}
    action = deletes(plan)[0]
    assert action.deletion is not None
    assert action.deletion.rule == (
        "retention rule 'prune': tag matches ['ci-.*'] and is older than 30d"
    )
    assert action.deletion.age_source == "config created"
    assert action.deletion.age_days == pytest.approx(40, abs=0.1)

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert tags_of(hub, "app") == ["ci-2", "release"]
    assert not manifest_exists(hub, "app", old_ci["digest"])
    assert manifest_exists(hub, "app", young_ci["digest"])
    assert manifest_exists(hub, "app", old_release["digest"])
    assert "No changes." in regtopo("plan", str(path)).stdout


def test_plan_text_names_the_rule_the_age_and_where_the_age_came_from(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        push.image("ci-2", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    result = regtopo("plan", str(path), "--detailed-exitcode")

    assert result.exit_code == 2
    assert f"  - delete   hub/app:ci-1@{old['digest'][:19]}\n" in result.stdout
    assert (
        "image (layers: application/vnd.oci.image.layer.v1.tar); "
        "retention rule 'prune': tag matches ['ci-.*'] and is older than 30d; "
        "age 40 days (config created)"
    ) in result.stdout
    assert "Plan: 0 to copy, 0 to retag, 1 to delete, 0 in sync, 0 skipped" in result.stdout


def test_keep_latest_by_semver_keeps_the_highest_versions_whatever_their_age(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        versions = {
            tag: push.image(tag, days_ago(age))
            for tag, age in [
                ("v1.2.0", 50),
                ("v1.10.0", 80),  # older than v1.2.0 but a higher version
                ("v1.9.3", 60),
                ("v1.10.1-rc.1", 45),
                ("v0.9.0", 40),
            ]
        }
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(
            rule(
                keep={"latest": 2, "by": "semver"},
                delete={"tags": ["v.*"], "older_than": "0s"},
            )
        ),
    )

    plan = plan_of(path)

    # Kept: v1.10.1-rc.1 and v1.10.0 (a pre-release sorts above the release before it).
    assert deleted(plan) == {versions[t]["digest"]: [t] for t in ("v0.9.0", "v1.2.0", "v1.9.3")}


def test_keep_latest_by_time_keeps_the_newest_content(hub: Registry, tmp_path: Path) -> None:
    with Pusher(hub, "app") as push:
        images = {
            tag: push.image(tag, days_ago(age))
            for tag, age in [("a", 10), ("b", 30), ("c", 20), ("d", 40)]
        }
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(
            rule(keep={"latest": 2, "by": "time"}, delete={"tags": [".*"], "older_than": "1d"})
        ),
    )

    assert deleted(plan_of(path)) == {images["b"]["digest"]: ["b"], images["d"]["digest"]: ["d"]}


def test_keep_newer_than_in_one_rule_wins_over_delete_in_another(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        push.image("ci-2", days_ago(10))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(
            rule(name="aggressive", delete={"tags": ["ci-.*"], "older_than": "1d"}),
            rule(name="cautious", keep={"newer_than": "14d"}),
        ),
    )

    assert deleted(plan_of(path)) == {old["digest"]: ["ci-1"]}


def test_keep_tags_pattern_wins_over_a_matching_delete(hub: Registry, tmp_path: Path) -> None:
    with Pusher(hub, "app") as push:
        push.image("v1.0.0", days_ago(400))
        dev = push.image("dev-1", days_ago(400))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(
            rule(keep={"tags": [r"v\d+\.\d+\.\d+"]}, delete={"tags": [".*"], "older_than": "30d"})
        ),
    )

    plan = plan_of(path)

    assert deleted(plan) == {dev["digest"]: ["dev-1"]}
    assert skipped_deletions(plan) == {}


def test_untagged_manifests_older_than_are_deleted_from_a_layout(tmp_path: Path) -> None:
    root = tmp_path / "store"
    old_untagged = write_layout_image(root / "app", None, days_ago(30))
    young_untagged = write_layout_image(root / "app", None, days_ago(2))
    tagged = write_layout_image(root / "app", "stable", days_ago(300))
    path = write_topology(
        tmp_path,
        {"hub": root},
        retention=retention(rule(delete={"untagged_older_than": "14d"})),
    )

    plan = plan_of(path)

    assert deleted(plan) == {old_untagged: []}
    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")
    assert result.exit_code == 0, result.output
    index = (root / "app" / "index.json").read_text()
    assert old_untagged not in index
    assert young_untagged in index and tagged in index


def test_untagged_deletion_on_a_registry_that_cannot_list_them_is_skipped_with_the_reason(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        push.image(None, days_ago(30))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"untagged_older_than": "14d"})),
    )

    plan = plan_of(path)

    assert deletes(plan) == []
    [skipped] = [a for a in plan.actions if a.kind is ActionKind.SKIPPED]
    assert skipped.reason.startswith(
        "retention rule 'prune': untagged manifests of registry 'hub' cannot be listed over "
        "the OCI distribution API"
    )


# Ages


def test_age_comes_from_the_created_annotation_when_the_config_has_none(
    hub: Registry, tmp_path: Path
) -> None:
    created = days_ago(50).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Pusher(hub, "app") as push:
        image = push.image("ci-1", None, annotations={"org.opencontainers.image.created": created})
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    [action] = deletes(plan_of(path))

    assert action.deletion is not None
    assert action.deletion.digest == image["digest"]
    assert action.deletion.age_source == "annotation org.opencontainers.image.created"
    assert action.deletion.created == created.replace("Z", "+00:00")


def test_reproducible_build_epoch_is_no_age_and_is_never_deleted_by_an_age_rule(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        push.image("ci-ko", "1970-01-01T00:00:00Z")
        push.image("ci-none", None)
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    assert deleted(plan_of(path)) == {}


def test_an_index_is_as_old_as_its_newest_child(hub: Registry, tmp_path: Path) -> None:
    with Pusher(hub, "app") as push:
        amd = push.image(None, days_ago(60), platform="linux/amd64")
        arm = push.image(None, days_ago(20), platform="linux/arm64")
        push.index("ci-multi", [amd, arm])
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    assert deleted(plan_of(path)) == {}


# Protections


def test_tags_a_replication_reads_or_writes_are_never_deleted(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    hub, mirror = make_registry(), make_registry()
    with Pusher(hub, "app") as push:
        source = push.image("ci-read", days_ago(90))
        other = push.image("ci-other", days_ago(90))
    with Pusher(mirror, "app") as push:
        written = push.image("ci-read", days_ago(90))  # an old copy the plan will replace
    path = write_topology(
        tmp_path,
        {"hub": hub, "mirror": mirror},
        replications=[{"source": "hub/app", "targets": "mirror/app", "tags": ["ci-read"]}],
        retention=retention(
            rule(delete={"tags": ["ci-.*"], "older_than": "30d"}),
            rule(name="mirror", registry="mirror", delete={"tags": [".*"], "older_than": "30d"}),
        ),
    )

    plan = plan_of(path)

    assert deleted(plan) == {other["digest"]: ["ci-other"]}
    assert skipped_deletions(plan) == {
        source["digest"]: "not deleted: replication 'hub/app' reads this tag",
        written["digest"]: "not deleted: replication 'hub/app' writes this tag",
    }


def test_children_of_a_kept_index_are_never_deleted_and_a_deleted_index_takes_its_own(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        shared = push.image(None, days_ago(100), platform="linux/amd64")
        only_old = push.image(None, days_ago(100), platform="linux/arm64")
        old_index = push.index("ci-old", [shared, only_old])
        push.index("stable", [shared])
        # A tag on a platform image of the kept index: it matches, but the index reaches it.
        push.manifest(
            push.client.get(
                f"{hub.url}/v2/app/manifests/{shared['digest']}",
                headers={"Accept": shared["mediaType"]},
            ).json(),
            "ci-platform",
        )
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    plan = plan_of(path)

    assert deleted(plan) == {old_index["digest"]: ["ci-old"]}
    [action] = deletes(plan)
    assert action.deletion is not None
    assert action.deletion.children == [only_old["digest"]]
    assert skipped_deletions(plan) == {
        shared["digest"]: "not deleted: kept: it is a child of a kept index (tag 'stable' stays)"
    }

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert manifest_exists(hub, "app", shared["digest"])
    assert manifest_exists(hub, "app", "stable")
    assert not manifest_exists(hub, "app", old_index["digest"])
    assert not manifest_exists(hub, "app", only_old["digest"])


def test_a_tag_sharing_its_manifest_with_a_kept_tag_stays_and_the_plan_says_why(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        image = push.image("ci-41", days_ago(60))
        push.manifest(
            push.client.get(
                f"{hub.url}/v2/app/manifests/ci-41", headers={"Accept": image["mediaType"]}
            ).json(),
            "production",
        )
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    plan = plan_of(path)

    assert deleted(plan) == {}
    reason = skipped_deletions(plan)[image["digest"]]
    assert reason.startswith("not deleted: tag(s) production stay on the same manifest")
    assert tags_of(hub, "app") == ["ci-41", "production"]


def test_deleting_a_subject_plans_its_signature_and_sbom_and_apply_removes_them(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        signature = push.cosign_signature(old)
        sbom, fallback_index = push.sbom_referrer(old)
        kept = push.image("ci-2", days_ago(1))
        kept_signature = push.cosign_signature(kept)
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    plan = plan_of(path)

    [action] = deletes(plan)
    assert action.deletion is not None
    found = {(r.digest, r.found_by, r.tag) for r in action.deletion.referrers}
    assert found == {
        (signature["digest"], "cosign tag", fallback_tag(old["digest"]) + ".sig"),
        (fallback_index["digest"], "fallback tag", fallback_tag(old["digest"])),
        (sbom["digest"], "fallback tag", None),
    }
    assert "with 3 referrers" in regtopo("plan", str(path)).stdout

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert "with 3 referrers" in result.stderr
    for digest in (old["digest"], signature["digest"], sbom["digest"], fallback_index["digest"]):
        assert not manifest_exists(hub, "app", digest)
    assert tags_of(hub, "app") == ["ci-2", fallback_tag(kept["digest"]) + ".sig"]
    assert manifest_exists(hub, "app", kept_signature["digest"])


# Ceilings


def test_a_rule_over_its_max_deletes_is_refused_with_the_numbers(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        for n in range(4):
            push.image(f"ci-{n}", days_ago(40))
        push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"}, max_deletes=3)),
    )

    result = regtopo("plan", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: refusing the plan: retention rule 'prune' would delete 4 manifests, "
        "over its max_deletes of 3\n"
    )
    assert result.stderr.count("  would delete hub/app@sha256:") == 4
    assert len(tags_of(hub, "app")) == 5


def test_a_run_deleting_more_than_max_percent_of_a_repository_is_refused(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        for n in range(3):
            push.image(f"ci-{n}", days_ago(40))
        push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention={
            "rules": [rule(delete={"tags": ["ci-.*"], "older_than": "30d"})],
            "max_percent": 50,
        },
    )

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 1
    assert (
        "this run would delete 3 of 4 manifests in hub/app (75%), over the run's max_percent "
        "of 50" in result.stderr
    )
    assert hub.count_requests("DELETE") == 0


def test_the_run_ceiling_counts_deletions_of_every_rule_together(
    hub: Registry, tmp_path: Path
) -> None:
    with Pusher(hub, "app") as push:
        push.image("ci-1", days_ago(40))
        push.image("dev-1", days_ago(40))
        push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(
            rule(name="ci", delete={"tags": ["ci-.*"], "older_than": "30d"}, max_deletes=1),
            rule(name="dev", delete={"tags": ["dev-.*"], "older_than": "30d"}, max_deletes=1),
            max_deletes=1,
        ),
    )

    result = regtopo("plan", str(path))

    assert result.exit_code == 1
    assert (
        "refusing the plan: this run would delete 2 manifests, over the run's max_deletes of 1"
        in result.stderr
    )


# Sync mode


def test_a_tag_a_later_hop_selects_is_never_deleted_by_an_earlier_hops_sync(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """Protection follows what each replication's selector reads, not only exact tag lists:
    `to-prod` keeps the latest 2 at prod in sync, while `prod-to-edge` reads every 1.x from
    prod. 1.0 falls out of `to-prod`'s latest 2, but the later hop still reads it."""
    dev, prod, edge = make_registry(), make_registry(), make_registry()
    with Pusher(dev, "app") as push:
        for tag in ("1.0", "1.1", "1.2"):
            push.image(tag, days_ago(3))
    with Pusher(prod, "app") as push:
        old = push.image("1.0", days_ago(3))
    path = write_topology(
        tmp_path,
        {"dev": dev, "prod": prod, "edge": edge},
        replications=[
            {
                "name": "to-prod",
                "source": "dev/app",
                "targets": "prod/app",
                "tags": {"semver": ">=1.0", "latest": 2},
                "mode": "sync",
            },
            {
                "name": "prod-to-edge",
                "source": "prod/app",
                "targets": "edge/app",
                "tags": {"semver": ">=1.0,<2"},
            },
        ],
    )

    plan = plan_of(path)

    assert deleted(plan) == {}
    assert skipped_deletions(plan) == {
        old["digest"]: "not deleted: replication 'prod-to-edge' reads this tag"
    }

    # `--target to-prod` leaves the later hop unplanned; its selector still protects the tag.
    result = regtopo("plan", str(path), "--target", "to-prod", "--format", "json")

    assert result.exit_code == 0, result.output
    [action] = [a for a in json.loads(result.stdout)["actions"] if a["target"]["tag"] == "1.0"]
    assert action["kind"] == "skipped"
    assert action["reason"] == "not deleted: replication 'prod-to-edge' reads tags like this one"

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert tags_of(prod, "app") == ["1.0", "1.1", "1.2"]
    assert tags_of(edge, "app") == ["1.0", "1.1", "1.2"]


def test_sync_replication_deletes_target_tags_the_source_no_longer_has(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    hub, mirror = make_registry(), make_registry()
    with Pusher(hub, "app") as push:
        push.image("v1", days_ago(3))
    with Pusher(mirror, "app") as push:
        gone = push.image("v2", days_ago(3))  # the source deleted v2 after it was mirrored
        push.image("local", days_ago(3))  # not one of the replication's tags: untouched
    path = write_topology(
        tmp_path,
        {"hub": hub, "mirror": mirror},
        replications=[
            {"source": "hub/app", "targets": "mirror/app", "tags": ["v1", "v2"], "mode": "sync"}
        ],
    )

    plan = plan_of(path)

    assert deleted(plan) == {gone["digest"]: ["v2"]}
    [action] = deletes(plan)
    assert action.replication == "hub/app"
    assert action.deletion is not None
    assert action.deletion.rule == "sync replication 'hub/app': hub/app no longer has this tag"
    assert [a.kind for a in plan.actions if a.target.tag == "v2"] == [ActionKind.DELETE]

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert tags_of(mirror, "app") == ["local", "v1"]


def test_a_sync_deletion_waits_when_the_same_syncs_copy_to_that_repository_did_not_land(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """A sync removes `v0` because `v1` replaces it: when the saved plan's copy of `v1` is
    refused as stale, `v0` stays until a run where the copy lands."""
    hub, mirror = make_registry(), make_registry()
    with Pusher(hub, "app") as push:
        push.image("v1", days_ago(3))
    with Pusher(mirror, "app") as push:
        old = push.image("v0", days_ago(9))
    path = write_topology(
        tmp_path,
        {"hub": hub, "mirror": mirror},
        replications=[
            {
                "name": "app",
                "source": "hub/app",
                "targets": "mirror/app",
                "tags": {"include": ["v.*"]},
                "mode": "sync",
            }
        ],
    )
    saved = tmp_path / "plan.json"
    assert regtopo("plan", str(path), "-o", str(saved)).exit_code == 0
    with Pusher(hub, "app") as push:
        push.image("v1", days_ago(1))  # the source tag moves after the review

    result = regtopo("apply", str(saved))

    assert result.exit_code == 1, result.output
    assert "0 done, 0 failed, 1 stale, 1 not attempted" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        f"  delete mirror/app:v0@{old['digest'][:19]}: the same sync's copy to mirror/app:v1 "
        "was refused as stale earlier in this apply; the deletion waits for a run where the "
        "copies complete"
    )
    assert tags_of(mirror, "app") == ["v0"]

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert tags_of(mirror, "app") == ["v1"]


def test_mirror_mode_never_deletes(make_registry: MakeRegistry, tmp_path: Path) -> None:
    hub, mirror = make_registry(), make_registry()
    with Pusher(hub, "app") as push:
        push.image("v1", days_ago(3))
    with Pusher(mirror, "app") as push:
        push.image("v2", days_ago(3))
    path = write_topology(
        tmp_path,
        {"hub": hub, "mirror": mirror},
        replications=[{"source": "hub/app", "targets": "mirror/app", "tags": ["v1", "v2"]}],
    )

    plan = plan_of(path)

    assert deletes(plan) == []
    assert [a.reason for a in plan.actions if a.target.tag == "v2"] == [
        "the source tag does not exist"
    ]


# Consent and registries that refuse deletion


def test_apply_without_allow_delete_copies_but_deletes_nothing(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    hub, mirror = make_registry(), make_registry()
    with Pusher(hub, "app") as push:
        push.image("v1", days_ago(3))
        push.image("ci-1", days_ago(40))
    path = write_topology(
        tmp_path,
        {"hub": hub, "mirror": mirror},
        replications=[{"source": "hub/app", "targets": "mirror/app", "tags": ["v1"]}],
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    result = regtopo("apply", str(path), "--auto-approve")

    assert result.exit_code == 0, result.output
    assert "1 planned deletion(s) are skipped: pass --allow-delete" in result.stderr
    assert "Apply complete: 1 done, 0 failed, 0 stale, 0 not attempted, 1 skipped" in result.stdout
    assert tags_of(mirror, "app") == ["v1"]
    assert tags_of(hub, "app") == ["ci-1", "v1"]
    assert hub.count_requests("DELETE") == 0


def test_a_deletion_whose_manifest_gained_a_tag_since_the_plan_is_refused_as_stale(
    hub: Registry, tmp_path: Path
) -> None:
    from regtopo.apply.executor import Executor, Outcome
    from regtopo.plan.session import Session
    from regtopo.topology.loader import load

    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )
    plan = plan_of(path)
    with Pusher(hub, "app") as push:
        push.manifest(
            push.client.get(
                f"{hub.url}/v2/app/manifests/ci-1", headers={"Accept": old["mediaType"]}
            ).json(),
            "hotfix",
        )

    session = Session(load(path).topology, base_dir=tmp_path)
    try:
        report = Executor(session, allow_delete=True).apply(plan)
    finally:
        session.close()

    [result] = report.results
    assert result.outcome is Outcome.STALE
    assert "tag(s) hotfix point at it since the plan" in result.message
    assert manifest_exists(hub, "app", old["digest"])


def test_C25_a_registry_refusing_delete_is_asked_once_and_the_others_proceed(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """C25: GHCR and Docker Hub answer manifest DELETE with 405 UNSUPPORTED.

    Exactly one DELETE reaches the refusing registry; its other deletions are reported as
    skipped with the reason; the registry that allows deletion loses exactly what was planned.
    """
    refusing = make_registry(delete_enabled=False)
    allowing = make_registry()
    planned: dict[str, list[str]] = {}
    for registry in (refusing, allowing):
        with Pusher(registry, "app") as push:
            planned[registry.host] = [
                push.image(f"ci-{n}", days_ago(40 + n))["digest"] for n in range(3)
            ]
            push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"ghcr": refusing, "zot": allowing},
        retention=retention(
            rule(name="ghcr-ci", registry="ghcr", delete={"tags": ["ci-.*"], "older_than": "30d"}),
            rule(name="zot-ci", registry="zot", delete={"tags": ["ci-.*"], "older_than": "30d"}),
        ),
    )

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert refusing.count_requests("DELETE") == 1
    assert allowing.count_requests("DELETE") == 3
    assert "Apply complete: 3 done, 0 failed, 0 stale, 0 not attempted, 3 skipped" in result.stdout
    reason = (
        "registry 'ghcr' refuses deletion over the OCI API (405 UNSUPPORTED); deleting there "
        "needs the product's own API"
    )
    skipped_lines = [line for line in result.stdout.splitlines() if line.startswith("  delete ")]
    assert len(skipped_lines) == 3
    pattern = r"  delete ghcr/app:ci-\d@sha256:[0-9a-f]{12}: " + re.escape(reason)
    assert all(re.fullmatch(pattern, line) for line in skipped_lines), skipped_lines
    assert tags_of(refusing, "app") == ["ci-0", "ci-1", "ci-2", "keep"]
    assert tags_of(allowing, "app") == ["keep"]


def test_repository_patterns_find_repositories_through_the_catalog(
    hub: Registry, tmp_path: Path
) -> None:
    old: dict[str, str] = {}
    for repo in ("apps/web", "apps/api", "tools/ci"):
        with Pusher(hub, repo) as push:
            old[repo] = push.image("ci-1", days_ago(40))["digest"]
            push.image("stable", days_ago(40))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(
            rule(repositories=["apps/.*"], delete={"tags": ["ci-.*"], "older_than": "30d"})
        ),
    )

    plan = plan_of(path)

    assert sorted((a.target.repository, a.target.tag) for a in deletes(plan)) == [
        ("apps/api", "ci-1"),
        ("apps/web", "ci-1"),
    ]


def test_a_saved_plan_keeps_its_deletions_and_applying_it_deletes_exactly_those(
    hub: Registry, tmp_path: Path
) -> None:
    from regtopo.apply.executor import Executor, Outcome
    from regtopo.plan.actions import Plan
    from regtopo.plan.session import Session
    from regtopo.topology.loader import load

    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        signature = push.cosign_signature(old)
        push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )
    saved = tmp_path / "plan.json"

    assert regtopo("plan", str(path), "-o", str(saved)).exit_code == 0
    plan = Plan.model_validate_json(saved.read_text())

    [action] = deletes(plan)
    assert action.deletion is not None
    assert (action.deletion.digest, action.deletion.tags) == (old["digest"], ["ci-1"])
    assert [r.digest for r in action.deletion.referrers] == [signature["digest"]]

    # Applying a reviewed plan file is consent: that path sets allow_delete.
    session = Session(load(path).topology, base_dir=tmp_path)
    try:
        report = Executor(session, allow_delete=True).apply(plan)
    finally:
        session.close()

    assert [r.outcome for r in report.results] == [Outcome.DONE]
    assert tags_of(hub, "app") == ["keep"]
    assert hub.count_requests("DELETE") == 2


def test_deletions_under_token_auth_ask_for_the_delete_scope(
    make_registry: MakeRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = make_registry("token")
    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        push.image("keep", days_ago(1))
    assert hub.credentials is not None and hub.issuer is not None
    monkeypatch.setenv("HUB_USER", hub.credentials[0])
    monkeypatch.setenv("HUB_PASSWORD", hub.credentials[1])
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )
    document = json.loads(path.read_text())
    document["registries"]["hub"]["credentials"] = {
        "username": "${env:HUB_USER}",
        "password": "${env:HUB_PASSWORD}",
    }
    path.write_text(json.dumps(document))

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.output
    assert not manifest_exists_with_token(hub, old["digest"])
    scopes = [s for r in hub.issuer.requests for s in r.query["scope"]]
    assert "repository:app:delete" in scopes


def manifest_exists_with_token(registry: Registry, digest: str) -> bool:
    with Pusher(registry, "app") as push:
        response = push.client.head(
            f"{registry.url}/v2/app/manifests/{digest}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
    return response.status_code == 200


def test_sync_from_a_source_without_any_tag_deletes_nothing_and_says_why(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    hub, mirror = make_registry(), make_registry()
    with Pusher(mirror, "app") as push:
        push.image("v1", days_ago(3))
    path = write_topology(
        tmp_path,
        {"hub": hub, "mirror": mirror},
        replications=[
            {"source": "hub/app", "targets": "mirror/app", "tags": ["v1"], "mode": "sync"}
        ],
    )

    plan = plan_of(path)

    assert deletes(plan) == []
    assert (
        "sync deletions not planned: hub/app has no tags at all, which would delete every "
        "selected tag at the targets"
    ) in [a.reason for a in plan.actions]


def test_C25_a_registry_whose_product_refuses_delete_is_skipped_in_the_plan_already(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """C25, plan side: a registry profiled as GHCR (no deletes over the OCI API) shows its
    deletions as skipped with the reason in the plan, and apply sends it no DELETE at all."""
    ghcr = make_registry(delete_enabled=False)
    with Pusher(ghcr, "app") as push:
        for n in range(2):
            push.image(f"ci-{n}", days_ago(40 + n))
        push.image("keep", days_ago(1))
    path = write_topology(
        tmp_path,
        {"ghcr": ghcr},
        retention=retention(
            rule(name="ghcr-ci", registry="ghcr", delete={"tags": ["ci-.*"], "older_than": "30d"})
        ),
    )
    document = json.loads(path.read_text())
    document["registries"]["ghcr"]["provider"] = "ghcr"
    path.write_text(json.dumps(document))

    plan = plan_of(path)
    applied = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    skipped = [a for a in plan.actions if a.kind is ActionKind.SKIPPED]
    assert [a.target.tag for a in plan.actions if a.kind is ActionKind.DELETE] == []
    assert len(skipped) == 2
    assert {a.reason for a in skipped} == {
        "registry 'ghcr' (GitHub Container Registry) refuses deletion over the OCI API; "
        "deleting there needs the product's own API"
    }
    assert all(a.deletion is not None for a in skipped)
    assert applied.exit_code == 0, applied.output
    assert ghcr.count_requests("DELETE") == 0


def test_markdown_plan_puts_deletions_in_its_headline_and_summary(
    hub: Registry, tmp_path: Path
) -> None:
    """A pull-request reviewer reading only the Markdown headline or table sees the deletions."""
    with Pusher(hub, "app") as push:
        old = push.image("ci-1", days_ago(40))
        push.image("ci-2", days_ago(1))
    path = write_topology(
        tmp_path,
        {"hub": hub},
        retention=retention(rule(delete={"tags": ["ci-.*"], "older_than": "30d"})),
    )

    result = regtopo("plan", str(path), "--format", "markdown", "--detailed-exitcode")

    assert result.exit_code == 2
    assert result.stdout.startswith(
        "### regtopo plan: 0 to copy, 0 to retag, **1 to delete**, 0 B to send\n"
    )
    assert "| 0 | 0 | 0 | 1 | 0 | 0 | 0 | 0 B |" in result.stdout
    assert (
        f"| **delete** | `hub/app:ci-1` | | `{old['digest'][:19]}` → deleted | | | "
        "retention rule 'prune'" in result.stdout
    )
