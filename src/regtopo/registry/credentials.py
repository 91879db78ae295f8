"""Finding credentials the way docker, skopeo and crane find them.

Order for a host: the containers `auth.json` (`REGISTRY_AUTH_FILE`), then docker's
`config.json` (`DOCKER_CONFIG` or `~/.docker`): `credHelpers[host]`, then `credsStore`, then the
inline `auths` entry. A helper that answers "credentials not found" means anonymous.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.oci.reference import DOCKER_HUB, canonical_host
from regtopo.registry.auth import Credentials

log = logging.getLogger(__name__)

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


class CredentialsError(RegtopoError):
    """A credential store or helper failed (other than 'not found')."""


def _config_paths() -> list[Path]:
    paths = []
    auth_file = os.environ.get("REGISTRY_AUTH_FILE")
    if auth_file:
        paths.append(Path(auth_file))
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths.append(Path(runtime) / "containers" / "auth.json")
    docker_config = os.environ.get("DOCKER_CONFIG")
    paths.append(
        Path(docker_config) / "config.json"
        if docker_config
        else Path.home() / ".docker" / "config.json"
    )
    return paths


def _key_host(key: str) -> str:
    """Keys may be hostnames or URLs (`https://index.docker.io/v1/`); compare canonical hosts."""
    host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return canonical_host(host)


def lookup(host: str) -> Credentials | None:
    """Credentials for `host` from the first store that has an answer, or None (anonymous)."""
    wanted = canonical_host(host)
    for path in _config_paths():
        if not path.is_file():
            continue
        try:
            config: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise CredentialsError(f"reading credentials from {path}: {err}") from err

        helpers = config.get("credHelpers") or {}
        for key, helper in helpers.items():
            if _key_host(key) == wanted:
                return _with_origin(
                    _from_helper(str(helper), _server_address(key, wanted)),
                    f"credential helper docker-credential-{helper}",
                )
        if config.get("credsStore"):
            return _with_origin(
                _from_helper(str(config["credsStore"]), _server_address(None, wanted)),
                f"credential store docker-credential-{config['credsStore']}",
            )
        for key, entry in (config.get("auths") or {}).items():
            if _key_host(key) == wanted and isinstance(entry, dict):
                found = _from_entry(entry, path)
                if found:
                    return _with_origin(found, str(path))
    return None


def _with_origin(credentials: Credentials | None, origin: str) -> Credentials | None:
    if credentials is None:
        return None
    return dataclasses.replace(credentials, origin=origin)


def _server_address(key: str | None, host: str) -> str:
    if key:
        return key
    return DOCKER_HUB_KEY if host == DOCKER_HUB else host


def _from_entry(entry: dict[str, Any], path: Path) -> Credentials | None:
    username = entry.get("username") or ""
    password = entry.get("password") or ""
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"]).decode()
        except (ValueError, UnicodeDecodeError) as err:
            raise CredentialsError(
                f"reading credentials from {path}: 'auth' is not base64"
            ) from err
        username, _, password = decoded.partition(":")
    token = entry.get("identitytoken")
    if token:
        return Credentials(username or "<token>", password, identity_token=str(token))
    if username or password:
        return Credentials(username, password)
    return None


def _from_helper(helper: str, server: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        result = subprocess.run(
            [program, "get"], input=server, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as err:
        raise CredentialsError(
            f"credential helper {program} is configured but not installed",
            hint="install it or remove it from the docker config",
        ) from err
    except subprocess.TimeoutExpired as err:
        raise CredentialsError(f"credential helper {program} did not answer in 60 s") from err
    if result.returncode != 0:
        if "credentials not found" in (result.stdout + result.stderr).lower():
            return None
        # The helper's output may contain the secret; report only that it failed.
        raise CredentialsError(f"credential helper {program} failed (exit {result.returncode})")
    try:
        answer = json.loads(result.stdout)
    except ValueError as err:
        raise CredentialsError(f"credential helper {program} answered with invalid JSON") from err
    username, secret = str(answer.get("Username", "")), str(answer.get("Secret", ""))
    if username == "<token>":
        return Credentials(username, "", identity_token=secret)
    return Credentials(username, secret)
