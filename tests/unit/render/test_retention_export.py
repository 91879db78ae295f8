"""Exporting retention rules as native policies: what each product can say, and what not."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from regtopo.cli.main import app
from regtopo.render.retention_export import export_retention, to_glob, to_prefix
from regtopo.topology.models import Topology
from regtopo.topology.retention import RetentionRule, matches


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

    [policy] = result.document["policies"]
    assert (policy["repositories"], policy["rules"]) == ([".*"], ["ci"])
    selections = [(r["rulePriority"], r["selection"]) for r in policy["policy"]["rules"]]
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
    assert all(r["action"] == {"type": "expire"} for r in policy["policy"]["rules"])


def test_ecr_cannot_say_keep_latest_with_an_age_so_it_exports_no_delete() -> None:
    rule = CI | {"keep": {"latest": 5}}

    result = export_retention(topology(rule), "ecr")

    assert result.document["policies"][0]["policy"] == {"rules": []}
    assert result.unexpressed[0] == (
        "rule 'ci': keep.latest 5: an ECR rule expires by count or by age, never both; without "
        "it the policy would delete what regtopo keeps"
    )
    assert (
        "no delete rule is exported for repositories .*: a keep above has no ECR equivalent"
        in result.unexpressed
    )


def test_ecr_keep_latest_over_any_age_is_an_image_count() -> None:
    rule = {
        "name": "ci",
        "registry": "r",
        "repositories": ["app"],
        "keep": {"latest": 3},
        "delete": {"tags": ["ci-.*"], "older_than": "0s"},
    }

    [policy] = export_retention(topology(rule), "ecr").document["policies"]
    [only] = policy["policy"]["rules"]

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

    [policy] = export_retention(topology(CI, fresh), "ecr").document["policies"]
    rules = policy["policy"]["rules"]

    assert [r["selection"]["countNumber"] for r in rules[2:]] == [45, 45]


def test_gar_keeps_by_prefix_and_deletes_by_prefix_and_age() -> None:
    result = export_retention(topology(CI), "gar")

    [policy] = result.document["policies"]
    assert (policy["repository"], policy["rules"]) == ("*", ["ci"])
    assert policy["policy"] == [
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

    assert [p["name"] for p in result.document["policies"][0]["policy"]] == ["ci-keep-tags"]
    assert result.unexpressed[0] == (
        "rule 'ci': delete.tags: Artifact Registry matches tags by prefix only"
    )


def test_gar_says_a_pattern_naming_only_the_repository_needs_its_images() -> None:
    rule = CI | {"repositories": ["myproj/images"]}

    result = export_retention(topology(rule), "gar")

    assert result.unexpressed[0] == (
        "rule 'ci': repositories 'myproj/images': an Artifact Registry cleanup policy attaches "
        "to one repository, and this pattern names the repository itself, not what is inside it "
        "(for everything inside, write 'myproj/images/.*'): its deletes are left out"
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

    assert result.document["policies"][0]["policy"] == {
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

    policy = result.document["policies"][0]["policy"]
    assert policy["container_expiration_policy_attributes"]["enabled"] is False
    assert (
        "older_than 180d: GitLab's longest is 90d, so no tag is deleted for repositories .*"
        in result.unexpressed
    )


# What regtopo deletes, per docs/retention.md "How rules combine", for the clauses the tests
# below use (no keep.latest), and interpreters of each product's documented semantics.


@dataclass(frozen=True)
class Artifact:
    repository: str
    tags: tuple[str, ...]
    days: int  # its age: regtopo's and the product's push age alike here


REPOSITORIES = ["apps/web", "apps/api", "lib/x", "other/y"]
ARTIFACTS = [
    Artifact(repository, tags, days)
    for repository in REPOSITORIES
    for tags in [("ci-1",), ("pr-1",), ("v1",), ("ci-2", "v2"), ("ci-3", "pr-3"), ()]
    for days in (1, 5, 100)
]


def regtopo_deletes(rules: list[RetentionRule], artifact: Artifact) -> bool:
    covering = [r for r in rules if matches(r.repositories, artifact.repository)]
    age = timedelta(days=artifact.days)
    if any(r.keep.newer_than is not None and age < r.keep.newer_than for r in covering):
        return False
    if not artifact.tags:
        return any(
            r.delete.untagged_older_than is not None and age > r.delete.untagged_older_than
            for r in covering
        )

    def candidate(tag: str) -> bool:
        return any(
            matches(r.delete.tags, tag)
            and r.delete.older_than is not None
            and age > r.delete.older_than
            for r in covering
        )

    kept = any(matches(r.keep.tags, tag) for r in covering for tag in artifact.tags)
    return not kept and all(candidate(tag) for tag in artifact.tags)


def doublestar(pattern: str, name: str) -> bool:
    """bmatcuk/doublestar as Harbor uses it: `**` crosses `/`, `*` does not, `{a,b}`."""
    out = ""
    for piece in re.split(r"(\*\*|\*|\{[^}]*\})", pattern):
        if piece == "**":
            out += ".*"
        elif piece == "*":
            out += "[^/]*"
        elif piece.startswith("{"):
            alternatives = [doublestar_regex(p) for p in piece[1:-1].split(",")]
            out += "(?:" + "|".join(alternatives) + ")"
        else:
            out += re.escape(piece)
    return re.fullmatch(out, name) is not None


def doublestar_regex(pattern: str) -> str:
    return ".*".join("[^/]*".join(map(re.escape, p.split("*"))) for p in pattern.split("**"))


def harbor_selects(selector: dict[str, Any], artifact: Artifact) -> bool:
    """Harbor's doublestar tag selector; `untagged` reads the other way round for excludes."""
    untagged = json.loads(selector["extras"])["untagged"]
    if selector["decoration"] == "matches":
        if not artifact.tags:
            return bool(untagged)
        return any(doublestar(selector["pattern"], t) for t in artifact.tags)
    assert selector["decoration"] == "excludes"
    if not artifact.tags:
        return not untagged
    return any(not doublestar(selector["pattern"], t) for t in artifact.tags)


