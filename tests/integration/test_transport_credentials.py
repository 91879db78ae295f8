"""Credentials reach a real Basic-auth registry from the topology (`${env:}`) or docker's config."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from regtopo.plan.session import SecretError, Session
from regtopo.topology.models import Topology
from tests.support.registries import Registry, push_random_image

pytestmark = [pytest.mark.registry, pytest.mark.timeout(60)]


def session_for(registry: Registry, tmp_path: Path, credentials: dict[str, str] | None) -> Session:
    spec: dict[str, object] = {"host": f"http://{registry.host}"}
    if credentials:
        spec["credentials"] = credentials
    return Session(Topology.model_validate({"registries": {"reg": spec}}), tmp_path)


def test_topology_credentials_come_from_environment_variables(
    basic_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_random_image(basic_registry, "org/app", "v1")
    assert basic_registry.credentials is not None
    monkeypatch.setenv("REG_USER", basic_registry.credentials[0])
    monkeypatch.setenv("REG_PASS", basic_registry.credentials[1])
    session = session_for(
        basic_registry, tmp_path, {"username": "${env:REG_USER}", "password": "${env:REG_PASS}"}
    )
    try:
        assert session.repository("reg", "org/app").list_tags() == ["v1"]
    finally:
        session.close()


def test_unset_credential_variable_is_named_and_its_value_never_shown(
    basic_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REG_PASS_MISSING", raising=False)
    session = session_for(
        basic_registry, tmp_path, {"username": "u", "password": "${env:REG_PASS_MISSING}"}
    )
    with pytest.raises(SecretError) as caught:
        session.repository("reg", "org/app")
    assert caught.value.message == (
        "credentials of registry 'reg': environment variable REG_PASS_MISSING is not set"
    )


def test_docker_config_credentials_are_used_when_the_topology_has_none(
    basic_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_random_image(basic_registry, "org/app", "v1")
    assert basic_registry.credentials is not None
    auth = base64.b64encode("{}:{}".format(*basic_registry.credentials).encode()).decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {basic_registry.host: {"auth": auth}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    session = session_for(basic_registry, tmp_path, None)
    try:
        assert session.repository("reg", "org/app").list_tags() == ["v1"]
    finally:
        session.close()
