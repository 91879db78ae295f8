"""Harbor inventory pieces that need no server: paths, push times, index children."""

from __future__ import annotations

from datetime import UTC, datetime

from regtopo.memo import PerKey
from regtopo.providers.harbor import (
    Artifact,
    HarborInventory,
    artifacts_path,
    parse_push_time,
    split_repository,
)
from regtopo.registry.client import RegistryClient

INDEX = "sha256:" + "1" * 64
CHILD = "sha256:" + "2" * 64
LONE = "sha256:" + "3" * 64


def test_the_repository_after_the_project_is_encoded_twice() -> None:
    assert split_repository("team/tools/app") == ("team", "tools/app")
    assert split_repository("app") is None
    assert artifacts_path("team", "tools/app") == (
        "/api/v2.0/projects/team/repositories/tools%252Fapp/artifacts"
    )
    assert artifacts_path("team", "app") == "/api/v2.0/projects/team/repositories/app/artifacts"


def test_push_times_read_as_harbor_writes_them() -> None:
    assert parse_push_time("2024-03-01T10:20:30.123Z") == datetime(
        2024, 3, 1, 10, 20, 30, 123000, tzinfo=UTC
    )
    assert parse_push_time("2024-03-01T10:20:30") == datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)
    assert parse_push_time("") is None
    assert parse_push_time(None) is None
    assert parse_push_time("yesterday") is None


def test_an_index_child_without_a_tag_is_not_an_untagged_manifest() -> None:
    client = RegistryClient("harbor", "harbor.example.com")
    try:
        inventory = HarborInventory("harbor", client)
        artifacts = [
            {
                "digest": INDEX,
                "push_time": "2024-03-01T10:20:30.000Z",
                "tags": [{"name": "multi"}],
                "references": [{"child_digest": CHILD, "platform": {"os": "linux"}}],
            },
            {"digest": CHILD, "push_time": "2024-03-01T10:20:29.000Z", "tags": None},
            {"digest": LONE, "push_time": "2024-02-01T00:00:00.000Z", "tags": None},
            {"digest": "not-a-digest", "tags": None},
        ]
        listing = inventory._index("team/app", artifacts)
        assert listing[next(d for d in listing if str(d) == CHILD)] == Artifact(
            [], datetime(2024, 3, 1, 10, 20, 29, tzinfo=UTC), True
        )
        inventory._listings = PerKey()
        inventory._listings.get("team/app", lambda: listing)
        listed = {str(d): tags for d, tags in inventory.manifests("team/app") or []}
        assert listed == {INDEX: ["multi"], LONE: []}
    finally:
        client.close()
