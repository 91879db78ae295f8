"""Ordering tags as semantic versions, for `keep: {latest: N, by: semver}`.

Accepts what registries actually carry: an optional `v`, one to three numeric parts, an
optional pre-release and build (`v1.2.3-rc.1+build.5`, `1.25`). A pre-release sorts below its
release, identifiers compare as semver 2.0.0 section 11 says. Other tags are not versions.
"""

from __future__ import annotations

import re

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>0|[1-9]\d*))?(?:\.(?P<patch>0|[1-9]\d*))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]+)?$"
)

VersionKey = tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]


def version_key(tag: str) -> VersionKey | None:
    """A sort key for `tag` as a version, or None when it is not one."""
    match = _SEMVER.fullmatch(tag)
    if match is None:
        return None
    pre = match.group("pre")
    identifiers: tuple[tuple[int, int | str], ...] = ()
    if pre:
        # Numeric identifiers sort below alphanumeric ones (semver 2.0.0, 11.4.3).
        identifiers = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (
        int(match.group("major")),
        int(match.group("minor") or 0),
        int(match.group("patch") or 0),
        0 if pre else 1,
        identifiers,
    )
