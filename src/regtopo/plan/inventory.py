"""What a repository holds, as retention needs it: tags, their manifests, untagged manifests.

The OCI distribution API lists tags but not untagged manifests; those come from an OCI layout's
`index.json` or from a provider's own API (see `regtopo.plan.ages.ProviderInventory`). Which
repositories a registry holds comes from `/v2/_catalog` where the registry serves it.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from regtopo.errors import RegtopoError
from regtopo.oci.attachments import is_attachment_tag
from regtopo.oci.digest import Digest
from regtopo.oci.reference import is_valid_repository
from regtopo.plan.ages import ProviderInventory
from regtopo.plan.session import Session
from regtopo.registry.errors import RegistryError
from regtopo.registry.layout import REF_NAME, LayoutRepository
from regtopo.registry.store import Repository

log = logging.getLogger(__name__)

HEAD_WORKERS = 8
_LITERAL = re.compile(r"^[a-z0-9_/-]+$")


@dataclass
class Inventory:
    """One repository: each tag's digest, attachment tags apart, and untagged manifests."""

    tags: dict[str, Digest] = field(default_factory=dict)
    attachment_tags: set[str] = field(default_factory=set)
    untagged: list[Digest] | None = None  # None: the backend cannot list them

    def digests(self) -> set[Digest]:
        return set(self.tags.values()) | set(self.untagged or [])

    def tags_of(self, digest: Digest) -> list[str]:
        return sorted(tag for tag, d in self.tags.items() if d == digest)


def read_inventory(repository: Repository, provider: ProviderInventory | None) -> Inventory:
    inventory = Inventory()
    listed = provider.manifests(repository.name) if provider is not None else None
    if listed is not None:
        for digest, tags in listed:
            for tag in tags:
                if is_attachment_tag(tag):
                    inventory.attachment_tags.add(tag)
                else:
                    inventory.tags[tag] = digest
        inventory.untagged = [digest for digest, tags in listed if not tags]
        return inventory

    names = repository.list_tags()
    inventory.attachment_tags = {t for t in names if is_attachment_tag(t)}
    plain = [t for t in names if t not in inventory.attachment_tags]
    with ThreadPoolExecutor(HEAD_WORKERS) as pool:
        heads = list(pool.map(repository.head_manifest, plain))
    inventory.tags = {t: h.digest for t, h in zip(plain, heads, strict=True) if h is not None}
    if isinstance(repository, LayoutRepository):
        inventory.untagged = layout_untagged(repository, set(inventory.tags.values()))
    return inventory


def layout_untagged(repository: LayoutRepository, tagged: set[Digest]) -> list[Digest]:
    """Manifests an OCI layout's `index.json` lists without any tag (attachment tags count)."""
    out = []
    entries = repository._entries()
    named = {str(e.get("digest")) for e in entries if (e.get("annotations") or {}).get(REF_NAME)}
    for entry in entries:
        if str(entry.get("digest")) in named:
            continue
        try:
            digest = Digest.parse(str(entry.get("digest")))
        except RegtopoError:
            continue
        if digest not in tagged and digest not in out:
            out.append(digest)
    return out


def is_literal(pattern: str) -> bool:
    """A repository pattern that can only match itself (no catalog needed to find it)."""
    return bool(_LITERAL.fullmatch(pattern))


def catalog(session: Session, registry: str) -> list[str] | None:
    """Every repository of a registry, or None where it cannot list them (GHCR, Docker Hub)."""
    spec = session.spec(registry)
    if spec.path is not None:
        root = Path(spec.path)
        if not root.is_absolute():
            root = session.base_dir / root
        found = [
            str(p.parent.relative_to(root)).replace("\\", "/") for p in root.rglob("oci-layout")
        ]
        return sorted(n for n in found if is_valid_repository(n))

    client = session.client(registry)
    names: list[str] = []
    url: str | None = client.url("/v2/_catalog")
    try:
        while url:
            response = client.request(
                "GET",
                url,
                scopes=frozenset({"registry:catalog:*"}),
                action=f"listing the repositories of {registry}",
                passthrough=(401, 403, 404, 405),
            )
            if response.status_code != 200:
                return None
            names.extend(str(n) for n in response.json().get("repositories") or [])
            from regtopo.registry.client import _next_link

            url = _next_link(response)
    except (RegistryError, ValueError) as err:
        log.warning("listing the repositories of %s: %s", registry, err)
        return None
    return sorted(set(names))
