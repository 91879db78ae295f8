"""Ordering tags as versions for `keep: {latest: N, by: semver}`."""

from __future__ import annotations

from regtopo.plan.semver import version_key


def test_versions_order_numerically_with_prereleases_below_their_release() -> None:
    tags = [
        "v1.10.0",
        "1.2",
        "v1.9.3",
        "v1.10.0-beta",
        "v1.10.0-rc.2",
        "v1.10.0-rc.10",
        "2.0.0+build.7",
    ]

    ordered = sorted(tags, key=lambda t: version_key(t) or (0, 0, 0, 0, ()))

    assert ordered == [
        "1.2",
        "v1.9.3",
        "v1.10.0-beta",
        "v1.10.0-rc.2",
        "v1.10.0-rc.10",
        "v1.10.0",
        "2.0.0+build.7",
    ]


def test_tags_that_are_not_versions_have_no_key() -> None:
    assert [version_key(t) for t in ("latest", "main-abc123", "v01.2.3", "1.2.3.4")] == [None] * 4
