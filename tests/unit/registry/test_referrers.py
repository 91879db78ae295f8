"""Finding referrers and maintaining the fallback tag, on OCI layout repositories."""

from __future__ import annotations

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
    writer = FallbackTagWriter()

    assert writer.add(repository, subject.digest, [ours]) is True
    assert writer.add(repository, subject.digest, [ours, theirs]) is False

    assert listed(repository, subject) == [str(theirs.digest), str(ours.digest)]


def test_writers_in_one_process_are_serialised_per_subject_and_lose_no_entry(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"subject", tag="v1")
    referrers = [referrer(repository, subject, "application/x", bytes([i])) for i in range(8)]
    writer = FallbackTagWriter()
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

    assert FallbackTagWriter().add(racing, subject.digest, [ours]) is True

    assert racing.writes == 2
    assert listed(repository, subject) == [str(theirs.digest), str(ours.digest)]


def test_a_fallback_tag_that_is_not_an_index_is_refused_not_overwritten(
    repository: LayoutRepository,
) -> None:
    subject = image(repository, b"subject", tag="v1")
    squatter = image(repository, b"squatter", tag=fallback_tag(subject.digest))
    ours = referrer(repository, subject, "application/spdx+json", b"ours")

    with pytest.raises(ReferrersTagError) as caught:
        FallbackTagWriter().add(repository, subject.digest, [ours])

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
