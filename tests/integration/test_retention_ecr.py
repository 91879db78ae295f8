"""Retention on ECR: push times and untagged manifests from DescribeImages.

moto's server is the mock ECR control plane (`DescribeImages` through boto3, as against AWS);
the data plane is a real Distribution behind `tests.support.proxy` (tests/support/ecr.py). Every
image's config says it was created a day ago while moto says it was pushed long before, so a
rule that deletes proves the age came from ECR, not from `created`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from regtopo.plan.actions import ActionKind
from tests.integration.retention_support import deleted, deletes, plan_of, regtopo
from tests.support.aged_content import Pusher, days_ago, manifest_exists, tags_of
from tests.support.ecr import (
    REGION,
    calls,
    describe_images_repositories,
    ecr_registry,
    register_image,
    set_pushed_at,
)
from tests.support.proxy import MakeProxy, Proxy, Reply
from tests.support.registries import Registry

boto3 = pytest.importorskip("boto3")

pytestmark = [pytest.mark.registry, pytest.mark.aws, pytest.mark.timeout(120)]

CREATED = days_ago(1)  # every config's `created`: too young for any rule here


def push(registry: Registry, repository: str, tag: str | None, pushed: datetime) -> str:
    """An image in the data plane and in moto, `created` a day ago but pushed at `pushed`."""
    with Pusher(registry, repository) as pusher:
        digest = str(pusher.image(tag, CREATED)["digest"])
    register_image(registry, repository, digest, tag)
    set_pushed_at(repository, digest, pushed)
    return digest


def topology(tmp_path: Path, ecr: Proxy, *rules: dict[str, Any]) -> Path:
    document = {
        "registries": {"ecr": {"host": f"http://{ecr.host}", "provider": "ecr"}},
        "replications": [],
        "retention": {"max_percent": 100, "rules": list(rules)},
    }
    path = tmp_path / "topology.yaml"
    path.write_text(json.dumps(document, indent=2))
    return path


def rule(name: str = "prune", **fields: Any) -> dict[str, Any]:
    return {"name": name, "registry": "ecr", "repositories": ["team/.*"]} | fields


@pytest.fixture
def ecr(registry: Registry, make_proxy: MakeProxy, ecr_api: Proxy) -> Proxy:
    client = boto3.client("ecr", region_name=REGION)
    for name in ("team/app", "team/web"):
        client.create_repository(repositoryName=name)
    return ecr_registry(registry, make_proxy)


def test_an_age_rule_judges_by_ecr_push_time_and_the_plan_says_so(
    registry: Registry, ecr: Proxy, ecr_api: Proxy, tmp_path: Path
) -> None:
    old = push(registry, "team/app", "ci-1", days_ago(40))
    push(registry, "team/app", "ci-2", days_ago(5))
    path = topology(tmp_path, ecr, rule(delete={"tags": ["ci-.*"], "older_than": "30d"}))

    plan = plan_of(path)
    shown = regtopo("plan", str(path))

    assert deleted(plan) == {old: ["ci-1"]}
    deletion = deletes(plan)[0].deletion
    assert deletion is not None
    assert deletion.age_source == "provider ecr"
    assert deletion.age_days == pytest.approx(40, abs=0.1)
    assert f"  - delete   ecr/team/app:ci-1@{old[:19]}\n" in shown.stdout
    assert "older than 30d; age 40 days (provider ecr)" in shown.stdout


def test_an_old_untagged_manifest_is_listed_by_ecr_and_deleted_from_the_registry(
    registry: Registry, ecr: Proxy, ecr_api: Proxy, tmp_path: Path
) -> None:
    old = push(registry, "team/app", None, days_ago(30))
    young = push(registry, "team/app", None, days_ago(2))
    stable = push(registry, "team/app", "stable", days_ago(300))
    path = topology(tmp_path, ecr, rule(delete={"untagged_older_than": "14d"}))

    plan = plan_of(path)

    assert deleted(plan) == {old: []}
    assert deletes(plan)[0].deletion.age_source == "provider ecr"  # type: ignore[union-attr]
    assert not [a for a in plan.actions if a.kind is ActionKind.SKIPPED]

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert not manifest_exists(registry, "team/app", old)
    assert manifest_exists(registry, "team/app", young)
    assert manifest_exists(registry, "team/app", stable)
    assert tags_of(registry, "team/app") == ["stable"]


def test_the_children_ecr_lists_untagged_stay_with_their_tagged_index(
    registry: Registry, ecr: Proxy, ecr_api: Proxy, tmp_path: Path
) -> None:
    """ECR lists an index's children as untagged images: they are not untagged garbage, and
    a plan neither deletes them nor lists them as saved."""
    with Pusher(registry, "team/app") as pusher:
        children = [pusher.image(None, CREATED, platform=p) for p in ("linux/amd64", "linux/arm64")]
        index = str(pusher.index("multi", children)["digest"])
    for child in children:
        register_image(registry, "team/app", str(child["digest"]), None)
        set_pushed_at("team/app", str(child["digest"]), days_ago(60))
    register_image(registry, "team/app", index, "multi")
    set_pushed_at("team/app", index, days_ago(60))
    lone = push(registry, "team/app", None, days_ago(60))
    path = topology(tmp_path, ecr, rule(delete={"untagged_older_than": "14d"}))

    plan = plan_of(path)

    assert deleted(plan) == {lone: []}
    assert [a.kind for a in plan.actions] == [ActionKind.DELETE]


def test_each_repository_is_described_once_per_run_whatever_reads_it(
    registry: Registry, ecr: Proxy, ecr_api: Proxy, tmp_path: Path
) -> None:
    """Two rules over two repositories read tags, untagged manifests and every age (eight
    threads at once): one DescribeImages per repository, counted at moto's proxy."""
    for repository in ("team/app", "team/web"):
        for n in range(6):
            push(registry, repository, f"ci-{n}", days_ago(10 * n))
        push(registry, repository, None, days_ago(60))
    described = describe_images_repositories(ecr_api)
    path = topology(
        tmp_path,
        ecr,
        rule("ci", delete={"tags": ["ci-.*"], "older_than": "35d"}, keep={"latest": 2}),
        rule("untagged", delete={"untagged_older_than": "14d"}, keep={"newer_than": "1d"}),
    )

    plan = plan_of(path)

    assert len(deletes(plan)) == 2 * (2 + 1)  # ci-4, ci-5 and the untagged one, twice
    assert sorted(described) == ["team/app", "team/web"]
    assert calls(ecr_api, "DescribeImages") == 2


