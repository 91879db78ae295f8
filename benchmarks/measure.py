"""Measuring one tool run: wall time, CPU time and peak memory of the child, and HTTP requests.

CPU and memory come from ``os.wait4``: the kernel's rusage of exactly that child (and the
children it waited for), so nothing else running on the machine is counted; the child is
started by a small launcher process so that its peak RSS is its own (see
:mod:`benchmarks.launcher`). HTTP requests
come from the registries' own access logs, so they count what reached the registry, not what
the tool believes it sent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ChildUsage:
    wall_s: float
    cpu_s: float  # user + system
    max_rss_bytes: int
    returncode: int


class Launcher:
    """Runs commands through :mod:`benchmarks.launcher`, started before the benchmark grows.

    Start it first thing: a tool's peak RSS can never read lower than the launcher's own
    (:attr:`floor_kib`, measured on ``true`` and reported).
    """

    def __init__(self) -> None:
        script = Path(__file__).with_name("launcher.py")
        # -I -S: no site, no user paths: the smallest Python there is.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        true = shutil.which("true") or "/bin/true"
        self.floor_kib = self.run([true], env={}, log_path=Path(os.devnull)).max_rss_bytes // 1024

    def run(self, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path) -> ChildUsage:
        """Run ``argv`` to completion with stdout and stderr in ``log_path``; measure it."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        executable = shutil.which(argv[0]) or argv[0]
        request = {"argv": [executable, *argv[1:]], "env": dict(env), "log": str(log_path)}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the launcher died running {argv[0]}")
        answer = json.loads(line)
        return ChildUsage(
            wall_s=answer["wall_s"],
            cpu_s=answer["cpu_s"],
            max_rss_bytes=answer["max_rss_kib"] * 1024,  # Linux reports KiB
            returncode=answer["returncode"],
        )

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AccessLogged(Protocol):
    """What we need of tests.support.registries.Registry: its parsed access-log lines."""

    def request_lines(self) -> list[str]: ...


def _method(line: str) -> str:
    # Combined log format: ... "METHOD /path HTTP/1.1" ...
    _, _, rest = line.partition('"')
    return rest.split(" ", 1)[0]


class RequestCounter:
    """Counts requests per registry role (``source``, ``target``) between two snapshots."""

    def __init__(self, registries: Mapping[str, AccessLogged]) -> None:
        self.registries = dict(registries)
        self._marks: dict[str, int] = {}

    def mark(self) -> None:
        self._marks = {role: len(r.request_lines()) for role, r in self.registries.items()}

    def since_mark(self) -> dict[str, Counter[str]]:
        counts: dict[str, Counter[str]] = {}
        for role, registry in self.registries.items():
            lines = registry.request_lines()[self._marks.get(role, 0) :]
            counts[role] = Counter(_method(line) for line in lines)
        return counts


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as handle:
        # Fields after the command name (which may hold spaces, so split after its ')').
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """One measured run of one tool in one scenario."""

    tool: str
    usage: ChildUsage
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> method -> n
    # CPU the registries spent serving this run: on a small machine they compete with the tool.
    registries_cpu_s: float | None = None  # None: the run talked to no registry

    @property
    def total_requests(self) -> int:
        return sum(sum(by_method.values()) for by_method in self.requests.values())

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "wall_s": round(self.usage.wall_s, 3),
            "cpu_s": round(self.usage.cpu_s, 3),
            "max_rss_mb": round(self.usage.max_rss_bytes / 1e6, 1),
            "returncode": self.usage.returncode,
            "requests": self.requests,
            "total_requests": self.total_requests,
            "registries_cpu_s": (
                None if self.registries_cpu_s is None else round(self.registries_cpu_s, 3)
            ),
        }
