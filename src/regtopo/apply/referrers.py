"""Copying referrers after their subject, and making them discoverable at the target.

The plan lists each referrer under its subject, subjects first. Each referrer manifest is
copied by digest like any other tree (blobs, the empty `{}` config included, then the exact
bytes); a cosign attachment gets its `sha256-<hex>.sig|.att|.sbom` tag back. Then the target
must be able to find it: a registry with the referrers API indexes the `subject` itself (it
says so with `OCI-Subject`, or answers the API); any other gets the entry merged into the
subject's fallback tag, one write per subject, all subjects of an action checked together.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from regtopo.apply.copy import CopyEngine, CopyError, CopyStats
from regtopo.errors import RegtopoError
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.plan.actions import ReferrerRef
from regtopo.registry.referrers import FallbackTagWriter, ReferrerFinder
from regtopo.registry.store import Repository

log = logging.getLogger(__name__)


class ReferrerCopier:
    """Shared by the actions of one apply: it remembers which targets have the referrers API."""

    def __init__(self, engine: CopyEngine, finder: ReferrerFinder | None = None) -> None:
        self.engine = engine
        self.finder = finder or ReferrerFinder()
        self.writer = FallbackTagWriter()

    def copy(
        self,
        source: Repository,
        target: Repository,
        referrers: list[ReferrerRef],
        stats: CopyStats,
    ) -> None:
        """Copy `referrers` (in plan order: a subject before what refers to it)."""
        unrecorded: dict[Digest, list[Manifest]] = defaultdict(list)
        for ref in referrers:
            if ref.travels_with_index:
                continue
            digest = Digest.parse(ref.digest)
            subject = Digest.parse(ref.subject)
            try:
                manifest = source.get_manifest(ref.digest, expected=digest)
                if manifest is None:
                    raise CopyError(f"the source {source} no longer has it")
                pushed = self.engine.copy_manifest(source, target, manifest, stats)
                # The plan's count (`referrers_to_copy`) leaves out those inside the copied
                # content; one found present otherwise was there, or another copy brought it.
                counter = (
                    "referrers_copied"
                    if pushed
                    else "referrers_in_tree"
                    if ref.in_tree
                    else "referrers_present"
                )
                stats.add(**{counter: 1})
                if ref.tag is not None:
                    current = target.head_manifest(ref.tag)
                    if current is None or current.digest != digest:
                        target.put_manifest(manifest, ref.tag)
                    continue
                recorded = pushed is not None and pushed.subject_recorded
                named = manifest.subject is not None and manifest.subject.digest == subject
                if recorded or (named and self.finder.has_api(target, subject)):
                    continue
                unrecorded[subject].append(manifest)
            except RegtopoError as err:
                raise CopyError(
                    f"copying {ref.kind} {digest.short} (referrer of {subject.short}) to "
                    f"{target}: {err.message}",
                    hint=err.hint,
                ) from err

        if unrecorded:
            # Without the API the fallback tag is the only way a client finds them (§3 of the
            # referrers tag schema); merging keeps what other tools listed there. One batch:
            # the wait that checks no other writer undid ours is shared by all its subjects.
            self.writer.add_all(target, unrecorded)
