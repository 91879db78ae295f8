"""Apply between real registries: failures collected or --fail-fast, and a killed apply resumed.

The resume test kills a real `regtopo apply` process with SIGKILL in the middle of a copy,
then checks what the issue promises: the tag never points at incomplete content, and the next
apply finishes without sending again the blobs that had arrived.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_plan_files import manifest_of, tag_digest, two_registries
from tests.support.cli import registry_entry, run, write_topology
from tests.support.proxy import MakeProxy, ProxyRequest
from tests.support.registries import MakeRegistry, Registry, push_random_image, skopeo_digest

pytestmark = [pytest.mark.registry]

MB = 1_000_000
REGTOPO = str(Path(sys.executable).parent / "regtopo")


def break_source(registry: Registry, repository: str, tag: str) -> str:
    """Delete the first layer's blob at the source, so copying that image fails."""
    layer = manifest_of(registry, repository, tag)["layers"][0]["digest"]
    response = httpx.delete(f"{registry.url}/v2/{repository}/blobs/{layer}")
    assert response.status_code == 202, response.text
    return str(layer)


@pytest.mark.timeout(60)
def test_every_failure_is_collected_and_the_other_actions_still_run(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    push_random_image(registry, "app", "v1", layers=[1000])
    v2 = push_random_image(registry, "app", "v2", layers=[1000])
    push_random_image(registry, "app", "v3", layers=[1000])
    break_source(registry, "app", "v1")
    break_source(registry, "app", "v3")
    topology = two_registries(tmp_path, registry, target, ["v1", "v2", "v3"])

    result = run("apply", "--auto-approve", "--parallelism", "1", str(topology))

    assert result.exit_code == 1
    assert "Apply complete: 1 done, 2 failed, 0 stale, 0 not attempted" in result.stdout
    failed = result.stdout.split("Failed:\n")[1]
    assert [line.split(":")[1] for line in failed.splitlines()[:2]] == ["v1", "v3"]
    assert tag_digest(target, "app", "v2") == v2
    assert (tag_digest(target, "app", "v1"), tag_digest(target, "app", "v3")) == (None, None)


@pytest.mark.timeout(60)
def test_fail_fast_stops_at_the_first_failure(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    for tag in ("v1", "v2", "v3"):
        push_random_image(registry, "app", tag, layers=[1000])
    break_source(registry, "app", "v1")
    topology = two_registries(tmp_path, registry, target, ["v1", "v2", "v3"])

    result = run("apply", "--auto-approve", "--parallelism", "1", "--fail-fast", str(topology))

    assert result.exit_code == 1
    assert "Apply complete: 0 done, 1 failed, 0 stale, 2 not attempted" in result.stdout
    assert "  b/app:v2: stopped after an earlier failure" in result.stdout
    assert target.count_requests("PUT", r"/v2/app/manifests/.*") == 0


def completed_blob_uploads(registry: Registry) -> int:
    """Blob uploads the registry has finished (201 to the closing PUT), read from its raw log."""
    text = registry.log_path.read_text(errors="replace")
    return len(re.findall(r'"PUT /v2/[^ ]+/blobs/uploads/[^ ]* HTTP/1\.1" 201', text))


@pytest.mark.skopeo
@pytest.mark.timeout(180)
def test_an_apply_killed_mid_copy_leaves_the_old_tag_and_resumes_without_resending(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    target = make_registry()
    new = push_random_image(registry, "app", "v1", layers=[6 * MB, 20 * MB, 34 * MB])
    old = push_random_image(target, "app", "v1", layers=[1000])
    blobs = [manifest_of(registry, "app", "v1")["config"]] + manifest_of(registry, "app", "v1")[
        "layers"
    ]
    topology = two_registries(tmp_path, registry, target, ["v1"])
    uploads_before = completed_blob_uploads(target)

    # 1. A real apply process, killed once the config and the smallest layer have arrived.
    with open(tmp_path / "killed.log", "wb") as log:
        process = subprocess.Popen(
            [REGTOPO, "apply", "--auto-approve", str(topology)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )
        deadline = time.monotonic() + 60
        while completed_blob_uploads(target) < uploads_before + 2:
            assert process.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.monotonic() < deadline, "no blob upload finished within 60 s"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    assert tag_digest(target, "app", "v1") == old, "the copy finished before the kill"
    present = [
        blob["digest"]
        for blob in blobs
        if httpx.head(f"{target.url}/v2/app/blobs/{blob['digest']}").status_code == 200
    ]
    assert 2 <= len(present) < len(blobs)

    # 2. Run again: it finishes, sending only the blobs that had not arrived.
    log_mark = len(target.access_log())
    result = run("apply", "--auto-approve", str(topology))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert skopeo_digest(target, "app:v1") == new
    second_run = target.access_log()[log_mark:]
    started = [e for e in second_run if e.method == "POST" and "/blobs/uploads/" in e.path]
    finished = [
        e
        for e in second_run
        if e.method == "PUT" and "/blobs/uploads/" in e.path and e.status == 201
    ]
    assert len(started) == len(finished) == len(blobs) - len(present)
    sent_again = {e.target.split("digest=")[1].split("&")[0] for e in finished}
    assert sent_again.isdisjoint({d.replace(":", "%3A") for d in present} | set(present))


@pytest.mark.parametrize(("answer", "exit_code"), [("y\n", 0), ("n\n", 1)])
def test_apply_on_a_terminal_asks_and_does_only_what_the_answer_says(
    registry: Registry,
    make_registry: MakeRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    exit_code: int,
) -> None:
    from typer.testing import CliRunner

    from regtopo.cli import apply as apply_command
    from regtopo.cli.main import app

    target = make_registry()
    digest = push_random_image(registry, "app", "v1", layers=[100])
    topology = two_registries(tmp_path, registry, target, ["v1"])
    monkeypatch.setattr(apply_command, "on_terminal", lambda: True)

    result = CliRunner().invoke(app, ["apply", str(topology)], input=answer)

    assert result.exit_code == exit_code, result.output
    assert "Apply these changes? [y/N]" in result.output
    assert tag_digest(target, "app", "v1") == (digest if answer == "y\n" else None)
    assert ("Apply cancelled." in result.output) == (answer == "n\n")


@pytest.mark.parametrize(("parallelism", "overlap"), [(1, {1}), (4, {3, 4})])
def test_parallelism_is_how_many_copies_run_at_once(
    registry: Registry,
    make_registry: MakeRegistry,
    make_proxy: MakeProxy,
    tmp_path: Path,
    parallelism: int,
    overlap: set[int],
) -> None:
    """Four tags of distinct content; the target holds each manifest PUT a moment, so copies
    that run at once are seen at once."""
    target = make_registry()
    tags = ["v1", "v2", "v3", "v4"]
    for tag in tags:
        push_random_image(registry, "app", tag, layers=[100])
    proxy = make_proxy(target.url)
    lock, now, most = threading.Lock(), [0], [0]

    def hold(request: ProxyRequest) -> None:
        if request.method != "PUT" or "/manifests/" not in request.path:
            return None
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.8)
        with lock:
            now[0] -= 1
        return None

    proxy.add(hold)
    topology = write_topology(
        tmp_path / "topology.yaml",
        {"a": registry_entry(registry), "b": {"host": f"http://{proxy.host}"}},
        [{"source": "a/app", "targets": ["b/app"], "tags": tags}],
    )

    result = run("apply", "--auto-approve", "--parallelism", str(parallelism), str(topology))

    assert result.exit_code == 0, result.output
    assert most[0] in overlap  # 3 allows for a copy that got there late on a busy machine


def test_an_interrupted_apply_starts_no_queued_action(
    registry: Registry, make_registry: MakeRegistry, tmp_path: Path
) -> None:
    """Ctrl-C while copies are queued: the queued ones never start (it used to wait for the
    whole plan to run), the one in flight finishes whole, and the interrupt goes on up."""
    from regtopo.apply.executor import ActionResult, Executor
    from regtopo.plan.planner import Planner
    from regtopo.plan.session import Session
    from regtopo.topology.loader import load

    target = make_registry()
    tags = [f"v{i}" for i in range(6)]
    for tag in tags:
        push_random_image(registry, "app", tag, layers=[100])
    loaded = load(two_registries(tmp_path, registry, target, tags))
    session = Session(loaded.topology, base_dir=tmp_path)

    def interrupt(result: ActionResult) -> None:
        raise KeyboardInterrupt

    try:
        plan = Planner(loaded, session).plan()
        with pytest.raises(KeyboardInterrupt):
            Executor(session, parallelism=1, on_result=interrupt).apply(plan)
    finally:
        session.close()

    copied = [tag for tag in tags if tag_digest(target, "app", tag) is not None]
    assert 1 <= len(copied) <= 2  # the first, and at most the one already taken up
