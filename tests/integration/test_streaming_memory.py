"""Blobs stream: copying a layer larger than regtopo's memory never holds it whole.

regtopo runs as its own process (the console script) started by the benchmarks' small
launcher, whose `wait4` gives the child's own peak RSS: Linux carries `ru_maxrss` across
fork+exec, so a child started from pytest would report pytest's peak instead.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from benchmarks.measure import Launcher

from tests.support.content import OCI_CONFIG, OCI_MANIFEST, Pusher, descriptor
from tests.support.registries import MakeRegistry

pytestmark = [pytest.mark.registry, pytest.mark.slow, pytest.mark.timeout(180)]

MiB = 1024 * 1024
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
LAYER_SIZE = 200 * MiB
# The benchmarks measured 80-110 MB for such a copy; a blob held whole would add 210 MB.
PEAK_RSS_LIMIT = 160 * 1_000_000


def regtopo_argv() -> list[str]:
    beside = Path(sys.executable).with_name("regtopo")
    found = str(beside) if beside.exists() else shutil.which("regtopo")
    if found:
        return [found]
    return [sys.executable, "-c", "from regtopo.cli.main import main; main()"]


def layer_chunks(size: int) -> Iterator[bytes]:
    """`size` bytes, generated as they are sent: 1 MiB random blocks, each one different."""
    block = os.urandom(MiB)
    for number in range(size // MiB):
        yield number.to_bytes(8, "big") + block[8:]


def test_a_200_mib_layer_is_copied_without_ever_being_held_whole(
    make_registry: MakeRegistry, tmp_path: Path
) -> None:
    with Launcher() as launcher:  # first, while this process is small
        source = make_registry()
        target = make_registry()
        pushed = time.monotonic()
        with Pusher(source, "big/app") as pusher:
            layer, size = pusher.stream_blob(layer_chunks(LAYER_SIZE))
            config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
            pusher.blob(config)
            document = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config),
                "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": size}],
            }
            digest = pusher.manifest(json.dumps(document).encode(), OCI_MANIFEST, "v1")
        topology = tmp_path / "topology.yaml"
        topology.write_text(
            json.dumps(
                {
                    "registries": {
                        "src": {"host": f"http://{source.host}"},
                        "dst": {"host": f"http://{target.host}"},
                    },
                    "replications": [
                        {"source": "src/big/app", "targets": ["dst/big/app"], "tags": ["v1"]}
                    ],
                }
            )
        )
        log = tmp_path / "regtopo.log"
        started = time.monotonic()
        usage = launcher.run(
            [*regtopo_argv(), "apply", "--auto-approve", str(topology)],
            env={**os.environ, "NO_COLOR": "1"},
            log_path=log,
        )
        elapsed = time.monotonic() - started

    assert usage.returncode == 0, log.read_text()
    served = httpx.head(
        f"{target.url}/v2/big/app/manifests/v1", headers={"Accept": OCI_MANIFEST}
    ).headers.get("docker-content-digest")
    assert served == digest
    blob = httpx.head(f"{target.url}/v2/big/app/blobs/{layer}")
    assert int(blob.headers["content-length"]) == size == LAYER_SIZE
    # Streamed in chunks of 16 MiB, each read from the source as it was sent.
    assert target.count_requests("PATCH", r"/v2/big/app/blobs/uploads/.*") == 13
    print(
        f"peak RSS {usage.max_rss_bytes / 1e6:.1f} MB, push {started - pushed:.1f} s, copy {elapsed:.1f} s"
    )
    assert usage.max_rss_bytes < PEAK_RSS_LIMIT, (
        f"regtopo peaked at {usage.max_rss_bytes / 1e6:.0f} MB copying a "
        f"{LAYER_SIZE / 1e6:.0f} MB layer"
    )
