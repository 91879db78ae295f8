"""Retention on Harbor: push times and untagged artifacts from Harbor's ListArtifacts.

Harbor cannot run here. Its REST API is a stand-in written from the public API reference
(tests/support/harbor.py) on a proxy that forwards every `/v2/` request to a real Distribution
registry, which holds the content and performs the deletes; the stand-in lists what that
registry's storage holds. Every image's config says it was created a day ago while the stand-in
says it was pushed long before, so a rule that deletes proves the age came from Harbor's
`push_time`, not from `created`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from regtopo.plan.actions import ActionKind
from regtopo.providers import harbor as harbor_provider
from tests.integration.retention_support import deleted, deletes, plan_of, regtopo
from tests.support.aged_content import Pusher, days_ago, manifest_exists, tags_of
from tests.support.harbor import HarborApi, harbor_registry
from tests.support.proxy import MakeProxy, Proxy
from tests.support.registries import Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

CREATED = days_ago(1)  # every config's `created`: too young for any rule here
USER, PASSWORD = "robot$team+regtopo", "robot-secret"
ARTIFACTS = r"/api/v2\.0/projects/team/repositories/.+/artifacts"


@pytest.fixture
def api(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> HarborApi:
    monkeypatch.setenv("HARBOR_PASSWORD", PASSWORD)
    return HarborApi(registry, USER, PASSWORD, projects={"team"})


@pytest.fixture
def harbor(registry: Registry, make_proxy: MakeProxy, api: HarborApi) -> Proxy:
    return harbor_registry(registry, make_proxy, api)


def push(api: HarborApi, repository: str, tag: str | None, pushed: datetime) -> str:
    """An image in Distribution, `created` a day ago; Harbor says it was pushed at `pushed`."""
    with Pusher(api.registry, repository) as pusher:
        digest = str(pusher.image(tag, CREATED)["digest"])
    api.set_pushed(repository, digest, pushed)
    return digest


def topology(tmp_path: Path, harbor: Proxy, *rules: dict[str, Any]) -> Path:
    document = {
        "registries": {
            "harbor": {
                "host": f"http://{harbor.host}",
                "provider": "harbor",
                "credentials": {"username": USER, "password": "${env:HARBOR_PASSWORD}"},
            }
        },
        "replications": [],
        "retention": {"max_percent": 100, "rules": list(rules)},
    }
    path = tmp_path / "topology.yaml"
    path.write_text(json.dumps(document, indent=2))
    return path


def rule(name: str = "prune", **fields: Any) -> dict[str, Any]:
    return {"name": name, "registry": "harbor", "repositories": ["team/.*"]} | fields


def test_an_age_rule_judges_by_harbor_push_time_and_the_plan_says_so(
    api: HarborApi, harbor: Proxy, tmp_path: Path
) -> None:
    old = push(api, "team/app", "ci-1", days_ago(40))
    push(api, "team/app", "ci-2", days_ago(5))
    path = topology(tmp_path, harbor, rule(delete={"tags": ["ci-.*"], "older_than": "30d"}))

    plan = plan_of(path)
    shown = regtopo("plan", str(path))

    assert deleted(plan) == {old: ["ci-1"]}
    deletion = deletes(plan)[0].deletion
    assert deletion is not None
    assert deletion.age_source == "provider harbor"
    assert deletion.age_days == pytest.approx(40, abs=0.1)
    assert "older than 30d; age 40 days (provider harbor)" in shown.stdout
    # Basic auth with the registry's credentials, the repository listed once per run.
    calls = harbor.seen("GET", ARTIFACTS)
    assert len(calls) == 2  # plan_of, then the CLI's plan
    assert all(c.headers["authorization"].startswith("Basic ") for c in calls)


def test_a_nested_repository_name_is_encoded_twice_in_the_api_path(
    api: HarborApi, harbor: Proxy, tmp_path: Path
) -> None:
    old = push(api, "team/tools/app", "ci-1", days_ago(40))
    path = topology(tmp_path, harbor, rule(delete={"tags": ["ci-.*"], "older_than": "30d"}))

    plan = plan_of(path)

    assert deleted(plan) == {old: ["ci-1"]}
    assert deletes(plan)[0].deletion.age_source == "provider harbor"  # type: ignore[union-attr]
    [call] = harbor.seen("GET", ARTIFACTS)
    assert "/repositories/tools%252Fapp/artifacts" in call.target


@pytest.mark.parametrize("list_children", [False, True], ids=["children-hidden", "children-listed"])
def test_an_old_untagged_artifact_is_deleted_and_a_tagged_index_keeps_its_children(
    api: HarborApi, harbor: Proxy, registry: Registry, tmp_path: Path, list_children: bool
) -> None:
    """Current Harbor leaves an index's untagged children out of ListArtifacts, some versions
    list them as untagged artifacts; either way they are not untagged garbage, and only the
    lone untagged image older than the rule goes."""
    api.list_children = list_children
    with Pusher(registry, "team/app") as pusher:
        children = [pusher.image(None, CREATED, platform=p) for p in ("linux/amd64", "linux/arm64")]
        index = str(pusher.index("multi", children)["digest"])
    for child in children:
        api.set_pushed("team/app", str(child["digest"]), days_ago(60))
    api.set_pushed("team/app", index, days_ago(60))
    old = push(api, "team/app", None, days_ago(30))
    young = push(api, "team/app", None, days_ago(2))
    stable = push(api, "team/app", "stable", days_ago(300))
    listed = {a["digest"] for a in api.artifacts("team/app")}
    assert all((str(c["digest"]) in listed) is list_children for c in children)
    path = topology(tmp_path, harbor, rule(delete={"untagged_older_than": "14d"}))

    plan = plan_of(path)

    assert deleted(plan) == {old: []}
    assert deletes(plan)[0].deletion.age_source == "provider harbor"  # type: ignore[union-attr]
    assert [a.kind for a in plan.actions] == [ActionKind.DELETE]

    result = regtopo("apply", str(path), "--auto-approve", "--allow-delete")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert not manifest_exists(registry, "team/app", old)
    for kept in (young, stable, index, *(str(c["digest"]) for c in children)):
        assert manifest_exists(registry, "team/app", kept)
    assert tags_of(registry, "team/app") == ["multi", "stable"]
    assert old not in {a["digest"] for a in api.artifacts("team/app")}


def test_a_listing_across_two_pages_is_read_whole(
    api: HarborApi, harbor: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harbor_provider, "PAGE_SIZE", 3)
    old = {push(api, "team/app", f"ci-{n}", days_ago(40 + n)): [f"ci-{n}"] for n in range(2)}
    for n in range(2, 5):
        push(api, "team/app", f"ci-{n}", days_ago(n))
    lone = push(api, "team/app", None, days_ago(50))  # the oldest push: last on page two
    path = topology(
        tmp_path,
        harbor,
        rule(delete={"tags": ["ci-.*"], "older_than": "30d", "untagged_older_than": "14d"}),
    )

    plan = plan_of(path)

    assert deleted(plan) == old | {lone: []}
    pages = harbor.seen("GET", ARTIFACTS)
    assert [(p.query["page"], p.query["page_size"]) for p in pages] == [
        (["1"], ["3"]),
        (["2"], ["3"]),
    ]
    assert [p.status for p in pages] == [200, 200]


def test_refused_credentials_fall_back_to_created_with_one_warning(
    api: HarborApi, harbor: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pusher(api.registry, "team/app") as pusher:
        old = str(pusher.image("ci-1", days_ago(40))["digest"])
        pusher.image("ci-2", days_ago(5))
    with Pusher(api.registry, "team/web") as pusher:
        pusher.image("ci-1", days_ago(5))
    monkeypatch.setenv("HARBOR_PASSWORD", "expired-secret")
    path = topology(
        tmp_path,
        harbor,
        rule(delete={"tags": ["ci-.*"], "older_than": "30d", "untagged_older_than": "14d"}),
    )

    result = regtopo("plan", str(path))

    assert result.exit_code == 0, result.stderr
    assert f"harbor/team/app:ci-1@{old[:19]}" in result.stdout
    assert "age 40 days (config created)" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert "registry 'harbor' (Harbor): listing the artifacts of harbor/team/" in warnings[0]
    assert "refused the credentials (from the topology): 401 UNAUTHORIZED" in warnings[0]
    assert (
        "untagged manifests of registry 'harbor' were not listed: the harbor API failed"
        in result.stdout
    )
    assert [s.status for s in harbor.seen("GET", ARTIFACTS)] == [401]  # not asked again


def test_a_project_the_account_cannot_read_falls_back_for_that_project_only(
    api: HarborApi, harbor: Proxy, tmp_path: Path
) -> None:
    old = push(api, "team/app", "ci-1", days_ago(40))
    with Pusher(api.registry, "other/app") as pusher:
        other = str(pusher.image("ci-1", days_ago(40))["digest"])
    path = topology(
        tmp_path,
        harbor,
        rule(delete={"tags": ["ci-.*"], "older_than": "30d"}) | {"repositories": [".*/app"]},
    )

    result = regtopo("plan", str(path))

    assert result.exit_code == 0, result.stderr
    assert "age 40 days (provider harbor)" in result.stdout
    assert f"harbor/other/app:ci-1@{other[:19]}" in result.stdout
    assert "age 40 days (config created)" in result.stdout
    assert f"harbor/team/app:ci-1@{old[:19]}" in result.stdout
    assert "project 'other' is missing or not readable" in result.stderr


def test_a_failing_api_is_retried_then_falls_back_with_the_reason(
    api: HarborApi, harbor: Proxy, tmp_path: Path
) -> None:
    with Pusher(api.registry, "team/app") as pusher:
        old = str(pusher.image("ci-1", days_ago(40))["digest"])
    api.refuse = 503
    path = topology(tmp_path, harbor, rule(delete={"tags": ["ci-.*"], "older_than": "30d"}))

    result = regtopo("plan", str(path))

    assert result.exit_code == 0, result.stderr
    assert f"harbor/team/app:ci-1@{old[:19]}" in result.stdout
    assert "age 40 days (config created)" in result.stdout
    assert "503 INTERNAL_SERVER_ERROR: refused by the test" in result.stderr
    assert "(after 5 attempts)" in result.stderr
    assert [s.status for s in harbor.seen("GET", ARTIFACTS)] == [503] * 5
