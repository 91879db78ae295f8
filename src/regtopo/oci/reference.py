"""References (`registry/repository[:tag][@digest]`) and Docker Hub's naming rules.

Docker Hub has four spellings (the empty host, `docker.io`, `index.docker.io`,
`registry-1.docker.io`) and puts single-component names under `library/`. Every comparison
of registries or repositories in regtopo goes through `canonical_host` and
`canonical_repository`, here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from regtopo.errors import RegtopoError
from regtopo.oci.digest import Digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = frozenset({"", "docker.io", "index.docker.io", "registry-1.docker.io"})

REPOSITORY_PATTERN = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
TAG_PATTERN = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


class InvalidReferenceError(RegtopoError):
    """A reference, repository name or tag that the distribution spec does not allow."""


def is_valid_tag(tag: str) -> bool:
    return bool(TAG_PATTERN.fullmatch(tag))


def is_valid_repository(name: str) -> bool:
    return bool(REPOSITORY_PATTERN.fullmatch(name))


def canonical_host(host: str) -> str:
    """One spelling per registry: Docker Hub's aliases become `docker.io`."""
    host = host.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    host = host.removesuffix("/v1").removesuffix("/v2")
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def canonical_repository(host: str, repository: str) -> str:
    """Docker Hub keeps official images under `library/`; other registries take names as is."""
    if canonical_host(host) == DOCKER_HUB and "/" not in repository:
        return f"library/{repository}"
    return repository


def api_host(host: str) -> str:
    """The host that serves `/v2/` for a registry: Docker Hub's differs from its name."""
    return DOCKER_HUB_API if canonical_host(host) == DOCKER_HUB else host


def fallback_tag(digest: Digest) -> str:
    """The referrers tag schema: `<alg>-<encoded>`, truncated, other characters as `-`."""
    name = f"{digest.algorithm[:32]}-{digest.encoded[:64]}"
    return re.sub(r"[^a-zA-Z0-9._-]", "-", name)


@dataclass(frozen=True)
class Reference:
    """A parsed reference. `host` and `repository` are canonical."""

    host: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, value: str) -> Reference:
        rest = value
        digest: Digest | None = None
        if "@" in rest:
            rest, digest_text = rest.split("@", 1)
            digest = Digest.parse(digest_text)

        tag: str | None = None
        last_slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > last_slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not is_valid_tag(tag):
                raise InvalidReferenceError(f"parsing reference {value!r}: invalid tag {tag!r}")

        # The first component names a host only when it looks like one (docker's rule).
        first, _, remainder = rest.partition("/")
        if remainder and (
            "." in first or ":" in first or first == "localhost" or first != first.lower()
        ):
            host, repository = first, remainder
        else:
            host, repository = DOCKER_HUB, rest

        host = canonical_host(host)
        repository = canonical_repository(host, repository)
        if not is_valid_repository(repository):
            raise InvalidReferenceError(
                f"parsing reference {value!r}: invalid repository name {repository!r}",
                hint="repository names are lower-case components separated by '/'",
            )
        return cls(host, repository, tag, digest)

    def __str__(self) -> str:
        text = f"{self.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
