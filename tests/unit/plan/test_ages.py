"""Ages from the best source available: provider timestamps first, then the image's created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.plan.ages import AgeResolver, parse_timestamp
from regtopo.plan.observe import Observer
from regtopo.registry.layout import LayoutRepository


def test_go_timestamps_with_nanoseconds_parse() -> None:
    assert parse_timestamp("2024-03-01T10:20:30.123456789Z") == datetime(
        2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC
    )
    assert parse_timestamp("2024-03-01T10:20:30+02:00") == datetime(
        2024, 3, 1, 8, 20, 30, tzinfo=UTC
    )
    assert parse_timestamp("yesterday") is None


class FakeProvider:
    """A provider inventory as ECR's DescribeImages would answer; named as the fake it is."""

    label = "ecr imagePushedAt"

    def __init__(self, pushed: datetime) -> None:
        self.pushed = pushed

    def pushed_at(self, repository: str, digest: Digest) -> datetime | None:
        return self.pushed

    def manifests(self, repository: str) -> list[tuple[Digest, list[str]]] | None:
        return None


def image_in_layout(tmp_path: object, created: str) -> tuple[LayoutRepository, Manifest]:
    from pathlib import Path

    root = Path(str(tmp_path))
    repository = LayoutRepository("store", root, "app")
    config = json.dumps({"created": created, "os": "linux", "architecture": "amd64"}).encode()
    descriptor = Descriptor(
        "application/vnd.oci.image.config.v1+json", Digest.of(config), len(config)
    )

    @contextmanager
    def opener() -> Iterator[Iterator[bytes]]:
        yield iter([config])

    repository.push_blob(descriptor, opener)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor.to_json(),
            "layers": [],
        }
    ).encode()
    manifest = Manifest.parse(raw, None)
    repository.put_manifest(manifest, "v1")
    return repository, manifest


def test_a_provider_timestamp_wins_over_the_config_and_the_plan_names_it(tmp_path: object) -> None:
    repository, manifest = image_in_layout(tmp_path, "2020-01-01T00:00:00Z")
    pushed = datetime(2025, 5, 5, tzinfo=UTC)

    age = AgeResolver(Observer()).age(repository, manifest, FakeProvider(pushed))

    assert (age.created, age.source) == (pushed, "provider ecr imagePushedAt")


def test_without_a_provider_the_config_created_is_the_age(tmp_path: object) -> None:
    repository, manifest = image_in_layout(tmp_path, "2020-01-01T00:00:00Z")

    age = AgeResolver(Observer()).age(repository, manifest)

    assert (age.created, age.source) == (datetime(2020, 1, 1, tzinfo=UTC), "config created")


def test_the_epoch_of_reproducible_builds_is_an_unknown_age(tmp_path: object) -> None:
    repository, manifest = image_in_layout(tmp_path, "1970-01-01T00:00:00Z")

    age = AgeResolver(Observer()).age(repository, manifest)

    assert age.created is None
    assert age.source == (
        "unknown: config created is 1970-01-01T00:00:00Z, the placeholder reproducible builds write"
    )
