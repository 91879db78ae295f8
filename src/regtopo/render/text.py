"""The plan, drift and the apply report as text for a terminal (coloured) or a CI log (plain).

Renderers build `rich.text.Text`; `emit` prints it with colour on a terminal and as plain
unwrapped lines anywhere else, so CI logs and pipes never see escape codes.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.text import Text

from regtopo.apply.executor import ActionResult, ApplyReport, Outcome
from regtopo.plan.actions import Action, ActionKind, Plan
from regtopo.plan.drift import DriftReport

SYMBOLS = {
    ActionKind.COPY: "+",
    ActionKind.RETAG: "~",
    ActionKind.COPY_REFERRERS: "&",
    ActionKind.IN_SYNC: "=",
    ActionKind.SKIPPED: "!",
    ActionKind.BLOCKED: "x",
    ActionKind.DELETE: "-",
}
STYLES = {
    ActionKind.COPY: "green",
    ActionKind.RETAG: "yellow",
    ActionKind.COPY_REFERRERS: "cyan",
    ActionKind.IN_SYNC: "dim",
    ActionKind.SKIPPED: "red",
    ActionKind.BLOCKED: "bold red",
    ActionKind.DELETE: "red",
}
ORDER = {
    ActionKind.COPY: 0,
    ActionKind.RETAG: 1,
    ActionKind.COPY_REFERRERS: 2,
    ActionKind.DELETE: 3,
    ActionKind.BLOCKED: 4,
    ActionKind.SKIPPED: 5,
    ActionKind.IN_SYNC: 6,
}


def emit(text: Text | str, stream: TextIO | None = None) -> None:
    """Print with colour when `stream` is a terminal (and NO_COLOR is unset), plain otherwise."""
    stream = stream or sys.stdout
    if isinstance(text, str):
        text = Text(text)
    if stream.isatty():
        Console(file=stream, soft_wrap=True, highlight=False).print(text)
    else:
        stream.write(text.plain + "\n")
        stream.flush()


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def short(digest: str | None) -> str:
    return digest[:19] if digest else "absent"


def describe_content(action: Action) -> str:
    content = action.content
    if content is None:
        return ""
    text = f"{short(content.digest)} {content.kind}"
    if content.kind == "index":
        count = len(content.platforms)
        parts = [f"{count} platform{'s' if count != 1 else ''}"] if content.platforms else []
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


def deleted_ref(action: Action) -> str:
    """`registry/repository:tag,tag@digest`, or `@digest` alone for untagged content."""
    deletion = action.deletion
    where = f"{action.target.registry}/{action.target.repository}"
    if deletion is None:
        return where
    tags = f":{','.join(deletion.tags)}" if deletion.tags else ""
    return f"{where}{tags}@{deletion.digest[:19]}"


def describe_deletion(action: Action) -> list[str]:
    deletion = action.deletion
    if deletion is None:
        return []
    lines = [deletion.rule]
    if deletion.age_days is not None:
        lines.append(f"age {deletion.age_days:.0f} days ({deletion.age_source})")
    else:
        lines.append(f"age {deletion.age_source}")
    if deletion.children:
        count = len(deletion.children)
        lines.append(f"with {count} child manifest{'s' if count != 1 else ''} of the index")
    if deletion.referrers:
        kinds = sorted({r.artifact_type or r.found_by for r in deletion.referrers})
        count = len(deletion.referrers)
        lines.append(f"with {count} referrer{'s' if count != 1 else ''} ({', '.join(kinds)})")
    return lines


def render_referrers(action: Action) -> list[str]:
    """Each referrer under its subject: kind, digest, how it is stored at the source."""
    lines = []
    for ref in action.referrers:
        where = f"tag {ref.tag}" if ref.tag else ref.via
        if ref.in_tree:
            where += ", inside the content"
        # The artifact type where the source says one; a media type is not one, so it is
        # named as what it is.
        kind = ref.artifact_type or f"{ref.media_type}, no artifactType listed"
        lines.append(
            f"      ↳ {ref.kind} {short(ref.digest)} of {short(ref.subject)} ({kind}; {where})"
        )
    return lines


def action_details(action: Action) -> list[str]:
    details = [describe_content(action)] if action.content else []
    if action.create_repository:
        details.append(
            "create-repository " + f"{action.target.registry}/{action.target.repository}"
        )
    if action.kind is ActionKind.COPY or (
        action.is_change and (action.blobs_to_send or action.blobs_to_mount)
    ):
        mount = (
            f"{human_bytes(action.bytes_to_mount)} to mount from {action.source.repository_key} "
            f"in {action.blobs_to_mount} blobs (not sent), "
            if action.blobs_to_mount
            else ""
        )
        details.append(
            f"{human_bytes(action.bytes_to_send)} to send in {action.blobs_to_send} blobs, "
            f"{mount}{human_bytes(action.bytes_present)} present"
        )
    if action.referrers_to_copy and action.is_change:
        details.append(f"{len(action.referrers_to_copy)} referrer(s) to bring along")
    if action.referrers_in_tree and action.is_change:
        details.append(
            f"{len(action.referrers_in_tree)} referrer(s) inside the content itself, "
            "listed under their subject, not copied again"
        )
    replaces = action.is_change and action.kind is not ActionKind.COPY_REFERRERS
    if action.target_digest_before and replaces:
        details.append(f"replaces {short(action.target_digest_before)}")
    if action.kind in (ActionKind.SKIPPED, ActionKind.BLOCKED) or (
        action.reason and action.kind in (ActionKind.RETAG, ActionKind.COPY_REFERRERS)
    ):
        details.append(action.reason)
    if action.verified:
        details.append(f"verified: {', '.join(action.verified)}")
    if action.hop:
        details.append(f"hop {action.hop + 1}")
    details.append(f"by {action.replication}" + (f" ({action.rule})" if action.rule else ""))
    return [d for d in details if d]


def deletion_text(action: Action) -> Text:
    line = Text("  ")
    line.append(f"{SYMBOLS[action.kind]} {action.kind.value:<8}", style=STYLES[action.kind])
    line.append(f" {deleted_ref(action)}", style="bold")
    # The digest is on the first line already; keep the kind and platforms.
    details = [describe_content(action).split(" ", 1)[1]] if action.content else []
    if action.kind is ActionKind.SKIPPED:
        details.append(action.reason)
    details += describe_deletion(action)
    line.append("\n      " + "; ".join(d for d in details if d), style="dim")
    return line


def action_text(action: Action) -> Text:
    if action.deletion is not None or action.kind is ActionKind.DELETE:
        return deletion_text(action)
    line = Text("  ")
    line.append(f"{SYMBOLS[action.kind]} {action.kind.value:<8}", style=STYLES[action.kind])
    line.append(f" {action.target}", style="bold" if action.is_change else "")
    if action.source.repository_key != action.target.repository_key:
        line.append(f"  <- {action.source}")
    line.append("\n      " + "; ".join(action_details(action)), style="dim")
    for warning in action.warnings:
        line.append(f"\n      warning: {warning}", style="yellow")
    if action.is_change:
        for referrer in render_referrers(action):
            line.append("\n" + referrer, style="dim")
    return line


def sorted_actions(actions: list[Action]) -> list[Action]:
    return sorted(actions, key=lambda a: (a.hop, ORDER[a.kind], str(a.target)))


def summary_line(plan: Plan, *, nothing: str = "No changes.") -> str:
    """The plan's totals. `nothing` opens the line when apply has nothing to do."""
    summary = plan.summary()
    blocked = f", {summary['blocked']} blocked" if summary["blocked"] else ""
    if not plan.changes:
        skipped = f", {summary['skipped']} skipped" if summary["skipped"] else ""
        return f"{nothing} {summary['in_sync']} in sync{skipped}{blocked}."
    referrers = ""
    if summary["copy_referrers"]:
        referrers += f"{summary['copy_referrers']} to complete with referrers, "
    tail = f"{summary['referrers']} referrer(s) to bring along; " if summary["referrers"] else ""
    if summary["delete"]:
        referrers += f"{summary['delete']} to delete, "
    mount = ""
    if summary["bytes_to_mount"]:
        mount = f", {human_bytes(summary['bytes_to_mount'])} to mount (not sent)"
    return (
        f"Plan: {summary['copy']} to copy, {summary['retag']} to retag, {referrers}"
        f"{summary['in_sync']} in sync, {summary['skipped']} skipped{blocked}; {tail}"
        f"{human_bytes(summary['bytes_to_send'])} to send{mount}."
    )


