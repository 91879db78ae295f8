"""The `retention:` block: durations, patterns, and the checks that refuse unsafe rules."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from regtopo.topology.loader import TopologyError, load
from regtopo.topology.retention import (
    DeleteSpec,
    RetentionRule,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("0s", timedelta(0)),
    ],
)
def test_durations_parse_in_the_units_retention_users_write(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30", "'30' needs a unit: s, m, h, d or w (for example '30d')"),
        ("30 days", "'30 days' is not a duration; expected for example '30d', '12h', '1d12h'"),
        ("d30", "'d30' is not a duration; expected for example '30d', '12h', '1d12h'"),
    ],
)
def test_durations_without_a_unit_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_duration(text)


def test_durations_print_back_in_their_shortest_form() -> None:
    assert format_duration(timedelta(days=1, hours=12)) == "1d12h"
    assert format_duration(timedelta(weeks=2)) == "14d"


def test_delete_tags_without_an_age_is_refused() -> None:
    with pytest.raises(ValidationError, match="'delete.tags' needs 'older_than'"):
        DeleteSpec.model_validate({"tags": [".*"]})


def test_a_rule_that_neither_keeps_nor_deletes_is_refused() -> None:
    with pytest.raises(ValidationError, match="retention rule 'x' has neither 'keep' nor 'delete'"):
        RetentionRule.model_validate({"name": "x", "registry": "r", "repositories": ["a"]})


def test_an_invalid_regular_expression_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"'ci-\(' is not a valid regular expression"):
        RetentionRule.model_validate(
            {"name": "x", "registry": "r", "repositories": ["a"], "keep": {"tags": ["ci-("]}}
        )


def write(tmp_path: Path, retention: dict[str, Any], **extra: Any) -> Path:
    path = tmp_path / "topology.yaml"
    document = {"registries": {"hub": {"host": "hub.example"}}, "retention": retention} | extra
    # One key per line, so that error positions are easy to assert.
    path.write_text(json.dumps(document, indent=1))
    return path


def test_a_rule_naming_an_unknown_registry_is_reported_with_its_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "rules": [
                {"name": "a", "registry": "nope", "repositories": ["x"], "keep": {"latest": 1}}
            ]
        },
    )

    with pytest.raises(TopologyError) as caught:
        load(path)

    [problem] = caught.value.problems
    assert problem.message == "unknown registry 'nope'; expected one of: hub"
    assert (problem.line, problem.column) == (11, 17)


def test_duplicate_rule_names_are_refused(tmp_path: Path) -> None:
    rule = {"name": "a", "registry": "hub", "repositories": ["x"], "keep": {"latest": 1}}
    path = write(tmp_path, {"rules": [rule, rule]})

    with pytest.raises(TopologyError) as caught:
        load(path)

    assert [p.message for p in caught.value.problems] == ["retention rule names must be unique: a"]


def test_replication_mode_defaults_to_mirror_and_accepts_sync(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"rules": []},
        replications=[
            {"source": "hub/a", "targets": "hub/b", "tags": ["v1"]},
            {"source": "hub/a", "targets": "hub/c", "tags": ["v1"], "mode": "sync"},
        ],
    )

    loaded = load(path)

    assert [r.mode for r in loaded.topology.replications] == ["mirror", "sync"]
    assert loaded.topology.retention is not None
    assert (loaded.topology.retention.max_deletes, loaded.topology.retention.max_percent) == (
        100,
        50,
    )
