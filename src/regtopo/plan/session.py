"""Opening the registries a topology names: one client per registry, shared by the run."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from regtopo.errors import RegtopoError
from regtopo.memo import PerKey
from regtopo.oci.reference import canonical_repository
from regtopo.providers import creates_on_push, repository_creator
from regtopo.registry.auth import Credentials
from regtopo.registry.client import ProductHints, RegistryClient, RemoteRepository, TLSSettings
from regtopo.registry.credentials import lookup
from regtopo.registry.layout import LayoutRepository, list_layout_repositories
from regtopo.registry.store import Repository
from regtopo.topology.models import ENV_REFERENCE, RegistrySpec, Topology

T = TypeVar("T")


class SecretError(RegtopoError):
    """A `${env:NAME}` reference whose variable is not set."""


def resolve_env(value: str, *, where: str) -> str:
    """Replace `${env:NAME}` references. The message names the variable, never a value."""

    def substitute(match: object) -> str:
        name = match.group(1)  # type: ignore[attr-defined]
        if name not in os.environ:
            raise SecretError(
                f"{where}: environment variable {name} is not set",
                hint=f"export {name} before running regtopo",
            )
        return os.environ[name]

    return ENV_REFERENCE.sub(substitute, value)


class Session:
    """The registries of one topology, opened lazily and closed together."""

    def __init__(self, topology: Topology, base_dir: Path) -> None:
        self.topology = topology
        self.base_dir = base_dir
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()
        self._created: set[tuple[str, str]] = set()
        self._once: PerKey[Hashable, Any] = PerKey()
        # Not `_lock`: what `once` makes may open a client, which takes `_lock`.

    def spec(self, registry: str) -> RegistrySpec:
        return self.topology.registries[registry]

    def once(self, key: Hashable, make: Callable[[], T]) -> T:
        """What `make` returns, made once per session (per run) for `key`, from any thread."""
        value: T = self._once.get(key, make)
        return value

    def repository(self, registry: str, name: str) -> Repository:
        spec = self.spec(registry)
        if spec.path is not None:
            return LayoutRepository(registry, self._root(spec.path), name)
        assert spec.host is not None
        # Docker Hub's `library/` rule lives in one place: hello-world is library/hello-world.
        return self.client(registry).repository(canonical_repository(spec.host, name))

    def list_repositories(self, registry: str) -> list[str]:
        """The repositories a registry has now: its catalog, or a layout's directories."""
        spec = self.spec(registry)
        if spec.path is not None:
            return list_layout_repositories(self._root(spec.path))
        return self.client(registry).list_repositories()

    def _root(self, value: str) -> Path:
        root = Path(value)
        return root if root.is_absolute() else self.base_dir / root

    def client(self, registry: str) -> RegistryClient:
        with self._lock:
            if registry not in self._clients:
                self._clients[registry] = self._open(registry, self.spec(registry))
            return self._clients[registry]

    def _open(self, name: str, spec: RegistrySpec) -> RegistryClient:
        assert spec.host is not None
        scheme, host = "https", spec.host
        if host.startswith("http://"):
            scheme, host = "http", host.removeprefix("http://")
        host = host.removeprefix("https://").rstrip("/")

        credentials: Credentials | None
        if spec.credentials is not None:
            where = f"credentials of registry {name!r}"
            credentials = Credentials(
                resolve_env(spec.credentials.username, where=where),
                resolve_env(spec.credentials.password, where=where),
                origin="the topology",
            )
        else:
            credentials = lookup(host)

        tls = spec.tls
        settings = TLSSettings(
            insecure=bool(tls and tls.insecure),
            ca_bundle=self._path(tls.ca_bundle) if tls else None,
            client_cert=self._path(tls.client_cert) if tls else None,
            client_key=self._path(tls.client_key) if tls else None,
        )
        return RegistryClient(
            name,
            host,
            scheme=scheme,
            credentials=credentials,
            tls=settings,
            max_connections=spec.max_connections,
            requests_per_second=spec.requests_per_second,
            product=_hints(spec),
        )

    def repository_absent(self, registry: str, name: str) -> bool:
        """True when the registry does not create repositories on push and `name` is missing."""
        spec = self.spec(registry)
        if spec.path is not None or creates_on_push(spec.provider, spec.host):
            return False
        repository = self.repository(registry, name)
        assert isinstance(repository, RemoteRepository)
        return not repository.exists()

    def create_repository(self, registry: str, name: str) -> bool:
        """Create a target repository through its provider, once; False if it existed."""
        spec = self.spec(registry)
        creator = repository_creator(spec.provider, spec.host)
        if creator is None:
            raise RegtopoError(
                f"registry {registry!r} has no provider that can create repositories"
            )
        with self._lock:
            if (registry, name) in self._created:
                return False
            created = creator.create_repository(name)
            self._created.add((registry, name))
        self.client(registry).absent_repositories.pop(name, None)
        return created

    def _path(self, value: str | None) -> str | None:
        if value is None:
            return None
        path = Path(value)
        return str(path if path.is_absolute() else self.base_dir / path)

    def request_count(self) -> int:
        return sum(c.request_count for c in self._clients.values())

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _hints(spec: RegistrySpec) -> ProductHints:
    profile = spec.profile
    if profile is None:
        return ProductHints()
    return ProductHints(
        title=profile.title,
        credentials=profile.credentials_hint,
        limits=profile.limits.rate or None,
    )
