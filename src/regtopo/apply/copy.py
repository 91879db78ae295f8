"""The copy engine: a manifest tree from a source repository to a target, by digest.

For each manifest, depth-first:
  1. skip it if the target has it already (a registry accepts a manifest only once everything
     it references is present, so presence means complete);
  2. copy its children (an index's manifests), then its blobs, streaming each one from the
     source through a digest and size check into the target;
  3. push its exact bytes by digest, with its own media type.
The caller tags the root last, so a tag never points at incomplete content, and a crashed copy
resumes where it stopped: whatever is present is skipped.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import stamina

from regtopo.errors import ManifestError, RegtopoError
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest, DigestVerifier
from regtopo.oci.manifest import Manifest
from regtopo.oci.mediatype import is_non_distributable
from regtopo.registry.errors import RegistryError, redact_url
from regtopo.registry.store import PushResult, Repository

log = logging.getLogger(__name__)

_DIGEST_IN_TEXT = re.compile(r"\b[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-fA-F0-9]{32,}\b")


# Blobs from this size on are read on a thread while they are sent, at most this many
# (1 MiB) chunks ahead.
READ_AHEAD_FROM = 16 * 1024 * 1024
READ_AHEAD_DEPTH = 8


class CopyError(RegtopoError):
    """A copy that stopped: the target holds only complete manifests, and no new tag."""


class _ReferencesSettlingError(Exception):
    """The target refused a manifest whose references it holds: worth another try."""

    def __init__(self, cause: RegistryError) -> None:
        super().__init__(cause.message)
        self.cause = cause


@dataclass
class CopyStats:
    manifests_pushed: int = 0
    manifests_present: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    blobs_non_distributable: int = 0
    bytes_sent: int = 0
    #: bytes of the blobs mounted from another repository of the target registry: not sent
    bytes_mounted: int = 0
    #: bytes of blobs this action needed that another action of the same apply uploaded to
    #: the same target repository: sent once, and counted in that action's bytes_sent
    bytes_shared: int = 0
    referrers_copied: int = 0
    referrers_present: int = 0
    #: referrers that are the copied content or its children: listed under their subject
    referrers_in_tree: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    _shared: set[Digest] = field(default_factory=set, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def add_shared(self, blob: Descriptor) -> None:
        """Count a blob in `bytes_shared` once, however many manifests of the tree use it."""
        with self._lock:
            if blob.digest not in self._shared:
                self._shared.add(blob.digest)
                self.bytes_shared += blob.size


class CopyEngine:
    """Copies manifest trees; shared by every action of one apply.

    Blob transfers run on their own pool, so images copied in parallel never wait on each
    other's threads. A blob wanted by two images at once is transferred once.
    """

    def __init__(
        self,
        *,
        blob_workers: int = 4,
        include_non_distributable: bool = False,
        known_absent: frozenset[tuple[str, str, Digest]] = frozenset(),
    ) -> None:
        self.include_non_distributable = include_non_distributable
        # What the plan of this same run saw missing at the targets: not asked again. Only
        # absence is trusted; something that appeared since is uploaded again, harmlessly.
        self.known_absent = known_absent
        self.blob_workers = blob_workers
        self._pool = ThreadPoolExecutor(blob_workers, thread_name_prefix="regtopo-blob")
        self._inflight: dict[tuple[str, str, Digest], Future[str]] = {}
        self._movers: dict[tuple[str, str, Digest], CopyStats] = {}
        # Each blob settled in this apply: how (present, uploaded, mounted), and by which
        # action's stats, so that another action needing it says it went with that one.
        self._present: dict[tuple[str, str, Digest], tuple[str, CopyStats]] = {}
        # Manifests being copied, and copied, per target repository. Two actions that share a
        # child copy it once: Distribution rewrites a manifest's revision link on every PUT,
        # and an index pushed during that rewrite can find its child missing.
        self._manifest_inflight: dict[tuple[str, str, Digest], threading.Event] = {}
        self._manifests_done: set[tuple[str, str, Digest]] = set()
        # Re-entrant as a second guard: callbacks are registered outside it (see `_blob`).
        self._lock = threading.RLock()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def copy(
        self, source: Repository, target: Repository, digest: Digest, tags: list[str]
    ) -> CopyStats:
        """Copy the tree under `digest`, then point each of `tags` at it."""
        stats = CopyStats()
        root = source.get_manifest(str(digest), expected=digest)
        if root is None:
            raise CopyError(f"copying {source}@{digest}: the source no longer has it")
        return self.copy_root(source, target, root, tags, stats)

    def copy_root(
        self,
        source: Repository,
        target: Repository,
        root: Manifest,
        tags: list[str],
        stats: CopyStats | None = None,
    ) -> CopyStats:
        """Copy `root`'s tree (its children and blobs read from `source`), then tag it.

        `root` need not be at the source: a platform subset's index is built by the plan.
        """
        stats = stats or CopyStats()
        self.copy_manifest(source, target, root, stats)
        for tag in tags:
            target.put_manifest(root, tag)
        return stats

    def copy_manifest(
        self,
        source: Repository,
        target: Repository,
        manifest: Manifest,
        stats: CopyStats,
        ancestors: frozenset[Digest] = frozenset(),
    ) -> PushResult | None:
        """Copy one tree; the push result of its root, or None when the target had it."""
        if manifest.digest in ancestors:
            # An index that lists itself (directly or further down) would never finish.
            raise CopyError(
                f"copying {source}@{manifest.digest}: the index contains itself",
                hint="the source content is malformed; it cannot be pushed anywhere either",
            )
        schema1 = manifest.schema1_part()
        if schema1 is not None:
            part = "" if schema1 == manifest.digest else f"its child {schema1} is Docker schema1; "
            raise ManifestError(
                f"copying {source}@{manifest.digest}: cannot be replicated by digest: {part}"
                "Docker schema1 manifests are refused by current registries"
            )
        key = (target.registry_id, target.name, manifest.digest)
        while True:
            with self._lock:
                if key in self._manifests_done:
                    stats.add(manifests_present=1)
                    return None
                running = self._manifest_inflight.get(key)
                if running is None:
                    self._manifest_inflight[key] = threading.Event()
                    break
            # Another action is copying this manifest: wait, then re-check (it may have failed).
            running.wait()

        try:
            pushed = self._copy_manifest_once(source, target, manifest, stats, ancestors)
            with self._lock:
                self._manifests_done.add(key)
            return pushed
        finally:
            with self._lock:
                self._manifest_inflight.pop(key).set()

    def _copy_manifest_once(
        self,
        source: Repository,
        target: Repository,
        manifest: Manifest,
        stats: CopyStats,
        ancestors: frozenset[Digest],
    ) -> PushResult | None:
        known_absent = (target.registry_id, target.name, manifest.digest) in self.known_absent
        if not known_absent and target.head_manifest(str(manifest.digest)) is not None:
            stats.add(manifests_present=1)
            return None

        lineage = ancestors | {manifest.digest}
        for child in manifest.children:
            child_manifest = source.get_manifest(str(child.digest), expected=child.digest)
            if child_manifest is None:
                raise CopyError(
                    f"copying {source}@{manifest.digest}: its child {child.digest} "
                    f"({child.media_type}) is missing at the source"
                )
            self._copy_child(source, target, child, child_manifest, stats, lineage)

        futures = [self._blob(source, target, blob, stats) for blob in manifest.blobs]
        errors = []
        for future in futures:
            try:
                future.result()
            except RegtopoError as err:
                errors.append(err)
        if errors:
            raise errors[0]

        pushed = self._push_manifest(target, manifest)
        stats.add(manifests_pushed=1)
        return pushed

    def _push_manifest(self, target: Repository, manifest: Manifest) -> PushResult:
        """Push by digest, riding out a registry that briefly cannot see what we just pushed.

        Distribution rewrites a manifest's revision link on every PUT of it (a tag PUT too),
        and object-store backed registries are eventually consistent: an index can be refused
        with `MANIFEST_BLOB_UNKNOWN` while its children are there. Retry only when every
        reference is confirmed present; otherwise the refusal is real.
        """
        try:
            for attempt in stamina.retry_context(
                on=_ReferencesSettlingError,
                attempts=4,
                timeout=None,
                wait_initial=0.1,
                wait_max=1.0,
            ):
                with attempt:
                    try:
                        return target.put_manifest(manifest, str(manifest.digest))
                    except RegistryError as err:
                        if (
                            "MANIFEST_BLOB_UNKNOWN" in err.codes
                            and not self._refused_foreign(manifest, err)
                            and self._references_present(target, manifest)
                        ):
                            raise _ReferencesSettlingError(err) from err
                        raise self._explain_rejection(manifest, target, err) from err
        except _ReferencesSettlingError as settling:
            raise self._explain_rejection(manifest, target, settling.cause) from settling.cause
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _references_present(self, target: Repository, manifest: Manifest) -> bool:
        if any(target.head_manifest(str(child.digest)) is None for child in manifest.children):
            return False
        distributable = [
            b for b in manifest.blobs if not (b.urls or is_non_distributable(b.media_type))
        ]
        return all(target.blob_exists(blob) for blob in distributable)

    def _copy_child(
        self,
        source: Repository,
        target: Repository,
        child: Descriptor,
        child_manifest: Manifest,
        stats: CopyStats,
        lineage: frozenset[Digest],
    ) -> None:
        try:
            self.copy_manifest(source, target, child_manifest, stats, lineage)
        except RegistryError as err:
            raise CopyError(
                f"copying child {child.digest} ({child.media_type}) to {target}: {err.message}",
                hint=err.hint,
            ) from err

    def _refused_foreign(self, manifest: Manifest, err: RegistryError) -> list[Descriptor]:
        """The non-distributable blobs a `MANIFEST_BLOB_UNKNOWN` refusal is about, when they
        were left out on purpose. A refusal that names a digest must name a foreign one; one
        that names none may be about any of them."""
        if "MANIFEST_BLOB_UNKNOWN" not in err.codes or self.include_non_distributable:
            return []
        foreign = [b for b in manifest.blobs if b.urls or is_non_distributable(b.media_type)]
        named = [b for b in foreign if any(str(b.digest) in d for d in err.details)]
        names_a_digest = any(_DIGEST_IN_TEXT.search(d) for d in err.details)
        return named if names_a_digest else foreign

    def _explain_rejection(
        self, manifest: Manifest, target: Repository, err: RegistryError
    ) -> RegtopoError:
        foreign = self._refused_foreign(manifest, err)
        if foreign:
            return CopyError(
                f"pushing {manifest.digest} to {target}: the target requires non-distributable "
                f"blobs ({', '.join(str(b.digest.short) for b in foreign)})",
                hint="set include_non_distributable on the replication to upload them "
                "(the manifest stays unchanged)",
            )
        return CopyError(
            f"pushing manifest {manifest.digest} ({manifest.media_type}) to {target}: "
            f"{err.message}",
            hint=err.hint,
        )

    # blobs

    def _blob(
        self, source: Repository, target: Repository, blob: Descriptor, stats: CopyStats
    ) -> Future[str]:
        key = (target.registry_id, target.name, blob.digest)
        with self._lock:
            settled = self._present.get(key)
            if settled is not None:
                self._shared(blob, stats, *settled)
                done: Future[str] = Future()
                done.set_result("present")
                return done
            future = self._inflight.get(key)
            if future is None:
                future = self._pool.submit(self._transfer, source, target, blob, stats)
                self._inflight[key] = future
                mover = stats
            else:
                mover = self._movers[key]
                if mover is stats:
                    return future

                # This action waits on its own future, settled only after the sharing is
                # counted: waiters of `future` wake before its callbacks run.
                mine: Future[str] = Future()

                def shared(finished: Future[str], mover: CopyStats = mover) -> None:
                    if finished.cancelled():
                        mine.cancel()
                    elif (error := finished.exception()) is not None:
                        mine.set_exception(error)
                    else:
                        self._shared(blob, stats, finished.result(), mover)
                        mine.set_result(finished.result())

                future.add_done_callback(shared)
                return mine
            self._movers[key] = mover

        # Outside the lock: a future that is already done runs its callback right here.
        future.add_done_callback(lambda f: self._settle(key, f, mover))
        return future

    @staticmethod
    def _shared(blob: Descriptor, stats: CopyStats, outcome: str, mover: CopyStats) -> None:
        """A blob `stats`' action needs that another action of this apply uploaded: it
        travelled once, counted where it was sent, and is named as shared here."""
        if mover is not stats and outcome == "uploaded":
            stats.add_shared(blob)

    def _settle(self, key: tuple[str, str, Digest], future: Future[str], mover: CopyStats) -> None:
        with self._lock:
            self._inflight.pop(key, None)
            if not future.cancelled() and future.exception() is None:
                self._present[key] = (future.result(), mover)
            self._movers.pop(key, None)

    def _transfer(
        self, source: Repository, target: Repository, blob: Descriptor, stats: CopyStats
    ) -> str:
        if (blob.urls or is_non_distributable(blob.media_type)) and not (
            self.include_non_distributable
        ):
            stats.add(blobs_non_distributable=1)
            return "non-distributable"
        known_absent = (target.registry_id, target.name, blob.digest) in self.known_absent
        if not known_absent and target.blob_exists(blob):
            stats.add(blobs_present=1)
            return "present"

        mount_from = target.mount_source(source)

        @contextmanager
        def opener() -> Iterator[Iterator[bytes]]:
            with self._open_verified(source, blob) as chunks:
                yield chunks

        outcome = target.push_blob(blob, opener, mount_from=mount_from)
        if outcome == "mounted":
            stats.add(blobs_mounted=1, bytes_mounted=blob.size)
        else:
            stats.add(blobs_uploaded=1, bytes_sent=blob.size)
        log.debug("blob %s %s to %s", blob.digest.short, outcome, target)
        return outcome

    @contextmanager
    def _open_verified(self, source: Repository, blob: Descriptor) -> Iterator[Iterator[bytes]]:
        inline = blob.inline_data()
        if inline is not None and not source.blob_exists(blob):
            # Descriptor `data` stands in only when it hashes to the descriptor's digest.
            yield iter([inline])
            return
        if blob.urls and self.include_non_distributable and not source.blob_exists(blob):
            # A foreign layer the source does not hold: its descriptor says where it lives.
            # What comes from there is checked like any other blob, so the digest holds.
            with _open_urls(blob) as (where, chunks):
                yield _checked(chunks, DigestVerifier(blob.digest, blob.size, what=where))
            return
        verifier = DigestVerifier(blob.digest, blob.size, what=f"blob {blob.digest} from {source}")
        with source.open_blob(blob) as chunks:
            if blob.size < READ_AHEAD_FROM:
                yield _checked(chunks, verifier)
                return
            with _read_ahead(chunks) as ahead:
                yield _checked(ahead, verifier)


@contextmanager
def _read_ahead(
    chunks: Iterator[bytes], depth: int = READ_AHEAD_DEPTH
) -> Iterator[Iterator[bytes]]:
    """Read the source on a thread while the caller sends, so a large blob's download and
    upload overlap instead of taking turns (the 1 GiB benchmark copy). At most `depth` chunks
    wait in between, which bounds the memory it costs."""
    buffer: queue.Queue[bytes | BaseException | None] = queue.Queue(depth)
    stop = threading.Event()

    def hand_over(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand_over(chunk):
                    return
        except BaseException as err:  # handed to the consumer, which raises it
            hand_over(err)
            return
        hand_over(None)

    reader = threading.Thread(target=produce, name="regtopo-read-ahead", daemon=True)
    reader.start()

    def consume() -> Iterator[bytes]:
        while True:
            item = buffer.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    try:
        yield consume()
    finally:
        # The consumer may stop early (an upload failed): let the reader go before the source
        # stream it reads is closed.
        stop.set()
        reader.join(timeout=10)


def _checked(chunks: Iterator[bytes], verifier: DigestVerifier) -> Iterator[bytes]:
    for chunk in chunks:
        verifier.update(chunk)
        yield chunk
    verifier.finish()


@contextmanager
def _open_urls(blob: Descriptor) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Stream a foreign blob from the first of its `urls` that answers, without credentials:
    registry credentials never go to a host the descriptor names."""
    failures = []
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0, connect=10.0)) as http:
        for url in blob.urls:
            try:
                with http.stream("GET", url) as response:
                    if response.status_code != 200:
                        failures.append(f"{redact_url(url)}: {response.status_code}")
                        continue
                    where = f"foreign blob {blob.digest} from {redact_url(url)}"
                    yield where, response.iter_bytes(1024 * 1024)
                    return
            except httpx.TransportError as err:
                failures.append(f"{redact_url(url)}: {type(err).__name__}")
    raise CopyError(
        f"fetching foreign blob {blob.digest}: the source lacks it and none of its urls "
        f"answered ({'; '.join(failures) or 'no urls'})"
    )
