"""The `retention:` block of a topology: which content each registry keeps, and what it may delete.

A rule names a registry and the repositories it covers (anchored regular expressions, as tag
selection uses), what to keep, what to delete, and ceilings. How rules combine (keep wins over
delete, across every rule that covers a repository) is the planner's business
(`regtopo.plan.retention`) and is written down in docs/retention.md.

```yaml
retention:
  max_deletes: 100          # per run, over every rule
  max_percent: 50           # of any one repository, per run
  rules:
    - name: ci-builds
      registry: mirror
      repositories: ["apps/.*"]
      keep: {latest: 5, by: semver, tags: ["latest", "v.*"], newer_than: 7d}
      delete: {tags: ["ci-.*"], older_than: 30d, untagged_older_than: 14d}
      max_deletes: 20
```
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from regtopo.topology.base import Model

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_DURATION_PART = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_duration(value: Any) -> Any:
    """`30d`, `12h`, `2w`, `1d12h`: the units ECR, GitLab and Harbor users write."""
    if isinstance(value, timedelta) or not isinstance(value, str | int):
        return value
    text = str(value).strip()
    if isinstance(value, int) or text.isdigit():
        raise ValueError(f"{text!r} needs a unit: s, m, h, d or w (for example '30d')")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration; expected for example '30d', '12h', '1d12h'")
    return timedelta(**{_UNITS[unit]: int(number) for number, unit in parts})


def format_duration(value: timedelta) -> str:
    """The shortest spelling of a duration in the file's own units (`30d`, `1d12h`)."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+[wdhms])+$", "examples": ["30d"]}),
]


def _compile(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"{value!r} is not a valid regular expression: {err}") from err
    return value


Pattern = Annotated[
    str,
    BeforeValidator(_compile),
    Field(description="an anchored regular expression: it must match the whole name"),
]


def matches(patterns: list[str], name: str) -> bool:
    """Whether any of the anchored patterns matches the whole `name`."""
    return any(re.fullmatch(pattern, name) for pattern in patterns)


class KeepSpec(Model):
    """What a rule keeps. Keep wins over delete, whichever rule says either."""

    latest: Annotated[int, Field(ge=1)] | None = Field(
        None, description="keep the latest N tags of the rule's selection"
    )
    by: Literal["semver", "time"] = Field(
        "time", description="order for `latest`: semver versions, or the age of the content"
    )
    tags: list[Pattern] = Field(default_factory=list, description="keep tags matching these")
    newer_than: Duration | None = Field(None, description="keep anything younger than this")

    @property
    def empty(self) -> bool:
        return self.latest is None and not self.tags and self.newer_than is None


class DeleteSpec(Model):
    """What a rule deletes, unless something keeps it."""

    tags: list[Pattern] = Field(
        default_factory=list, description="delete tags matching these (with `older_than`)"
    )
    older_than: Duration | None = Field(
        None, description="only tags whose content is older than this ('0s' for any age)"
    )
    untagged_older_than: Duration | None = Field(
        None, description="delete manifests no tag points at, older than this"
    )

    @model_validator(mode="after")
    def _age_with_tags(self) -> DeleteSpec:
        if self.tags and self.older_than is None:
            raise ValueError(
                "'delete.tags' needs 'older_than' (write '0s' to delete matching tags of any age)"
            )
        if self.older_than is not None and not self.tags:
            raise ValueError("'delete.older_than' needs 'tags' (write ['.*'] for every tag)")
        return self

    @property
    def empty(self) -> bool:
        return not self.tags and self.untagged_older_than is None


class RetentionRule(Model):
    """One rule: a registry, repositories in it, what to keep and what to delete."""

    name: str = Field(pattern=_NAME, description="named in every deletion it plans")
    registry: str = Field(description="a registry of this topology")
    repositories: list[Pattern] = Field(
        min_length=1, description="anchored regular expressions over repository names"
    )
    keep: KeepSpec = Field(default_factory=KeepSpec)
    delete: DeleteSpec = Field(default_factory=DeleteSpec)
    max_deletes: Annotated[int, Field(ge=0)] | None = Field(
        None, description="refuse the plan if this rule would delete more manifests"
    )
    max_percent: Annotated[float, Field(ge=0, le=100)] | None = Field(
        None, description="refuse the plan if this rule would delete more of a repository"
    )

    @model_validator(mode="after")
    def _does_something(self) -> RetentionRule:
        if self.keep.empty and self.delete.empty:
            raise ValueError(f"retention rule {self.name!r} has neither 'keep' nor 'delete'")
        return self


class RetentionSpec(Model):
    """Every retention rule, and the ceilings of one run over all of them."""

    max_deletes: Annotated[int, Field(ge=0)] = Field(
        100, description="refuse a plan that deletes more manifests than this in one run"
    )
    max_percent: Annotated[float, Field(ge=0, le=100)] = Field(
        50, description="refuse a plan that deletes more than this share of any one repository"
    )
    rules: list[RetentionRule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[RetentionRule]) -> list[RetentionRule]:
        names = [rule.name for rule in rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"retention rule names must be unique: {', '.join(duplicates)}")
        return rules


def retention_problems(
    spec: RetentionSpec | None, registries: set[str]
) -> list[tuple[tuple[object, ...], str]]:
    """Cross-checks no single field can make: each rule's registry must exist."""
    if spec is None:
        return []
    known = ", ".join(sorted(registries))
    return [
        (
            ("retention", "rules", index, "registry"),
            f"unknown registry {rule.registry!r}; expected one of: {known}",
        )
        for index, rule in enumerate(spec.rules)
        if rule.registry not in registries
    ]
