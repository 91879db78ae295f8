"""Shared pytest fixtures: real registries on loopback and the shared fixture corpus.

Registries are function-scoped on purpose: each test gets empty storage and a fresh access log,
so request counts and listings never depend on test order. A 2.8 process starts in well under
a second, which keeps this affordable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.registries import (
    AuthMode,
    MakeRegistry,
    Registry,
    docker_registry_binary,
    skopeo_binary,
)

INSTALL_HINT = "install it with: apt-get install docker-registry skopeo"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip tests marked ``registry``/``skopeo`` when the binary they need is missing."""
    if item.get_closest_marker("registry") and docker_registry_binary() is None:
        pytest.skip(f"docker-registry not found on PATH; {INSTALL_HINT}")
    if item.get_closest_marker("skopeo") and skopeo_binary() is None:
        pytest.skip(f"skopeo not found on PATH; {INSTALL_HINT}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared/`` folder beside the repository (REGTOPO_SHARED_DIR overrides it).

    Resolved from this file, not the working directory: CI clones the repo into some other
    folder with a copy of ``shared/`` next to it.
    """
    override = os.environ.get("REGTOPO_SHARED_DIR")
    path = Path(override) if override else Path(__file__).resolve().parents[1].parent / "shared"
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared directory {path} is missing: put shared/ beside the repository "
            "or set REGTOPO_SHARED_DIR"
        )
    return path


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    """``shared/fixtures``: content made by other people's tools (regclient testrepo, cosign)."""
    path = shared_dir / "fixtures"
    if not path.is_dir():
        raise FileNotFoundError(f"fixtures directory {path} is missing")
    return path


@pytest.fixture
def make_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRegistry]:
    """Factory: start as many registries as the test needs; all are stopped at teardown.

    ``make_registry(auth="none" | "basic" | "token", delete_enabled=True, **kwargs)``; extra
    keyword arguments go to :class:`Registry` (``username``, ``password``, ``issuer``, ...).
    Each registry's directory (config, storage, ``registry.log``) stays under pytest's
    basetemp for post-mortems.
    """
    if docker_registry_binary() is None:
        pytest.skip(f"docker-registry not found on PATH; {INSTALL_HINT}")
    started: list[Registry] = []

    def factory(auth: AuthMode = "none", delete_enabled: bool = True, **kwargs: Any) -> Registry:
        workdir = tmp_path_factory.mktemp(f"registry-{auth}")
        registry = Registry(auth, delete_enabled=delete_enabled, workdir=workdir, **kwargs)
        started.append(registry)
        return registry

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for registry in reversed(started):
            try:
                registry.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def registry(make_registry: MakeRegistry) -> Registry:
    """An open registry (no auth), delete enabled."""
    return make_registry("none")


@pytest.fixture
def basic_registry(make_registry: MakeRegistry) -> Registry:
    """A registry behind htpasswd; ``.username``/``.password`` are its one user."""
    return make_registry("basic")


@pytest.fixture
def token_registry(make_registry: MakeRegistry) -> Registry:
    """A registry behind Bearer tokens; the issuer is ``.issuer`` (its knobs are live)."""
    return make_registry("token")


@pytest.fixture
def make_proxy() -> Iterator[Any]:
    """Factory: ``make_proxy(upstream_url, **kwargs)`` starts a :class:`tests.support.proxy.Proxy`
    (or ``make_proxy(upstream, cls=BlobStore)``); all are stopped at teardown."""
    from tests.support.proxy import Proxy

    started: list[Proxy] = []

    def factory(upstream: str | None, cls: type[Proxy] = Proxy, **kwargs: Any) -> Proxy:
        proxy = cls(upstream, **kwargs)
        started.append(proxy)
        return proxy

    try:
        yield factory
    finally:
        for proxy in reversed(started):
            proxy.stop()


@pytest.fixture
def ecr_api(make_proxy: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """ECR's control plane: moto's server behind a recording proxy, which boto3 reaches via
    AWS_ENDPOINT_URL_ECR (see tests/support/ecr.py). Skipped without boto3 and moto."""
    import httpx

    pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    from tests.support.ecr import REGION

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto's backends are per process: forget what an earlier test created
    httpx.post(f"http://{host}:{port}/moto-api/reset").raise_for_status()
    proxy = make_proxy(f"http://{host}:{port}")
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_ECR": proxy.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield proxy
    finally:
        server.stop()


@pytest.fixture
def clients() -> Iterator[Any]:
    """Factory: ``clients(host, credentials=(user, password), **client_options)`` opens a
    plain-HTTP :class:`regtopo.registry.client.RegistryClient`; all are closed at teardown."""
    from regtopo.registry.auth import Credentials
    from regtopo.registry.client import RegistryClient

    opened: list[RegistryClient] = []

    def open_client(host: str, credentials: tuple[str, str] | None = None, **kw: Any) -> Any:
        kw.setdefault("scheme", "http")
        client = RegistryClient(
            f"r{len(opened)}",
            host,
            credentials=Credentials(*credentials) if credentials else None,
            **kw,
        )
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()
