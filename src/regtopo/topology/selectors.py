"""Tag selection: which of a source repository's tags a replication plans.

Pure functions over a tag list, so the planner lists each source repository once and the
selection is tested without a registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime

from packaging.version import InvalidVersion, Version

from regtopo.topology.models import TagOrder, TagSelector

# When a tag was created (the image config's `created`), None when unknown.
CreatedLookup = Callable[[str], datetime | None]


def version_of(tag: str) -> Version | None:
    """The tag as a version ('1.2.3', 'v1.2', '2.0.0-rc.1'), or None when it is not one."""
    try:
        return Version(tag)
    except InvalidVersion:
        return None


def select_tags(
    selector: list[str] | TagSelector,
    available_tags: Iterable[str],
    created_lookup: CreatedLookup | None = None,
) -> list[str]:
    """The tags to plan, sorted. Exact names are planned whether or not the source has them
    (a missing one becomes a skipped action that says so); selectors choose among
    `available_tags`."""
    if isinstance(selector, list):
        return sorted(set(selector))

    # Names and pins alone select only themselves; any filter starts from every tag.
    filters = selector.include or selector.exclude or selector.semver or selector.latest
    chosen = _filtered(selector, sorted(set(available_tags))) if filters else []
    if selector.latest is not None:
        chosen = _latest(chosen, selector.latest, selector.order, created_lookup)
    return sorted(set(chosen) | set(selector.names) | set(selector.digests))


def in_scope(selector: list[str] | TagSelector, tags: Iterable[str]) -> list[str]:
    """Of `tags`, those the selector speaks for: its exact names, and what its filters match
    (`latest` aside: a tag that falls out of the latest N is still the selector's).

    A `sync` replication deletes only within this scope: a tag at the target that the
    selector never matched belongs to someone else.
    """
    present = sorted(set(tags))
    if isinstance(selector, list):
        return [t for t in present if t in set(selector)]
    named = set(selector.names) | set(selector.digests)
    filters = selector.include or selector.exclude or selector.semver or selector.latest
    matched = set(_filtered(selector, present)) if filters else set()
    return [t for t in present if t in named or t in matched]


def _filtered(selector: TagSelector, tags: list[str]) -> list[str]:
    includes = [re.compile(p) for p in selector.include]
    excludes = [re.compile(p) for p in selector.exclude]
    specifier = selector.specifier
    # Pre-releases only when the range itself names one (">=2.0.0rc1"), as pip does.
    prereleases = bool(specifier.prereleases) if specifier is not None else False
    out = []
    for tag in tags:
        if includes and not any(p.fullmatch(tag) for p in includes):
            continue
        if any(p.fullmatch(tag) for p in excludes):
            continue
        if specifier is not None:
            version = version_of(tag)
            if version is None or not specifier.contains(version, prereleases=prereleases):
                continue
        out.append(tag)
    return out


def _latest(
    tags: list[str], count: int, order: TagOrder | None, created_lookup: CreatedLookup | None
) -> list[str]:
    if order is TagOrder.CREATED:
        if created_lookup is None:
            raise ValueError("ranking tags by creation time needs a created_lookup")
        stamped = [(created_lookup(tag), tag) for tag in tags]
        # Tags whose creation time is unknown rank oldest; ties go to the later name.
        ranked = sorted(
            stamped,
            key=lambda item: (item[0] is not None, item[0] or datetime.min, item[1]),
            reverse=True,
        )
        return [tag for _, tag in ranked[:count]]

    versions = [(v, tag) for tag in tags if (v := version_of(tag)) is not None]
    versions.sort(reverse=True)
    return [tag for _, tag in versions[:count]]
