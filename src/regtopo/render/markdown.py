"""The plan and drift as Markdown, for a pull-request comment or $GITHUB_STEP_SUMMARY.

The layout lives in jinja2 templates beside this module (templates/*.md.j2), so a change of
wording is a change of template, not of code.
"""

from __future__ import annotations

from functools import cache

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


def render_plan_markdown(plan: Plan) -> str:
    return environment().get_template("plan.md.j2").render(**_groups(plan))


def render_drift_markdown(report: DriftReport) -> str:
    return (
        environment()
        .get_template("drift.md.j2")
        .render(report=report, unmanaged=report.unmanaged, **_groups(report.plan))
    )
