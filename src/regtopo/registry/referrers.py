"""Finding what refers to a manifest, and writing referrers where a target can find them.

Discovery (`ReferrerFinder.find`) merges three sources for one subject:
  - the referrers API (`GET /v2/<name>/referrers/<digest>`), probed once per registry: a
    registry that answers 404 has no API, and is not asked again in this run;
  - the tag-schema fallback `sha256-<hex>`, accepted only when it is an index other than the
    subject itself, and never listing the subject's own children (GitLab resolves that tag as
    a digest and serves the subject: C26);
  - cosign's tags `sha256-<hex>.sig`, `.att` and `.sbom`, whatever their media types (C30).
The repository's tag list is read once per run and says which of those tags exist, so a
subject without fallback or cosign tags costs no request of its own.

Writing (`FallbackTagWriter.add_all`) maintains the fallback tags at a target without the API:
read, merge (other writers' entries stay), write, and after a settle delay shared by the whole
batch read again. Distribution ignores `If-Match`, so writers in this process are serialised
per (registry, repository, subject), and an entry that vanished because another process wrote
at the same moment is merged back in, for a bounded number of rounds, then reported.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.oci import mediatype as mt
from regtopo.oci.attachments import COSIGN_SUFFIXES, cosign_tag, fallback_entry
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.oci.reference import fallback_tag
from regtopo.registry.store import Repository

log = logging.getLogger(__name__)

Via = str  # "referrers-api" | "fallback-tag" | "tag"

# Fallback tag writes: how many rounds of write, settle and check before giving up, and the
# settle delay between a write and its check: SETTLE_FACTOR times the slowest read-to-write of
# the round, within [SETTLE_MIN, SETTLE_MAX], then stretched by a random 0-50%.
MERGE_ROUNDS = 6
SETTLE_MIN = 0.25
SETTLE_FACTOR = 4.0
SETTLE_MAX = 5.0


class ReferrersTagError(RegtopoError):
    """The fallback tag holds something other than an index, or entries would not stay."""


@dataclass(frozen=True)
class Referrer:
    """One thing attached to `subject`: a referrer manifest, or a cosign tag (`tag` set)."""

    subject: Digest
    descriptor: Descriptor
    via: Via
    tag: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What one subject's discovery found: its referrers, and its fallback index if it has one."""

    referrers: list[Referrer]
    fallback_index: Manifest | None


