"""How old content is, from the best source available, and which source that was.

Order: the provider's own push timestamp (a hook per provider, see `PROVIDER_INVENTORIES`), then
the image's `created` (the config blob's `created`, else the manifest's
`org.opencontainers.image.created` annotation). An index without its own annotation takes its
newest child's age, so an index is never older than the newest image in it.

A `created` before 1980 is not an age: reproducible builds (ko, Bazel, Nix, `SOURCE_DATE_EPOCH=0`)
write the Unix epoch there on purpose, and trusting it would make every such image look decades
old. Content of unknown age is never deleted by an age rule.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from regtopo.errors import RegtopoError
from regtopo.oci.digest import DigestVerifier
from regtopo.oci.manifest import Manifest
from regtopo.plan.observe import Observer
from regtopo.providers import provider_name
from regtopo.providers.ecr import EcrInventory
from regtopo.providers.harbor import HarborInventory
from regtopo.registry.store import Repository

if TYPE_CHECKING:
    from regtopo.oci.digest import Digest
    from regtopo.plan.session import Session

log = logging.getLogger(__name__)

CREATED_ANNOTATION = "org.opencontainers.image.created"
OLDEST_PLAUSIBLE = datetime(1980, 1, 1, tzinfo=UTC)
MAX_CONFIG_SIZE = 4 * 1024 * 1024
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _in_future(moment: datetime) -> bool:
    # A clock a day ahead is a wrong clock, not an age: such content is never judged old.
    return moment > datetime.now(UTC) + timedelta(days=1)


@dataclass(frozen=True)
class Age:
    """When content was made, and where that was read; `created` None means unknown."""

    created: datetime | None
    source: str

    def days(self, now: datetime) -> float | None:
        if self.created is None:
            return None
        return (now - self.created).total_seconds() / 86400


class ProviderInventory(Protocol):
    """What a registry product's own API knows that the OCI API does not.

    `pushed_at` answers the provider's timestamp for a manifest (ECR `imagePushedAt`, GAR
    `uploadTime`, ACR `lastUpdateTime`, Harbor `push_time`, GitLab `created_at`).
    `manifests` lists every manifest of a repository with its tags, untagged ones included;
    None where the provider cannot.
    """

    label: str

    def pushed_at(self, repository: str, digest: Digest) -> datetime | None: ...

    def manifests(self, repository: str) -> list[tuple[Digest, list[str]]] | None: ...


def _ecr(session: Session, registry: str) -> ProviderInventory | None:
    host = session.spec(registry).host
    return EcrInventory(registry, host) if host else None


def _harbor(session: Session, registry: str) -> ProviderInventory | None:
    # Harbor's API answers on the registry's own host, with the registry's own credentials.
    return (
        HarborInventory(registry, session.client(registry)) if session.spec(registry).host else None
    )


# Provider name (the registry's `provider`, or the one its host implies) -> the inventory for one
# registry. TODO(provider-inventory: GAR `uploadTime` through the Artifact Registry API, ACR
# `lastUpdateTime` through its manifest listing, and GitLab `created_at` through its REST API;
# each needs credentials for the product's API besides the registry's).
PROVIDER_INVENTORIES: dict[str, Callable[[Session, str], ProviderInventory | None]] = {
    "ecr": _ecr,
    "harbor": _harbor,
}


def provider_inventory(session: Session, registry: str) -> ProviderInventory | None:
    """The registry's inventory, one per session, so a provider lists a repository once a run."""
    spec = session.spec(registry)
    factory = PROVIDER_INVENTORIES.get(provider_name(spec.provider, spec.host) or "")
    if factory is None:
        return None
    return session.once(("provider inventory", registry), lambda: factory(session, registry))


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp as Go and most tools write it (nanoseconds, `Z`), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AgeResolver:
    """Ages of manifests in one run, each config blob read once."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self._config_created: dict[str, object] = {}
        self._lock = threading.Lock()

    def age(
        self,
        repository: Repository,
        manifest: Manifest,
        provider: ProviderInventory | None = None,
    ) -> Age:
        if provider is not None:
            pushed = provider.pushed_at(repository.name, manifest.digest)
            if pushed is not None:
                return Age(pushed, f"provider {provider.label}")

        if manifest.kind == "index":
            annotated = self._annotation(manifest)
            if annotated is not None:
                return annotated
            ages = []
            for child in manifest.children:
                child_manifest = self.observer.manifest(repository, child.digest)
                if child_manifest is not None:
                    ages.append(self.age(repository, child_manifest))
            known = [a for a in ages if a.created is not None]
            if not known:
                return Age(None, "unknown: no child of the index says when it was created")
            newest = max(known, key=lambda a: a.created or OLDEST_PLAUSIBLE)
            return Age(newest.created, f"newest child's {newest.source}")

        created = self._config(repository, manifest)
        if isinstance(created, datetime):
            return Age(created, "config created")
        annotated = self._annotation(manifest)
        if annotated is not None:
            return annotated
        if isinstance(created, str):
            return Age(None, f"unknown: {created}")
        return Age(None, f"unknown: no config created and no {CREATED_ANNOTATION} annotation")

    def _annotation(self, manifest: Manifest) -> Age | None:
        annotations = manifest.document.get("annotations") or {}
        created = parse_timestamp(annotations.get(CREATED_ANNOTATION))
        if created is None or created < OLDEST_PLAUSIBLE or _in_future(created):
            return None
        return Age(created, f"annotation {CREATED_ANNOTATION}")

    def _config(self, repository: Repository, manifest: Manifest) -> object:
        """The config's `created` as a datetime, a reason string when unusable, or None."""
        config = manifest.config
        if config is None or config.size > MAX_CONFIG_SIZE or config.size <= 2:
            return None
        key = str(config.digest)
        with self._lock:
            if key in self._config_created:
                return self._config_created[key]
        try:
            verifier = DigestVerifier(config.digest, config.size, what=f"config {key}")
            body = bytearray()
            with repository.open_blob(config) as chunks:
                for chunk in chunks:
                    verifier.update(chunk)
                    body.extend(chunk)
            verifier.finish()
            document = json.loads(bytes(body))
        except (RegtopoError, ValueError) as err:
            log.warning("reading the config of %s@%s: %s", repository, manifest.digest, err)
            return None
        result: object = None
        if isinstance(document, dict):
            created = parse_timestamp(document.get("created"))
            if created is not None and created < OLDEST_PLAUSIBLE:
                result = (
                    f"config created is {document.get('created')}, the placeholder "
                    "reproducible builds write"
                )
            elif created is not None and _in_future(created):
                result = f"config created is {document.get('created')}, in the future"
            else:
                result = created
        with self._lock:
            self._config_created[key] = result
        return result