def plan_text(plan: Plan, *, show_in_sync: bool = True) -> Text:
    header = f"regtopo plan for {plan.topology}"
    if plan.targets:
        header += f" (replications: {', '.join(plan.targets)})"
    if plan.shard:
        header += f" (shard {plan.shard})"
    text = Text()
    text.append(header + "\n\n", style="bold")
    shown = [a for a in plan.actions if show_in_sync or a.kind is not ActionKind.IN_SYNC]
    for action in sorted_actions(shown):
        text.append_text(action_text(action))
        text.append("\n")
    if shown:
        text.append("\n")
    text.append(summary_line(plan), style="bold")
    return text


def render_plan(plan: Plan, *, show_in_sync: bool = True) -> str:
    return plan_text(plan, show_in_sync=show_in_sync).plain


def drift_text(report: DriftReport) -> Text:
    plan = report.plan
    text = Text()
    text.append(f"regtopo drift for {plan.topology}\n\n", style="bold")
    drifted = [a for a in plan.actions if a.is_change]
    for action in sorted_actions(drifted):
        text.append_text(action_text(action))
        text.append("\n")
    skipped = [a for a in plan.actions if a.kind in (ActionKind.SKIPPED, ActionKind.BLOCKED)]
    for action in sorted_actions(skipped):
        text.append_text(action_text(action))
        text.append("\n")
    if report.unmanaged:
        if drifted or skipped:
            text.append("\n")
        text.append(f"Unmanaged ({len(report.unmanaged)}): tags no replication writes\n")
        for tag in report.unmanaged:
            text.append(f"  ? {tag}\n", style="magenta")
    text.append("\n")
    blocked = sum(1 for a in plan.actions if a.kind is ActionKind.BLOCKED)
    missing = sum(1 for a in plan.actions if a.source_missing)
    if report.drifted:
        parts = []
        if drifted:
            tags = f"{len(drifted)} target tag{'s' if len(drifted) != 1 else ''}"
            parts.append(f"{tags} {'differs' if len(drifted) == 1 else 'differ'} from the topology")
        if blocked and not drifted:
            tags = f"{blocked} tag{'s' if blocked != 1 else ''}"
            parts.append(f"{tags} kept from the targets by signing policies")
        if missing:
            parts.append(
                f"{missing} source{'s' if missing != 1 else ''} the topology names "
                f"{'is' if missing == 1 else 'are'} missing"
            )
        text.append(f"Drift: {'; '.join(parts)}. ", style="bold")
    elif report.unmanaged:
        # Not drift from the topology, but not "no drift" either: --fail-on-unmanaged fails on it.
        text.append("No drift in what the topology manages. ", style="bold")
    else:
        text.append("No drift. ", style="bold")
    # After "Drift: ...", "No changes." would read as a contradiction: it means apply's part.
    text.append(
        summary_line(plan, nothing="Nothing for apply to do:" if report.drifted else "No changes.")
    )
    if report.unmanaged:
        text.append(f" {len(report.unmanaged)} unmanaged.")
    return text


