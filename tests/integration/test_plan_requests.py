"""How many requests a plan costs per tag when nothing changed (issue 8's request budget).

Counted from the registries' own access logs, so the number is what reached the registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regtopo.plan.actions import ActionKind
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.topology.loader import load
from tests.support.registries import MakeRegistry, push_random_image, skopeo_copy

pytestmark = [pytest.mark.registry, pytest.mark.skopeo, pytest.mark.timeout(60)]


def test_an_in_sync_tag_costs_one_head_at_the_source_and_one_at_the_target(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    source, target = make_registry(), make_registry()
    tags = ["v1", "v2", "v3"]
    digests = {}
    for tag in tags:
        digests[tag] = push_random_image(source, "app", tag)
        skopeo_copy((source, f"app:{tag}"), (target, f"app:{tag}"), "--preserve-digests")
    topology = tmp_path / "topology.yaml"
    topology.write_text(
        json.dumps(
            {
                "registries": {"source": {"host": source.url}, "target": {"host": target.url}},
                "replications": [{"source": "source/app", "targets": "target/app", "tags": tags}],
            }
        )
    )
    before = {"source": len(source.access_log()), "target": len(target.access_log())}

    loaded = load(topology)
    session = Session(loaded.topology, base_dir=tmp_path)
    try:
        plan = Planner(loaded, session).plan()
    finally:
        session.close()

    assert [(a.kind, a.content.digest if a.content else None) for a in plan.actions] == [
        (ActionKind.IN_SYNC, digests[tag]) for tag in tags
    ]
    assert [a.content.kind for a in plan.actions if a.content] == ["image"] * 3
    made = {
        "source": [(e.method, e.path) for e in source.access_log()[before["source"] :]],
        "target": [(e.method, e.path) for e in target.access_log()[before["target"] :]],
    }
    # Per tag, one HEAD at each side. Per run, the source's registry is probed once for the
    # referrers API and its repository's tags listed once: no fallback or cosign tags there
    # means no referrer can be missing at the target, so no manifest is read.
    per_tag = [e for e in made["source"] if e[1].startswith("/v2/app/manifests/")]
    per_run = sorted(e for e in made["source"] if e not in per_tag)
    assert sorted(per_tag) == [("HEAD", f"/v2/app/manifests/{tag}") for tag in tags]
    assert [method for method, _ in per_run] == ["GET", "GET"]
    assert per_run[0][1].startswith("/v2/app/referrers/") and per_run[1][1] == "/v2/app/tags/list"
    assert sorted(made["target"]) == [("HEAD", f"/v2/app/manifests/{tag}") for tag in tags]
