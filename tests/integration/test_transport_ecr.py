"""C23: an ECR target whose repository does not exist yet.

ECR's control plane is moto's server as a mock of AWS (`CreateRepository` through boto3); its
registry is a real Distribution behind `tests.support.proxy`, which answers `NAME_UNKNOWN` for
every repository moto does not know, the way ECR does (tests/support/ecr.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regtopo.apply.executor import Executor, Outcome
from regtopo.plan.actions import ActionKind
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.render.text import render_plan
from regtopo.topology.loader import load
from tests.support.ecr import calls, ecr_registry
from tests.support.proxy import MakeProxy, Proxy
from tests.support.registries import MakeRegistry, Registry, push_random_image

boto3 = pytest.importorskip("boto3")

pytestmark = [pytest.mark.registry, pytest.mark.aws, pytest.mark.timeout(120)]


def creates(api: Proxy) -> int:
    return calls(api, "CreateRepository")


def topology(tmp_path: Path, source: Registry, target: Proxy, **ecr: Any) -> Path:
    document = {
        "registries": {
            "src": {"host": f"http://{source.host}"},
            "ecr": {"host": f"http://{target.host}", "provider": "ecr", **ecr},
        },
        "replications": [
            {"source": "src/org/app", "targets": ["ecr/team/app"], "tags": ["v1", "v2"]}
        ],
    }
    path = tmp_path / "topology.yaml"
    path.write_text(json.dumps(document))
    return path


def test_c23_auto_create_plans_a_create_repository_step_and_creates_it_exactly_once(
    registry: Registry,
    make_registry: MakeRegistry,
    make_proxy: MakeProxy,
    ecr_api: Proxy,
    tmp_path: Path,
) -> None:
    """C23: NAME_UNKNOWN at the target means "absent"; with auto-create, one CreateRepository
    call (for two tags), then both copies land."""
    v1 = push_random_image(registry, "org/app", "v1")
    v2 = push_random_image(registry, "org/app", "v2")
    target = ecr_registry(make_registry(), make_proxy)
    loaded = load(topology(tmp_path, registry, target, create_repositories=True))
    session = Session(loaded.topology, tmp_path)
    try:
        plan = Planner(loaded, session).plan()
        report = Executor(session).apply(plan)
        heads = {t: session.repository("ecr", "team/app").head_manifest(t) for t in ("v1", "v2")}
    finally:
        session.close()

    assert [a.kind for a in plan.actions] == [ActionKind.COPY, ActionKind.COPY]
    assert all(a.create_repository for a in plan.actions)
    assert "create-repository ecr/team/app" in render_plan(plan)
    assert [r.outcome for r in report.results] == [Outcome.DONE, Outcome.DONE]
    assert creates(ecr_api) == 1
    assert {t: str(h.digest) if h else None for t, h in heads.items()} == {"v1": v1, "v2": v2}
    repositories = boto3.client("ecr").describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repositories] == ["team/app"]


def test_c23_without_auto_create_the_plan_says_so_and_nothing_is_pushed(
    registry: Registry,
    make_registry: MakeRegistry,
    make_proxy: MakeProxy,
    ecr_api: Proxy,
    tmp_path: Path,
) -> None:
    push_random_image(registry, "org/app", "v1")
    push_random_image(registry, "org/app", "v2")
    target = ecr_registry(make_registry(), make_proxy)
    loaded = load(topology(tmp_path, registry, target))
    session = Session(loaded.topology, tmp_path)
    try:
        plan = Planner(loaded, session).plan()
        report = Executor(session).apply(plan)
    finally:
        session.close()

    assert [a.kind for a in plan.actions] == [ActionKind.SKIPPED, ActionKind.SKIPPED]
    assert "the target repository team/app does not exist" in plan.actions[0].reason
    assert "set `create_repositories: true`" in plan.actions[0].reason
    assert report.results == []
    assert creates(ecr_api) == 0
    assert target.count("POST") + target.count("PATCH") + target.count("PUT") == 0


def test_c23_a_copy_into_a_missing_repository_fails_once_without_blob_uploads(
    registry: Registry,
    make_registry: MakeRegistry,
    make_proxy: MakeProxy,
    ecr_api: Proxy,
    tmp_path: Path,
) -> None:
    """C23, at apply: a plan made while the repository existed meets NAME_UNKNOWN: one
    actionable error for the repository, the other tag not attempted, no PATCH or PUT."""
    push_random_image(registry, "org/app", "v1")
    push_random_image(registry, "org/app", "v2")
    boto3.client("ecr").create_repository(repositoryName="team/app")
    target = ecr_registry(make_registry(), make_proxy)
    loaded = load(topology(tmp_path, registry, target))
    session = Session(loaded.topology, tmp_path)
    try:
        plan = Planner(loaded, session).plan()
        boto3.client("ecr").delete_repository(repositoryName="team/app", force=True)
        report = Executor(session, parallelism=1).apply(plan)
    finally:
        session.close()

    assert [a.kind for a in plan.actions] == [ActionKind.COPY, ActionKind.COPY]
    outcomes = [r.outcome for r in report.results]
    assert outcomes == [Outcome.FAILED, Outcome.NOT_ATTEMPTED]
    message = report.results[0].message
    assert "the repository does not exist (NAME_UNKNOWN)" in message
    assert "create_repositories: true" in message
    assert "does not exist (reported above)" in report.results[1].message
    assert target.count("PATCH") == 0 and target.count("PUT") == 0
    # the image's two blobs start in parallel: at most one POST each, none retried
    assert target.count("POST") <= 2
    assert all(s.status == 404 for s in target.seen("POST"))