class ReferrerFinder:
    """Discovers referrers, remembering per run which registries have the API and which tags
    each repository holds. Thread-safe; one per plan or apply."""

    def __init__(self) -> None:
        self._api: dict[str, bool] = {}
        self._tags: dict[tuple[str, str], frozenset[str]] = {}
        self._key_locks: dict[object, threading.Lock] = {}
        self._lock = threading.Lock()

    def _key_lock(self, key: object) -> threading.Lock:
        # Planning runs many tags at once; one of them reads, the others wait for its answer.
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def tags(self, repository: Repository) -> frozenset[str]:
        key = (repository.registry_id, repository.name)
        with self._key_lock(("tags", key)):
            known = self._tags.get(key)
            if known is None:
                known = frozenset(repository.list_tags())
                self._tags[key] = known
            return known

    def remember_tags(self, repository: Repository, tags: Iterable[str]) -> None:
        """Use a tag list the caller has already read, instead of reading it again."""
        with self._lock:
            self._tags[(repository.registry_id, repository.name)] = frozenset(tags)

    def forget(self, repository: Repository) -> None:
        """Drop `repository`'s tag list: it was written to since it was read."""
        with self._lock:
            self._tags.pop((repository.registry_id, repository.name), None)

    def has_api(self, repository: Repository, probe: Digest) -> bool:
        """Whether the registry answers the referrers API; one request per registry per run."""
        with self._lock:
            known = self._api.get(repository.registry_id)
        if known is not None:
            return known
        return self.api_referrers(repository, probe) is not None

    def api_referrers(
        self, repository: Repository, subject: Digest, artifact_types: list[str] | None = None
    ) -> list[Descriptor] | None:
        """The API's answer, or None where the registry has none (asked once per run)."""
        with self._key_lock(("api", repository.registry_id)):
            known = self._api.get(repository.registry_id)
            if known is None:
                found = self._ask(repository, subject, artifact_types)
                self._api[repository.registry_id] = found is not None
                return found
        return self._ask(repository, subject, artifact_types) if known else None

    @staticmethod
    def _ask(
        repository: Repository, subject: Digest, artifact_types: list[str] | None
    ) -> list[Descriptor] | None:
        if not artifact_types:
            return repository.referrers(subject)
        # The API filters by one artifactType per request (distribution-spec "Listing
        # Referrers"); a selection of several types asks once per type.
        found: list[Descriptor] = []
        for artifact_type in artifact_types:
            part = repository.referrers(subject, artifact_type)
            if part is None:
                return None
            found.extend(part)
        return found

    def find(
        self,
        repository: Repository,
        subject: Digest,
        own_children: Iterable[Digest] = (),
        *,
        artifact_types: list[str] | None = None,
    ) -> list[Referrer]:
        """Everything `repository` says refers to `subject`, each digest once per way.

        `own_children` are the subject's own index entries: never referrers of it (C26).
        With `artifact_types`, only referrers of those types are returned (cosign tags, which
        carry no artifact type, are returned regardless; the caller classifies them).
        """
        return self.discover(
            repository, subject, own_children, artifact_types=artifact_types
        ).referrers

    def discover(
        self,
        repository: Repository,
        subject: Digest,
        own_children: Iterable[Digest] = (),
        *,
        artifact_types: list[str] | None = None,
    ) -> Discovery:
        """`find`, and the fallback index itself: retention deletes it with its subject."""
        excluded = {subject, *own_children}
        found: dict[tuple[Digest, str | None], Referrer] = {}

        def keep(referrer: Referrer) -> None:
            digest = referrer.descriptor.digest
            if digest in excluded:
                return
            if artifact_types and referrer.tag is None:
                if referrer.descriptor.artifact_type not in artifact_types:
                    return
            found.setdefault((digest, referrer.tag), referrer)

        for descriptor in self.api_referrers(repository, subject, artifact_types) or []:
            keep(Referrer(subject, descriptor, "referrers-api"))

        tags = self.tags(repository)
        name = fallback_tag(subject)
        index = self._fallback_index(repository, subject, name) if name in tags else None
        for descriptor in index.children if index is not None else []:
            keep(Referrer(subject, descriptor, "fallback-tag"))

        for suffix in COSIGN_SUFFIXES:
            tag = cosign_tag(subject, suffix)
            if tag not in tags:
                continue
            head = repository.head_manifest(tag)
            if head is not None:
                keep(Referrer(subject, head, "tag", tag=tag))

        referrers = sorted(found.values(), key=lambda r: (r.tag or "", str(r.descriptor.digest)))
        return Discovery(referrers, index)

    def _fallback_index(
        self, repository: Repository, subject: Digest, name: str
    ) -> Manifest | None:
        index = repository.get_manifest(name)
        if index is None:
            return None
        if index.kind != "index" or index.digest == subject:
            # A registry that resolves `sha256-<hex>` as the digest itself serves the subject
            # (GitLab); a plain manifest under that tag is not a referrers list either.
            log.debug(
                "ignoring %s:%s: it is %s %s, not a referrers index",
                repository,
                name,
                index.kind,
                index.digest.short,
            )
            return None
        return index


