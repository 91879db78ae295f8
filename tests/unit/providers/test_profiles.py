"""Provider profiles: shipped for every product, inferred from hosts."""

from __future__ import annotations

import pytest

from regtopo.providers.profiles import AuthFlavour, infer, names, profile_for


def test_a_profile_ships_for_every_named_product() -> None:
    assert names() == [
        "acr", "artifactory", "distribution", "dockerhub", "ecr", "gar", "generic", "ghcr",
        "gitlab", "harbor", "nexus", "quay", "zot",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr"),
        ("europe-west1-docker.pkg.dev", "gar"),
        ("acme.azurecr.io", "acr"),
        ("ghcr.io", "ghcr"),
        ("docker.io", "dockerhub"),
        ("https://quay.io/", "quay"),
        ("http://127.0.0.1:5000", "distribution"),
        ("[::1]:5000", "distribution"),
        ("[::1]", "distribution"),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", "ecr"),
        ("acme.azurecr.io:443", "acr"),
        ("registry.example.com", "generic"),
        ("registry.example.com:8443", "generic"),
    ],
)
def test_provider_is_inferred_from_the_host(host: str, provider: str) -> None:
    assert infer(host).name == provider


def test_a_named_provider_overrides_the_host() -> None:
    profile = profile_for("registry.example.com", "harbor")

    assert profile is not None
    assert (profile.name, profile.auth, profile.capabilities.catalog) == (
        "harbor",
        AuthFlavour.BEARER_TOKEN,
        True,
    )


@pytest.mark.parametrize(
    ("provider", "host", "name"),
    [
        (None, "harbor.corp.example", "harbor"),
        (None, "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", "ecr"),
        (None, "public.ecr.aws", None),  # no account or region for ECR's control plane
        (None, "http://127.0.0.1:5000", "distribution"),
        ("harbor", "registry.corp.example", "harbor"),
        (None, None, None),
    ],
)
def test_a_provider_control_plane_is_chosen_by_the_profile_the_host_matches(
    provider: str | None, host: str | None, name: str | None
) -> None:
    """Retention inventories (ECR, Harbor) follow the same inference as the profiles."""
    from regtopo.providers import provider_name

    assert provider_name(provider, host) == name
