"""Scenario results: medians per tool, ratios, the issue's targets, a table and JSON."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from benchmarks.measure import Sample

REGTOPO = "regtopo"
SKOPEO = "skopeo"


@dataclass(frozen=True)
class Check:
    """One target of issue 8: ``value`` must be at most ``limit``."""

    name: str
    value: float
    limit: float

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "limit": self.limit,
            "met": self.met,
        }


@dataclass
class ScenarioResult:
    key: str
    title: str
    tags: int  # tags the run covers: the denominator of requests per tag
    samples: list[Sample] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def of(self, tool: str) -> list[Sample]:
        return [s for s in self.samples if s.tool == tool]

    def median(self, tool: str, metric: Callable[[Sample], float]) -> float | None:
        values = [metric(s) for s in self.of(tool)]
        return statistics.median(values) if values else None

    def wall(self, tool: str) -> float | None:
        return self.median(tool, lambda s: s.usage.wall_s)

    def cpu(self, tool: str) -> float | None:
        return self.median(tool, lambda s: s.usage.cpu_s)

    def registries_cpu(self, tool: str) -> float | None:
        values = [s.registries_cpu_s for s in self.of(tool) if s.registries_cpu_s is not None]
        return statistics.median(values) if values else None

    def rss_mb(self, tool: str) -> float | None:
        return self.median(tool, lambda s: s.usage.max_rss_bytes / 1e6)

    def requests_per_tag(self, tool: str) -> float | None:
        if not self.tags:
            return None
        return self.median(tool, lambda s: s.total_requests / self.tags)

    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.usage.returncode != 0]

    def to_json(self) -> dict[str, object]:
        summary = {
            tool: {
                "wall_s": self.wall(tool),
                "cpu_s": self.cpu(tool),
                "registries_cpu_s": self.registries_cpu(tool),
                "max_rss_mb": self.rss_mb(tool),
                "requests_per_tag": self.requests_per_tag(tool),
            }
            for tool in (REGTOPO, SKOPEO)
            if self.of(tool)
        }
        return {
            "key": self.key,
            "title": self.title,
            "tags": self.tags,
            "median": summary,
            "ratio_wall": ratio(self.wall(REGTOPO), self.wall(SKOPEO)),
            "checks": [c.to_json() for c in self.checks],
            "notes": self.notes,
            "samples": [s.to_json() for s in self.samples],
        }


def ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio_text(ours: float | None, theirs: float | None) -> str:
    value = ratio(ours, theirs)
    return "-" if value is None else f"{value:.2f}x"


def build_table(results: list[ScenarioResult]) -> Table:
    table = Table(title="regtopo beside skopeo sync (medians; ratio = regtopo / skopeo)")
    table.add_column("scenario")
    table.add_column("metric")
    table.add_column("regtopo", justify="right")
    table.add_column("skopeo", justify="right")
    table.add_column("ratio", justify="right")
    metrics: list[tuple[str, Callable[[ScenarioResult, str], float | None], int]] = [
        ("wall s", ScenarioResult.wall, 2),
        ("CPU s", ScenarioResult.cpu, 2),
        ("registries' CPU s", ScenarioResult.registries_cpu, 2),
        ("peak RSS MB", ScenarioResult.rss_mb, 0),
        ("HTTP req/tag", ScenarioResult.requests_per_tag, 2),
    ]
    for result in results:
        first = True
        for name, metric, digits in metrics:
            ours, theirs = metric(result, REGTOPO), metric(result, SKOPEO)
            if ours is None and theirs is None:
                continue
            table.add_row(
                f"{result.title} ({result.tags} tags)" if first else "",
                name,
                _fmt(ours, digits),
                _fmt(theirs, digits),
                _ratio_text(ours, theirs),
            )
            first = False
        for check in result.checks:
            verdict = "[green]met[/green]" if check.met else "[red]NOT met[/red]"
            table.add_row(
                "", f"target: {check.name}", _fmt(check.value, 3), f"<= {check.limit}", verdict
            )
        table.add_section()
    return table


def render_text(results: list[ScenarioResult], width: int = 120) -> str:
    console = Console(width=width, record=True, file=_Null(), color_system=None)
    console.print(build_table(results))
    return console.export_text()


class _Null:
    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        pass
