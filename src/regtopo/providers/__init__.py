"""Registry products whose control plane regtopo uses, inferred from the host or named.

Most registries create a repository on its first push. ECR does not: a push into a missing
repository answers `NAME_UNKNOWN`, so regtopo creates it first through the provider's API when
the registry says `create_repositories: true`.
"""

from __future__ import annotations

from regtopo.providers.ecr import HOST_PATTERN as ECR_HOST
from regtopo.providers.ecr import EcrProvider
from regtopo.providers.profiles import GENERIC, profile_for

# Providers take the registry's `provider` and `host` as written in the topology, not its model:
# `topology/` imports provider profiles, so importing it back here would make a cycle.


def provider_name(provider: str | None, host: str | None) -> str | None:
    """The registry's provider: `provider` when set, else the profile its host matches.

    ECR's control plane needs the account and region from a private registry's host, so
    public.ecr.aws, which the profile also matches, has none here."""
    if provider:
        return provider
    profile = profile_for(host, None)
    if profile is None or profile.name == GENERIC:
        return None
    bare = (host or "").removeprefix("https://").removeprefix("http://").split("/")[0]
    if profile.name == "ecr" and not ECR_HOST.fullmatch(bare.split(":")[0]):
        return None
    return profile.name


def creates_on_push(provider: str | None, host: str | None) -> bool:
    """What the product's profile says (`auto_create_repositories`); unknown products do."""
    profile = profile_for(host, provider)
    return profile is None or profile.capabilities.auto_create_repositories


def repository_creator(provider: str | None, host: str | None) -> EcrProvider | None:
    """What can create repositories in this registry, or None."""
    if provider_name(provider, host) == "ecr" and host:
        return EcrProvider(host.removeprefix("https://").removeprefix("http://"))
    return None