def harbor_deletes(policy: dict[str, Any], artifacts: list[Artifact]) -> set[Artifact]:
    """Harbor's retention run over one project: per repository, the rules whose scope selects
    it retain (algorithm or); the rest of that repository is deleted. A repository no rule
    selects is left alone. Repository names are the project's, without the project."""
    assert policy["algorithm"] == "or"
    deleted: set[Artifact] = set()
    for repository in sorted({a.repository for a in artifacts}):
        name = repository.split("/", 1)[1]
        in_repository = [a for a in artifacts if a.repository == repository]
        rules = []
        for rule in policy["rules"]:
            [scope] = rule["scope_selectors"]["repository"]
            hit = doublestar(scope["pattern"], name)
            if hit == (scope["decoration"] == "repoMatches"):
                rules.append(rule)
        if not rules:
            continue
        retained: set[Artifact] = set()
        for rule in rules:
            [selector] = rule["tag_selectors"]
            selected = [a for a in in_repository if harbor_selects(selector, a)]
            if rule["template"] == "always":
                retained |= set(selected)
            elif rule["template"] == "nDaysSinceLastPush":
                retained |= {a for a in selected if a.days < rule["params"]["nDaysSinceLastPush"]}
            else:
                raise AssertionError(f"no interpreter for {rule['template']}")
        deleted |= set(in_repository) - retained
    return deleted


def harbor_run(result_document: dict[str, Any]) -> set[Artifact]:
    """Every policy on its project ('*': every project no other policy names)."""
    named = {p["project"] for p in result_document["policies"]} - {"*"}
    deleted: set[Artifact] = set()
    for policy in result_document["policies"]:
        project = policy["project"]
        mine = [
            a
            for a in ARTIFACTS
            if (a.repository.split("/")[0] == project)
            or (project == "*" and a.repository.split("/")[0] not in named)
        ]
        deleted |= harbor_deletes(policy["policy"], mine)
    return deleted


def rule(name: str, repositories: list[str], **clauses: Any) -> dict[str, Any]:
    return {"name": name, "registry": "r", "repositories": repositories, **clauses}


PRUNE = rule("prune", ["apps/web"], delete={"tags": ["ci-.*"], "older_than": "3d"})
OTHER = rule("other", ["lib/x"], delete={"tags": ["pr-.*"], "older_than": "0s"})


