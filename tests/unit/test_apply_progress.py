"""What apply shows while it runs: a progress bar on a terminal, one line per action elsewhere."""

from __future__ import annotations

import io

import pytest

from regtopo.apply.copy import CopyStats
from regtopo.apply.executor import ActionResult, ApplyReport, Outcome
from regtopo.cli.apply import progress_reporter
from regtopo.plan.actions import ActionKind, Plan
from regtopo.render.text import render_report
from tests.unit.test_plan_format import action


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def results() -> tuple[Plan, list[ActionResult]]:
    copy = action(ActionKind.COPY, "a/app:v1", "b/app:v1")
    retag = action(ActionKind.RETAG, "a/app:v2", "b/app:v2")
    plan = Plan(topology="t.yaml", actions=[copy, retag])
    return plan, [
        ActionResult(copy, Outcome.DONE, seconds=1.25, stats=CopyStats(bytes_sent=2_000_000)),
        ActionResult(retag, Outcome.FAILED, "pushing manifest: denied"),
    ]


def test_off_a_terminal_each_finished_action_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    plan, finished = results()

    with progress_reporter(plan) as report:
        for result in finished:
            report(result)

    assert stderr.getvalue().splitlines() == [
        "copy b/app:v1: done in 1.2s, 2.0 MB sent",
        "retag b/app:v2: failed: pushing manifest: denied",
    ]


def test_on_a_terminal_a_progress_bar_counts_actions_and_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    plan, finished = results()

    with progress_reporter(plan) as report:
        for result in finished:
            report(result)

    shown = stderr.getvalue()
    assert "copy b/app:v1: done in 1.2s, 2.0 MB sent" in shown
    assert "2/2" in shown and "2.0 MB sent" in shown
    assert "\x1b[" in shown


def test_the_summary_lists_stale_and_failed_actions_by_target() -> None:
    plan, finished = results()
    stale = ActionResult(plan.actions[0], Outcome.STALE, "a/app:v1 now points at sha256:9")

    text = render_report(ApplyReport(results=[*finished, stale], seconds=2.0))

    assert text.splitlines() == [
        "Apply complete: 1 done, 1 failed, 1 stale, 0 not attempted; 2.0 MB sent in 2.0s.",
        "Refused as stale (the registries changed since the plan; plan again):",
        "  b/app:v1: a/app:v1 now points at sha256:9",
        "Failed:",
        "  b/app:v2: pushing manifest: denied",
    ]
