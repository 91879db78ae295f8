"""Registry products whose control plane regtopo uses, inferred from the host or named.

Most registries create a repository on its first push. ECR does not: a push into a missing
repository answers `NAME_UNKNOWN`, so regtopo creates it first through the provider's API when
the registry says `create_repositories: true`.
"""

from __future__ import annotations

from regtopo.providers.ecr import HOST_PATTERN as ECR_HOST
from regtopo.providers.ecr import EcrProvider
from regtopo.topology.models import RegistrySpec

# Providers whose registries do not create repositories on push.
NO_CREATE_ON_PUSH = frozenset({"ecr"})


def provider_name(spec: RegistrySpec) -> str | None:
    """The registry's provider: `provider` when set, else inferred from the host."""
    if spec.provider:
        return spec.provider
    host = (spec.host or "").removeprefix("https://").removeprefix("http://").split("/")[0]
    if ECR_HOST.match(host.split(":")[0]):
        return "ecr"
    return None


def creates_on_push(spec: RegistrySpec) -> bool:
    return provider_name(spec) not in NO_CREATE_ON_PUSH


def repository_creator(spec: RegistrySpec) -> EcrProvider | None:
    """What can create repositories in this registry, or None."""
    if provider_name(spec) == "ecr" and spec.host:
        return EcrProvider(spec.host.removeprefix("https://").removeprefix("http://"))
    return None
