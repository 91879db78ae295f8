"""Retention: which manifests the topology's rules and `sync` replications delete, and why not.

Planned after the replications, so that everything the plan is about to read or write is known
and protected. For each repository a rule covers (or a `sync` replication writes):

1. Inventory: tags and their digests, attachment tags (fallback and cosign tags) apart, and
   untagged manifests where the backend can list them.
2. Every rule covering the repository marks tags and untagged manifests to keep, and
   candidates to delete. Keep wins over delete, whichever rule says either.
3. Protections: tags a replication reads or writes, digests the plan writes, and everything
   reachable from what stays (children of a kept index included) are never deleted.
4. A tag is removed by deleting its manifest by digest, so a manifest goes only when every tag
   on it goes; otherwise the deletion is reported as skipped with the tags that stay.
5. A deleted subject takes its referrers along; a deleted index takes the children nothing
   else reaches.
6. Ceilings per rule and per run; a plan over any of them is refused with the numbers.

How rules combine is documented for users in docs/retention.md.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from regtopo.errors import RegtopoError
from regtopo.oci.attachments import is_attachment_tag
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import Manifest
from regtopo.plan.actions import Action, ActionKind, Deletion, TagRef
from regtopo.plan.ages import Age, AgeResolver, ProviderInventory, provider_inventory
from regtopo.plan.inventory import Inventory, catalog, is_literal, read_inventory
from regtopo.plan.observe import Observer
from regtopo.plan.planner import PlannedTag, summarise
from regtopo.plan.retention_referrers import discover
from regtopo.plan.semver import version_key
from regtopo.plan.session import Session
from regtopo.registry.referrers import ReferrerFinder
from regtopo.registry.store import Repository
from regtopo.topology.loader import LoadedTopology
from regtopo.topology.models import Topology
from regtopo.topology.retention import (
    RetentionRule,
    RetentionSpec,
    format_duration,
    matches,
)
from regtopo.topology.selectors import in_scope

log = logging.getLogger(__name__)

RepoKey = tuple[str, str]
SHOWN_IN_REFUSAL = 10
AGE_WORKERS = 8


class RetentionLimitError(RegtopoError):
    """A plan would delete more than a rule or the run allows: refused, nothing deleted."""


@dataclass(frozen=True)
class Mark:
    """Why a tag or manifest is a deletion candidate: the rule (or sync replication) and clause."""

    label: str  # the action's `replication` field: `retention/<rule>` or the replication label
    rule: str  # for people: "retention rule 'ci'" or "sync replication 'x'"
    clause: str


@dataclass
class RepositoryState:
    registry: str
    name: str
    repository: Repository
    inventory: Inventory
    provider: ProviderInventory | None
    rules: list[RetentionRule] = field(default_factory=list)
    doomed_tags: dict[str, Mark] = field(default_factory=dict)
    doomed_untagged: dict[Digest, Mark] = field(default_factory=dict)
    kept_tags: dict[str, str] = field(default_factory=dict)
    kept_untagged: dict[Digest, str] = field(default_factory=dict)
    unlisted_untagged: list[RetentionRule] = field(default_factory=list)

    @property
    def key(self) -> RepoKey:
        return (self.registry, self.name)


class RetentionPlanner:
    def __init__(
        self,
        loaded: LoadedTopology,
        session: Session,
        observer: Observer,
        planned: dict[tuple[str, str, str], PlannedTag],
        *,
        topology: Topology | None = None,
        selected: set[tuple[str, str, str]] | None = None,
        reads: dict[tuple[str, str, str], str] | None = None,
        writes: dict[tuple[str, str, str], str] | None = None,
        planned_replications: set[str] | None = None,
        now: datetime | None = None,
        finder: ReferrerFinder | None = None,
    ) -> None:
        # The planner passes the topology with repository patterns expanded, and every
        # target tag its actions name (a selector's choice, blocked tags included).
        self.topology = topology or loaded.topology
        self.selected = selected or set()
        # The source tags the plan's actions read and the target tags they write, each with
        # its replication, and the replications the plan covered: for those, what they read
        # and write is known exactly.
        self.reads = reads or {}
        self.writes = writes or {}
        self.planned_replications = planned_replications or set()
        self.session = session
        self.observer = observer
        self.planned = planned
        self.now = now or datetime.now(UTC)
        self.ages = AgeResolver(observer)
        self.finder = finder or ReferrerFinder()
        self.spec = self.topology.retention or RetentionSpec()
        self._states: dict[RepoKey, RepositoryState] = {}
        self._age_cache: dict[tuple[RepoKey, Digest], Age] = {}
        self._catalogs: dict[str, list[str] | None] = {}
        self._notes: list[Action] = []

    # 1. inventory

    def _state(self, registry: str, name: str) -> RepositoryState:
        key = (registry, name)
        if key not in self._states:
            repository = self.session.repository(registry, name)
            provider = provider_inventory(self.session, registry)
            inventory = read_inventory(repository, provider)
            # Referrer discovery asks which fallback and cosign tags exist: this list says.
            self.finder.remember_tags(repository, [*inventory.tags, *inventory.attachment_tags])
            self._states[key] = RepositoryState(registry, name, repository, inventory, provider)
        return self._states[key]

    def _manifest(self, state: RepositoryState, digest: Digest) -> Manifest | None:
        return self.observer.manifest(state.repository, digest)

    def _age(self, state: RepositoryState, digest: Digest) -> Age:
        key = (state.key, digest)
        if key not in self._age_cache:
            manifest = self._manifest(state, digest)
            self._age_cache[key] = (
                self.ages.age(state.repository, manifest, state.provider)
                if manifest is not None
                else Age(None, "unknown: the manifest vanished while planning")
            )
        return self._age_cache[key]

    def _prefetch_ages(self, state: RepositoryState) -> None:
        """Read every manifest's age of a repository at once: one config blob each, in parallel."""
        digests = [d for d in state.inventory.digests() if (state.key, d) not in self._age_cache]
        with ThreadPoolExecutor(AGE_WORKERS) as pool:
            list(pool.map(lambda digest: self._age(state, digest), digests))

    def _older_than(self, state: RepositoryState, digest: Digest, seconds: float) -> bool:
        created = self._age(state, digest).created
        return created is not None and (self.now - created).total_seconds() > seconds

    def _catalog(self, registry: str) -> list[str] | None:
        if registry not in self._catalogs:
            self._catalogs[registry] = catalog(self.session, registry)
        return self._catalogs[registry]

    def _repositories(self, rule: RetentionRule) -> list[str]:
        """Repositories of the rule's registry its patterns match: literals, catalog, topology."""
        names = {p for p in rule.repositories if is_literal(p)}
        for replication in self.topology.replications:
            places = [(replication.source.registry, replication.source.repository)]
            places += [(t.registry, t.repository) for t in replication.targets]
            names |= {repository for registry, repository in places if registry == rule.registry}
        if not all(is_literal(p) for p in rule.repositories):
            listed = self._catalog(rule.registry)
            if listed is None:
                log.warning(
                    "registry %s lists no repositories; retention rule %s covers only the "
                    "repositories named in the topology",
                    rule.registry,
                    rule.name,
                )
            names |= set(listed or [])
        return sorted(n for n in names if matches(rule.repositories, n))

    # the whole run

    def plan(self, only: set[str] | None = None) -> list[Action]:
        for replication in self.topology.replications:
            if replication.mode == "sync" and (only is None or replication.label in only):
                self._mark_sync(replication.label)

        # A plan limited to named replications (`--target`) leaves retention rules out.
        if only is None:
            for rule in self.spec.rules:
                for name in self._repositories(rule):
                    state = self._state(rule.registry, name)
                    state.rules.append(rule)
                    self._mark_rule(state, rule)

        actions: list[Action] = list(self._notes)
        for key in sorted(self._states):
            actions.extend(self._decide(self._states[key]))
        self._check_ceilings(actions)
        return [self._unless_refused(action) for action in actions]

    def _unless_refused(self, action: Action) -> Action:
        """A deletion on a registry whose product refuses API deletes is shown as skipped in
        the plan already (cases C25); apply learns the same of registries not profiled."""
        if action.kind is not ActionKind.DELETE:
            return action
        spec = self.topology.registries.get(action.target.registry)
        profile = spec.profile if spec is not None else None
        if profile is None or profile.capabilities.delete is not False:
            return action
        return action.model_copy(
            update={
                "kind": ActionKind.SKIPPED,
                "reason": f"registry {action.target.registry!r} ({profile.title}) refuses "
                "deletion over the OCI API; deleting there needs the product's own API",
            }
        )

    # 2. marks

    def _mark_sync(self, label: str) -> None:
        replication = next(r for r in self.topology.replications if r.label == label)
        source = replication.source
        source_repository = self.session.repository(source.registry, source.repository)
        listed = source_repository.list_tags()
        source_tags = set(listed) | {
            tag
            for (registry, name, tag) in self.planned
            if (registry, name) == (source.registry, source.repository)
        }
        if not source_tags:
            # An empty or missing source is far likelier a mistake (a typo, a wiped repository,
            # a registry answering 404) than a wish to empty every target.
            where = TagRef(registry=source.registry, repository=source.repository, tag="")
            self._notes.append(
                Action(
                    kind=ActionKind.SKIPPED,
                    replication=label,
                    source=where,
                    target=where,
                    reason=f"sync deletions not planned: {source} has no tags at all, which "
                    "would delete every selected tag at the targets",
                )
            )
            return
        exact = replication.exact_tags
        if exact is not None:
            why = f"{source} no longer has this tag"
        else:
            why = f"the selector matches this tag but no longer selects it at {source}"
        mark = Mark(label, f"sync replication '{label}'", why)
        for target in replication.targets:
            state = self._state(target.registry, target.repository)
            if exact is not None:
                # Exact names: only those names are this replication's to remove.
                doomed = [t for t in exact if t in state.inventory.tags and t not in source_tags]
            else:
                # A selector speaks only for the tags it matches: a tag someone else pushed
                # to the target that it never matched is not its to delete.
                doomed = [
                    t
                    for t in in_scope(replication.tags, state.inventory.tags)
                    if (target.registry, target.repository, t) not in self.selected
                    and not is_attachment_tag(t)
                ]
            for tag in doomed:
                state.doomed_tags.setdefault(tag, mark)

    def _mark_rule(self, state: RepositoryState, rule: RetentionRule) -> None:
        tags = state.inventory.tags
        self._prefetch_ages(state)
        label, who = f"retention/{rule.name}", f"retention rule '{rule.name}'"
        selection = [t for t in tags if matches(rule.delete.tags, t)] if rule.delete.tags else []
        counted = selection if rule.delete.tags else list(tags)

        for tag in tags:
            if matches(rule.keep.tags, tag):
                state.kept_tags.setdefault(tag, f"{who} keeps tags matching {rule.keep.tags}")

        if rule.keep.latest is not None:
            if rule.keep.by == "semver":
                versions = [(version_key(t), t) for t in counted]
                ordered = [t for k, t in sorted((v for v in versions if v[0]), reverse=True)]
            else:
                # Newest first; content of unknown age counts as newest (never deleted by age).
                def created(tag: str) -> datetime:
                    return self._age(state, tags[tag]).created or datetime.max.replace(tzinfo=UTC)

                ordered = sorted(counted, key=lambda t: (created(t), t), reverse=True)
            for tag in ordered[: rule.keep.latest]:
                state.kept_tags.setdefault(
                    tag, f"{who} keeps the latest {rule.keep.latest} by {rule.keep.by}"
                )

        if rule.keep.newer_than is not None:
            limit = rule.keep.newer_than.total_seconds()
            why = f"{who} keeps anything newer than {format_duration(rule.keep.newer_than)}"
            for tag, digest in tags.items():
                if not self._older_than(state, digest, limit):
                    state.kept_tags.setdefault(tag, why)
            for digest in state.inventory.untagged or []:
                if not self._older_than(state, digest, limit):
                    state.kept_untagged.setdefault(digest, why)

        if rule.delete.tags and rule.delete.older_than is not None:
            limit = rule.delete.older_than.total_seconds()
            for tag in selection:
                if self._older_than(state, tags[tag], limit):
                    clause = (
                        f"tag matches {rule.delete.tags} and is older than "
                        f"{format_duration(rule.delete.older_than)}"
                    )
                    state.doomed_tags.setdefault(tag, Mark(label, who, clause))

        if rule.delete.untagged_older_than is not None:
            if state.inventory.untagged is None:
                state.unlisted_untagged.append(rule)
                return
            limit = rule.delete.untagged_older_than.total_seconds()
            clause = f"untagged and older than {format_duration(rule.delete.untagged_older_than)}"
            # A provider lists the children of an index untagged (ECR does): they stay or go
            # with their index, like referrers with their subject, and are not judged alone.
            tagged = self._reach(state, [(d, "") for d in state.inventory.tags.values()])
            for digest in state.inventory.untagged:
                manifest = self._manifest(state, digest)
                if manifest is None or manifest.subject is not None or digest in tagged:
                    continue
                if self._older_than(state, digest, limit):
                    state.doomed_untagged.setdefault(digest, Mark(label, who, clause))

    # 3. protections

    def _tag_protection(self, state: RepositoryState, tag: str, mark: Mark) -> str | None:
        if tag in state.kept_tags:
            return state.kept_tags[tag]
        reader = self.reads.get((state.registry, state.name, tag))
        if reader is not None and reader != mark.label:
            return f"replication '{reader}' reads this tag"
        writer = self.writes.get((state.registry, state.name, tag))
        if writer is not None and writer != mark.label:
            return f"replication '{writer}' writes this tag"
        for replication in self.topology.replications:
            # A replication this plan did not cover (`--target` left it out) may still read or
            # write the tag on its next run: whatever its selector matches stays.
            if replication.label == mark.label or replication.label in self.planned_replications:
                continue
            if not in_scope(replication.tags, [tag]):
                continue
            if (replication.source.registry, replication.source.repository) == state.key:
                return f"replication '{replication.label}' reads tags like this one"
            for target in replication.targets:
                if (target.registry, target.repository) == state.key:
                    return f"replication '{replication.label}' writes tags like this one"
        return None

    def _reachable(self, state: RepositoryState, staying: set[str]) -> dict[Digest, str]:
        """Every digest that what stays reaches, with the first thing that reaches it."""
        roots: list[tuple[Digest, str]] = [
            (state.inventory.tags[t], f"tag '{t}' stays") for t in sorted(staying)
        ]
        roots += [(d, "it is kept untagged") for d in state.kept_untagged]
        roots += [
            (planned.digest, f"this plan writes it to tag '{tag}'")
            # Sorted: tags are planned in parallel, and the reason must not vary between runs.
            for (registry, name, tag), planned in sorted(self.planned.items(), key=lambda i: i[0])
            if (registry, name) == state.key
        ]
        return self._reach(state, roots)

    def _reach(self, state: RepositoryState, roots: list[tuple[Digest, str]]) -> dict[Digest, str]:
        reached: dict[Digest, str] = {}
        stack = list(reversed(roots))
        while stack:
            digest, why = stack.pop()
            if digest in reached:
                continue
            reached[digest] = why
            manifest = self._manifest(state, digest)
            if manifest is not None:
                for child in manifest.children:
                    stack.append((child.digest, f"it is a child of a kept index ({why})"))
        return reached

    # 4. and 5. decisions

    def _decide(self, state: RepositoryState) -> list[Action]:
        actions: list[Action] = []
        tags = state.inventory.tags
        going: dict[str, Mark] = {}
        for tag, mark in sorted(state.doomed_tags.items()):
            why = self._tag_protection(state, tag, mark)
            if why is None:
                going[tag] = mark
            elif tag in state.kept_tags:
                # The user's own keep rules: intended, so not worth a line in the plan.
                log.info("keeping %s/%s:%s: %s", state.registry, state.name, tag, why)
            else:
                actions.append(self._skipped(state, tags[tag], [tag], mark, why))
        staying = set(tags) - set(going)
        reached = self._reachable(state, staying)

        by_digest: dict[Digest, list[str]] = defaultdict(list)
        for tag in going:
            by_digest[tags[tag]].append(tag)
        candidates: list[tuple[Digest, list[str], Mark]] = [
            (digest, sorted(names), going[sorted(names)[0]]) for digest, names in by_digest.items()
        ]
        candidates += [
            (digest, [], mark)
            for digest, mark in state.doomed_untagged.items()
            if digest not in state.kept_untagged
        ]

        deleting = {digest for digest, names, _ in candidates}
        claimed: set[Digest] = set()
        for digest, names, mark in sorted(candidates, key=lambda c: (c[1], str(c[0]))):
            remaining = state.inventory.tags_of(digest)
            sharing = [t for t in remaining if t not in names]
            if sharing:
                actions.append(
                    self._skipped(
                        state,
                        digest,
                        names,
                        mark,
                        f"tag(s) {', '.join(sharing)} stay on the same manifest; a tag is "
                        "removed by deleting its manifest by digest, so these tags stay too "
                        "(see docs/retention.md)",
                    )
                )
                continue
            if digest in reached:
                actions.append(
                    self._skipped(state, digest, names, mark, f"kept: {reached[digest]}")
                )
                continue
            actions.append(self._delete(state, digest, names, mark, reached, deleting, claimed))

        # Untagged manifests come from a provider inventory (ECR, Harbor) or a layout's
        # index.json. TODO(provider-inventory: GAR, ACR and GitLab inventories in
        # regtopo.plan.ages.PROVIDER_INVENTORIES would list them on those products too).
        for rule in state.unlisted_untagged:
            where = TagRef(registry=state.registry, repository=state.name, tag="")
            if state.provider is not None:
                why = (
                    f"were not listed: the {state.provider.label} API failed (see the warning), "
                    "and the OCI distribution API cannot list them"
                )
            else:
                why = (
                    "cannot be listed over the OCI distribution API; the product's own API "
                    "can list them"
                )
            actions.append(
                Action(
                    kind=ActionKind.SKIPPED,
                    replication=f"retention/{rule.name}",
                    source=where,
                    target=where,
                    reason=f"retention rule '{rule.name}': untagged manifests of registry "
                    f"{state.registry!r} {why}",
                )
            )
        return actions

    def _deletion(
        self, state: RepositoryState, digest: Digest, names: list[str], mark: Mark
    ) -> Deletion:
        age = self._age(state, digest)
        days = age.days(self.now)
        return Deletion(
            rule=f"{mark.rule}: {mark.clause}",
            digest=str(digest),
            tags=names,
            created=age.created.isoformat(timespec="seconds") if age.created else None,
            age_days=round(days, 1) if days is not None else None,
            age_source=age.source,
        )

    def _skipped(
        self, state: RepositoryState, digest: Digest, names: list[str], mark: Mark, reason: str
    ) -> Action:
        manifest = self._manifest(state, digest)
        ref = TagRef(registry=state.registry, repository=state.name, tag=names[0] if names else "")
        return Action(
            kind=ActionKind.SKIPPED,
            replication=mark.label,
            source=ref,
            target=ref,
            content=summarise(manifest) if manifest is not None else None,
            reason=f"not deleted: {reason}",
            deletion=self._deletion(state, digest, names, mark),
        )

    def _delete(
        self,
        state: RepositoryState,
        digest: Digest,
        names: list[str],
        mark: Mark,
        reached: dict[Digest, str],
        deleting: set[Digest],
        claimed: set[Digest],
    ) -> Action:
        manifest = self._manifest(state, digest)
        deletion = self._deletion(state, digest, names, mark)
        claimed.add(digest)
        if manifest is not None:
            for child in manifest.children:
                if child.digest not in reached and child.digest not in deleting | claimed:
                    claimed.add(child.digest)
                    deletion.children.append(str(child.digest))
            for referrer in discover(self.finder, state.repository, manifest, self.observer):
                found = Digest.parse(referrer.digest)
                if found not in reached and found not in deleting | claimed:
                    claimed.add(found)
                    deletion.referrers.append(referrer)
        ref = TagRef(registry=state.registry, repository=state.name, tag=names[0] if names else "")
        source = ref
        replication = next((r for r in self.topology.replications if r.label == mark.label), None)
        if replication is not None and names:
            source = TagRef(
                registry=replication.source.registry,
                repository=replication.source.repository,
                tag=names[0],
            )
        return Action(
            kind=ActionKind.DELETE,
            replication=mark.label,
            source=source,
            target=ref,
            content=summarise(manifest) if manifest is not None else None,
            target_digest_before=str(digest),
            reason=mark.clause,
            deletion=deletion,
        )

    # 6. ceilings

    def _check_ceilings(self, actions: list[Action]) -> None:
        deletes = [a for a in actions if a.kind is ActionKind.DELETE]
        problems: list[str] = []

        def percent(count: int, key: RepoKey) -> tuple[int, float]:
            # The repository as it will be: what it holds plus what this plan copies into it.
            # A sync that replaces the one old tag with new ones is not an emptying.
            arriving = {p.digest for (r, n, _), p in self.planned.items() if (r, n) == key}
            total = max(len(set(self._states[key].inventory.digests()) | arriving), 1)
            return total, 100 * count / total

        per_repository: dict[RepoKey, list[Action]] = defaultdict(list)
        for action in deletes:
            per_repository[(action.target.registry, action.target.repository)].append(action)

        for rule in self.spec.rules:
            mine = [a for a in deletes if a.replication == f"retention/{rule.name}"]
            if rule.max_deletes is not None and len(mine) > rule.max_deletes:
                problems.append(
                    f"retention rule '{rule.name}' would delete {len(mine)} manifests, "
                    f"over its max_deletes of {rule.max_deletes}"
                )
            if rule.max_percent is not None:
                for key, group in sorted(per_repository.items()):
                    count = sum(1 for a in group if a in mine)
                    total, share = percent(count, key)
                    if count and share > rule.max_percent:
                        problems.append(
                            f"retention rule '{rule.name}' would delete {count} of {total} "
                            f"manifests in {key[0]}/{key[1]} ({share:.0f}%), over its "
                            f"max_percent of {rule.max_percent:g}"
                        )

        if len(deletes) > self.spec.max_deletes:
            problems.append(
                f"this run would delete {len(deletes)} manifests, over the run's max_deletes "
                f"of {self.spec.max_deletes}"
            )
        for key, group in sorted(per_repository.items()):
            total, share = percent(len(group), key)
            if share > self.spec.max_percent:
                problems.append(
                    f"this run would delete {len(group)} of {total} manifests in "
                    f"{key[0]}/{key[1]} ({share:.0f}%), over the run's max_percent of "
                    f"{self.spec.max_percent:g}"
                )

        if problems:
            shown = "\n".join(
                f"  would delete {a.target.registry}/{a.target.repository}@"
                f"{a.deletion.digest if a.deletion else '?'} "
                f"{','.join(a.deletion.tags) if a.deletion and a.deletion.tags else '(untagged)'}"
                f" ({a.deletion.rule if a.deletion else ''})"
                for a in deletes[:SHOWN_IN_REFUSAL]
            )
            more = len(deletes) - SHOWN_IN_REFUSAL
            raise RetentionLimitError(
                "refusing the plan: "
                + "; ".join(problems)
                + "\n"
                + shown
                + (f"\n  ... and {more} more" if more > 0 else ""),
                hint="check the rules (a pattern that matches too much?) and the sources (did a "
                "sync source lose its tags?); raise max_deletes or max_percent in the topology's "
                "retention block only if these deletions are intended",
            )
