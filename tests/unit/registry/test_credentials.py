"""Credentials found the way docker, skopeo and crane find them.

Each test builds its own config files and a fake `docker-credential-*` helper on PATH, and
points DOCKER_CONFIG / REGISTRY_AUTH_FILE / HOME at them, so the machine's own never leak in.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from regtopo.registry.credentials import CredentialsError, lookup


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


def docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, object]
) -> Path:
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory


def fake_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, answer: str, exit_code: int = 0
) -> Path:
    """`docker-credential-NAME`: records its argv and stdin, prints `answer`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / f"{name}.log"
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$1" >> {log}\n'
        f"cat >> {log}\n"
        f"echo >> {log}\n"
        f"cat <<'ANSWER'\n{answer}\nANSWER\n"
        f"exit {exit_code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_auths_entry_with_base64_auth_splits_at_the_first_colon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(tmp_path, monkeypatch, {"auths": {"ghcr.io": {"auth": b64("octo:pa:ss")}}})

    found = lookup("ghcr.io")

    assert found is not None and (found.username, found.password) == ("octo", "pa:ss")
    assert "pa:ss" not in repr(found)


def test_docker_hub_key_matches_every_spelling_of_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(
        tmp_path, monkeypatch, {"auths": {"https://index.docker.io/v1/": {"auth": b64("me:pat")}}}
    )

    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        found = lookup(host)
        assert found is not None and found.username == "me", host


def test_identitytoken_becomes_an_identity_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(
        tmp_path, monkeypatch, {"auths": {"myacr.azurecr.io": {"identitytoken": "refresh-me"}}}
    )

    found = lookup("myacr.azurecr.io")

    assert found is not None and found.identity_token == "refresh-me"


def test_cred_helper_for_the_host_is_run_with_the_server_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_helper(
        tmp_path,
        monkeypatch,
        "fake",
        json.dumps({"ServerURL": "x", "Username": "u1", "Secret": "s1"}),
    )
    docker_config(
        tmp_path,
        monkeypatch,
        {
            "credHelpers": {"europe-docker.pkg.dev": "fake"},
            "auths": {"europe-docker.pkg.dev": {"auth": b64("inline:ignored")}},
        },
    )

    found = lookup("europe-docker.pkg.dev")

    assert found is not None and (found.username, found.password) == ("u1", "s1")
    assert log.read_text().split() == ["get", "europe-docker.pkg.dev"]


def test_creds_store_answers_for_every_host_and_not_found_means_anonymous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_helper(tmp_path, monkeypatch, "store", "credentials not found in native keychain", 1)
    docker_config(
        tmp_path,
        monkeypatch,
        {"credsStore": "store", "auths": {"ghcr.io": {"auth": b64("inline:secret")}}},
    )

    assert lookup("ghcr.io") is None  # the store's answer wins over the inline entry (docker)
    assert lookup("docker.io") is None
    assert log.read_text().split() == ["get", "ghcr.io", "get", "https://index.docker.io/v1/"]


def test_helper_token_username_means_identity_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_helper(
        tmp_path, monkeypatch, "acr", json.dumps({"Username": "<token>", "Secret": "refresh"})
    )
    docker_config(tmp_path, monkeypatch, {"credHelpers": {"myacr.azurecr.io": "acr"}})

    found = lookup("myacr.azurecr.io")

    assert found is not None and found.identity_token == "refresh"


def test_failing_helper_is_an_error_that_never_shows_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_helper(tmp_path, monkeypatch, "broken", "oops the-secret-value", 3)
    docker_config(tmp_path, monkeypatch, {"credHelpers": {"ghcr.io": "broken"}})

    with pytest.raises(CredentialsError) as caught:
        lookup("ghcr.io")

    assert caught.value.message == "credential helper docker-credential-broken failed (exit 3)"


def test_missing_helper_says_which_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker_config(tmp_path, monkeypatch, {"credHelpers": {"ghcr.io": "nowhere"}})

    with pytest.raises(CredentialsError) as caught:
        lookup("ghcr.io")

    assert "docker-credential-nowhere is configured but not installed" in caught.value.message


def test_registry_auth_file_comes_before_the_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(tmp_path, monkeypatch, {"auths": {"quay.io": {"auth": b64("docker:one")}}})
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {"quay.io": {"auth": b64("podman:two")}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))

    found = lookup("quay.io")

    assert found is not None and (found.username, found.password) == ("podman", "two")


def test_default_docker_config_is_under_home(isolated: Path) -> None:
    (isolated / ".docker").mkdir()
    (isolated / ".docker" / "config.json").write_text(
        json.dumps({"auths": {"registry.example": {"username": "a", "password": "b"}}})
    )

    found = lookup("registry.example")

    assert found is not None and (found.username, found.password) == ("a", "b")
    assert lookup("other.example") is None