def render_result(result: ActionResult) -> str:
    action = result.action
    if action.kind is ActionKind.DELETE:
        message = f": {result.message}" if result.message else ""
        return f"delete {deleted_ref(action)}: {result.outcome.value}{message}"
    checks = "".join(f"\n    {line}" for line in result.verification)
    if result.outcome is Outcome.DONE:
        sent, shared = result.stats.bytes_sent, result.stats.bytes_shared
        extra = f", {human_bytes(sent)} sent" if sent or shared else ""
        if shared:
            # What the plan priced for this tag but another copy of this apply sent: once.
            extra += f" (and {human_bytes(shared)} sent once with another copy)"
        if result.stats.blobs_mounted:
            extra += (
                f", {human_bytes(result.stats.bytes_mounted)} mounted in "
                f"{result.stats.blobs_mounted} blobs (not sent)"
            )
        if result.stats.referrers_copied:
            extra += f", {result.stats.referrers_copied} referrer(s) copied"
        if result.stats.referrers_present:
            extra += (
                f", {result.stats.referrers_present} referrer(s) already at the target "
                "(or brought by another copy)"
            )
        if result.stats.referrers_in_tree:
            extra += (
                f", {result.stats.referrers_in_tree} referrer(s) inside the content itself, "
                "listed under their subject"
            )
        return f"{action.kind.value} {action.target}: done in {result.seconds:.1f}s{extra}{checks}"
    if result.outcome is Outcome.UNCHANGED:
        return f"{action.kind.value} {action.target}: already as planned{checks}"
    return f"{action.kind.value} {action.target}: {result.outcome.value}: {result.message}{checks}"


def _outcome_line(result: ActionResult) -> str:
    # Under its section's title the outcome goes without saying. A deletion is named by its
    # digest and tags; a target tag alone would not say what went.
    if result.action.kind is ActionKind.DELETE:
        return f"delete {deleted_ref(result.action)}: {result.message}"
    return f"{result.action.target}: {result.message}"


def render_report(report: ApplyReport) -> str:
    by_outcome = {o: [r for r in report.results if r.outcome is o] for o in Outcome}
    done = len(by_outcome[Outcome.DONE]) + len(by_outcome[Outcome.UNCHANGED])
    text = (
        f"Apply complete: {done} done, {len(by_outcome[Outcome.FAILED])} failed, "
        f"{len(by_outcome[Outcome.STALE])} stale, "
        f"{len(by_outcome[Outcome.NOT_ATTEMPTED])} not attempted"
        + (f", {len(by_outcome[Outcome.SKIPPED])} skipped" if by_outcome[Outcome.SKIPPED] else "")
        + "; "
        f"{human_bytes(report.bytes_sent())} sent"
        + (
            f", {human_bytes(report.bytes_mounted())} mounted (not sent)"
            if report.bytes_mounted()
            else ""
        )
        + f" in {report.seconds:.1f}s."
    )
    sections = [
        (Outcome.STALE, "Refused as stale (the registries changed since the plan; plan again):"),
        (Outcome.FAILED, "Failed:"),
        (Outcome.NOT_ATTEMPTED, "Not attempted:"),
        (Outcome.SKIPPED, "Skipped:"),
    ]
    for outcome, title in sections:
        if by_outcome[outcome]:
            text += f"\n{title}\n" + "\n".join(f"  {_outcome_line(r)}" for r in by_outcome[outcome])
    return text