def expected(*rules: dict[str, Any]) -> set[Artifact]:
    spec = topology(*rules).retention
    assert spec is not None
    return {a for a in ARTIFACTS if regtopo_deletes(spec.rules, a)}


def test_harbor_two_rules_on_different_repositories_delete_only_what_regtopo_does() -> None:
    result = export_retention(topology(PRUNE, OTHER), "harbor")

    def scoped(
        template: str,
        params: dict[str, Any],
        decoration: str,
        pattern: str,
        untagged: bool,
        repo: str,
        scope: str,
    ) -> dict[str, Any]:
        return {
            "disabled": False,
            "action": "retain",
            "template": template,
            "params": params,
            "tag_selectors": [
                {
                    "kind": "doublestar",
                    "decoration": decoration,
                    "pattern": pattern,
                    "extras": json.dumps({"untagged": untagged}, separators=(",", ":")),
                }
            ],
            "scope_selectors": {
                "repository": [{"kind": "doublestar", "decoration": repo, "pattern": scope}]
            },
        }

    def policy(*rules: dict[str, Any]) -> dict[str, Any]:
        return {
            "algorithm": "or",
            "rules": list(rules),
            "trigger": {"kind": "Schedule", "settings": {"cron": "0 0 0 * * *"}},
            "scope": {"level": "project", "ref": "PROJECT_ID"},
        }

    assert result.document == {
        "policies": [
            {
                "project": "apps",
                "rules": ["prune"],
                "policy": policy(
                    # excludes with untagged:false selects untagged ones: they are retained
                    scoped("always", {}, "excludes", "ci-**", False, "repoMatches", "web"),
                    scoped("always", {}, "matches", "**", True, "repoExcludes", "web"),
                    scoped(
                        "nDaysSinceLastPush",
                        {"nDaysSinceLastPush": 3},
                        "matches",
                        "ci-**",
                        False,
                        "repoMatches",
                        "web",
                    ),
                ),
            },
            {
                "project": "lib",
                "rules": ["other"],
                "policy": policy(
                    scoped("always", {}, "excludes", "pr-**", False, "repoMatches", "x"),
                    scoped("always", {}, "matches", "**", True, "repoExcludes", "x"),
                ),
            },
        ]
    }
    assert harbor_run(result.document) == expected(PRUNE, OTHER)


@pytest.mark.parametrize(
    "rules",
    [
        [PRUNE, OTHER],
        [
            rule(
                "apps",
                ["apps/.*"],
                delete={"tags": ["ci-.*"], "older_than": "0s", "untagged_older_than": "2d"},
            ),
            rule(
                "web",
                ["apps/web"],
                keep={"tags": ["ci-2"]},
                delete={"tags": ["pr-.*"], "older_than": "3d"},
            ),
        ],
        [
            rule(
                "all",
                [".*"],
                keep={"tags": ["v.*"]},
                delete={"tags": ["ci-.*", "pr-.*"], "older_than": "3d"},
            ),
            rule(
                "lib",
                ["lib/.*"],
                keep={"newer_than": "10d"},
                delete={"tags": ["pr-.*"], "older_than": "0s", "untagged_older_than": "0s"},
            ),
        ],
        [
            rule("odd", [r"apps/w\w+"], delete={"tags": ["ci-.*"], "older_than": "0s"}),
            rule("keep", [".*b"], keep={"tags": ["ci-.*"]}),
            OTHER,
        ],
    ],
    ids=["disjoint", "overlapping", "everywhere-and-one-project", "no-wildcard"],
)
def test_harbor_never_deletes_what_regtopo_keeps(rules: list[dict[str, Any]]) -> None:
    result = export_retention(topology(*rules), "harbor")

    deleted = harbor_run(result.document)

    assert deleted <= expected(*rules), sorted(deleted - expected(*rules), key=str)
    assert deleted, "the export should still delete something"


