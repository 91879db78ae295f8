"""The benchmark's measuring and reporting code: what it measures is the child, and it says so.

The benchmarks themselves never run in ``make test``; these keep their arithmetic honest.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from benchmarks.measure import ChildUsage, Launcher, RequestCounter, Sample
from benchmarks.report import REGTOPO, SKOPEO, Check, ScenarioResult, render_text

MB = 1_000_000


def test_peak_rss_is_the_childs_own_not_the_benchmarks(tmp_path: Path) -> None:
    """ru_maxrss survives fork+exec on Linux; the launcher keeps our memory out of it."""
    with Launcher() as launcher:
        ballast = b"x" * (150 * MB)  # touched pages: this process now holds 150 MB more
        small = launcher.run(["true"], env={}, log_path=tmp_path / "true.log")
        big = launcher.run(
            [sys.executable, "-c", "b = b'y' * 80_000_000"], env={}, log_path=tmp_path / "big.log"
        )
        del ballast

    assert small.returncode == 0
    assert small.max_rss_bytes < 40 * MB
    assert big.returncode == 0
    assert 80 * MB <= big.max_rss_bytes < 140 * MB


def test_exit_status_and_output_of_the_child_are_kept(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    with Launcher() as launcher:
        usage = launcher.run(
            [
                sys.executable,
                "-c",
                "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
            ],
            env={},
            log_path=log,
        )

    assert usage.returncode == 3
    assert sorted(log.read_text().split()) == ["err", "out"]


class _Log:
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def request_lines(self) -> list[str]:
        return list(self.lines)


def _line(method: str, path: str) -> str:
    return f'127.0.0.1 - - [03/Dec/2026:18:32:18 +0000] "{method} {path} HTTP/1.1" 200 2 "" "x"'


def test_requests_are_counted_per_role_and_method_since_the_mark() -> None:
    source, target = _Log([_line("GET", "/v2/")]), _Log([])
    counter = RequestCounter({"source": source, "target": target})
    counter.mark()
    source.lines += [_line("HEAD", "/v2/a/manifests/v1"), _line("HEAD", "/v2/a/manifests/v2")]
    target.lines += [_line("PUT", "/v2/a/manifests/v1")]

    assert counter.since_mark() == {
        "source": Counter({"HEAD": 2}),
        "target": Counter({"PUT": 1}),
    }


def _sample(tool: str, wall: float, rss_mb: float, requests: int) -> Sample:
    return Sample(
        tool,
        ChildUsage(wall_s=wall, cpu_s=wall / 2, max_rss_bytes=int(rss_mb * MB), returncode=0),
        {"source": {"HEAD": requests}},
    )


def test_medians_ratios_and_targets_reach_the_table_and_the_json() -> None:
    result = ScenarioResult("unchanged", "2. nothing changed", tags=10)
    result.samples += [
        _sample(REGTOPO, 1.0, 50, 20),
        _sample(REGTOPO, 3.0, 60, 20),
        _sample(REGTOPO, 2.0, 55, 21),
        _sample(SKOPEO, 8.0, 20, 100),
    ]
    result.checks.append(Check("wall ratio", 2.0 / 8.0, 0.1))
    result.checks.append(Check("regtopo HTTP req/tag", 2.0, 2.5))

    assert result.wall(REGTOPO) == 2.0
    assert result.rss_mb(REGTOPO) == 55.0
    assert result.requests_per_tag(REGTOPO) == 2.0
    assert result.requests_per_tag(SKOPEO) == 10.0
    document = json.loads(json.dumps(result.to_json()))
    assert document["ratio_wall"] == 0.25
    assert [(c["name"], c["met"]) for c in document["checks"]] == [
        ("wall ratio", False),
        ("regtopo HTTP req/tag", True),
    ]

    text = render_text([result])
    rows = {line.split("│")[2].strip(): line for line in text.splitlines() if line.count("│") > 5}
    assert [cell.strip() for cell in rows["wall s"].split("│")[3:6]] == ["2.00", "8.00", "0.25x"]
    assert "NOT met" in rows["target: wall ratio"]
    assert "NOT met" not in rows["target: regtopo HTTP req/tag"]