def test_access_denied_falls_back_to_created_with_one_warning(
    registry: Registry, ecr: Proxy, ecr_api: Proxy, tmp_path: Path
) -> None:
    with Pusher(registry, "team/app") as pusher:
        old = str(pusher.image("ci-1", days_ago(40))["digest"])
        pusher.image("ci-2", days_ago(5))
    with Pusher(registry, "team/web") as pusher:
        pusher.image("ci-1", days_ago(5))
    denied = json.dumps(
        {
            "__type": "AccessDeniedException",
            "message": "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: "
            "ecr:DescribeImages",
        }
    ).encode()

    def deny(request: Any) -> Reply | None:
        if request.headers.get("x-amz-target", "").endswith(".DescribeImages"):
            return Reply(400, {"Content-Type": "application/x-amz-json-1.1"}, denied)
        return None

    ecr_api.add(deny)
    path = topology(
        tmp_path,
        ecr,
        rule(delete={"tags": ["ci-.*"], "older_than": "30d", "untagged_older_than": "14d"}),
    )

    result = regtopo("plan", str(path))

    assert result.exit_code == 0, result.stderr
    assert f"ecr/team/app:ci-1@{old[:19]}" in result.stdout
    assert "age 40 days (config created)" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert "registry 'ecr' (ECR): DescribeImages for team/" in warnings[0]
    assert "AccessDeniedException" in warnings[0]
    assert (
        "untagged manifests of registry 'ecr' were not listed: the ecr API failed" in result.stdout
    )
    assert calls(ecr_api, "DescribeImages") == 1  # not asked again for the other repository