def test_harbor_says_where_rules_may_share_a_repository_and_it_deletes_less() -> None:
    rules = [
        rule("apps", ["apps/.*"], delete={"tags": ["ci-.*"], "older_than": "0s"}),
        rule("web", ["apps/web"], delete={"tags": ["ci-.*", "pr-.*"], "older_than": "0s"}),
    ]

    result = export_retention(topology(*rules), "harbor")

    assert result.unexpressed[0] == (
        "rules 'apps' and 'web' may cover the same repository: Harbor deletes there only what "
        "both rules delete"
    )
    web = {a for a in harbor_run(result.document) if a.repository == "apps/web"}
    # regtopo deletes pr-1 and ci-3+pr-3 there too; Harbor only what every tag of both allows
    assert web == {Artifact("apps/web", ("ci-1",), d) for d in (1, 5, 100)}


def test_harbor_leaves_out_deletes_of_a_pattern_that_names_no_project() -> None:
    rules = [rule("web", [".*/web"], delete={"tags": ["ci-.*"], "older_than": "0s"})]

    result = export_retention(topology(*rules), "harbor")

    assert result.document == {"policies": []}
    assert result.unexpressed[0] == (
        "rule 'web': repositories '.*/web': a Harbor retention policy attaches to one project, "
        "and this pattern names none: its deletes are left out"
    )


def ecr_expires(policy: dict[str, Any], images: list[Artifact]) -> set[Artifact]:
    """An ECR lifecycle policy on one repository: rules by priority; an image the first rule
    to select it does not expire, no lower rule may expire."""
    claimed: set[Artifact] = set()
    expired: set[Artifact] = set()
    for rule in sorted(policy["rules"], key=lambda r: r["rulePriority"]):
        selection = rule["selection"]

        def selects(image: Artifact, selection: dict[str, Any] = selection) -> bool:
            if selection["tagStatus"] == "untagged":
                return not image.tags
            return all(
                any(fnmatch.fnmatchcase(t, p) for t in image.tags)
                for p in selection["tagPatternList"]
            )

        selected = [i for i in images if i not in claimed and selects(i)]
        claimed |= set(selected)
        count = selection["countNumber"]
        if selection["countType"] == "sinceImagePushed":
            expired |= {i for i in selected if i.days > count}
        else:
            expired |= set(sorted(selected, key=lambda i: i.days)[count:])
    return expired


def attach_each_way(document: dict[str, Any]) -> list[dict[str, dict[str, Any]]]:
    """Every way to put one policy on each repository: one whose patterns match it."""
    choices: list[dict[str, dict[str, Any]]] = [{}]
    for repository in REPOSITORIES:
        fitting = [p for p in document["policies"] if matches(p["repositories"], repository)]
        if fitting:
            choices = [c | {repository: p["policy"]} for c in choices for p in fitting]
    return choices


