"""``python -m benchmarks.run [--quick]``: every scenario of issue 8, regtopo beside skopeo sync.

Each tool copies to its own fresh target registry; runs alternate which tool goes first, so a
warm page cache or a busy neighbour favours neither. Results go to stdout as a table and to a
JSON file (``--output``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from tests.support.registries import Registry

from benchmarks.corpus import (
    Corpus,
    CorpusSpec,
    GiB,
    KiB,
    MiB,
    Pusher,
    TaggedContent,
    changed_content,
    many_tags,
    single_layer_content,
)
from benchmarks.measure import Launcher, RequestCounter
from benchmarks.report import REGTOPO, SKOPEO, Check, ScenarioResult, render_text
from benchmarks.tools import Tools, write_skopeo_sync, write_topology

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    corpus: CorpusSpec
    cold_repeats: int
    sync_repeats: int
    changed_repeats: int
    big_layer: int
    small_layer: int
    many_repositories: int
    many_tags_per_repository: int
    many_repeats: int = 2
    memory_repeats: int = 1


QUICK = Settings(
    corpus=CorpusSpec(
        repositories=3,
        tags_per_repository=4,
        shared_sizes=(1 * MiB, 128 * KiB),
        unique_sizes=(4 * KiB, 64 * KiB, 512 * KiB),
        large={(0, 0): 24 * MiB},
    ),
    cold_repeats=2,
    sync_repeats=3,
    changed_repeats=2,
    big_layer=256 * MiB,
    small_layer=32 * MiB,
    many_repositories=4,
    many_tags_per_repository=50,
)

FULL = Settings(
    corpus=CorpusSpec(
        repositories=12,
        tags_per_repository=8,
        shared_sizes=(16 * MiB, 2 * MiB),
        unique_sizes=(8 * KiB, 64 * KiB, 512 * KiB, 2 * MiB, 8 * MiB),
        large={(0, 0): 200 * MiB, (3, 1): 200 * MiB, (7, 4): 100 * MiB},
    ),
    cold_repeats=3,
    sync_repeats=3,
    changed_repeats=2,
    big_layer=1 * GiB,
    small_layer=100 * MiB,
    many_repositories=20,
    many_tags_per_repository=100,
    memory_repeats=2,
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _by_repository(contents: Sequence[TaggedContent]) -> dict[str, list[str]]:
    repositories: dict[str, list[str]] = {}
    for content in contents:
        repositories.setdefault(content.repository, []).append(content.tag)
    return repositories


def verify(target: Registry, contents: Sequence[TaggedContent]) -> list[str]:
    """Tags at ``target`` missing or at another digest than the source content."""
    wrong = []
    with httpx.Client(timeout=30) as client:
        for content in contents:
            response = client.head(
                f"{target.url}/v2/{content.repository}/manifests/{content.tag}",
                headers={"Accept": content.top.media_type},
            )
            if response.headers.get("Docker-Content-Digest") != content.digest:
                wrong.append(f"{content.repository}:{content.tag}")
    return wrong


class Bench:
    def __init__(self, settings: Settings, work: Path, launcher: Launcher) -> None:
        self.settings = settings
        self.work = work
        self.tools = Tools(work, launcher)
        self.spool = work / "spool"
        self._registries: list[Registry] = []
        self._count = 0

    # registries

    def registry(self, name: str) -> Registry:
        self._count += 1
        registry = Registry("none", workdir=self.work / "registries" / f"{self._count:02d}-{name}")
        self._registries.append(registry)
        return registry

    def drop(self, registry: Registry) -> None:
        registry.stop()
        shutil.rmtree(registry.workdir, ignore_errors=True)
        self._registries.remove(registry)

    def close(self) -> None:
        for registry in list(self._registries):
            self.drop(registry)

    # one measured run

    def run_tool(
        self,
        result: ScenarioResult,
        tool: str,
        source: Registry,
        target: Registry,
        contents: Sequence[TaggedContent],
        command: str = "apply",
        check: bool = True,
    ) -> None:
        repositories = _by_repository(contents)
        run_dir = self.work / "runs" / f"{result.key}-{tool}-{len(result.samples)}"
        run_dir.mkdir(parents=True, exist_ok=True)
        if tool == REGTOPO:
            config = run_dir / "topology.yaml"
            write_topology(config, source.url, target.url, repositories)
            argv = self.tools.regtopo_argv(config, command, label=result.key)
        else:
            config = run_dir / "sync.yaml"
            write_skopeo_sync(config, source.host, repositories)
            argv = self.tools.skopeo_argv(config, target.host)
        counter = RequestCounter({"source": source, "target": target})
        pids = [pid for r in (source, target) if (pid := _pid(r)) is not None]
        sample = self.tools.measure(tool, argv, counter, pids)
        result.samples.append(sample)
        log(
            f"  {result.key} {tool}: {sample.usage.wall_s:.2f} s wall, {sample.usage.cpu_s:.2f} s CPU, "
            f"{sample.usage.max_rss_bytes / 1e6:.0f} MB RSS, {sample.total_requests} requests"
        )
        if check and (wrong := verify(target, contents)):
            result.notes.append(f"{tool}: {len(wrong)} tag(s) wrong at the target, e.g. {wrong[0]}")
            log(f"  ! {tool} left {len(wrong)} tag(s) wrong at the target, e.g. {wrong[0]}")

    @staticmethod
    def order(repeat: int) -> tuple[str, str]:
        return (REGTOPO, SKOPEO) if repeat % 2 == 0 else (SKOPEO, REGTOPO)

    # scenarios

    def scenarios(self, only: set[str] | None) -> list[ScenarioResult]:
        s = self.settings
        results: list[ScenarioResult] = []
        wanted: Callable[[str], bool] = lambda key: only is None or key in only  # noqa: E731

        if wanted("startup"):
            results.append(self.startup())
        if wanted("cold") or wanted("unchanged") or wanted("one-changed"):
            log(f"building the corpus: {s.corpus.tag_count} tags")
            corpus = Corpus(s.corpus, self.spool)
            source = self.registry("source")
            started = time.perf_counter()
            with Pusher(source.url) as pusher:
                pusher.push(corpus.tags)
            log(
                f"pushed {corpus.size / 1e6:.0f} MB in {len(corpus.tags)} tags "
                f"in {time.perf_counter() - started:.1f} s"
            )
            shutil.rmtree(self.spool, ignore_errors=True)
            targets = self.cold(corpus, source, results)
            if wanted("unchanged"):
                results.append(self.unchanged(corpus, source, targets))
            if wanted("one-changed"):
                results.append(self.one_changed(corpus, source, targets))
            self.drop(source)
            for target in targets.values():
                self.drop(target)
        if wanted("memory"):
            results.extend(self.memory())
        if wanted("many-tags"):
            results.append(self.many_tags())
        return results

    def startup(self) -> ScenarioResult:
        """The fixed cost of one run: starting the program and printing its help."""
        result = ScenarioResult("startup", "0. start-up, --help", 0)
        counter = RequestCounter({})
        for repeat in range(3):
            for tool in self.order(repeat):
                binary = self.tools.regtopo if tool == REGTOPO else self.tools.skopeo
                result.samples.append(self.tools.measure(tool, [binary, "--help"], counter))
        return result

    def cold(
        self, corpus: Corpus, source: Registry, results: list[ScenarioResult]
    ) -> dict[str, Registry]:
        s = self.settings
        result = ScenarioResult("cold", "1. cold copy", len(corpus.tags))
        result.notes.append(f"corpus: {corpus.size / 1e6:.0f} MB of distinct blobs")
        targets: dict[str, Registry] = {}
        for repeat in range(s.cold_repeats):
            for tool in self.order(repeat):
                if tool in targets:
                    self.drop(targets[tool])
                targets[tool] = self.registry(f"target-{tool}")
                self.run_tool(result, tool, source, targets[tool], corpus.tags)
        result.checks.append(
            Check("wall ratio", _ratio(result.wall(REGTOPO), result.wall(SKOPEO)), 0.5)
        )
        results.append(result)
        return targets

    def unchanged(
        self, corpus: Corpus, source: Registry, targets: dict[str, Registry]
    ) -> ScenarioResult:
        result = ScenarioResult("unchanged", "2. nothing changed", len(corpus.tags))
        for repeat in range(self.settings.sync_repeats):
            for tool in self.order(repeat):
                self.run_tool(result, tool, source, targets[tool], corpus.tags)
        result.checks.append(
            Check("wall ratio", _ratio(result.wall(REGTOPO), result.wall(SKOPEO)), 0.1)
        )
        result.checks.append(
            Check("regtopo HTTP req/tag", result.requests_per_tag(REGTOPO) or 0.0, 1.1)
        )
        return result

    def one_changed(
        self, corpus: Corpus, source: Registry, targets: dict[str, Registry]
    ) -> ScenarioResult:
        result = ScenarioResult("one-changed", "3. one tag changed", len(corpus.tags))
        contents = list(corpus.tags)
        victim = len(contents) // 2
        for repeat in range(self.settings.changed_repeats):
            old = contents[victim]
            contents[victim] = changed_content(old.repository, old.tag, repeat, self.spool)
            with Pusher(source.url) as pusher:
                pusher.push([contents[victim]])
            for tool in self.order(repeat):
                self.run_tool(result, tool, source, targets[tool], contents)
        return result

    def memory(self) -> list[ScenarioResult]:
        s = self.settings
        big, small = s.big_layer, s.small_layer
        result = ScenarioResult("memory", f"4. one {_size(big)} layer", 1)
        small_result = ScenarioResult("memory-small", f"4b. one {_size(small)} layer", 1)
        source = self.registry("source-memory")
        log(f"building single-layer images of {_size(big)} and {_size(small)}")
        contents = {
            big: single_layer_content("big", "big", big, self.spool),
            small: single_layer_content("small", "small", small, self.spool),
        }
        with Pusher(source.url, workers=2) as pusher:
            pusher.push(list(contents.values()))
        shutil.rmtree(self.spool, ignore_errors=True)
        for repeat in range(s.memory_repeats):
            for size, into in ((big, result), (small, small_result)):
                for tool in self.order(repeat):
                    target = self.registry(f"target-memory-{tool}")
                    self.run_tool(into, tool, source, target, [contents[size]])
                    self.drop(target)
        self.drop(source)
        big_rss = result.rss_mb(REGTOPO) or 0.0
        small_rss = small_result.rss_mb(REGTOPO) or 0.0
        result.checks.append(Check("regtopo peak RSS MB", big_rss, 150))
        result.checks.append(Check(f"RSS growth MB vs {_size(small)}", big_rss - small_rss, 20))
        return [result, small_result]

    def many_tags(self) -> ScenarioResult:
        s = self.settings
        contents = many_tags(s.many_repositories, s.many_tags_per_repository)
        result = ScenarioResult("many-tags", "5. plan, many tags in sync", len(contents))
        source, target = self.registry("source-many"), self.registry("target-many")
        log(f"pushing {len(contents)} tags to a source and, in sync, to a target")
        for registry in (source, target):
            with Pusher(registry.url) as pusher:
                pusher.push(contents)
        result.notes.append("regtopo: `plan`; skopeo: `sync` (it has no plan)")
        for repeat in range(s.many_repeats):
            for tool in self.order(repeat):
                self.run_tool(result, tool, source, target, contents, command="plan")
        self.drop(source)
        self.drop(target)
        return result


def _pid(registry: Registry) -> int | None:
    """The registry's process id (``Registry`` keeps its Popen private; we only read it)."""
    proc = getattr(registry, "_proc", None)
    return int(proc.pid) if proc is not None else None


