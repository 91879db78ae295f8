"""Tag selection against a tag list, without a registry."""

from __future__ import annotations

from datetime import UTC, datetime

from regtopo.topology.models import TagSelector
from regtopo.topology.selectors import select_tags

TAGS = ["latest", "1.0.0", "1.2.0", "1.10.0", "v2.0.0", "2.1.0-rc.1", "2.1.0", "nightly-0412"]


def selector(**fields: object) -> TagSelector:
    return TagSelector.model_validate(fields)


def test_exact_names_are_planned_even_when_the_source_lacks_them() -> None:
    assert select_tags(["latest", "gone"], TAGS) == ["gone", "latest"]


def test_include_patterns_are_anchored_at_both_ends() -> None:
    assert select_tags(selector(include=[r"1\.\d+"]), TAGS) == []
    assert select_tags(selector(include=[r"1\.\d+\.0"]), TAGS) == ["1.0.0", "1.10.0", "1.2.0"]


def test_exclude_alone_keeps_every_other_tag() -> None:
    assert select_tags(selector(exclude=["nightly-.*", ".*-rc.*", "latest"]), TAGS) == [
        "1.0.0",
        "1.10.0",
        "1.2.0",
        "2.1.0",
        "v2.0.0",
    ]


def test_semver_range_leaves_out_non_versions_and_pre_releases() -> None:
    assert select_tags(selector(semver=">=1.2,<3"), TAGS) == ["1.10.0", "1.2.0", "2.1.0", "v2.0.0"]


def test_semver_range_naming_a_pre_release_admits_pre_releases() -> None:
    assert select_tags(selector(semver=">=2.1.0rc1"), TAGS) == ["2.1.0", "2.1.0-rc.1"]


def test_latest_by_semver_orders_numerically_not_by_text() -> None:
    assert select_tags(selector(include=[r"1\..*"], latest=2), TAGS) == ["1.10.0", "1.2.0"]


def test_latest_by_creation_time_ranks_tags_that_are_not_versions() -> None:
    created = {
        "nightly-0410": datetime(2026, 4, 10, tzinfo=UTC),
        "nightly-0412": datetime(2026, 4, 12, tzinfo=UTC),
        "nightly-0411": datetime(2026, 4, 11, tzinfo=UTC),
        "nightly-unknown": None,
    }

    chosen = select_tags(
        selector(include=["nightly-.*"], latest=2, order="created"), created, created.get
    )

    assert chosen == ["nightly-0411", "nightly-0412"]


def test_names_and_pins_are_added_to_what_the_filters_leave() -> None:
    pin = "sha256:" + "a" * 64

    chosen = select_tags(
        selector(names=["latest"], semver=">=2", latest=1, digests={"stable": pin}), TAGS
    )

    assert chosen == ["2.1.0", "latest", "stable"]


def test_names_and_pins_alone_select_only_themselves() -> None:
    pin = "sha256:" + "b" * 64

    assert select_tags(selector(names=["latest"], digests={"stable": pin}), TAGS) == [
        "latest",
        "stable",
    ]


def test_the_plan_rule_names_the_part_of_the_selector_that_chose_a_tag() -> None:
    from regtopo.plan.planner import selection_rule
    from regtopo.topology.models import TagSelector

    selector = TagSelector(
        names=["stable"],
        include=["1\\..*"],
        semver=">=1.2,<3",
        latest=2,
        digests={"pinned": "sha256:" + "a" * 64},
    )
    assert selection_rule(["v1"], "v1") == "tags: v1"
    assert selection_rule(selector, "stable") == "tags: stable"
    assert selection_rule(selector, "pinned") == f"tags.digests: pinned pinned to sha256:{'a' * 64}"
    assert selection_rule(selector, "1.2.0") == (
        "tags: 1.2.0 selected by include 1\\..*; semver >=1.2,<3; latest 2 by semver"
    )
