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

Writing (`FallbackTagWriter.add`) maintains the fallback tag at a target without the API:
read, merge (other writers' entries stay), write, read again. Distribution ignores `If-Match`,
so writers in this process are serialised per (registry, repository, subject), and an entry
that vanished because another process wrote at the same moment is merged back in.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
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

# How often a fallback write is retried when a concurrent writer keeps dropping our entries.
MERGE_ATTEMPTS = 5


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


def _writer_lock(repository: Repository, subject: Digest) -> threading.Lock:
    key = (repository.registry_id, repository.name, subject)
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.Lock())


class FallbackTagWriter:
    """Adds referrers to a target's `sha256-<hex>` index without losing anyone's entries."""

    def add(self, repository: Repository, subject: Digest, referrers: list[Manifest]) -> bool:
        """Merge `referrers` into the subject's fallback index; True when something was written."""
        name = fallback_tag(subject)
        wanted = {m.digest: fallback_entry(m) for m in referrers}
        wrote = False
        with _writer_lock(repository, subject):
            for attempt in range(MERGE_ATTEMPTS + 1):
                current = self._read(repository, name, subject)
                if current is None:
                    # The registry answers the tag with the subject itself (GitLab resolves
                    # `sha256-<hex>` as a digest): what the tag holds cannot be read back.
                    # Writing it is safe only while no one else holds entries there.
                    if name in repository.list_tags():
                        raise ReferrersTagError(
                            f"updating referrers tag {repository}:{name}: the registry answers "
                            "this tag with the subject itself, so the entries others stored "
                            "there cannot be read and merged",
                            hint="use a target with the OCI referrers API, or `referrers: none`",
                        )
                    entries = list(wanted.values())
                    index = Manifest.parse(_serialise(_empty_index(entries)), mt.OCI_INDEX)
                    repository.put_manifest(index, name)
                    log.debug("wrote %d referrer(s) to %s:%s", len(wanted), repository, name)
                    # No read-back is possible; the write's own digest check stands for it.
                    return True
                listed = {_entry_digest(e) for e in current["manifests"]}
                missing = [entry for digest, entry in wanted.items() if digest not in listed]
                if not missing:
                    return wrote
                if attempt == MERGE_ATTEMPTS:
                    break
                current["manifests"] = [*current["manifests"], *missing]
                index = Manifest.parse(_serialise(current), mt.OCI_INDEX)
                repository.put_manifest(index, name)
                wrote = True
                log.debug("added %d referrer(s) to %s:%s", len(missing), repository, name)
                # Another process may have written between our read and our write (registries
                # such as Distribution ignore If-Match); the next pass re-reads and re-merges.
        raise ReferrersTagError(
            f"updating referrers tag {repository}:{name}: entries kept disappearing after "
            f"{MERGE_ATTEMPTS} writes",
            hint="another tool is rewriting this tag at the same time; run again when it is done",
        )

    @staticmethod
    def _read(repository: Repository, name: str, subject: Digest) -> dict[str, Any] | None:
        """The fallback index as a document to merge into; None when the registry serves the
        subject for the tag (cases C26), which says nothing about what the tag holds."""
        existing = repository.get_manifest(name)
        if existing is None:
            return _empty_index([])
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
        return document


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