def _ratio(ours: float | None, theirs: float | None) -> float:
    if ours is None or not theirs:
        return float("nan")
    return ours / theirs


def _size(size: int) -> str:
    return f"{size // GiB} GiB" if size >= GiB and size % GiB == 0 else f"{size // MiB} MiB"


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, object]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    commit = _version(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"])
    return {
        "nproc": os.cpu_count(),
        "memory_gb": round(memory_kib / 1e6, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "skopeo": _version(["skopeo", "--version"]),
        "registry": _version(["docker-registry", "--version"]),
        "regtopo_commit": commit,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small corpus (under two minutes)")
    parser.add_argument(
        "--only",
        action="append",
        choices=["startup", "cold", "unchanged", "one-changed", "memory", "many-tags"],
        help="run only this scenario (repeatable; cold runs with unchanged and one-changed)",
    )
    parser.add_argument("--output", type=Path, help="JSON results (default: build/bench/)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run regtopo under py-spy, collapsed stacks into DIR (timings then include py-spy)",
    )
    args = parser.parse_args(argv)

    settings = QUICK if args.quick else FULL
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    work = HERE / ".work" / stamp
    work.mkdir(parents=True)
    output = (
        args.output
        or HERE.parent / "build" / "bench" / f"{'quick' if args.quick else 'full'}-{stamp}.json"
    )

    started = time.perf_counter()
    launcher = Launcher()  # first, while this process is small
    bench = Bench(settings, work, launcher)
    if args.profile:
        bench.tools.profile_regtopo(args.profile)
    try:
        results = bench.scenarios(set(args.only) if args.only else None)
    finally:
        bench.close()
        launcher.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started

    print(render_text(results))
    failed = [s for r in results for s in r.failed()]
    document = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "elapsed_s": round(elapsed, 1),
        "machine": machine(),
        "launcher_rss_floor_mb": round(launcher.floor_kib * 1024 / 1e6, 1),
        "corpus": asdict(settings.corpus)
        | {"large": {str(k): v for k, v in settings.corpus.large.items()}},
        "results": [r.to_json() for r in results],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    log(f"done in {elapsed:.0f} s; results in {output}")
    if failed:
        log(f"{len(failed)} run(s) failed: see the logs (rerun with --keep)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
