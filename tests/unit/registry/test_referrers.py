"""Finding referrers and maintaining the fallback tag, on OCI layout repositories."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.reference import fallback_tag
from regtopo.registry.layout import LayoutRepository
from regtopo.registry.referrers import FallbackTagWriter, ReferrerFinder, ReferrersTagError
from regtopo.registry.store import PushResult
from tests.unit.layouts import image, index, referrer


@pytest.fixture
def repository(tmp_path: Path) -> LayoutRepository:
    return LayoutRepository("layout", tmp_path, "app")


def no_wait(seconds: float) -> None:
    """The settle delay, skipped: races here are staged by the repository, not by timing."""


def digests(found: list[object]) -> list[str]:
    return [str(r.descriptor.digest) for r in found]  # type: ignore[attr-defined]


def test_c26_a_fallback_index_never_lists_the_subjects_own_children(
    repository: LayoutRepository,
) -> None:
    amd64, arm64 = image(repository, b"amd64"), image(repository, b"arm64")
    subject = index(repository, [amd64, arm64], tag="v1")
    sbom = referrer(repository, subject, "application/spdx+json", b"sbom")
    index(repository, [amd64, sbom], tag=fallback_tag(subject.digest))

    found = ReferrerFinder().find(repository, subject.digest, [amd64.digest, arm64.digest])

    assert digests(found) == [str(sbom.digest)]


def test_c26_a_fallback_tag_holding_the_subject_or_a_plain_manifest_lists_nothing(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"one", tag="v1")
    repository.put_manifest(subject, fallback_tag(subject.digest))
    other = image(repository, b"two", tag="v2")
    repository.put_manifest(image(repository, b"three"), fallback_tag(other.digest))

    finder = ReferrerFinder()

    assert finder.find(repository, subject.digest) == []
    assert finder.find(repository, other.digest) == []


def test_c30_cosign_tags_are_found_by_the_subject_digest_and_keep_their_tag(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"signed", tag="v1")
    signature = image(repository, b"signature", tag=fallback_tag(subject.digest) + ".sig")

    found = ReferrerFinder().find(repository, subject.digest)

    assert [(str(r.descriptor.digest), r.tag, r.via) for r in found] == [
        (str(signature.digest), fallback_tag(subject.digest) + ".sig", "tag")
    ]


def listed(repository: LayoutRepository, subject: Manifest) -> list[str]:
    current = repository.get_manifest(fallback_tag(subject.digest))
    assert current is not None
    return [str(c.digest) for c in current.children]


def test_c28_the_writer_keeps_other_entries_and_adds_each_referrer_once(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"subject", tag="v1")
    theirs = referrer(repository, subject, "application/other", b"theirs")
    ours = referrer(repository, subject, "application/spdx+json", b"ours")
    index(repository, [theirs], tag=fallback_tag(subject.digest))
    writer = FallbackTagWriter(sleep=no_wait)

    assert writer.add(repository, subject.digest, [ours]) is True
    assert writer.add(repository, subject.digest, [ours, theirs]) is False

    assert listed(repository, subject) == [str(theirs.digest), str(ours.digest)]


def test_writers_in_one_process_are_serialised_per_subject_and_lose_no_entry(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"subject", tag="v1")
    referrers = [referrer(repository, subject, "application/x", bytes([i])) for i in range(8)]
    writer = FallbackTagWriter(sleep=no_wait)
    threads = [
        threading.Thread(target=writer.add, args=(repository, subject.digest, [r]))
        for r in referrers
    ]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(listed(repository, subject)) == sorted(str(r.digest) for r in referrers)


class RacingWriter(LayoutRepository):
    """Another process rewrites the fallback tag right after our first write, without our entry."""

    def __init__(self, root: Path, stale: Manifest, tag: str) -> None:
        super().__init__("layout", root, "app")
        self.stale, self.tag, self.writes = stale, tag, 0

    def put_manifest(self, manifest: Manifest, reference: str) -> PushResult:
        result = super().put_manifest(manifest, reference)
        if reference == self.tag:
            self.writes += 1
            if self.writes == 1:
                super().put_manifest(self.stale, reference)
        return result


def test_an_entry_a_concurrent_writer_dropped_is_merged_back_after_reading_again(
    repository: LayoutRepository, tmp_path: Path
) -> None:
    subject = image(repository, b"subject", tag="v1")
    theirs = referrer(repository, subject, "application/other", b"theirs")
    ours = referrer(repository, subject, "application/spdx+json", b"ours")
    stale = index(repository, [theirs])
    racing = RacingWriter(tmp_path, stale, fallback_tag(subject.digest))

    assert FallbackTagWriter(sleep=no_wait).add(racing, subject.digest, [ours]) is True

    assert racing.writes == 2
    assert listed(repository, subject) == [str(theirs.digest), str(ours.digest)]


class StaleWriters(LayoutRepository):
    """Other processes that read the tag before our write and write after it: after each of our
    first `times` writes, one of them puts back `stale` (which lacks our entries)."""

    def __init__(self, root: Path, stale: Manifest, tag: str, times: int) -> None:
        super().__init__("layout", root, "app")
        self.stale, self.tag, self.times, self.writes = stale, tag, times, 0

    def put_manifest(self, manifest: Manifest, reference: str) -> PushResult:
        result = super().put_manifest(manifest, reference)
        if reference == self.tag:
            self.writes += 1
            if self.writes <= self.times:
                super().put_manifest(self.stale, reference)
        return result


def test_another_writers_entry_a_stale_write_dropped_is_restored_with_ours(
    repository: LayoutRepository, tmp_path: Path
) -> None:
    """The stale write lists a third writer's entry but not the one we read there first: both
    entries we saw, ours and theirs, are merged back."""
    subject = image(repository, b"subject", tag="v1")
    theirs = referrer(repository, subject, "application/other", b"theirs")
    third = referrer(repository, subject, "application/third", b"third")
    ours = referrer(repository, subject, "application/spdx+json", b"ours")
    index(repository, [theirs], tag=fallback_tag(subject.digest))
    stale = StaleWriters(tmp_path, index(repository, [third]), fallback_tag(subject.digest), 1)

    assert FallbackTagWriter(sleep=no_wait).add(stale, subject.digest, [ours]) is True

    assert sorted(listed(repository, subject)) == sorted(
        str(m.digest) for m in (theirs, third, ours)
    )


def test_a_batch_of_subjects_waits_one_settle_delay_per_round(
    repository: LayoutRepository,
) -> None:
    subjects = [image(repository, bytes([i]), tag=f"v{i}") for i in range(5)]
    batch = {
        s.digest: [referrer(repository, s, "application/x", b"r" + bytes([i]))]
        for i, s in enumerate(subjects)
    }
    slept: list[float] = []
    writer = FallbackTagWriter(sleep=slept.append)

    assert writer.add_all(repository, batch) == set(batch)

    assert len(slept) == 1
    assert writer.settle_min <= slept[0] <= writer.settle_min * 1.5
    for subject, found in batch.items():
        current = repository.get_manifest(fallback_tag(subject))
        assert current is not None and [c.digest for c in current.children] == [found[0].digest]
    assert writer.add_all(repository, batch) == set()
    assert len(slept) == 1


def test_entries_that_keep_disappearing_are_an_error_naming_the_subject_never_a_silent_loss(
    repository: LayoutRepository, tmp_path: Path
) -> None:
    subject = image(repository, b"subject", tag="v1")
    ours = referrer(repository, subject, "application/spdx+json", b"ours")
    name = fallback_tag(subject.digest)
    stale = StaleWriters(tmp_path, index(repository, []), name, times=100)
    writer = FallbackTagWriter(sleep=no_wait, rounds=3)

    with pytest.raises(ReferrersTagError) as caught:
        writer.add(stale, subject.digest, [ours])

    assert stale.writes == 3
    assert caught.value.message == (
        "updating referrers tags at layout/app: entries kept disappearing after 3 rounds of "
        f"writes for {name} (subject {subject.digest})"
    )


class LateMerger(LayoutRepository):
    """Another writer that read after our write: it rewrites the tag, keeping our entries, just
    before our check reads it."""

    def __init__(self, root: Path, tag: str, extra: Manifest) -> None:
        super().__init__("layout", root, "app")
        self.tag, self.extra, self.writes, self.merged = tag, extra, 0, False

    def put_manifest(self, manifest: Manifest, reference: str) -> PushResult:
        self.writes += reference == self.tag
        return super().put_manifest(manifest, reference)

    def get_manifest(self, reference: str, expected: Digest | None = None) -> Manifest | None:
        current = super().get_manifest(reference, expected)
        if reference == self.tag and self.writes == 1 and not self.merged and current:
            self.merged = True
            document = dict(current.document)
            extra = {"mediaType": self.extra.media_type, "digest": str(self.extra.digest)}
            document["manifests"] = [*document["manifests"], {**extra, "size": self.extra.size}]
            current = Manifest.parse(json.dumps(document).encode(), None)
            super().put_manifest(current, reference)
        return current


def test_a_tag_another_writer_moved_after_ours_is_checked_once_more_without_writing(
    repository: LayoutRepository, tmp_path: Path
) -> None:
    subject = image(repository, b"subject", tag="v1")
    ours = referrer(repository, subject, "application/spdx+json", b"ours")
    theirs = referrer(repository, subject, "application/other", b"theirs")
    moving = LateMerger(tmp_path, fallback_tag(subject.digest), theirs)
    slept: list[float] = []

    assert FallbackTagWriter(sleep=slept.append).add(moving, subject.digest, [ours]) is True

    assert moving.merged and moving.writes == 1
    assert len(slept) == 2
    assert listed(repository, subject) == [str(ours.digest), str(theirs.digest)]


def test_a_fallback_tag_that_is_not_an_index_is_refused_not_overwritten(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"subject", tag="v1")
    squatter = image(repository, b"squatter", tag=fallback_tag(subject.digest))
    ours = referrer(repository, subject, "application/spdx+json", b"ours")

    with pytest.raises(ReferrersTagError) as caught:
        FallbackTagWriter(sleep=no_wait).add(repository, subject.digest, [ours])

    assert caught.value.message == (
        f"updating referrers tag layout/app:{fallback_tag(subject.digest)}: it holds a "
        "application/vnd.oci.image.manifest.v1+json, not an index"
    )
    assert repository.head_manifest(fallback_tag(subject.digest)).digest == squatter.digest  # type: ignore[union-attr]


def test_the_api_is_probed_once_per_registry(repository: LayoutRepository) -> None:
    calls: list[Digest] = []
    original = repository.referrers

    def counting(digest: Digest, artifact_type: str | None = None) -> object:
        calls.append(digest)
        return original(digest, artifact_type)

    repository.referrers = counting  # type: ignore[method-assign,assignment]
    finder = ReferrerFinder()
    subject = image(repository, b"s", tag="v1")

    assert finder.has_api(repository, subject.digest) is True
    assert finder.has_api(repository, subject.digest) is True
    assert len(calls) == 1


def test_a_layout_lists_a_referrer_pushed_after_it_was_last_asked(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"subject", tag="v1")
    first = referrer(repository, subject, "application/spdx+json", b"one")
    assert [d.digest for d in repository.referrers(subject.digest) or []] == [first.digest]

    second = referrer(repository, subject, "application/spdx+json", b"two")

    assert {d.digest for d in repository.referrers(subject.digest) or []} == {
        first.digest,
        second.digest,
    }
    assert [d.digest for d in repository.referrers(subject.digest, "application/other") or []] == []
