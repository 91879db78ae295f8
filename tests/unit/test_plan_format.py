"""The plan file format: versioned, schema committed, round-trips, shards partition it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from regtopo.errors import RegtopoError
from regtopo.plan.actions import (
    Action,
    ActionKind,
    Content,
    Plan,
    PlanFileError,
    Shard,
    TagRef,
    TopologySource,
    chain_keys,
    looks_like_plan,
    plan_json_schema,
    read_plan,
    shard_number,
)
from regtopo.plan.drift import DriftReport, UnmanagedTag
from regtopo.render.markdown import render_drift_markdown, render_plan_markdown
from regtopo.render.text import emit, plan_text

ROOT = Path(__file__).resolve().parents[2]
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def action(
    kind: ActionKind,
    source: str,
    target: str,
    *,
    hop: int = 0,
    before: str | None = None,
    replication: str = "mirror",
    reason: str = "",
) -> Action:
    def ref(text: str) -> TagRef:
        registry, _, rest = text.partition("/")
        repository, _, tag = rest.rpartition(":")
        return TagRef(registry=registry, repository=repository, tag=tag)

    content = Content(digest=DIGEST_A, media_type="application/json", size=10, kind="image")
    return Action(
        kind=kind,
        replication=replication,
        rule=f"tags: {ref(target).tag}",
        source=ref(source),
        target=ref(target),
        content=None if kind is ActionKind.SKIPPED else content,
        target_digest_before=before,
        bytes_to_send=2_500_000 if kind is ActionKind.COPY else 0,
        bytes_present=1000 if kind is ActionKind.COPY else 0,
        hop=hop,
        reason=reason,
    )


def sample_plan() -> Plan:
    return Plan(
        topology="topology.yaml",
        topology_source=TopologySource(path="topology.yaml", sha256="c" * 64),
        actions=[
            action(ActionKind.COPY, "a/app:v1", "b/app:v1", before=DIGEST_B),
            action(ActionKind.IN_SYNC, "a/app:v2", "b/app:v2", before=DIGEST_A),
            action(ActionKind.SKIPPED, "a/app:v3", "b/app:v3", reason="the source tag | is gone"),
        ],
    )


def test_the_committed_json_schema_is_the_one_the_models_generate() -> None:
    committed = json.loads((ROOT / "docs" / "plan-schema.json").read_text())

    assert committed == plan_json_schema(), "regenerate docs/plan-schema.json (docs/plan-format.md)"


def test_a_plan_round_trips_through_its_file_with_the_after_digest_written(tmp_path: Path) -> None:
    plan = sample_plan()
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())

    written = json.loads(path.read_text())
    assert [a["target_digest_after"] for a in written["actions"]] == [DIGEST_A, DIGEST_A, None]
    assert read_plan(path) == plan


def test_a_plan_of_another_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"format_version": 99, "actions": []}))

    with pytest.raises(PlanFileError) as raised:
        read_plan(path)

    assert "format version 99 is not supported (this regtopo reads version 1)" in str(raised.value)


def test_a_plan_file_is_told_from_a_topology_by_content_not_suffix(tmp_path: Path) -> None:
    plan = tmp_path / "saved.yaml"
    plan.write_text(sample_plan().to_json())
    json_topology = tmp_path / "topology.json"
    json_topology.write_text(json.dumps({"registries": {"a": {"path": "x"}}}))
    yaml_topology = tmp_path / "topology.yaml"
    yaml_topology.write_text("registries:\n  a: {path: x}\n")

    assert [looks_like_plan(p) for p in (plan, json_topology, yaml_topology)] == [
        True,
        False,
        False,
    ]


def test_shard_numbers_are_stable_across_runs_and_machines() -> None:
    # Pinned values (sha256 of "registry/repository", first 8 bytes, modulo N, plus 1): a
    # change of hash would move work between CI jobs, so it must show up here first.
    assert [shard_number(f"b/team{i}/app", 4) for i in range(6)] == [3, 3, 1, 3, 2, 1]
    assert shard_number("b/app", 1) == 1


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_partition_a_plan_and_keep_each_chain_of_hops_together(count: int) -> None:
    actions = [
        action(ActionKind.COPY, f"a/r{i}:v1", f"b/r{i}:v1", replication=f"seed{i}")
        for i in range(10)
    ] + [
        action(ActionKind.COPY, f"b/r{i}:v1", f"c/mirror{i}:v1", hop=1, replication=f"m{i}")
        for i in range(10)
    ]
    plan = Plan(topology="t.yaml", actions=actions)

    shards = [plan.shard_of(Shard(index=i, count=count)) for i in range(1, count + 1)]

    seen = [str(a.target) for shard in shards for a in shard.actions]
    assert sorted(seen) == sorted(str(a.target) for a in actions)
    assert len(seen) == len(set(seen))
    for shard in shards:
        targets = {str(a.target) for a in shard.actions}
        for i in range(10):
            assert (f"b/r{i}:v1" in targets) == (f"c/mirror{i}:v1" in targets)
    assert chain_keys(actions)[10:] == [f"b/r{i}" for i in range(10)]


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0"])
def test_a_malformed_shard_is_refused(text: str) -> None:
    with pytest.raises(RegtopoError) as raised:
        Shard.parse(text)

    assert raised.value.message.startswith(f"parsing --shard {text!r}: expected I/N")


def test_markdown_has_a_summary_table_changes_and_in_sync_folded_away() -> None:
    markdown = render_plan_markdown(sample_plan())

    assert markdown.startswith("### regtopo plan: 1 to copy, 0 to retag, 2.5 MB to send\n")
    assert "| 1 | 0 | 0 | 0 | 0 | 1 | 1 | 2.5 MB |" in markdown
    assert (
        f"| copy | `b/app:v1` | `a/app:v1` | `{DIGEST_B[:19]}` → `{DIGEST_A[:19]}` "
        "| 2.5 MB | 1.0 kB | mirror (tags: v1) |"
    ) in markdown
    assert "| `b/app:v3` | `a/app:v3` | the source tag \\| is gone | mirror |" in markdown
    details = markdown.split("<details><summary>1 in sync</summary>")[1]
    assert f"| `b/app:v2` | `{DIGEST_A[:19]}` | mirror |" in details
    assert details.rstrip().endswith("</details>")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_is_coloured_on_a_terminal_and_plain_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    terminal, pipe = Terminal(), io.StringIO()

    emit(plan_text(sample_plan()), terminal)
    emit(plan_text(sample_plan()), pipe)

    assert "\x1b[32m+ copy" in terminal.getvalue()
    assert "\x1b[2m= in-sync" in terminal.getvalue()
    assert "\x1b[" not in pipe.getvalue()
    assert "  + copy     b/app:v1  <- a/app:v1\n" in pipe.getvalue()


def test_drift_markdown_lists_drifted_and_unmanaged_tags_in_their_own_sections() -> None:
    report = DriftReport(
        plan=sample_plan(),
        unmanaged=[UnmanagedTag(registry="b", repository="app", tag="hotfix")],
    )

    markdown = render_drift_markdown(report)

    assert markdown.startswith("### regtopo drift: 1 target tag drifted, 1 unmanaged\n\n")
    headings = [line for line in markdown.splitlines() if line.startswith("#### ")]
    assert headings == ["#### Drifted", "#### Skipped", "#### Unmanaged"]
    assert "| `b/app` | `hotfix` |\n\n<details><summary>1 in sync</summary>" in markdown


def test_markdown_shows_warnings_and_blocked_tags_a_reviewer_must_see() -> None:
    plan = sample_plan()
    copy = plan.actions[0].model_copy(update={"warnings": ["the target gets a new index"]})
    blocked = action(ActionKind.BLOCKED, "a/app:v4", "b/app:v4", reason="unsigned").model_copy(
        update={"policy": "release"}
    )
    plan = plan.model_copy(update={"actions": [copy, *plan.actions[1:], blocked]})

    markdown = render_plan_markdown(plan)

    assert "<br>**warning:** the target gets a new index |" in markdown
    assert markdown.startswith("### regtopo plan: 1 to copy, 0 to retag, 2.5 MB to send, 1 blocked")
    assert "| `b/app:v4` | `a/app:v4` | release | unsigned |" in markdown


def test_a_long_markdown_plan_fits_a_pull_request_comment_and_says_what_it_left_out() -> None:
    """GitHub refuses a comment over 65,536 characters: in-sync rows go first, then the longest
    table is halved; the headline and totals stay whole, and each table counts what it left."""
    actions = [
        action(ActionKind.COPY, f"a/app{i}:v1", f"b/app{i}:v1", before=DIGEST_B) for i in range(600)
    ] + [
        action(ActionKind.IN_SYNC, f"a/app{i}:v2", f"b/app{i}:v2", before=DIGEST_A)
        for i in range(900)
    ]
    plan = Plan(topology="topology.yaml", actions=actions)

    whole = render_plan_markdown(plan, max_chars=10**9)
    fitted = render_plan_markdown(plan)

    assert len(whole) > 65_536
    assert len(fitted) <= 60_000
    assert fitted.startswith("### regtopo plan: 600 to copy, 0 to retag")
    assert "| 600 | 0 | 0 | 0 | 0 | 900 | 0 |" in fitted
    assert "900 in sync (not listed, to fit a comment)." in fitted
    shown = fitted.count("| copy | `b/app")
    assert 0 < shown < 600
    assert f"…and {600 - shown} more changes, left out to fit a comment" in fitted
    assert render_plan_markdown(sample_plan()) == render_plan_markdown(sample_plan(), 10**9)
