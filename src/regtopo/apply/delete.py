"""Carrying out a planned deletion, after checking that the repository still looks as planned.

A deletion removes a manifest by digest, and with it every tag on it. So before deleting, the
tags that point at the digest now must be exactly the planned ones (or fewer): a tag moved away,
or a new tag on the same content, makes the action stale. The subject goes first, then the
children of an index, then the referrers: if the subject cannot be deleted, its signatures and
SBOMs stay with it.

A registry that refuses deletion over the OCI API (405 `UNSUPPORTED`, or 400 on registries that
disable it) is remembered after the first refusal, and is not asked again in this run.
"""

from __future__ import annotations

import logging
import threading

from regtopo.errors import RegtopoError
from regtopo.oci.digest import Digest
from regtopo.plan.actions import Action
from regtopo.plan.session import Session
from regtopo.registry.errors import RegistryError, UnsupportedError
from regtopo.registry.store import Repository

log = logging.getLogger(__name__)


class StaleDeletionError(RegtopoError):
    """The repository changed since the plan: deleting now could remove what was not planned."""


class Deleter:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._refused: dict[str, str] = {}
        self._tags: dict[tuple[str, str], dict[str, Digest]] = {}
        self._lock = threading.Lock()

    def refused(self, registry: str) -> str | None:
        with self._lock:
            return self._refused.get(registry)

    def delete(self, action: Action) -> tuple[str, str]:
        """Delete what `action` plans; returns the outcome ("done", "unchanged", "skipped")."""
        deletion = action.deletion
        if deletion is None:
            raise RegtopoError(f"deleting {action.target}: the action carries no deletion")
        registry = action.target.registry
        refusal = self.refused(registry)
        if refusal is not None:
            return "skipped", refusal
        repository = self.session.repository(registry, action.target.repository)
        digest = Digest.parse(deletion.digest)

        now = self._current_tags(repository)
        on_digest = {tag for tag, d in now.items() if d == digest}
        for tag in deletion.tags:
            if tag in now and now[tag] != digest:
                raise StaleDeletionError(
                    f"{repository}:{tag} now points at {now[tag]}, the plan deletes {digest}; "
                    "plan again"
                )
        added = sorted(on_digest - set(deletion.tags))
        if added:
            raise StaleDeletionError(
                f"{repository}@{digest}: tag(s) {', '.join(added)} point at it since the plan; "
                "deleting it would remove them too; plan again"
            )

        try:
            repository.delete_manifest(digest)
        except UnsupportedError as err:
            # TODO(provider-delete: an adapter for GitHub Packages' package versions and Docker
            # Hub's tags API): those registries delete only through their own APIs. Until then
            # the deletion is skipped and reported, never retried.
            reason = (
                f"registry {registry!r} refuses deletion over the OCI API "
                f"({err.status} {','.join(err.codes) or 'no error code'}); deleting there needs "
                "the product's own API"
            )
            with self._lock:
                self._refused.setdefault(registry, reason)
            log.warning("%s; its remaining deletions are skipped", reason)
            return "skipped", reason
        except RegistryError as err:
            if err.status == 404:
                return "unchanged", "already gone"
            raise
        with self._lock:
            for tag in deletion.tags:
                self._tags.get((registry, repository.name), {}).pop(tag, None)

        # The subject is gone: now what only it needed.
        leftovers = []
        for extra in [*deletion.children, *(r.digest for r in deletion.referrers)]:
            try:
                repository.delete_manifest(Digest.parse(extra))
            except RegistryError as err:
                if err.status != 404:
                    leftovers.append(f"{extra}: {err.message}")
        if leftovers:
            raise RegtopoError(
                f"deleting {repository}@{digest}: deleted, but {len(leftovers)} of its children "
                f"or referrers remain:\n  " + "\n  ".join(leftovers)
            )
        extras = []
        for count, noun in (
            (len(deletion.children), "child manifest"),
            (len(deletion.referrers), "referrer"),
        ):
            if count:
                extras.append(f"{count} {noun}{'s' if count != 1 else ''}")
        return "done", f"with {' and '.join(extras)}" if extras else ""

    def _current_tags(self, repository: Repository) -> dict[str, Digest]:
        """Each tag's digest, read once per repository and apply."""
        key = (repository.registry_name, repository.name)
        with self._lock:
            if key in self._tags:
                return self._tags[key]
        found: dict[str, Digest] = {}
        for tag in repository.list_tags():
            head = repository.head_manifest(tag)
            if head is not None:
                found[tag] = head.digest
        with self._lock:
            self._tags[key] = found
        return found
