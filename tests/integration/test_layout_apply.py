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
