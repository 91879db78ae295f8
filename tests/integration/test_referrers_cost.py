"""What referrer checks cost an unchanged run: the benchmark runs mostly look like this."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.artifacts import push_image
from tests.support.cli import regtopo
from tests.support.cli import write_url_topology as write_topology
from tests.support.registries import MakeRegistry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

TAGS = [f"t{i}" for i in range(12)]


def test_tags_without_referrers_cost_no_referrer_request_of_their_own(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    source, target = make_registry(), make_registry()
    for tag in TAGS:
        push_image(source.url, "app", tag, payload=tag.encode())
    topology = write_topology(
        tmp_path,
        {"source": source.url, "target": target.url},
        [{"source": "source/app", "targets": "target/app", "tags": TAGS}],
    )
    regtopo(topology, "apply", "--auto-approve")
    source_before, target_before = source.access_log(), target.access_log()

    assert f"No changes. {len(TAGS)} in sync." in regtopo(topology, "plan")

    source_new = source.access_log()[len(source_before) :]
    target_new = target.access_log()[len(target_before) :]
    referrer_reads = [
        e for e in source_new if "/referrers/" in e.path or e.path.endswith("/tags/list")
    ]
    # One referrers API probe for the registry and one tag list for the repository, whatever
    # the number of tags; the target is not asked about referrers at all.
    assert [(e.method, e.path.split("/")[3]) for e in referrer_reads] == [
        ("GET", "referrers"),
        ("GET", "tags"),
    ]
    assert [e for e in target_new if "/referrers/" in e.path or "tags/list" in e.path] == []
