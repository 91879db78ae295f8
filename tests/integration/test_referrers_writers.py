"""Several writers of the same fallback tags, against a real Distribution registry.

Distribution has no referrers API and ignores `If-Match`, so the fallback tag `sha256-<hex>` is
a read-merge-write that two processes can interleave. These tests run real separate processes
(two CI shards replicating signatures of the same images) and check that no entry is lost, and
measure what the protection costs a lone writer.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.registry.client import RegistryClient
from regtopo.registry.referrers import FallbackTagWriter
from tests.support.artifacts import (
    EMPTY_DIGEST,
    OCI_EMPTY,
    OCI_MANIFEST,
    fallback_index,
    sha256,
    upload_blob,
)
from tests.support.fallback_writers import Job, run_writers
from tests.support.registries import MakeRegistry, Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(120)]

SUBJECTS = 30
PER_SUBJECT = 2  # referrers each writer adds to each subject
SIGNATURE = "application/vnd.example.signature.v1+json"


def subjects_with_referrers(
    registry: Registry, writers: int, subjects: int = SUBJECTS
) -> tuple[list[str], list[list[Job]]]:
    """`subjects` images, and for each writer its own referrers of every one of them.

    Every manifest shares the same two blobs and differs by an annotation, and all go through
    one connection: the race under test is in the fallback tags, not in pushing content.
    """
    with httpx.Client(timeout=30) as http:
        layer = {"mediaType": SIGNATURE, **upload_blob(registry.url, "app", b"payload")}
        upload_blob(registry.url, "app", b"{}")
        empty = {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2}

        def push(annotation: str, subject: dict[str, Any] | None) -> tuple[str, bytes]:
            document: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": empty,
                "layers": [layer],
                "annotations": {"test": annotation},
            }
            if subject is not None:
                document["artifactType"] = SIGNATURE
                document["subject"] = subject
            raw = json.dumps(document, separators=(",", ":")).encode()
            digest = sha256(raw)
            http.put(
                f"{registry.url}/v2/app/manifests/{digest}",
                content=raw,
                headers={"Content-Type": OCI_MANIFEST},
            ).raise_for_status()
            return digest, raw

        images = [push(f"subject {i}", None) for i in range(subjects)]
        plans: list[list[Job]] = [
            [
                (
                    digest,
                    [
                        push(
                            f"writer {w} subject {i} referrer {r}",
                            {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)},
                        )[1]
                        for r in range(PER_SUBJECT)
                    ],
                )
                for i, (digest, raw) in enumerate(images)
            ]
            for w in range(writers)
        ]
    return [digest for digest, _ in images], plans


def lost_entries(registry: Registry, plans: list[list[Job]]) -> dict[str, set[str]]:
    """Per subject, the digests some writer added that its fallback index no longer lists."""
    lost: dict[str, set[str]] = {}
    for plan in plans:
        for subject, raws in plan:
            index = fallback_index(registry.url, "app", subject)
            listed = {e["digest"] for e in index["manifests"]} if index else set()
            missing = {str(Manifest.parse(raw, OCI_MANIFEST).digest) for raw in raws} - listed
            if missing:
                lost.setdefault(subject, set()).update(missing)
    return lost


@pytest.mark.parametrize("batch", [1, SUBJECTS], ids=["one-subject-per-call", "one-call"])
def test_two_processes_adding_referrers_of_the_same_subjects_lose_no_entry(
    make_registry: MakeRegistry, batch: int
) -> None:
    """Both processes walk the same subjects in the same order at the same moment: the worst
    interleaving. Every entry of both must be in every fallback index at the end."""
    registry = make_registry()
    _images, plans = subjects_with_referrers(registry, writers=2)

    reports = run_writers(registry.host, "app", plans, batch=batch)

    assert [r.error for r in reports] == [None, None]
    assert lost_entries(registry, plans) == {}


def test_a_lone_writer_sends_two_reads_and_one_write_per_subject_and_settles_once(
    make_registry: MakeRegistry,
) -> None:
    """The common case: one writer, a batch of subjects. The guard against other writers costs
    one settle delay per batch, not per subject, and no request beyond read, write, read."""
    registry = make_registry()
    _images, (plan,) = subjects_with_referrers(registry, writers=1, subjects=10)
    client = RegistryClient("t", registry.host, scheme="http")
    slept: list[float] = []
    writer = FallbackTagWriter(sleep=slept.append)
    batch = {
        Digest.parse(subject): [Manifest.parse(raw, OCI_MANIFEST) for raw in raws]
        for subject, raws in plan
    }
    before = len(registry.access_log())

    started = time.monotonic()
    assert writer.add_all(client.repository("app"), batch) == set(batch)
    elapsed = time.monotonic() - started

    requests = registry.access_log()[before:]
    fallback = [(e.method, e.path) for e in requests if "/manifests/sha256-" in e.path]
    assert len(requests) == len(fallback) == 3 * len(batch)
    for subject in batch:
        path = f"/v2/app/manifests/{subject.algorithm}-{subject.encoded}"
        assert [m for m, p in fallback if p == path] == ["GET", "PUT", "GET"]
    assert len(slept) == 1 and slept[0] >= writer.settle_min
    assert elapsed < 5
    assert lost_entries(registry, [plan]) == {}
    # An unchanged second call reads each tag once and writes nothing.
    before = len(registry.access_log())
    assert writer.add_all(client.repository("app"), batch) == set()
    assert len(registry.access_log()) - before == len(batch)
    assert len(slept) == 1
    client.close()
