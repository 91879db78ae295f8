"""Applying between OCI layout directories: the quickstart's shape, with no server at all."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

from tests.support.cli import run, write_topology

SEED = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "seed.py"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attempt", range(5))
def test_parallel_copies_sharing_blobs_between_layouts_finish(tmp_path: Path, attempt: int) -> None:
    """Regression: a blob future that finished before its callback was registered ran the
    callback under the engine's lock and deadlocked the apply (seen in `make demo`)."""
    runpy.run_path(str(SEED), run_name="seed").get("main")(tmp_path / "upstream")
    topology = write_topology(
        tmp_path / "topology.yaml",
        {
            "upstream": {"path": str(tmp_path / "upstream")},
            "mirror": {"path": str(tmp_path / "mirror")},
        },
        [
            {
                "source": "upstream/demo/app",
                "targets": ["mirror/a", "mirror/b", "mirror/c"],
                "tags": ["1.0", "1.1", "latest"],
            }
        ],
    )

    applied = run("apply", "--auto-approve", "--parallelism", "8", str(topology))

    assert applied.exit_code == 0, applied.stderr
    assert "9 done, 0 failed" in applied.stdout
    # Tags sharing layers price them each, but the plan's total counts each blob once per
    # target repository: what the plan announces is what apply sends.
    planned = re.search(r"; ([0-9.]+ k?B) to send\.", applied.stdout)
    sent = re.search(r"not attempted; ([0-9.]+ k?B) sent in", applied.stdout)
    assert planned is not None and sent is not None, applied.stdout
    planned, sent = planned.group(1), sent.group(1)
    assert planned == sent == "4.6 kB"
    again = run("plan", "--detailed-exitcode", str(topology))
    assert again.exit_code == 0
    assert "No changes. 9 in sync." in again.stdout


def test_each_copy_reports_what_it_sent_and_what_went_once_with_another_copy(
    tmp_path: Path,
) -> None:
    """Tags sharing layers each price them; apply sends a shared blob once, with whichever
    copy comes first. The others say so: sent plus shared is each tag's planned figure."""
    from regtopo.apply.executor import Executor
    from regtopo.plan.planner import Planner
    from regtopo.plan.session import Session
    from regtopo.registry.layout import LayoutRepository
    from regtopo.render.text import render_result
    from regtopo.topology.loader import load
    from tests.unit.layouts import image

    upstream = LayoutRepository("upstream", tmp_path / "upstream", "app")
    # Two images with layers of their own and the same config blob.
    image(upstream, b"one" * 100, tag="1.0")
    image(upstream, b"two" * 100, tag="1.1")
    path = write_topology(
        tmp_path / "topology.yaml",
        {
            "upstream": {"path": str(tmp_path / "upstream")},
            "mirror": {"path": str(tmp_path / "mirror")},
        },
        [{"source": "upstream/app", "targets": ["mirror/a"], "tags": ["1.0", "1.1"]}],
    )
    loaded = load(path)
    session = Session(loaded.topology, base_dir=tmp_path)
    try:
        plan = Planner(loaded, session).plan()
        report = Executor(session, parallelism=1).apply(plan)
    finally:
        session.close()

    results = {r.action.target.tag: r for r in report.results}
    assert set(results) == {"1.0", "1.1"}
    shared = [r for r in results.values() if r.stats.bytes_shared]
    assert len(shared) == 1, "the config blob went once"
    for result in results.values():
        stats = result.stats
        assert stats.bytes_sent + stats.bytes_shared == result.action.bytes_to_send
    assert "sent once with another copy" in render_result(shared[0])
    assert report.bytes_sent() == plan.bytes_to_send()
