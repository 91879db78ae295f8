"""Several regtopo processes maintaining the same fallback tags at once (a test harness).

Each writer is a separate Python process (multiprocessing 'spawn', so nothing is shared but
the registry): it waits at a barrier with the others, then adds its own referrers to the
fallback tag of every subject through `FallbackTagWriter`, and reports its request count and
any error. This is the situation of two CI shards replicating signatures of the same images.
"""

from __future__ import annotations

import multiprocessing
import traceback
from dataclasses import dataclass
from typing import Any

from tests.support.artifacts import OCI_MANIFEST

# subject digest, and the raw bytes of the referrer manifests this writer adds to it
Job = tuple[str, list[bytes]]


@dataclass(frozen=True)
class WriterReport:
    """What one writer process did: requests sent, and the error it ended with, if any."""

    writer: int
    requests: int
    error: str | None


def _write(
    writer: int,
    host: str,
    repository: str,
    jobs: list[Job],
    batch: int,
    barrier: Any,
    results: Any,
) -> None:
    from regtopo.oci.digest import Digest
    from regtopo.oci.manifest import Manifest
    from regtopo.registry.client import RegistryClient
    from regtopo.registry.referrers import FallbackTagWriter

    client = RegistryClient(f"w{writer}", host, scheme="http")
    error = None
    try:
        target = client.repository(repository)
        work = [
            (Digest.parse(subject), [Manifest.parse(raw, OCI_MANIFEST) for raw in raws])
            for subject, raws in jobs
        ]
        fallback = FallbackTagWriter()
        barrier.wait(timeout=60)
        for start in range(0, len(work), batch):
            fallback.add_all(target, dict(work[start : start + batch]))
    except Exception:
        error = traceback.format_exc()
    finally:
        results.put(WriterReport(writer, client.request_count, error))
        client.close()


def run_writers(
    host: str, repository: str, plans: list[list[Job]], *, batch: int = 1
) -> list[WriterReport]:
    """Run one process per plan, all starting together; `batch` subjects per writer call."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(plans))
    results = context.Queue()
    processes = [
        context.Process(
            target=_write, args=(i, host, repository, jobs, batch, barrier, results), daemon=True
        )
        for i, jobs in enumerate(plans)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    return sorted(reports, key=lambda r: r.writer)
