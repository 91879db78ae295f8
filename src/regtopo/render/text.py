"""The plan and the apply report as text for a terminal or a CI log."""

from __future__ import annotations

from regtopo.apply.executor import ActionResult, ApplyReport, Outcome
from regtopo.plan.actions import Action, ActionKind, Plan

SYMBOLS = {
    ActionKind.COPY: "+",
    ActionKind.RETAG: "~",
    ActionKind.IN_SYNC: "=",
    ActionKind.SKIPPED: "!",
}


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def describe_content(action: Action) -> str:
    content = action.content
    if content is None:
        return ""
    text = f"{content.digest[:19]} {content.kind}"
    if content.kind == "index":
        parts = [f"{len(content.platforms)} platforms"] if content.platforms else []
        if content.attestations:
            parts.append(f"{content.attestations} attestations")
        extra = content.children - len(content.platforms) - content.attestations
        if extra > 0:
            parts.append(f"{extra} other")
        if parts:
            text += f" ({', '.join(parts)})"
    elif content.layer_media_types:
        # verbatim and in order: zstd, foreign and artifact layers are copied as they are
        text += f" (layers: {', '.join(content.layer_media_types)})"
    return text


def render_action(action: Action) -> str:
    symbol = SYMBOLS[action.kind]
    line = f"  {symbol} {action.kind.value:<8} {action.target}"
    if action.source.registry != action.target.registry or action.source.repository != (
        action.target.repository
    ):
        line += f"  <- {action.source}"
    details = [describe_content(action)] if action.content else []
    if action.create_repository:
        details.append(
            "create-repository " + f"{action.target.registry}/{action.target.repository}"
        )
    if action.kind is ActionKind.COPY:
        details.append(
            f"{human_bytes(action.bytes_to_send)} to send in {action.blobs_to_send} blobs, "
            f"{human_bytes(action.bytes_present)} present"
        )
    if action.target_digest_before and action.is_change:
        details.append(f"replaces {action.target_digest_before[:19]}")
    if action.kind is ActionKind.SKIPPED or (action.reason and action.kind is ActionKind.RETAG):
        details.append(action.reason)
    if action.hop:
        details.append(f"hop {action.hop + 1}")
    if details:
        line += "\n      " + "; ".join(d for d in details if d)
    return line


def render_plan(plan: Plan, *, show_in_sync: bool = True) -> str:
    lines = [f"regtopo plan for {plan.topology}", ""]
    shown = [a for a in plan.actions if show_in_sync or a.kind is not ActionKind.IN_SYNC]
    order = {ActionKind.COPY: 0, ActionKind.RETAG: 1, ActionKind.SKIPPED: 2, ActionKind.IN_SYNC: 3}
    for action in sorted(shown, key=lambda a: (a.hop, order[a.kind], str(a.target))):
        lines.append(render_action(action))
    if shown:
        lines.append("")
    summary = plan.summary()
    if not plan.changes:
        lines.append(
            f"No changes. {summary['in_sync']} in sync"
            + (f", {summary['skipped']} skipped." if summary["skipped"] else ".")
        )
    else:
        lines.append(
            f"Plan: {summary['copy']} to copy, {summary['retag']} to retag, "
            f"{summary['in_sync']} in sync, {summary['skipped']} skipped; "
            f"{human_bytes(summary['bytes_to_send'])} to send."
        )
    return "\n".join(lines)


def render_result(result: ActionResult) -> str:
    action = result.action
    if result.outcome is Outcome.DONE:
        sent = result.stats.bytes_sent
        extra = f", {human_bytes(sent)} sent" if sent else ""
        return f"{action.kind.value} {action.target}: done in {result.seconds:.1f}s{extra}"
    if result.outcome is Outcome.UNCHANGED:
        return f"{action.kind.value} {action.target}: already as planned"
    return f"{action.kind.value} {action.target}: {result.outcome.value}: {result.message}"


def render_report(report: ApplyReport) -> str:
    done = sum(1 for r in report.results if r.ok)
    failed = report.failed
    text = (
        f"Apply complete: {done} done, {len(failed)} failed, "
        f"{human_bytes(report.bytes_sent())} sent in {report.seconds:.1f}s."
    )
    if failed:
        text += "\nFailures:\n" + "\n".join(f"  {render_result(r)}" for r in failed)
    return text
