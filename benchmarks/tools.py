"""The two tools under test, each given the same repositories and tags to copy.

regtopo gets a generated topology (one replication per repository, the exact tags); skopeo
gets the equivalent ``sync --src yaml`` file: one process for the whole corpus, like regtopo,
with the same explicit tags (so neither lists tags), and ``--all --preserve-digests`` so it
copies every platform byte for byte, as regtopo does.

Both run sandboxed: their own HOME and config, so no credentials, mirrors or caches of the
machine take part.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.measure import Launcher, RequestCounter, Sample, process_cpu_s
from benchmarks.report import REGTOPO, SKOPEO


def regtopo_binary() -> str:
    beside = Path(sys.executable).with_name("regtopo")
    found = str(beside) if beside.exists() else shutil.which("regtopo")
    if found is None:
        raise FileNotFoundError("regtopo is not installed: run `make dev`")
    return found


def skopeo_binary() -> str:
    found = shutil.which("skopeo")
    if found is None:
        raise FileNotFoundError("skopeo is not installed: run `make system-deps`")
    return found


def write_topology(
    path: Path, source_url: str, target_url: str, repositories: Mapping[str, list[str]]
) -> None:
    """A topology copying every listed tag from ``source`` to the same name at ``target``.

    JSON is YAML, and needs no emitter.
    """
    topology = {
        "version": 1,
        "registries": {"source": {"host": source_url}, "target": {"host": target_url}},
        "replications": [
            {
                "name": repository.replace("/", "-"),
                "source": f"source/{repository}",
                "targets": [f"target/{repository}"],
                "tags": tags,
            }
            for repository, tags in repositories.items()
        ],
    }
    path.write_text(json.dumps(topology, indent=1))


def write_skopeo_sync(path: Path, source_host: str, repositories: Mapping[str, list[str]]) -> None:
    document = {source_host: {"tls-verify": False, "images": dict(repositories)}}
    path.write_text(json.dumps(document, indent=1))


class Tools:
    """Builds command lines and sandboxes, and measures runs."""

    def __init__(self, work: Path, launcher: Launcher) -> None:
        self.work = work
        self.launcher = launcher
        self.home = work / "home"
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        (self.home / "registries.d").mkdir(exist_ok=True)
        (self.home / "auth.json").write_text("{}")
        (self.home / "registries.conf").write_text("")
        (self.home / "policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]})
        )
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.home),
            "XDG_CONFIG_HOME": str(self.home),
            "REGISTRY_AUTH_FILE": str(self.home / "auth.json"),
            "CONTAINERS_REGISTRIES_CONF": str(self.home / "registries.conf"),
            "TMPDIR": str(self.home / "tmp"),
        }
        self.regtopo = regtopo_binary()
        self.skopeo = skopeo_binary()
        self.profile_dir: Path | None = None
        self._runs = 0
        self._profiles = 0

    def profile_regtopo(self, directory: Path) -> None:
        """Run regtopo under ``py-spy record --gil``: collapsed stacks of whichever thread holds the GIL.

        The numbers of a profiled run include py-spy's own cost: profile, then measure apart.
        """
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(py_spy).exists():
            raise FileNotFoundError("py-spy is not installed: .venv/bin/pip install py-spy")
        directory.mkdir(parents=True, exist_ok=True)
        self.profile_dir = directory
        self._py_spy = py_spy

    def _profiled(self, argv: list[str], label: str) -> list[str]:
        if self.profile_dir is None:
            return argv
        self._profiles += 1
        output = self.profile_dir / f"{self._profiles:02d}-{label}.txt"
        return [
            self._py_spy,
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(output),
            "--",
            *argv,
        ]

    def regtopo_argv(self, topology: Path, command: str = "apply", label: str = "") -> list[str]:
        if command == "apply":
            argv = [self.regtopo, "apply", "--auto-approve", str(topology)]
        else:
            argv = [self.regtopo, command, str(topology)]
        return self._profiled(argv, label or command)

    def skopeo_argv(self, sync_file: Path, target_host: str) -> list[str]:
        return [
            self.skopeo,
            "--policy",
            str(self.home / "policy.json"),
            "--registries.d",
            str(self.home / "registries.d"),
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            str(sync_file),
            target_host,
        ]

    def measure(
        self, tool: str, argv: list[str], counter: RequestCounter, registry_pids: Sequence[int] = ()
    ) -> Sample:
        assert tool in (REGTOPO, SKOPEO)
        self._runs += 1
        log_path = self.work / "logs" / f"{self._runs:03d}-{tool}.log"
        log_path.parent.mkdir(exist_ok=True)
        counter.mark()
        cpu_before: float = sum(process_cpu_s(pid) for pid in registry_pids)
        usage = self.launcher.run(argv, env=self.env, log_path=log_path)
        registries_cpu: float | None = sum(process_cpu_s(pid) for pid in registry_pids) - cpu_before
        if not registry_pids:
            registries_cpu = None
        requests = {role: dict(c) for role, c in counter.since_mark().items()}
        if usage.returncode != 0:
            tail = log_path.read_text(errors="replace")[-2000:]
            print(f"  ! {tool} exited {usage.returncode}; log {log_path}:\n{tail}", file=sys.stderr)
        return Sample(tool, usage, requests, registries_cpu)
