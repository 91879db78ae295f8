"""The plan and drift as Markdown, for a pull-request comment or $GITHUB_STEP_SUMMARY.

The layout lives in jinja2 templates beside this module (templates/*.md.j2), so a change of
wording is a change of template, not of code.
"""

from __future__ import annotations

from functools import cache
from typing import cast

from jinja2 import Environment, PackageLoader, StrictUndefined

from regtopo.plan.actions import ActionKind, Plan
from regtopo.plan.drift import DriftReport
from regtopo.render.text import human_bytes, short, sorted_actions


def cell(value: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("regtopo.render", "templates"),
        undefined=StrictUndefined,
        autoescape=False,  # Markdown, not HTML; table cells go through `cell`
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = human_bytes
    env.filters["short"] = short
    env.filters["cell"] = cell
    return env


def _groups(plan: Plan) -> dict[str, object]:
    actions = sorted_actions(plan.actions)
    summary = plan.summary()
    headline = "no changes"
    if plan.changes:
        parts = [f"{summary['copy']} to copy", f"{summary['retag']} to retag"]
        if summary["copy_referrers"]:
            parts.append(f"{summary['copy_referrers']} to complete with referrers")
        if summary["delete"]:
            # Deletions go in the headline: a reviewer reading only it must see them.
            parts.append(f"**{summary['delete']} to delete**")
        parts.append(f"{human_bytes(summary['bytes_to_send'])} to send")
        if summary["bytes_to_mount"]:
            parts.append(f"{human_bytes(summary['bytes_to_mount'])} to mount (not sent)")
        headline = ", ".join(parts)
    if summary["blocked"]:
        headline += f", {summary['blocked']} blocked"
    return {
        "headline": headline,
        "plan": plan,
        "summary": summary,
        "changes": [a for a in actions if a.is_change],
        "skipped": [a for a in actions if a.kind is ActionKind.SKIPPED],
        "blocked": [a for a in actions if a.kind is ActionKind.BLOCKED],
        "in_sync": [a for a in actions if a.kind is ActionKind.IN_SYNC],
    }


#: GitHub refuses a comment over 65,536 characters; room is left for a CI job's own words.
MAX_CHARS = 60_000

#: the tables a long document shortens
_SHORTENED = ("in_sync", "unmanaged", "skipped", "blocked", "changes")


def render_plan_markdown(plan: Plan, max_chars: int = MAX_CHARS) -> str:
    return _fitted("plan.md.j2", _groups(plan), max_chars)


def render_drift_markdown(report: DriftReport, max_chars: int = MAX_CHARS) -> str:
    groups = {**_groups(report.plan), "report": report, "unmanaged": report.unmanaged}
    groups["missing"] = sum(1 for a in report.plan.actions if a.source_missing)
    return _fitted("drift.md.j2", groups, max_chars)


def _fitted(template: str, groups: dict[str, object], max_chars: int) -> str:
    """The document, within `max_chars` when it can be: rows are left out of the longest
    tables first (in-sync rows before any change), and each table says how many it left out.
    The totals always stay whole; the full plan is the plan file."""
    page = environment().get_template(template)
    shown: dict[str, list[object]] = {
        name: list(cast(list[object], groups[name])) for name in _SHORTENED if name in groups
    }
    omitted = dict.fromkeys(shown, 0)
    text = page.render(**groups, omitted=omitted)
    while len(text) > max_chars and any(shown.values()):
        # In-sync rows go first and whole; then the longest table is halved, and again.
        if shown.get("in_sync"):
            name, keep = "in_sync", 0
        else:
            name = max(shown, key=lambda n: len(shown[n]))
            keep = len(shown[name]) // 2
        omitted[name] += len(shown[name]) - keep
        shown[name] = shown[name][:keep]
        text = page.render(**{**groups, **shown}, omitted=omitted)
    return text
