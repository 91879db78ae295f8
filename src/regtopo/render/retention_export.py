"""The topology's retention rules as a registry product's own policy, and what it cannot say.

`regtopo export retention --provider ecr|gar|acr|gitlab|harbor` writes the native document:
an ECR lifecycle policy, an Artifact Registry cleanup policy file, ACR's retention setting, a
GitLab cleanup policy (the project API's `container_expiration_policy_attributes`), or Harbor
retention rules.

One principle decides every translation: the native policy may delete less than regtopo
would, never more. A delete the product cannot express is left out. A keep it cannot express
leaves out every delete (keep wins over delete across rules, so any delete could be the one it
guards). Durations round towards keeping (up), counts towards keeping (up). Each such choice is
listed in `Export.unexpressed`, which the command prints to stderr.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.topology.models import Topology
from regtopo.topology.retention import RetentionRule, format_duration

PROVIDERS = ("ecr", "gar", "acr", "gitlab", "harbor")
GITLAB_KEEP_N = (1, 5, 10, 25, 50, 100)
GITLAB_OLDER_THAN = (7, 14, 30, 60, 90)
ECR_CLAIM_COUNT = 9999
_LITERAL_RUN = re.compile(r"(?:[A-Za-z0-9_/-]|\\\.|\\-)+")
_RE2_UNSUPPORTED = re.compile(r"\(\?[=!<]|\\[1-9]")


@dataclass
class Export:
    provider: str
    registry: str
    document: Any
    unexpressed: list[str] = field(default_factory=list)


def to_glob(pattern: str) -> str | None:
    """An anchored regex made of literals and `.*` as a wildcard pattern, else None."""
    out, rest = "", pattern
    while rest:
        if rest.startswith(".*"):
            out, rest = out + "*", rest[2:]
            continue
        match = _LITERAL_RUN.match(rest)
        if match is None:
            return None
        out += match.group(0).replace("\\", "")
        rest = rest[match.end() :]
    return out


def to_prefix(pattern: str, *, widen: bool = False) -> str | None:
    """`literal.*` as its literal prefix ('' for `.*`), else None.

    With `widen`, a plain literal counts as its own prefix: it then matches more names, which is
    safe for a keep (it keeps more) and never used for a delete.
    """
    glob = to_glob(pattern)
    if glob is not None and widen and "*" not in glob:
        return glob
    if glob is None or not glob.endswith("*") or "*" in glob[:-1]:
        return None
    return glob[:-1]


def days_up(value: timedelta) -> int:
    return math.ceil(value.total_seconds() / 86400)


class _Translator:
    """Shared bookkeeping: the rules of one registry, keeps folded, what could not be said."""

    def __init__(self, rules: list[RetentionRule], provider: str) -> None:
        self.rules = rules
        self.provider = provider
        self.unexpressed: list[str] = []
        self.blocked = False
        newer = [r.keep.newer_than for r in rules if r.keep.newer_than is not None]
        # keep.newer_than (any rule) wins over every delete: fold it into the delete ages.
        self.keep_newer = max(newer) if newer else timedelta(0)

    def cannot(self, rule: RetentionRule, what: str, why: str) -> None:
        self.unexpressed.append(f"rule '{rule.name}': {what}: {why}")

    def block(self, rule: RetentionRule, what: str, why: str) -> None:
        self.cannot(rule, what, why + "; without it the policy would delete what regtopo keeps")
        self.blocked = True

    def age(self, value: timedelta) -> timedelta:
        return max(value, self.keep_newer)

    def finish(self, per_repository: bool = True) -> None:
        scopes = sorted({", ".join(r.repositories) for r in self.rules if not r.delete.empty})
        if per_repository and scopes:
            self.unexpressed.append(
                f"{self.provider} attaches a policy to one repository: attach this one only to "
                f"repositories matching {' and '.join(scopes)}"
                + (" (rules with deletes cover different ones)" if len(scopes) > 1 else "")
            )
        if self.blocked:
            self.unexpressed.append(
                f"no delete rule is exported: a keep above has no {self.provider} equivalent"
            )
        self.unexpressed.append(
            "max_deletes and max_percent ceilings, sync-mode deletions and referrer clean-up "
            f"have no {self.provider} equivalent; ages there are the product's push times, "
            "not the image's created time"
        )


def _ecr(rules: list[RetentionRule]) -> tuple[Any, list[str]]:
    t = _Translator(rules, "ECR")
    claims: list[dict[str, Any]] = []
    expires: list[dict[str, Any]] = []
    untagged_days = 0
    for rule in rules:
        for pattern in rule.keep.tags:
            glob = to_glob(pattern)
            if glob is None:
                t.block(rule, f"keep.tags {pattern!r}", "ECR tag patterns are wildcards only")
                continue
            # A higher-priority rule claims the images it selects: lower ones cannot expire them.
            claims.append(
                {
                    "description": f"regtopo {rule.name}: keep tags {pattern}",
                    "selection": {
                        "tagStatus": "tagged",
                        "tagPatternList": [glob],
                        "countType": "imageCountMoreThan",
                        "countNumber": ECR_CLAIM_COUNT,
                    },
                }
            )
        latest_counted = False
        if rule.keep.latest is not None:
            if rule.keep.by == "semver":
                t.block(rule, "keep.latest by semver", "ECR orders images by push time only")
            elif (
                rule.delete.tags
                and rule.delete.older_than == timedelta(0)
                and t.keep_newer == timedelta(0)
            ):
                latest_counted = True
            else:
                t.block(
                    rule,
                    f"keep.latest {rule.keep.latest}",
                    "an ECR rule expires by count or by age, never both",
                )
        for pattern in rule.delete.tags:
            glob = to_glob(pattern)
            if glob is None:
                t.cannot(rule, f"delete.tags {pattern!r}", "ECR tag patterns are wildcards only")
                continue
            selection: dict[str, Any] = {"tagStatus": "tagged", "tagPatternList": [glob]}
            if latest_counted:
                selection |= {"countType": "imageCountMoreThan", "countNumber": rule.keep.latest}
            else:
                assert rule.delete.older_than is not None
                days = max(days_up(t.age(rule.delete.older_than)), 1)
                selection |= {"countType": "sinceImagePushed", "countUnit": "days"}
                selection["countNumber"] = days
            expires.append(
                {
                    "description": f"regtopo {rule.name}: delete tags {pattern}",
                    "selection": selection,
                }
            )
        if rule.delete.untagged_older_than is not None:
            untagged_days = max(untagged_days, days_up(t.age(rule.delete.untagged_older_than)), 1)
    if untagged_days:
        expires.append(
            {
                "description": "regtopo: delete untagged images",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_days,
                },
            }
        )
    t.finish()
    chosen = claims + ([] if t.blocked else expires)
    document = {
        "rules": [
            {"rulePriority": i + 1, **rule, "action": {"type": "expire"}}
            for i, rule in enumerate(chosen)
        ]
    }
    return document, t.unexpressed


def _gar(rules: list[RetentionRule]) -> tuple[Any, list[str]]:
    t = _Translator(rules, "Artifact Registry")
    keeps: list[dict[str, Any]] = []
    deletes: list[dict[str, Any]] = []
    for rule in rules:
        packages = [to_prefix(p) for p in rule.repositories]
        scope: dict[str, Any] = {}
        if None in packages:
            t.cannot(rule, "repositories", "Artifact Registry selects packages by prefix only")
        elif "" not in packages:
            scope = {"packageNamePrefixes": sorted({p for p in packages if p})}
        prefixes = [to_prefix(p, widen=True) for p in rule.keep.tags]
        if None in prefixes:
            t.block(rule, "keep.tags", "Artifact Registry matches tags by prefix only")
        elif prefixes:
            keeps.append(
                {
                    "name": f"{rule.name}-keep-tags",
                    "action": {"type": "Keep"},
                    "condition": {"tagState": "TAGGED", "tagPrefixes": prefixes} | scope,
                }
            )
        if rule.keep.latest is not None:
            if rule.keep.by == "semver" or rule.delete.tags:
                t.block(
                    rule,
                    f"keep.latest {rule.keep.latest} by {rule.keep.by}",
                    "Artifact Registry keeps the most recent versions of a whole package",
                )
            else:
                keeps.append(
                    {
                        "name": f"{rule.name}-keep-latest",
                        "action": {"type": "Keep"},
                        "mostRecentVersions": {"keepCount": rule.keep.latest} | scope,
                    }
                )
        if rule.keep.newer_than is not None:
            keeps.append(
                {
                    "name": f"{rule.name}-keep-new",
                    "action": {"type": "Keep"},
                    "condition": {"newerThan": f"{days_up(rule.keep.newer_than)}d"} | scope,
                }
            )
        if None in packages:
            continue
        tag_prefixes = [to_prefix(p) for p in rule.delete.tags]
        if None in tag_prefixes:
            t.cannot(rule, "delete.tags", "Artifact Registry matches tags by prefix only")
        elif tag_prefixes and rule.delete.older_than is not None:
            deletes.append(
                {
                    "name": f"{rule.name}-delete-tags",
                    "action": {"type": "Delete"},
                    "condition": {
                        "tagState": "TAGGED",
                        "tagPrefixes": tag_prefixes,
                        "olderThan": f"{days_up(rule.delete.older_than)}d",
                    }
                    | scope,
                }
            )
        if rule.delete.untagged_older_than is not None:
            deletes.append(
                {
                    "name": f"{rule.name}-delete-untagged",
                    "action": {"type": "Delete"},
                    "condition": {
                        "tagState": "UNTAGGED",
                        "olderThan": f"{days_up(rule.delete.untagged_older_than)}d",
                    }
                    | scope,
                }
            )
    t.finish(per_repository=False)
    t.unexpressed.append(
        "packageNamePrefixes are the rules' repository patterns as written: drop the "
        "project and repository part of the path where they carry it"
    )
    policies = keeps + ([] if t.blocked else deletes)
    if len(policies) > 10:
        t.unexpressed.append(
            f"{len(policies)} policies: Artifact Registry allows 10 per repository"
        )
    return policies, t.unexpressed


def _acr(rules: list[RetentionRule]) -> tuple[Any, list[str]]:
    t = _Translator(rules, "ACR")
    days = 0
    for rule in rules:
        # ACR's retention touches untagged manifests only, so keeps of tags hold as they are.
        if rule.delete.tags:
            t.cannot(rule, "delete.tags", "ACR retention deletes untagged manifests only")
        if rule.delete.untagged_older_than is None:
            continue
        if ".*" not in rule.repositories:
            t.cannot(
                rule,
                "delete.untagged_older_than",
                "ACR retention covers the whole registry, this rule only some repositories",
            )
            continue
        days = max(days, days_up(t.age(rule.delete.untagged_older_than)))
    if days > 365:
        t.unexpressed.append(f"untagged retention of {days} days: ACR allows at most 365")
        days = 0
    t.finish(per_repository=False)
    if not days:
        return {"retentionPolicy": {"status": "disabled"}}, t.unexpressed
    return {
        "retentionPolicy": {"status": "enabled", "days": days, "type": "UntaggedManifests"},
        "command": f"az acr config retention update --registry REGISTRY --status enabled "
        f"--days {days} --type UntaggedManifests",
    }, t.unexpressed


def _round_up(value: int, allowed: tuple[int, ...]) -> int | None:
    return next((a for a in allowed if a >= value), None)


def _gitlab(rules: list[RetentionRule]) -> tuple[Any, list[str]]:
    t = _Translator(rules, "GitLab")
    keep_patterns: list[str] = []
    delete_patterns: list[str] = []
    keep_n: int | None = None
    older = timedelta(0)
    for rule in rules:
        for pattern in rule.keep.tags:
            if _RE2_UNSUPPORTED.search(pattern):
                t.block(
                    rule, f"keep.tags {pattern!r}", "GitLab's RE2 has no lookaround or backrefs"
                )
            else:
                keep_patterns.append(pattern)
        if rule.keep.latest is not None:
            if rule.keep.by == "semver":
                t.block(rule, "keep.latest by semver", "GitLab keeps the most recent tags by time")
            else:
                rounded = _round_up(rule.keep.latest, GITLAB_KEEP_N)
                if rounded is None:
                    t.block(rule, f"keep.latest {rule.keep.latest}", "GitLab keeps at most 100")
                else:
                    if rounded != rule.keep.latest:
                        t.cannot(
                            rule, f"keep.latest {rule.keep.latest}", f"rounded up to {rounded}"
                        )
                    keep_n = max(keep_n or 0, rounded)
        if rule.delete.untagged_older_than is not None:
            t.cannot(
                rule,
                "delete.untagged_older_than",
                "GitLab's cleanup policy removes tags; its garbage collection removes the rest",
            )
        for pattern in rule.delete.tags:
            if _RE2_UNSUPPORTED.search(pattern):
                t.cannot(rule, f"delete.tags {pattern!r}", "GitLab's RE2 has no lookaround")
            else:
                delete_patterns.append(pattern)
                assert rule.delete.older_than is not None
                older = max(older, rule.delete.older_than)
    days = _round_up(days_up(t.age(older)), GITLAB_OLDER_THAN) if delete_patterns else None
    if delete_patterns and days is None:
        t.unexpressed.append(
            f"older_than {format_duration(t.age(older))}: GitLab's longest is 90d, so no tag "
            "is deleted"
        )
        delete_patterns = []
    if len({r.delete.older_than for r in rules if r.delete.tags}) > 1:
        t.unexpressed.append(
            f"GitLab has one older_than per project: every delete pattern uses the longest, {days}d"
        )
    t.finish()
    enabled = bool(delete_patterns) and not t.blocked
    attributes: dict[str, Any] = {"enabled": enabled, "cadence": "1d"}
    if enabled:
        attributes["name_regex"] = "|".join(f"(?:{p})" for p in delete_patterns)
        attributes["older_than"] = f"{days}d"
        if keep_n is not None:
            attributes["keep_n"] = keep_n
    if keep_patterns:
        attributes["name_regex_keep"] = "|".join(f"(?:{p})" for p in keep_patterns)
    return {"container_expiration_policy_attributes": attributes}, t.unexpressed


def _doublestar(globs: list[str]) -> str:
    """Wildcards as Harbor's doublestar pattern: `*` there stops at `/`, `.*` here does not."""
    stars = [g.replace("*", "**") for g in globs]
    return stars[0] if len(stars) == 1 else "{" + ",".join(stars) + "}"


