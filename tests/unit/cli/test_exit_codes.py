"""The console script's exit codes and verbosity, as CI jobs and people type them."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regtopo.cli.main import app, main


def exit_code(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int | str | None:
    monkeypatch.setattr(sys, "argv", ["regtopo", *argv])
    with pytest.raises(SystemExit) as exit:
        main()
    return exit.value.code


@pytest.fixture
def topology(tmp_path: Path) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text("version: 1\nregistries: {a: {path: ./a}}\nreplications: []\n")
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "--detailed-exitcode", "--bogus"],
        ["drift", "unexpected-extra"],
        ["plan", "--format", "yaml"],
        ["no-such-command"],
    ],
)
def test_a_usage_error_exits_1_never_the_2_that_means_changes(
    monkeypatch: pytest.MonkeyPatch, topology: Path, argv: list[str]
) -> None:
    assert exit_code(monkeypatch, *argv, str(topology)) == 1


def test_a_command_keeps_its_own_exit_codes(
    monkeypatch: pytest.MonkeyPatch, topology: Path
) -> None:
    assert exit_code(monkeypatch, "plan", "--detailed-exitcode", str(topology)) == 0
    assert exit_code(monkeypatch, "validate", str(topology.parent / "missing.yaml")) == 1


@pytest.mark.parametrize(
    "argv", [["-vv", "validate"], ["validate", "-vv"], ["-v", "validate", "-v"]]
)
def test_verbose_counts_before_and_after_the_subcommand(topology: Path, argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, str(topology)])

    assert result.exit_code == 0, result.output
    assert logging.getLogger("regtopo").level == logging.DEBUG


def test_plan_with_v_says_what_it_planned(topology: Path) -> None:
    result = CliRunner().invoke(app, ["plan", "-v", str(topology)])

    assert result.exit_code == 0, result.output
    assert "planned 0 action(s) over 0 replication(s) with 0 registry request(s)" in result.stderr
    assert "planned" not in result.stdout