_WRITER_LOCKS: dict[tuple[str, str, Digest], threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()
# The digest this process last wrote to each fallback tag: a tag that moved from it since has
# another writer at work, whose read may predate our write.
_LAST_WRITTEN: dict[tuple[str, str, Digest], Digest] = {}


def _writer_key(repository: Repository, subject: Digest) -> tuple[str, str, Digest]:
    return (repository.registry_id, repository.name, subject)


def _writer_lock(repository: Repository, subject: Digest) -> threading.Lock:
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(_writer_key(repository, subject), threading.Lock())


@dataclass
class _Pending:
    """One subject of a batch: the entries it must end up with, and what was written last."""

    name: str
    wanted: dict[Digest, dict[str, Any]]
    # every entry read in this call, ours included: restored if a stale write drops them
    seen: dict[Digest, dict[str, Any]] = field(default_factory=dict)
    # the tag's digest as we last left or saw it: a check finding another has moved on
    expected: Digest | None = None

    def __post_init__(self) -> None:
        self.seen.update(self.wanted)

    def remember(self, document: dict[str, Any]) -> set[Digest]:
        """The digests `document` lists; its entries join those to keep."""
        listed = set()
        for entry in document["manifests"]:
            digest = _entry_digest(entry)
            if digest is not None:
                listed.add(digest)
                self.seen.setdefault(digest, entry)
        return listed


class FallbackTagWriter:
    """Adds referrers to a target's `sha256-<hex>` index without losing anyone's entries.

    No registry offers compare-and-swap on a tag (Distribution ignores `If-Match`), so a
    read-merge-write can be undone by another process that read before our write and writes
    after it. The writer therefore checks after the fact: it writes every subject of a batch,
    waits a settle delay (randomised, several times the slowest read-to-write it saw, at least
    `settle_min`), reads each tag again, and merges back whatever went missing, ours or another
    writer's entry it had seen; a tag that still holds everything but moved since our write has
    another writer at work and is checked once more. After `rounds` rounds an entry still missing
    is an error naming the subject, never a silent loss.

    The limit: a writer whose own write lands more than our settle delay after its read (a stalled
    process, a PUT retried after a long back-off) can still drop our entries unseen. Such a slow
    write is logged as a warning by the writer that made it.
    """

    def __init__(
        self,
        *,
        settle_min: float = SETTLE_MIN,
        settle_max: float = SETTLE_MAX,
        rounds: int = MERGE_ROUNDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settle_min = settle_min
        self.settle_max = settle_max
        self.rounds = rounds
        self._sleep = sleep

    def add(self, repository: Repository, subject: Digest, referrers: list[Manifest]) -> bool:
        """Merge `referrers` into the subject's fallback index; True when something was written."""
        return bool(self.add_all(repository, {subject: referrers}))

    def add_all(
        self, repository: Repository, referrers: Mapping[Digest, list[Manifest]]
    ) -> set[Digest]:
        """Merge each subject's referrers into its fallback index, all subjects of the batch
        sharing one settle delay per round; returns the subjects whose tag was written."""
        pending = {
            subject: _Pending(fallback_tag(subject), {m.digest: fallback_entry(m) for m in found})
            for subject, found in referrers.items()
            if found
        }
        wrote: set[Digest] = set()
        to_write = set(pending)
        to_check: set[Digest] = set()
        for _ in range(self.rounds):
            slowest = 0.0
            for subject in sorted(to_write, key=str):
                took = self._merge(repository, subject, pending[subject])
                if took is None:
                    pending.pop(subject)
                else:
                    wrote.add(subject)
                    to_check.add(subject)
                    slowest = max(slowest, took)
            if not to_check:
                return wrote
            if slowest > self.settle_max:
                log.warning(
                    "writing referrers tags at %s took %.1fs from read to write: a writer in "
                    "another process may have had one of its entries dropped unseen",
                    repository,
                    slowest,
                )
            self._sleep(self._settle(slowest))
            to_write, watching = set(), set()
            for subject in sorted(to_check, key=str):
                verdict = self._check(repository, subject, pending[subject])
                if verdict == "missing":
                    to_write.add(subject)
                elif verdict == "moved":
                    watching.add(subject)
                else:
                    pending.pop(subject)
            to_check = watching
            if not pending:
                return wrote
        missing = {s: p for s, p in pending.items() if s not in to_check}
        if not missing:
            # Still moving under other writers, but everything of ours is there.
            return wrote
        raise ReferrersTagError(
            f"updating referrers tags at {repository}: entries kept disappearing after "
            f"{self.rounds} rounds of writes for "
            + ", ".join(f"{p.name} (subject {s})" for s, p in sorted(missing.items(), key=str)),
            hint="another writer is rewriting these tags at the same time; run again when it "
            "is done (the next plan lists the missing referrers as copy-referrers)",
        )

    def _settle(self, slowest: float) -> float:
        # Long enough for a writer that read before our write to have written too; randomised
        # so that two writers in lockstep drift apart.
        base = min(self.settle_max, max(self.settle_min, SETTLE_FACTOR * slowest))
        return base * random.uniform(1.0, 1.5)

    def _merge(self, repository: Repository, subject: Digest, pending: _Pending) -> float | None:
        """Read, merge and write one subject's tag: the seconds from read to written, or None
        when nothing needs checking (the tag listed everything already, or cannot be read)."""
        key = _writer_key(repository, subject)
        name = pending.name
        # Writers in this process take turns, so they never undo each other.
        with _writer_lock(repository, subject):
            started = time.monotonic()
            read = self._read(repository, name, subject)
            if read is None:
                self._write_unreadable(repository, subject, pending)
                return None
            current, _ = read
            listed = pending.remember(current)
            missing = [e for d, e in pending.seen.items() if d not in listed]
            if not missing:
                return None
            current["manifests"] = [*current["manifests"], *missing]
            index = Manifest.parse(_serialise(current), mt.OCI_INDEX)
            repository.put_manifest(index, name)
            took = time.monotonic() - started
            pending.expected = _LAST_WRITTEN[key] = index.digest
        log.debug("added %d referrer(s) to %s:%s", len(missing), repository, name)
        return took

    def _check(self, repository: Repository, subject: Digest, pending: _Pending) -> str:
        """After the settle delay: "missing" (an entry went: write again), "moved" (complete,
        but another writer wrote since us: look again) or "kept"."""
        key = _writer_key(repository, subject)
        read = self._read(repository, pending.name, subject)
        if read is None:
            raise ReferrersTagError(
                f"updating referrers tag {repository}:{pending.name}: the registry now answers "
                "this tag with the subject itself, so the entries stored there cannot be read",
                hint="use a target with the OCI referrers API, or `referrers: none`",
            )
        current, digest = read
        listed = pending.remember(current)
        if any(d not in listed for d in pending.seen):
            log.debug("%s:%s lost entries to another writer; merging again", repository, key[2])
            return "missing"
        with _WRITER_LOCKS_GUARD:
            ours = _LAST_WRITTEN.get(key)
        if digest in (pending.expected, ours):
            return "kept"
        # Everything is there, but someone wrote since: a writer in flight may have read before
        # that. Check again after another delay; unchanged by then, it is kept.
        pending.expected = digest
        return "moved"

    def _write_unreadable(self, repository: Repository, subject: Digest, pending: _Pending) -> None:
        # The registry answers the tag with the subject itself (GitLab resolves `sha256-<hex>`
        # as a digest): what the tag holds cannot be read back. Writing it is safe only while
        # no one else holds entries there, and there is nothing to verify afterwards.
        name = pending.name
        if name in repository.list_tags():
            raise ReferrersTagError(
                f"updating referrers tag {repository}:{name}: the registry answers this tag "
                "with the subject itself, so the entries others stored there cannot be read "
                "and merged",
                hint="use a target with the OCI referrers API, or `referrers: none`",
            )
        index = Manifest.parse(
            _serialise(_empty_index(list(pending.wanted.values()))), mt.OCI_INDEX
        )
        repository.put_manifest(index, name)
        log.debug("wrote %d referrer(s) to %s:%s", len(pending.wanted), repository, name)

    @staticmethod
    def _read(
        repository: Repository, name: str, subject: Digest
    ) -> tuple[dict[str, Any], Digest | None] | None:
        """The fallback index as a document to merge into, with its digest (None while the tag
        is absent); None when the registry serves the subject for the tag (case C26), which
        says nothing about what the tag holds."""
        existing = repository.get_manifest(name)
        if existing is None:
            return _empty_index([]), None
        if existing.digest == subject:
            return None
        if existing.kind != "index":
            raise ReferrersTagError(
                f"updating referrers tag {repository}:{name}: it holds a {existing.media_type}, "
                "not an index",
                hint="the tag name is reserved for the referrers tag schema; move that content",
            )
        document = dict(existing.document)
        entries = document.get("manifests")
        document["manifests"] = [e for e in entries if isinstance(e, dict)] if entries else []
        return document, existing.digest


def _empty_index(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}


def _entry_digest(entry: dict[str, Any]) -> Digest | None:
    try:
        return Digest.parse(str(entry.get("digest")))
    except RegtopoError:
        return None


def _serialise(document: dict[str, Any]) -> bytes:
    document.setdefault("schemaVersion", 2)
    document.setdefault("mediaType", mt.OCI_INDEX)
    return json.dumps(document, separators=(",", ":")).encode()