def _harbor_selector(globs: list[str], decoration: str, untagged: bool) -> dict[str, Any]:
    return {
        "kind": "doublestar",
        "decoration": decoration,
        "pattern": _doublestar(globs),
        "extras": '{"untagged":%s}' % ("true" if untagged else "false"),
    }


def _harbor(rules: list[RetentionRule]) -> tuple[Any, list[str]]:
    t = _Translator(rules, "Harbor")
    retain: list[dict[str, Any]] = []
    deleted_globs: list[str] = []
    deletes_untagged = False

    def add(rule: RetentionRule, template: str, params: dict[str, Any], selector: Any) -> None:
        repositories = [g for g in (to_glob(p) for p in rule.repositories) if g is not None]
        if len(repositories) != len(rule.repositories):
            t.cannot(rule, "repositories", "Harbor matches repositories by wildcard only")
            repositories = ["*"]
        retain.append(
            {
                "disabled": False,
                "action": "retain",
                "template": template,
                "params": params,
                "tag_selectors": [selector],
                "scope_selectors": {
                    "repository": [
                        {
                            "kind": "doublestar",
                            "decoration": "repoMatches",
                            "pattern": _doublestar(repositories),
                        }
                    ]
                },
            }
        )

    for rule in rules:
        for pattern in rule.keep.tags:
            glob = to_glob(pattern)
            if glob is None:
                t.block(rule, f"keep.tags {pattern!r}", "Harbor tag patterns are wildcards only")
            else:
                add(rule, "always", {}, _harbor_selector([glob], "matches", False))
        if rule.keep.latest is not None:
            selection = [g for g in (to_glob(p) for p in rule.delete.tags) if g is not None]
            if rule.keep.by == "semver" or len(selection) != len(rule.delete.tags):
                t.block(rule, f"keep.latest by {rule.keep.by}", "Harbor keeps by push time")
            else:
                add(
                    rule,
                    "latestPushedK",
                    {"latestPushedK": rule.keep.latest},
                    _harbor_selector(selection or ["*"], "matches", False),
                )
        if rule.keep.newer_than is not None:
            days = days_up(rule.keep.newer_than)
            add(
                rule,
                "nDaysSinceLastPush",
                {"nDaysSinceLastPush": days},
                _harbor_selector(["*"], "matches", True),
            )
        for pattern in rule.delete.tags:
            glob = to_glob(pattern)
            if glob is None:
                t.cannot(rule, f"delete.tags {pattern!r}", "Harbor tag patterns are wildcards only")
                continue
            assert rule.delete.older_than is not None
            deleted_globs.append(glob)
            # Harbor deletes whatever no rule retains: retain the young ones of this pattern.
            add(
                rule,
                "nDaysSinceLastPush",
                {"nDaysSinceLastPush": days_up(rule.delete.older_than)},
                _harbor_selector([glob], "matches", False),
            )
        if rule.delete.untagged_older_than is not None:
            deletes_untagged = True
            add(
                rule,
                "nDaysSinceLastPush",
                {"nDaysSinceLastPush": days_up(rule.delete.untagged_older_than)},
                _harbor_selector(["*"], "matches", True),
            )
    t.finish(per_repository=False)
    if t.blocked:
        deleted_globs, deletes_untagged = [], False
    # Everything no delete rule names stays: one rule retains it.
    retain.insert(
        0,
        {
            "disabled": False,
            "action": "retain",
            "template": "always",
            "params": {},
            "tag_selectors": [
                _harbor_selector(
                    deleted_globs or ["**"],
                    "excludes" if deleted_globs else "matches",
                    not deletes_untagged,
                )
            ],
            "scope_selectors": {
                "repository": [{"kind": "doublestar", "decoration": "repoMatches", "pattern": "**"}]
            },
        },
    )
    if len(retain) > 15:
        t.unexpressed.append(f"{len(retain)} rules: Harbor allows 15 per project")
    document = {
        "algorithm": "or",
        "rules": retain,
        "trigger": {"kind": "Schedule", "settings": {"cron": "0 0 0 * * *"}},
        "scope": {"level": "project", "ref": "PROJECT_ID"},
    }
    return document, t.unexpressed


_TRANSLATORS = {"ecr": _ecr, "gar": _gar, "acr": _acr, "gitlab": _gitlab, "harbor": _harbor}


def export_retention(topology: Topology, provider: str, registry: str | None = None) -> Export:
    """The native policy for `provider` from the rules of one registry of `topology`."""
    if provider not in _TRANSLATORS:
        raise RegtopoError(
            f"exporting retention: unknown provider {provider!r}; expected one of: "
            + ", ".join(PROVIDERS)
        )
    rules = topology.retention.rules if topology.retention else []
    registries = sorted({r.registry for r in rules})
    if registry is None:
        if len(registries) != 1:
            raise RegtopoError(
                "exporting retention: "
                + (
                    "the topology has no retention rules"
                    if not registries
                    else f"rules cover several registries ({', '.join(registries)})"
                ),
                hint="name one with --registry" if registries else None,
            )
        registry = registries[0]
    chosen = [r for r in rules if r.registry == registry]
    if not chosen:
        raise RegtopoError(f"exporting retention: no retention rule covers registry {registry!r}")
    document, unexpressed = _TRANSLATORS[provider](chosen)
    return Export(provider, registry, document, unexpressed)
