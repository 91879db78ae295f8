"""The executor: applies a plan's actions, checking each one's preconditions first.

An action planned against a source tag that has since moved, or a target tag that has since
changed, is refused as stale (Terraform refuses a stale plan the same way). Actions of one hop
run in parallel; a later hop starts when the earlier one is done, and an action whose upstream
failed is not attempted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

from regtopo.apply.copy import CopyEngine, CopyStats
from regtopo.errors import RegtopoError
from regtopo.oci.digest import Digest
from regtopo.plan.actions import Action, ActionKind, Plan
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


@dataclass
class ActionResult:
    action: Action
    outcome: Outcome
    message: str = ""
    seconds: float = 0.0
    stats: CopyStats = field(default_factory=CopyStats)

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.UNCHANGED)


@dataclass
class ApplyReport:
    results: list[ActionResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ActionResult]:
        return [r for r in self.results if not r.ok]

    def bytes_sent(self) -> int:
        return sum(r.stats.bytes_sent for r in self.results)


class StaleActionError(RegtopoError):
    """The registry no longer looks the way the plan saw it."""


class Executor:
    def __init__(
        self,
        session: Session,
        *,
        parallelism: int = 4,
        fail_fast: bool = False,
        on_result: Callable[[ActionResult], None] | None = None,
    ) -> None:
        self.session = session
        self.parallelism = parallelism
        self.fail_fast = fail_fast
        self.on_result = on_result
        self.engine = CopyEngine(blob_workers=max(4, parallelism))
        # Replications that opted into non-distributable layers get their own engine.
        self._engines = {False: self.engine}
        self._engines_lock = threading.Lock()
        self._include_non_distributable = {
            r.label for r in session.topology.replications if r.include_non_distributable
        }
        self._failed_targets: set[tuple[str, str, str]] = set()
        self._absent_targets: set[tuple[str, str]] = set()
        self._stop = False

    def apply(self, plan: Plan) -> ApplyReport:
        started = time.monotonic()
        report = ApplyReport()
        try:
            for hop in sorted({a.hop for a in plan.actions}):
                actions = [a for a in plan.actions if a.hop == hop and a.is_change]
                with ThreadPoolExecutor(self.parallelism) as pool:
                    for result in pool.map(self._run, actions):
                        report.results.append(result)
                        if not result.ok:
                            target = result.action.target
                            self._failed_targets.add(
                                (target.registry, target.repository, target.tag)
                            )
                            if self.fail_fast:
                                self._stop = True
                        if self.on_result:
                            self.on_result(result)
        finally:
            for engine in self._engines.values():
                engine.close()
        report.seconds = time.monotonic() - started
        return report

    def _run(self, action: Action) -> ActionResult:
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
        if (source.registry, source.repository, source.tag) in self._failed_targets:
            return ActionResult(
                action, Outcome.NOT_ATTEMPTED, f"its source {source} failed earlier in this apply"
            )
        started = time.monotonic()
        try:
            outcome, stats = self._execute(action)
            return ActionResult(action, outcome, seconds=time.monotonic() - started, stats=stats)
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

    def _engine_for(self, action: Action) -> CopyEngine:
        include = action.replication in self._include_non_distributable
        with self._engines_lock:
            if include not in self._engines:
                self._engines[include] = CopyEngine(
                    blob_workers=self.engine.blob_workers, include_non_distributable=True
                )
            return self._engines[include]

    def _execute(self, action: Action) -> tuple[Outcome, CopyStats]:
        assert action.content is not None
        digest = Digest.parse(action.content.digest)
        source = self.session.repository(action.source.registry, action.source.repository)
        target = self.session.repository(action.target.registry, action.target.repository)

        head = source.head_manifest(action.source.tag)
        if head is None or head.digest != digest:
            now = head.digest if head else "nothing"
            raise StaleActionError(
                f"{action.source} now points at {now}, the plan expected {digest}; plan again"
            )
        current = in_algorithm(
            target, action.target.tag, target.head_manifest(action.target.tag), digest.algorithm
        )
        if current is not None and current.digest == digest:
            return Outcome.UNCHANGED, CopyStats()
        before = str(current.digest) if current else None
        if before != action.target_digest_before:
            raise StaleActionError(
                f"{action.target} changed since the plan (now {before or 'absent'}, "
                f"planned from {action.target_digest_before or 'absent'}); plan again"
            )

        if action.kind is ActionKind.RETAG:
            manifest = target.get_manifest(str(digest), expected=digest)
            if manifest is not None:
                target.put_manifest(manifest, action.target.tag)
                return Outcome.DONE, CopyStats()
            # The content left the target since the plan: copy it after all.

        if action.create_repository:
            self.session.create_repository(action.target.registry, action.target.repository)
        stats = self._engine_for(action).copy(source, target, digest, [action.target.tag])
        return Outcome.DONE, stats
