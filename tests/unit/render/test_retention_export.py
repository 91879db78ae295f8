"""Exporting retention rules as native policies: what each product can say, and what not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from regtopo.cli.main import app
from regtopo.render.retention_export import export_retention, to_glob, to_prefix
from regtopo.topology.models import Topology


def topology(*rules: dict[str, Any]) -> Topology:
    return Topology.model_validate(
        {"registries": {"r": {"host": "registry.example"}}, "retention": {"rules": list(rules)}}
    )


CI = {
    "name": "ci",
    "registry": "r",
    "repositories": [".*"],
    "keep": {"tags": ["v.*", "latest"]},
    "delete": {"tags": ["ci-.*"], "older_than": "30d", "untagged_older_than": "14d"},
}


@pytest.mark.parametrize(
    ("pattern", "glob", "prefix"),
    [
        ("ci-.*", "ci-*", "ci-"),
        (".*", "*", ""),
        ("latest", "latest", None),
        (r"v\d+", None, None),
        (r"release\.candidate.*", "release.candidate*", "release.candidate"),
        ("a.*b", "a*b", None),
    ],
)
def test_regex_to_wildcard_and_prefix_only_where_exact(
    pattern: str, glob: str | None, prefix: str | None
) -> None:
    assert to_glob(pattern) == glob
    assert to_prefix(pattern) == prefix


def test_ecr_keeps_claim_first_then_expire_by_push_age() -> None:
    result = export_retention(topology(CI), "ecr")

    selections = [(r["rulePriority"], r["selection"]) for r in result.document["rules"]]
    assert selections == [
        (
            1,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["v*"],
                "countType": "imageCountMoreThan",
                "countNumber": 9999,
            },
        ),
        (
            2,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["latest"],
                "countType": "imageCountMoreThan",
                "countNumber": 9999,
            },
        ),
        (
            3,
            {
                "tagStatus": "tagged",
                "tagPatternList": ["ci-*"],
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 30,
            },
        ),
        (
            4,
            {
                "tagStatus": "untagged",
                "countType": "sinceImagePushed",
                "countUnit": "days",
                "countNumber": 14,
            },
        ),
    ]
    assert all(r["action"] == {"type": "expire"} for r in result.document["rules"])


def test_ecr_cannot_say_keep_latest_with_an_age_so_it_exports_no_delete() -> None:
    rule = CI | {"keep": {"latest": 5}}

    result = export_retention(topology(rule), "ecr")

    assert result.document == {"rules": []}
    assert result.unexpressed[0] == (
        "rule 'ci': keep.latest 5: an ECR rule expires by count or by age, never both; without "
        "it the policy would delete what regtopo keeps"
    )
    assert "no delete rule is exported: a keep above has no ECR equivalent" in result.unexpressed


def test_ecr_keep_latest_over_any_age_is_an_image_count() -> None:
    rule = {
        "name": "ci",
        "registry": "r",
        "repositories": ["app"],
        "keep": {"latest": 3},
        "delete": {"tags": ["ci-.*"], "older_than": "0s"},
    }

    [only] = export_retention(topology(rule), "ecr").document["rules"]

    assert only["selection"] == {
        "tagStatus": "tagged",
        "tagPatternList": ["ci-*"],
        "countType": "imageCountMoreThan",
        "countNumber": 3,
    }


def test_keep_newer_than_of_another_rule_lengthens_every_delete_age() -> None:
    fresh = {
        "name": "fresh",
        "registry": "r",
        "repositories": [".*"],
        "keep": {"newer_than": "45d"},
    }

    rules = export_retention(topology(CI, fresh), "ecr").document["rules"]

    assert [r["selection"]["countNumber"] for r in rules[2:]] == [45, 45]


def test_gar_keeps_by_prefix_and_deletes_by_prefix_and_age() -> None:
    result = export_retention(topology(CI), "gar")

    assert result.document == [
        {
            "name": "ci-keep-tags",
            "action": {"type": "Keep"},
            "condition": {"tagState": "TAGGED", "tagPrefixes": ["v", "latest"]},
        },
        {
            "name": "ci-delete-tags",
            "action": {"type": "Delete"},
            "condition": {"tagState": "TAGGED", "tagPrefixes": ["ci-"], "olderThan": "30d"},
        },
        {
            "name": "ci-delete-untagged",
            "action": {"type": "Delete"},
            "condition": {"tagState": "UNTAGGED", "olderThan": "14d"},
        },
    ]


def test_gar_leaves_out_a_delete_pattern_that_is_no_prefix() -> None:
    rule = CI | {"delete": {"tags": [r"pr-\d+"], "older_than": "7d"}}

    result = export_retention(topology(rule), "gar")

    assert [p["name"] for p in result.document] == ["ci-keep-tags"]
    assert result.unexpressed[0] == (
        "rule 'ci': delete.tags: Artifact Registry matches tags by prefix only"
    )


def test_acr_expresses_only_untagged_retention_registry_wide() -> None:
    result = export_retention(topology(CI), "acr")

    assert result.document["retentionPolicy"] == {
        "status": "enabled",
        "days": 14,
        "type": "UntaggedManifests",
    }
    assert result.unexpressed[0] == (
        "rule 'ci': delete.tags: ACR retention deletes untagged manifests only"
    )


def test_gitlab_rounds_towards_keeping() -> None:
    rule = CI | {
        "keep": {"tags": ["main"], "latest": 7},
        "delete": {"tags": ["ci-.*"], "older_than": "20d"},
    }

    result = export_retention(topology(rule), "gitlab")

    assert result.document == {
        "container_expiration_policy_attributes": {
            "enabled": True,
            "cadence": "1d",
            "name_regex": "(?:ci-.*)",
            "older_than": "30d",
            "keep_n": 10,
            "name_regex_keep": "(?:main)",
        }
    }
    assert "rule 'ci': keep.latest 7: rounded up to 10" in result.unexpressed


def test_gitlab_older_than_past_90_days_deletes_nothing() -> None:
    rule = CI | {"delete": {"tags": ["ci-.*"], "older_than": "180d"}}

    result = export_retention(topology(rule), "gitlab")

    assert result.document["container_expiration_policy_attributes"]["enabled"] is False
    assert "older_than 180d: GitLab's longest is 90d, so no tag is deleted" in result.unexpressed


def test_harbor_retains_everything_except_old_matches() -> None:
    rules = export_retention(topology(CI), "harbor").document["rules"]

    summary = [
        (
            r["template"],
            r["params"],
            r["tag_selectors"][0]["decoration"],
            r["tag_selectors"][0]["pattern"],
            r["tag_selectors"][0]["extras"],
        )
        for r in rules
    ]
    assert summary == [
        ("always", {}, "excludes", "ci-**", '{"untagged":false}'),
        ("always", {}, "matches", "v**", '{"untagged":false}'),
        ("always", {}, "matches", "latest", '{"untagged":false}'),
        (
            "nDaysSinceLastPush",
            {"nDaysSinceLastPush": 30},
            "matches",
            "ci-**",
            '{"untagged":false}',
        ),
        ("nDaysSinceLastPush", {"nDaysSinceLastPush": 14}, "matches", "**", '{"untagged":true}'),
    ]


def test_export_command_prints_json_and_what_it_cannot_express(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        json.dumps(
            {
                "registries": {"r": {"host": "x.example"}},
                "retention": {"rules": [CI | {"keep": {"latest": 2, "by": "semver"}}]},
            }
        )
    )

    result = CliRunner().invoke(app, ["export", "retention", "--provider", "harbor", str(path)])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["algorithm"] == "or"
    assert result.stderr.startswith(
        "cannot express: rule 'ci': keep.latest by semver: Harbor keeps by push time"
    )


def test_export_refuses_an_unknown_provider(tmp_path: Path) -> None:
    path = tmp_path / "topology.yaml"
    path.write_text(
        json.dumps({"registries": {"r": {"host": "x.example"}}, "retention": {"rules": [CI]}})
    )

    result = CliRunner().invoke(app, ["export", "retention", "--provider", "quay", str(path)])

    assert result.exit_code == 1
    assert result.stderr == (
        "error: exporting retention: unknown provider 'quay'; expected one of: "
        "ecr, gar, acr, gitlab, harbor\n"
    )
