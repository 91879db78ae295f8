"""Provider profiles: what each registry product is known to do, one YAML file per product.

The profiles ship inside the package (`regtopo/providers/profiles/*.yaml`; the repository's
top-level `providers/` links there). A registry's provider is inferred from its host by the
profiles' `host_patterns` (shell-style globs, first specific match wins) and may be set in the
topology. The topology checks use the capabilities, for example to refuse listing the
repositories of a registry that serves no catalog; errors use the auth flavour (how to make
the product's credentials) and the limits (its known request quotas). Whether a registry
serves the referrers API is probed at run time, not read from here: versions differ.
"""

from __future__ import annotations

import fnmatch
from enum import StrEnum
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML

GENERIC = "generic"


class AuthFlavour(StrEnum):
    BASIC = "basic"  # HTTP basic on every request
    BEARER_TOKEN = "bearer-token"  # distribution token auth (401 challenge, token endpoint)
    AWS_ECR = "aws-ecr"  # basic with a token from ecr:GetAuthorizationToken
    GCP = "gcp"  # oauth2accesstoken + a Google access token
    AZURE_AD = "azure-ad"  # AAD refresh token exchanged for an ACR token


class Capabilities(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog: bool = Field(description="serves GET /v2/_catalog to list repositories")
    delete: bool | None = Field(description="deletes manifests through the API (None: unknown)")
    auto_create_repositories: bool = Field(description="a push creates a missing repository")
    max_repository_depth: int | None = Field(
        None, description="most path components a repository name may have (None: no limit)"
    )


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: str = Field("", description="the product's known request limits, said when rate limited")


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    host_patterns: tuple[str, ...] = ()
    auth: AuthFlavour
    capabilities: Capabilities
    limits: Limits = Limits()

    def matches(self, host: str) -> bool:
        """Whether a host (with or without its port) matches one of the patterns."""
        candidates = {host, _without_port(host)}
        return any(
            fnmatch.fnmatchcase(candidate, _literal_brackets(pattern))
            for pattern in self.host_patterns
            for candidate in candidates
        )

    @property
    def credentials_hint(self) -> str | None:
        """How this product's credentials are made, for a refused login; None when plain."""
        return _CREDENTIALS_HINTS.get(self.auth)


_CREDENTIALS_HINTS = {
    AuthFlavour.AWS_ECR: "ECR takes a 12-hour token from ecr:GetAuthorizationToken: configure "
    "docker-credential-ecr-login as a credHelper, or log in with `aws ecr get-login-password`",
    AuthFlavour.GCP: "Artifact Registry takes a Google access token: configure "
    "docker-credential-gcloud (`gcloud auth configure-docker HOST`), or use the user name "
    "oauth2accesstoken with `gcloud auth print-access-token` as the password",
    AuthFlavour.AZURE_AD: "ACR takes an Azure AD token: configure docker-credential-acr-env, or "
    "`az acr login --name REGISTRY`, or a service principal's id and secret",
}


def _without_port(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _literal_brackets(pattern: str) -> str:
    # An IPv6 literal's brackets are part of the host, not a glob character class.
    return pattern.replace("[", "[[]")


@cache
def profiles() -> dict[str, Profile]:
    """Every profile shipped with regtopo, by name."""
    yaml = YAML(typ="safe")
    found: dict[str, Profile] = {}
    folder = resources.files("regtopo.providers").joinpath("profiles")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            profile = Profile.model_validate(yaml.load(entry.read_text(encoding="utf-8")))
            found[profile.name] = profile
    return found


def names() -> list[str]:
    return sorted(profiles())


def bare_host(host: str) -> str:
    """The host part of a registry's `host` setting: no scheme, no trailing slash, lower case."""
    return host.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")


def infer(host: str) -> Profile:
    """The profile whose host patterns match `host`, or the generic one."""
    bare = bare_host(host)
    for profile in profiles().values():
        if profile.name != GENERIC and profile.matches(bare):
            return profile
    return profiles()[GENERIC]


def profile_for(host: str | None, provider: str | None) -> Profile | None:
    """The profile of a registry: the one named, or the one its host implies; None for a layout."""
    if provider is not None:
        return profiles()[provider]
    if host is None:
        return None
    return infer(host)
