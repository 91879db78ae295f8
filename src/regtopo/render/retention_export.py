"""The topology's retention rules as a registry product's own policy, and what it cannot say.

`regtopo export retention --provider ecr|gar|acr|gitlab|harbor` writes the native documents:
ECR lifecycle policies, Artifact Registry cleanup policy files, ACR's retention setting, GitLab
cleanup policies (the project API's `container_expiration_policy_attributes`), or Harbor
retention rules. Each product attaches a policy to one place (ACR: the registry), so every
provider but ACR gets `{"policies": [...]}`, one entry per place, saying where it goes.

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
from regtopo.topology.retention import (
    DeleteSpec,
    KeepSpec,
    RetentionRule,
    format_duration,
)

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


ANY = "*"


def _glob_regex(glob: str) -> str:
    return ".*".join(re.escape(part) for part in glob.split("*"))


def split_container(pattern: str, depth: int) -> tuple[str | None, str]:
    """A repository pattern as (the container a product's policy attaches to, the rest in it).

    The container is the first `depth` path segments (a Harbor project, an Artifact Registry
    `project/repository`); ANY for `.*`, which covers every container whole; None when the
    pattern does not name one, and the rest is then `.*`.
    """
    glob = to_glob(pattern)
    if glob == "*":
        return ANY, ".*"
    segments = glob.split("/") if glob is not None else []
    if len(segments) <= depth or any("*" in s for s in segments[:depth]):
        return None, ".*"
    return "/".join(segments[:depth]), _glob_regex("/".join(segments[depth:]))


def keeps_only(rule: RetentionRule) -> RetentionRule | None:
    """The rule's keeps without its deletes, for a policy that carries another rule's deletes.

    `keep.latest` counts within the rule's selection, which a keep alone cannot say: it becomes
    a keep of the whole selection (more kept, never less).
    """
    if rule.delete.empty:
        return rule
    tags = list(rule.keep.tags)
    if rule.keep.latest is not None:
        tags += rule.delete.tags or [".*"]
    if not tags and rule.keep.newer_than is None:
        return None
    keep = KeepSpec(tags=tags, newer_than=rule.keep.newer_than)
    return rule.model_copy(update={"keep": keep, "delete": DeleteSpec()})


@dataclass
class _Part:
    """Where one native policy attaches, which rules' deletes it carries, the rules there."""

    label: dict[str, Any]
    owners: list[str]
    rules: list[RetentionRule]


def _by_repositories(rules: list[RetentionRule]) -> list[_Part]:
    """One part per distinct repository list of the rules that delete.

    A policy there carries those rules' deletes, and the keeps of every rule that may cover a
    repository of the list as well: a keep applied where regtopo would not apply it only keeps
    more.
    """
    groups: dict[tuple[str, ...], list[RetentionRule]] = {}
    for rule in rules:
        if not rule.delete.empty:
            groups.setdefault(tuple(sorted(set(rule.repositories))), []).append(rule)
    parts = []
    for key, own in groups.items():
        names = {r.name for r in own}
        keeps = [
            keeps_only(r)
            for r in rules
            if r.name not in names and may_overlap(r.repositories, list(key))
        ]
        views = own + [k for k in keeps if k is not None]
        parts.append(_Part({"repositories": list(key)}, sorted(names), views))
    return parts


def _by_container(
    rules: list[RetentionRule], depth: int, container: str, product: str
) -> tuple[list[_Part], list[str]]:
    """One part per container the rules name, and one (ANY) for every container none names.

    A rule's patterns inside a container become its repositories there. A pattern naming no
    container may cover any: its keeps go everywhere, its deletes nowhere.
    """
    notes: list[str] = []
    splits = {r.name: [split_container(p, depth) for p in r.repositories] for r in rules}
    for rule in rules:
        for pattern, (where, _) in zip(rule.repositories, splits[rule.name], strict=True):
            if where is None and not rule.delete.empty:
                article = "an" if product[:1].lower() in "aeiou" else "a"
                glob = to_glob(pattern)
                if glob is not None and glob.count("/") + 1 == depth and "*" not in glob:
                    # The container itself, and no repository inside it.
                    why = (
                        f"this pattern names the {container} itself, not what is inside it "
                        f"(for everything inside, write '{pattern}/.*')"
                    )
                else:
                    why = "this pattern names none"
                notes.append(
                    f"rule '{rule.name}': repositories {pattern!r}: {article} {product} policy "
                    f"attaches to one {container}, and {why}: its deletes are left out"
                )
    named = sorted({w for s in splits.values() for w, _ in s if w is not None and w != ANY})
    parts: list[_Part] = []
    for target in [*named, ANY]:
        views: list[RetentionRule] = []
        owners: list[str] = []
        for rule in rules:
            inside = [rest for where, rest in splits[rule.name] if where in (target, ANY)]
            if inside:
                views.append(rule.model_copy(update={"repositories": inside}))
                if not rule.delete.empty:
                    owners.append(rule.name)
            kept = keeps_only(rule)
            if kept is not None and any(where is None for where, _ in splits[rule.name]):
                views.append(kept.model_copy(update={"repositories": [".*"]}))
        if owners:
            parts.append(_Part({container: target}, owners, views))
    return parts, notes


class _Translator:
    """Shared bookkeeping: the rules of one registry, keeps folded, what could not be said."""

    def __init__(self, rules: list[RetentionRule], provider: str, where: str = "") -> None:
        self.rules = rules
        self.provider = provider
        self.where = where
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

    def finish(self) -> None:
        if self.blocked:
            self.unexpressed.append(
                f"no delete rule is exported{self.where}: a keep above has no "
                f"{self.provider} equivalent"
            )


def _ceilings(product: str) -> str:
    return (
        "max_deletes and max_percent ceilings, sync-mode deletions and referrer clean-up "
        f"have no {product} equivalent; ages there are the product's push times, "
        "not the image's created time"
    )


def _ecr(rules: list[RetentionRule], where: str) -> tuple[Any, list[str]]:
    t = _Translator(rules, "ECR", where)
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
            # ECR has no keep action: the claim itself expires past ECR_CLAIM_COUNT images.
            t.cannot(
                rule,
                f"keep.tags {pattern!r}",
                f"ECR has no keep action: it is a rule that expires matching images past the "
                f"newest {ECR_CLAIM_COUNT}, so a repository with more than that loses the oldest",
            )
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


def _gar(rules: list[RetentionRule], where: str) -> tuple[Any, list[str]]:
    t = _Translator(rules, "Artifact Registry", where)
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
    t.finish()
    policies = keeps + ([] if t.blocked else deletes)
    if len(policies) > 10:
        t.unexpressed.append(
            f"{len(policies)} policies{where}: Artifact Registry allows 10 per repository"
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
    t.finish()
    if not days:
        return {"retentionPolicy": {"status": "disabled"}}, t.unexpressed
    return {
        "retentionPolicy": {"status": "enabled", "days": days, "type": "UntaggedManifests"},
        "command": f"az acr config retention update --registry REGISTRY --status enabled "
        f"--days {days} --type UntaggedManifests",
    }, t.unexpressed


def _round_up(value: int, allowed: tuple[int, ...]) -> int | None:
    return next((a for a in allowed if a >= value), None)


def _gitlab(rules: list[RetentionRule], where: str) -> tuple[Any, list[str]]:
    t = _Translator(rules, "GitLab", where)
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
            f"is deleted{where}"
        )
        delete_patterns = []
    if len({r.delete.older_than for r in rules if r.delete.tags}) > 1:
        t.unexpressed.append(
            f"GitLab has one older_than per project: every delete pattern{where} uses the "
            f"longest, {days}d"
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
    """A tag selector; `untagged` says whether it selects untagged artifacts.

    Harbor reads the `untagged` extra the other way round for `excludes`: there `true` leaves
    untagged artifacts out (goharbor/harbor src/lib/selector/selectors/doublestar).
    """
    flag = untagged if decoration == "matches" else not untagged
    return {
        "kind": "doublestar",
        "decoration": decoration,
        "pattern": _doublestar(globs),
        "extras": '{"untagged":%s}' % ("true" if flag else "false"),
    }


def _harbor_rule(
    template: str, params: dict[str, Any], selector: Any, scope: list[str], repo: str
) -> dict[str, Any]:
    return {
        "disabled": False,
        "action": "retain",
        "template": template,
        "params": params,
        "tag_selectors": [selector],
        "scope_selectors": {
            "repository": [
                {"kind": "doublestar", "decoration": repo, "pattern": _doublestar(scope)}
            ]
        },
    }


def _harbor(rules: list[RetentionRule], where: str) -> tuple[Any, list[str]]:
    """Retain rules for one project: Harbor deletes, in each repository a rule's scope selects,
    every artifact no rule selecting that repository retains.

    Each regtopo rule that deletes gets a catch-all over its own repositories that retains
    every artifact with a tag outside its delete patterns (and untagged ones, unless it deletes
    them); its deletes are then the artifacts that catch-all leaves out and that no retain of
    the young ones, or of a keep, holds. A repository several rules cover is retained by each
    one's catch-all, so there Harbor deletes only what all of them delete. One more rule
    retains everything in repositories no deleting rule covers, where keeps alone would
    otherwise decide.
    """
    t = _Translator(rules, "Harbor", where)
    retain: list[dict[str, Any]] = []
    catch_alls: list[tuple[list[str], list[str], bool]] = []

    for rule in rules:
        scope = [g for g in (to_glob(p) for p in rule.repositories) if g is not None]
        exact = len(scope) == len(rule.repositories)
        if not exact:
            t.cannot(rule, "repositories", "Harbor matches repositories by wildcard only")
            scope = ["*"]

        def add(template: str, params: dict[str, Any], selector: Any, scope: Any = scope) -> None:
            retain.append(_harbor_rule(template, params, selector, scope, "repoMatches"))

        for pattern in rule.keep.tags:
            glob = to_glob(pattern)
            if glob is None:
                t.block(rule, f"keep.tags {pattern!r}", "Harbor tag patterns are wildcards only")
            else:
                add("always", {}, _harbor_selector([glob], "matches", False))
        if rule.keep.latest is not None:
            selection = [g for g in (to_glob(p) for p in rule.delete.tags) if g is not None]
            if rule.keep.by == "semver" or len(selection) != len(rule.delete.tags):
                t.block(rule, f"keep.latest by {rule.keep.by}", "Harbor keeps by push time")
            else:
                add(
                    "latestPushedK",
                    {"latestPushedK": rule.keep.latest},
                    _harbor_selector(selection or ["*"], "matches", False),
                )
        if rule.keep.newer_than is not None:
            days = days_up(rule.keep.newer_than)
            add(
                "nDaysSinceLastPush",
                {"nDaysSinceLastPush": days},
                _harbor_selector(["*"], "matches", True),
            )
        deleted: list[str] = []
        if exact:
            for pattern in rule.delete.tags:
                glob = to_glob(pattern)
                if glob is None:
                    t.cannot(
                        rule, f"delete.tags {pattern!r}", "Harbor tag patterns are wildcards only"
                    )
                    continue
                assert rule.delete.older_than is not None
                deleted.append(glob)
                if rule.delete.older_than:
                    # Retain the young ones of this pattern: Harbor says "pushed within N days".
                    add(
                        "nDaysSinceLastPush",
                        {"nDaysSinceLastPush": days_up(rule.delete.older_than)},
                        _harbor_selector([glob], "matches", False),
                    )
            if rule.delete.untagged_older_than:
                # `excludes **` selects exactly the untagged artifacts.
                add(
                    "nDaysSinceLastPush",
                    {"nDaysSinceLastPush": days_up(rule.delete.untagged_older_than)},
                    _harbor_selector(["*"], "excludes", True),
                )
        elif not rule.delete.empty:
            t.cannot(rule, "delete", "its repositories are no wildcard, so nothing is deleted")
        if exact and not rule.delete.empty:
            catch_alls.append((scope, deleted, rule.delete.untagged_older_than is not None))
    t.finish()
    first: list[dict[str, Any]] = []
    for scope, deleted, untagged in catch_alls:
        if t.blocked:
            deleted, untagged = [], False
        selector = (
            _harbor_selector(deleted, "excludes", not untagged)
            if deleted
            else _harbor_selector(["*"], "matches", not untagged)
        )
        first.append(_harbor_rule("always", {}, selector, scope, "repoMatches"))
    scopes = sorted({g for scope, _, _ in catch_alls for g in scope})
    if "*" not in scopes:
        everything = _harbor_selector(["*"], "matches", True)
        first.append(_harbor_rule("always", {}, everything, scopes, "repoExcludes"))
    retain = first + retain
    if len(retain) > 15:
        t.unexpressed.append(f"{len(retain)} rules{where}: Harbor allows 15 per project")
    document = {
        "algorithm": "or",
        "rules": retain,
        "trigger": {"kind": "Schedule", "settings": {"cron": "0 0 0 * * *"}},
        "scope": {"level": "project", "ref": "PROJECT_ID"},
    }
    return document, t.unexpressed


_PRODUCTS = {
    "ecr": "ECR",
    "gar": "Artifact Registry",
    "acr": "ACR",
    "gitlab": "GitLab",
    "harbor": "Harbor",
}


def may_overlap(left: list[str], right: list[str]) -> bool:
    """Whether some repository name could match a pattern of both lists (False only if sure)."""
    return any(_may_overlap(a, b) for a in left for b in right)


def _may_overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    glob_a, glob_b = to_glob(a), to_glob(b)
    for literal, other in ((glob_a, b), (glob_b, a)):
        if literal is not None and "*" not in literal:
            return re.fullmatch(other, literal) is not None
    if glob_a is None or glob_b is None:
        return True
    heads = glob_a.split("*")[0], glob_b.split("*")[0]
    tails = glob_a.split("*")[-1], glob_b.split("*")[-1]
    return (heads[0].startswith(heads[1]) or heads[1].startswith(heads[0])) and (
        tails[0].endswith(tails[1]) or tails[1].endswith(tails[0])
    )


def _overlaps(parts: list[_Part], consequence: str) -> list[str]:
    """Pairs of delete rules of one part that may cover the same repository, and what then."""
    notes = []
    for part in parts:
        views = {r.name: r for r in part.rules if r.name in part.owners}
        names = sorted(views)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if views[a].repositories != views[b].repositories and may_overlap(
                    views[a].repositories, views[b].repositories
                ):
                    notes.append(
                        f"rules '{a}' and '{b}' may cover the same repository: {consequence}"
                    )
    return _dedupe(notes)


def _shared(parts: list[_Part], consequence: str) -> list[str]:
    """Parts whose repository lists may share a repository, and what happens there."""
    notes = []
    for i, left in enumerate(parts):
        for right in parts[i + 1 :]:
            if may_overlap(left.label["repositories"], right.label["repositories"]):
                a, b = ", ".join(left.owners), ", ".join(right.owners)
                notes.append(
                    f"rules {a} and {b} may cover the same repository, which takes one "
                    f"{consequence}"
                )
    return notes


def _where(container: str, name: str) -> str:
    return f" for every {container} no rule names" if name == ANY else f" for {container} {name}"


def _dedupe(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def export_retention(topology: Topology, provider: str, registry: str | None = None) -> Export:
    """The native policy for `provider` from the rules of one registry of `topology`."""
    if provider not in _PRODUCTS:
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
    if provider == "harbor":
        parts, unexpressed = _by_container(chosen, 1, "project", "Harbor retention")
        unexpressed += _overlaps(parts, "Harbor deletes there only what both rules delete")
        policies = []
        for part in parts:
            where = _where("project", part.label["project"])
            document, lines = _harbor(part.rules, where)
            policies.append(part.label | {"rules": part.owners, "policy": document})
            unexpressed += lines
        unexpressed.append(_ceilings(_PRODUCTS[provider]))
        return Export(provider, registry, {"policies": policies}, _dedupe(unexpressed))
    if provider == "gar":
        parts, unexpressed = _by_container(chosen, 2, "repository", "Artifact Registry cleanup")
        policies = []
        for part in parts:
            document, lines = _gar(part.rules, _where("repository", part.label["repository"]))
            policies.append(part.label | {"rules": part.owners, "policy": document})
            unexpressed += lines
        if any(r.delete.tags for r in chosen):
            unexpressed.append(
                "Artifact Registry deletes a version with every tag on it once one tag matches "
                "a delete policy; regtopo keeps it while another tag no rule deletes points at "
                "it: name such tags in keep.tags"
            )
        unexpressed.append(_ceilings(_PRODUCTS[provider]))
        return Export(provider, registry, {"policies": policies}, _dedupe(unexpressed))
    if provider in ("ecr", "gitlab"):
        parts = _by_repositories(chosen)
        unexpressed = []
        if provider == "ecr":
            unexpressed += _shared(
                parts,
                "lifecycle policy: there only the attached one's deletes run, and its keeps "
                "include the other rules' keeps",
            )
        else:
            unexpressed.append(
                "GitLab's cleanup policy covers every container repository of a project: put "
                "each policy only on projects whose container repositories all match its "
                "repositories"
            )
            unexpressed += _shared(
                parts,
                "project policy: there only the chosen one's deletes run, and its keeps "
                "include the other rules' keeps",
            )
        policies = []
        for part in parts:
            where = " for repositories " + ", ".join(part.label["repositories"])
            translate = _ecr if provider == "ecr" else _gitlab
            document, lines = translate(part.rules, where)
            policies.append(part.label | {"rules": part.owners, "policy": document})
            unexpressed += lines
        if provider == "ecr" and any(r.delete.tags for r in chosen):
            unexpressed.append(
                "ECR expires an image with every tag on it once one tag matches a delete "
                "pattern; regtopo keeps it while another tag no rule deletes points at it: "
                "name such tags in keep.tags"
            )
        unexpressed.append(_ceilings(_PRODUCTS[provider]))
        return Export(provider, registry, {"policies": policies}, _dedupe(unexpressed))
    document, unexpressed = _acr(chosen)
    unexpressed.append(_ceilings(_PRODUCTS[provider]))
    return Export(provider, registry, document, unexpressed)
