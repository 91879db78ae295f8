"""The executor: applies a plan's actions, checking each one's preconditions first.

An action planned against a source tag that has since moved, or a target tag that has since
changed, is refused as stale (Terraform refuses a stale plan the same way). Actions of one hop
run in parallel; a later hop starts when the earlier one is done, and an action whose upstream
failed is not attempted.

Deletions run last, after every copy, and only when the caller consents (`allow_delete`: the
`--allow-delete` flag, or a saved plan file, which was reviewed before it was applied). A `sync`
replication's deletions in a repository wait while one of its copies there did not complete:
they make room for what those copies bring, and must not run without them. Within
one registry they run one at a time, so a registry that refuses deletion over the OCI API
(405 `UNSUPPORTED`, as GHCR and Docker Hub do) is asked exactly once: its remaining deletions
are reported as skipped with the reason, and other registries carry on (cases.md C25).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum

from regtopo.apply.copy import CopyEngine, CopyStats
from regtopo.apply.delete import Deleter, StaleDeletionError
from regtopo.apply.referrers import ReferrerCopier
from regtopo.apply.signing import SignatureFollower, replication_of
from regtopo.errors import RegtopoError
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.plan.actions import Action, ActionKind, Plan, TagRef
from regtopo.plan.observe import in_algorithm
from regtopo.plan.session import Session
from regtopo.registry.errors import RepositoryNotFoundError

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    DONE = "done"
    UNCHANGED = "unchanged"  # already as planned when we got there
    FAILED = "failed"
    STALE = "stale"
    NOT_ATTEMPTED = "not-attempted"
    SKIPPED = "skipped"  # neither done nor failed: not allowed, or the registry cannot


# How an action that did not complete ended, as the actions depending on it say it.
_ENDED = {
    Outcome.FAILED: "failed earlier in this apply",
    Outcome.STALE: "was refused as stale earlier in this apply",
    Outcome.NOT_ATTEMPTED: "was not attempted in this apply",
}


@dataclass
class ActionResult:
    action: Action
    outcome: Outcome
    message: str = ""
    seconds: float = 0.0
    stats: CopyStats = field(default_factory=CopyStats)
    #: the signing policies checked again at the target after the copy
    verification: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.UNCHANGED, Outcome.SKIPPED)


@dataclass
class ApplyReport:
    results: list[ActionResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ActionResult]:
        return [r for r in self.results if not r.ok]

    @property
    def skipped(self) -> list[ActionResult]:
        return [r for r in self.results if r.outcome is Outcome.SKIPPED]

    def bytes_sent(self) -> int:
        return sum(r.stats.bytes_sent for r in self.results)

    def bytes_mounted(self) -> int:
        return sum(r.stats.bytes_mounted for r in self.results)


class StaleActionError(RegtopoError):
    """The registry no longer looks the way the plan saw it."""


class Executor:
    def __init__(
        self,
        session: Session,
        *,
        parallelism: int = 4,
        fail_fast: bool = False,
        allow_delete: bool = False,
        on_result: Callable[[ActionResult], None] | None = None,
    ) -> None:
        self.session = session
        self.allow_delete = allow_delete
        self.parallelism = parallelism
        self.fail_fast = fail_fast
        self.on_result = on_result
        self.engine = CopyEngine(blob_workers=max(4, parallelism))
        self.referrers = ReferrerCopier(self.engine)
        self.signatures = SignatureFollower(session, self.engine)
        # Replications that opted into non-distributable layers get their own engine.
        self._engines = {False: self.engine}
        self._engines_lock = threading.Lock()
        self._include_non_distributable = {
            r.label for r in session.topology.replications if r.include_non_distributable
        }
        # Target tags whose action did not complete, with how it ended: what reads them next
        # is not attempted, and says why.
        self._failed_targets: dict[tuple[str, str, str], Outcome] = {}
        self._absent_targets: set[tuple[str, str]] = set()
        self._stop = False
        self._copies: list[Action] = []
        self._deleter = Deleter(session)

    def apply(self, plan: Plan) -> ApplyReport:
        """Apply the plan's changes, hop by hop; every outcome is reported, none raised."""
        # A plan made in this process knows what the targets lack; one read from a file does not.
        self.engine.known_absent = plan._absent_at_plan
        started = time.monotonic()
        report = ApplyReport()
        try:
            copies = [a for a in plan.actions if a.is_change and a.kind is not ActionKind.DELETE]
            self._copies = copies
            for hop in sorted({a.hop for a in copies}):
                actions = [a for a in copies if a.hop == hop]
                with ThreadPoolExecutor(self.parallelism) as pool:
                    futures = {pool.submit(self._run, a): i for i, a in enumerate(actions)}
                    results: list[ActionResult | None] = [None] * len(actions)
                    # Settle results as they finish, not in plan order: --fail-fast stops the
                    # queued actions at once, and progress shows what really finished.
                    try:
                        for future in as_completed(futures):
                            result = future.result()
                            results[futures[future]] = result
                            self._settle(result)
                    except BaseException:
                        # Interrupted: no queued action starts. Those running finish their
                        # copy (threads cannot be stopped; a tag is written last either way).
                        self._stop = True
                        pool.shutdown(wait=False, cancel_futures=True)
                        raise
                report.results.extend(r for r in results if r is not None)

            deletions = [a for a in plan.actions if a.kind is ActionKind.DELETE]
            if deletions:
                self._delete_all(report, deletions)
        finally:
            for engine in self._engines.values():
                engine.close()
        report.seconds = time.monotonic() - started
        return report

    def _settle(self, result: ActionResult) -> None:
        if not result.ok:
            target = result.action.target
            self._failed_targets[(target.registry, target.repository, target.tag)] = result.outcome
        if self.on_result:
            self.on_result(result)

    def _record(self, report: ApplyReport, result: ActionResult) -> None:
        report.results.append(result)
        self._settle(result)
        if not result.ok and result.outcome is not Outcome.SKIPPED and self.fail_fast:
            self._stop = True

    def _delete_all(self, report: ApplyReport, deletions: list[Action]) -> None:
        """One worker per registry, deletions in order within it (see the module docstring)."""
        if not self.allow_delete:
            for action in deletions:
                self._record(
                    report,
                    ActionResult(
                        action,
                        Outcome.SKIPPED,
                        "deletions need consent: pass --allow-delete, or apply a saved plan file",
                    ),
                )
            return

        by_registry: dict[str, list[Action]] = {}
        for action in deletions:
            by_registry.setdefault(action.target.registry, []).append(action)

        def run_registry(actions: list[Action]) -> list[ActionResult]:
            return [self._run_delete(action) for action in actions]

        with ThreadPoolExecutor(max(1, min(self.parallelism, len(by_registry)))) as pool:
            for results in pool.map(run_registry, by_registry.values()):
                for result in results:
                    self._record(report, result)

    def _run_delete(self, action: Action) -> ActionResult:
        if self._stop:
            return ActionResult(action, Outcome.NOT_ATTEMPTED, "stopped after an earlier failure")
        unfinished = self._unfinished_sync(action)
        if unfinished is not None:
            # A sync deletes what its source no longer selects because new tags replace it;
            # deleting while a replacement did not arrive would leave the target short.
            return ActionResult(
                action,
                Outcome.NOT_ATTEMPTED,
                f"the same sync's copy to {unfinished} {_ENDED[self._outcome_of(unfinished)]}; "
                "the deletion waits for a run where the copies complete",
            )
        started = time.monotonic()
        try:
            outcome, message = self._deleter.delete(action)
            return ActionResult(action, Outcome(outcome), message, time.monotonic() - started)
        except (StaleActionError, StaleDeletionError) as err:
            return ActionResult(action, Outcome.STALE, err.message, time.monotonic() - started)
        except RegtopoError as err:
            return ActionResult(
                action, Outcome.FAILED, err.diagnostics(), time.monotonic() - started
            )

    def _unfinished_sync(self, deletion: Action) -> TagRef | None:
        """A copy of the deletion's own replication into the same repository that did not
        complete in this apply; None for retention rules, which replace nothing."""
        target = deletion.target
        for action in self._copies:
            if action.replication != deletion.replication:
                continue
            written = action.target
            if (written.registry, written.repository) != (target.registry, target.repository):
                continue
            if (written.registry, written.repository, written.tag) in self._failed_targets:
                return written
        return None

    def _outcome_of(self, target: TagRef) -> Outcome:
        return self._failed_targets[(target.registry, target.repository, target.tag)]

    def _run(self, action: Action) -> ActionResult:
        result = self._attempt(action)
        if self.fail_fast and result.outcome in (Outcome.FAILED, Outcome.STALE):
            # Set here, in the worker, so the next queued action already sees it.
            self._stop = True
        return result

    def _attempt(self, action: Action) -> ActionResult:
        source = action.source
        if self._stop:
            return ActionResult(action, Outcome.NOT_ATTEMPTED, "stopped after an earlier failure")
        target = action.target
        if (target.registry, target.repository) in self._absent_targets:
            return ActionResult(
                action,
                Outcome.NOT_ATTEMPTED,
                f"its target repository {target.registry}/{target.repository} does not exist "
                "(reported above)",
            )
        upstream = self._failed_targets.get((source.registry, source.repository, source.tag))
        if upstream is not None:
            return ActionResult(
                action, Outcome.NOT_ATTEMPTED, f"its source {source} {_ENDED[upstream]}"
            )
        started = time.monotonic()
        try:
            outcome, stats = self._execute(action)
            result = ActionResult(action, outcome, seconds=time.monotonic() - started, stats=stats)
            self._verify_at_target(result)
            result.seconds = time.monotonic() - started
            return result
        except StaleActionError as err:
            return ActionResult(action, Outcome.STALE, err.message, time.monotonic() - started)
        except RegtopoError as err:
            if isinstance(err, RepositoryNotFoundError) or isinstance(
                err.__cause__, RepositoryNotFoundError
            ):
                # One error per repository: the other actions into it are not attempted.
                self._absent_targets.add((target.registry, target.repository))
            return ActionResult(
                action, Outcome.FAILED, err.diagnostics(), time.monotonic() - started
            )

    def _verify_at_target(self, result: ActionResult) -> None:
        """Copy the signature material and check the replication's policies at the target."""
        action = result.action
        replication = replication_of(self.session, action)
        if replication is None or not replication.verify or action.content is None:
            return
        source = self.session.repository(action.source.registry, action.source.repository)
        target = self.session.repository(action.target.registry, action.target.repository)
        content = action.content
        # The bytes were copied as they were: the target serves the descriptor the plan saw.
        copied = Descriptor(content.media_type, Digest.parse(content.digest), content.size)
        checked = self.signatures.follow(replication, source, target, copied)
        result.stats.add(
            manifests_pushed=checked.stats.manifests_pushed, bytes_sent=checked.stats.bytes_sent
        )
        result.verification = [f"at the target: {r}" for r in checked.results] + checked.notes
        failed = checked.failed
        if failed and replication.enforce == "block":
            result.outcome = Outcome.FAILED
            result.message = "verifying at the target: " + "; ".join(str(r) for r in failed)

    def _engine_for(self, action: Action) -> CopyEngine:
        include = action.replication in self._include_non_distributable
        with self._engines_lock:
            if include not in self._engines:
                self._engines[include] = CopyEngine(
                    blob_workers=self.engine.blob_workers,
                    include_non_distributable=True,
                    known_absent=self.engine.known_absent,
                )
            return self._engines[include]

    def _execute(self, action: Action) -> tuple[Outcome, CopyStats]:
        assert action.content is not None
        digest = Digest.parse(action.content.digest)
        source = self.session.repository(action.source.registry, action.source.repository)
        target = self.session.repository(action.target.registry, action.target.repository)

        # A platform subset copies a new index; the source must still hold what it was built from.
        expected = Digest.parse(action.source_digest) if action.source_digest else digest
        head = source.head_manifest(action.source.tag)
        if head is None or head.digest != expected:
            now = head.digest if head else "nothing"
            raise StaleActionError(
                f"{action.source} now points at {now}, the plan expected {expected}; plan again"
            )
        current = in_algorithm(
            target, action.target.tag, target.head_manifest(action.target.tag), digest.algorithm
        )
        tagged = current is not None and current.digest == digest
        if tagged and not action.referrers_to_apply:
            return Outcome.UNCHANGED, CopyStats()
        before = str(current.digest) if current else None
        if not tagged and before != action.target_digest_before:
            raise StaleActionError(
                f"{action.target} changed since the plan (now {before or 'absent'}, "
                f"planned from {action.target_digest_before or 'absent'}); plan again"
            )

        stats = CopyStats()
        if not tagged:
            present = None
            if action.kind is ActionKind.RETAG:
                present = target.get_manifest(str(digest), expected=digest)
            if present is not None:
                target.put_manifest(present, action.target.tag)
            else:
                # A copy, or a retag whose content left the target since the plan.
                if action.create_repository:
                    self.session.create_repository(action.target.registry, action.target.repository)
                engine = self._engine_for(action)
                if action.rewritten_index is not None:
                    root = Manifest.parse(
                        action.rewritten_index.encode(), action.content.media_type, expected=digest
                    )
                    stats = engine.copy_root(source, target, root, [action.target.tag])
                else:
                    stats = engine.copy(source, target, digest, [action.target.tag])

        # Referrers come after their subject is complete and tagged.
        self.referrers.copy(source, target, action.referrers_to_apply, stats)
        return Outcome.DONE, stats