def test_ecr_two_rules_on_different_repositories_get_a_policy_each() -> None:
    result = export_retention(topology(PRUNE, OTHER), "ecr")

    assert result.document == {
        "policies": [
            {
                "repositories": ["apps/web"],
                "rules": ["prune"],
                "policy": {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "regtopo prune: delete tags ci-.*",
                            "selection": {
                                "tagStatus": "tagged",
                                "tagPatternList": ["ci-*"],
                                "countType": "sinceImagePushed",
                                "countUnit": "days",
                                "countNumber": 3,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                },
            },
            {
                "repositories": ["lib/x"],
                "rules": ["other"],
                "policy": {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "regtopo other: delete tags pr-.*",
                            "selection": {
                                "tagStatus": "tagged",
                                "tagPatternList": ["pr-*"],
                                "countType": "sinceImagePushed",
                                "countUnit": "days",
                                "countNumber": 1,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                },
            },
        ]
    }
    assert not [line for line in result.unexpressed if "attach" in line]


OVERLAPPING = [
    rule(
        "apps",
        ["apps/.*"],
        keep={"tags": ["ci-2"]},
        delete={"tags": ["ci-.*"], "older_than": "0s", "untagged_older_than": "2d"},
    ),
    rule(
        "web", ["apps/web"], keep={"tags": ["pr-3"]}, delete={"tags": ["pr-.*"], "older_than": "3d"}
    ),
]
EVERYWHERE = [
    rule("all", [".*"], keep={"tags": ["v.*"]}, delete={"tags": ["ci-.*"], "older_than": "3d"}),
    rule(
        "lib",
        ["lib/.*"],
        keep={"newer_than": "10d"},
        delete={"tags": ["pr-.*"], "older_than": "0s"},
    ),
]


@pytest.mark.parametrize(
    "rules",
    [[PRUNE, OTHER], OVERLAPPING, EVERYWHERE],
    ids=["disjoint", "overlapping", "everywhere"],
)
def test_ecr_never_expires_what_regtopo_keeps(rules: list[dict[str, Any]]) -> None:
    result = export_retention(topology(*rules), "ecr")
    deleted_any = False
    # ECR expires an image for one matching tag, whatever its other tags: said, not expressed.
    assert any(
        line.startswith("ECR expires an image with every tag") for line in result.unexpressed
    )
    single = [a for a in ARTIFACTS if len(a.tags) <= 1]

    for attached in attach_each_way(result.document):
        expired = {
            image
            for repository, policy in attached.items()
            for image in ecr_expires(policy, [a for a in single if a.repository == repository])
        }
        assert expired <= expected(*rules), sorted(expired - expected(*rules), key=str)
        deleted_any |= bool(expired)
    assert deleted_any


def test_ecr_names_rules_whose_policies_may_meet_on_one_repository() -> None:
    result = export_retention(topology(*OVERLAPPING), "ecr")

    assert [p["rules"] for p in result.document["policies"]] == [["apps"], ["web"]]
    assert result.unexpressed[0] == (
        "rules apps and web may cover the same repository, which takes one lifecycle policy: "
        "there only the attached one's deletes run, and its keeps include the other rules' keeps"
    )
    # The policy of 'apps' claims 'web''s kept pr-3 before it expires ci-*.
    claims = [
        r["selection"].get("tagPatternList")
        for r in result.document["policies"][0]["policy"]["rules"]
    ]
    assert claims[:2] == [["ci-2"], ["pr-3"]]


def gitlab_deletes(attributes: dict[str, Any], images: list[Artifact]) -> set[tuple[Artifact, str]]:
    """GitLab's cleanup policy on one image repository: tags matching name_regex, older than
    older_than, not matching name_regex_keep and not among the keep_n newest (regexes anchored).
    It deletes tags one by one."""
    if not attributes["enabled"]:
        return set()
    older = int(attributes["older_than"].rstrip("d"))
    tagged = sorted(((i, t) for i in images for t in i.tags), key=lambda it: it[0].days)
    keep_n = attributes.get("keep_n", 0)
    return {
        (image, tag)
        for n, (image, tag) in enumerate(tagged)
        if n >= keep_n
        and re.fullmatch(attributes["name_regex"], tag)
        and not re.fullmatch(attributes.get("name_regex_keep", "(?!)"), tag)
        and image.days > older
    }


@pytest.mark.parametrize(
    "rules",
    [[PRUNE, OTHER], OVERLAPPING, EVERYWHERE],
    ids=["disjoint", "overlapping", "everywhere"],
)
def test_gitlab_never_deletes_a_tag_regtopo_keeps(rules: list[dict[str, Any]]) -> None:
    result = export_retention(topology(*rules), "gitlab")
    spec = topology(*rules).retention
    assert spec is not None
    deleted_any = False

    for attached in attach_each_way(result.document):
        for repository, policy in attached.items():
            images = [a for a in ARTIFACTS if a.repository == repository]
            attributes = policy["container_expiration_policy_attributes"]
            for image, tag in gitlab_deletes(attributes, images):
                # GitLab deletes a tag alone; regtopo keeps what a keep holds, and deletes a
                # tag only as a candidate.
                assert regtopo_deletes(spec.rules, Artifact(repository, (tag,), image.days)), (
                    image,
                    tag,
                )
                assert not any(matches(r.keep.tags, tag) for r in spec.rules), (image, tag)
                deleted_any = True
    assert deleted_any


def test_gitlab_two_rules_on_different_repositories_get_a_policy_each() -> None:
    result = export_retention(topology(PRUNE, OTHER), "gitlab")

    assert result.document == {
        "policies": [
            {
                "repositories": ["apps/web"],
                "rules": ["prune"],
                "policy": {
                    "container_expiration_policy_attributes": {
                        "enabled": True,
                        "cadence": "1d",
                        "name_regex": "(?:ci-.*)",
                        "older_than": "7d",
                    }
                },
            },
            {
                "repositories": ["lib/x"],
                "rules": ["other"],
                "policy": {
                    "container_expiration_policy_attributes": {
                        "enabled": True,
                        "cadence": "1d",
                        "name_regex": "(?:pr-.*)",
                        "older_than": "7d",
                    }
                },
            },
        ]
    }
    assert result.unexpressed[0].startswith("GitLab's cleanup policy covers every container")


GAR_REPOSITORIES = ["p/docker/apps/web", "p/docker/lib/x", "p/other/web", "q/docker/apps/web"]


def gar_deletes(policies: list[dict[str, Any]], images: list[Artifact]) -> set[Artifact]:
    """Artifact Registry cleanup on one repository: a version a Delete policy matches and no
    Keep policy matches is deleted. Package names are the path inside the repository."""

    def hits(policy: dict[str, Any], image: Artifact) -> bool:
        condition = policy["condition"]
        package = image.repository.split("/", 2)[2]
        state = condition.get("tagState", "ANY")
        return (
            (state != "TAGGED" or bool(image.tags))
            and (state != "UNTAGGED" or not image.tags)
            and any(package.startswith(p) for p in condition.get("packageNamePrefixes", [""]))
            and (
                "tagPrefixes" not in condition
                or any(t.startswith(p) for t in image.tags for p in condition["tagPrefixes"])
            )
            and image.days > int(condition.get("olderThan", "0d")[:-1])
            and image.days < int(condition.get("newerThan", "99999d")[:-1])
        )

    def by(kind: str, image: Artifact) -> bool:
        return any(hits(p, image) for p in policies if p["action"]["type"] == kind)

    return {i for i in images if by("Delete", i) and not by("Keep", i)}


def test_gar_two_rules_in_different_repositories_get_a_policy_each() -> None:
    rules = [
        rule("prune", ["p/docker/apps/.*"], delete={"tags": ["ci-.*"], "older_than": "3d"}),
        rule(
            "other",
            ["p/other/.*"],
            keep={"tags": ["v.*"]},
            delete={"tags": ["pr-.*"], "older_than": "0s"},
        ),
    ]

    result = export_retention(topology(*rules), "gar")

    assert result.document == {
        "policies": [
            {
                "repository": "p/docker",
                "rules": ["prune"],
                "policy": [
                    {
                        "name": "prune-delete-tags",
                        "action": {"type": "Delete"},
                        "condition": {
                            "tagState": "TAGGED",
                            "tagPrefixes": ["ci-"],
                            "olderThan": "3d",
                            "packageNamePrefixes": ["apps/"],
                        },
                    }
                ],
            },
            {
                "repository": "p/other",
                "rules": ["other"],
                "policy": [
                    {
                        "name": "other-keep-tags",
                        "action": {"type": "Keep"},
                        "condition": {"tagState": "TAGGED", "tagPrefixes": ["v"]},
                    },
                    {
                        "name": "other-delete-tags",
                        "action": {"type": "Delete"},
                        "condition": {
                            "tagState": "TAGGED",
                            "tagPrefixes": ["pr-"],
                            "olderThan": "0d",
                        },
                    },
                ],
            },
        ]
    }
    spec = topology(*rules).retention
    assert spec is not None
    images = [
        Artifact(r, a.tags, a.days)
        for r in GAR_REPOSITORIES
        for a in ARTIFACTS
        if a.repository == "apps/web" and len(a.tags) <= 1
    ]
    deleted: set[Artifact] = set()
    for policy in result.document["policies"]:
        deleted |= gar_deletes(
            policy["policy"],
            [i for i in images if i.repository.startswith(policy["repository"] + "/")],
        )
    assert deleted == {i for i in images if regtopo_deletes(spec.rules, i)}
    assert deleted


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
    [policy] = json.loads(result.stdout)["policies"]
    assert policy["project"] == "*"
    assert policy["policy"]["algorithm"] == "or"
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


def test_ecr_says_its_keep_rules_are_expiry_rules_past_a_count() -> None:
    result = export_retention(topology(CI), "ecr")

    assert (
        "rule 'ci': keep.tags 'v.*': ECR has no keep action: it is a rule that expires matching "
        "images past the newest 9999, so a repository with more than that loses the oldest"
    ) in result.unexpressed
