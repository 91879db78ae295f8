from __future__ import annotations

import pytest

from regtopo.oci.digest import Digest, InvalidDigestError
from regtopo.oci.reference import (
    InvalidReferenceError,
    Reference,
    api_host,
    canonical_host,
    fallback_tag,
    is_valid_repository,
    is_valid_tag,
)


@pytest.mark.parametrize(
    ("text", "host", "repository", "tag"),
    [
        ("alpine", "docker.io", "library/alpine", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20"),
        ("docker.io/alpine", "docker.io", "library/alpine", None),
        ("index.docker.io/org/app:1", "docker.io", "org/app", "1"),
        ("registry-1.docker.io/org/app", "docker.io", "org/app", None),
        ("ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1"),
        ("localhost:5000/app", "localhost:5000", "app", None),
        ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000", "a/b/c", "t"),
    ],
)
def test_reference_parsing_normalises_docker_hub_once(
    text: str, host: str, repository: str, tag: str | None
) -> None:
    reference = Reference.parse(text)
    assert (reference.host, reference.repository, reference.tag) == (host, repository, tag)


def test_reference_with_digest_keeps_it() -> None:
    digest = "sha256:" + "a" * 64
    reference = Reference.parse(f"ghcr.io/org/app:v1@{digest}")
    assert reference.digest == Digest.parse(digest)
    assert str(reference) == f"ghcr.io/org/app:v1@{digest}"


@pytest.mark.parametrize(
    "text",
    [
        "ghcr.io/Org/App",
        "ghcr.io/org/app:-bad",
        "ghcr.io/org//app",
        "ghcr.io/org/app:v1\n",  # `$` alone matches before a final newline
        "ghcr.io/org/app\n:v1",
    ],
)
def test_reference_parsing_refuses_invalid_names(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)


def test_docker_hub_spellings_are_one_registry_with_one_api_host() -> None:
    spellings = [
        "",
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v1/",
    ]
    assert {canonical_host(s) for s in spellings} == {"docker.io"}
    assert {api_host(s) for s in spellings} == {"registry-1.docker.io"}


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("1.0", True),
        ("latest", True),
        ("_x", True),
        ("-beta", False),
        ("a" * 129, False),
        ("sha256:ab", False),
        ("v1\n", False),
    ],
)
def test_tag_grammar(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid


def test_fallback_tag_follows_the_referrers_tag_schema() -> None:
    encoded = "0123456789abcdef" * 4
    assert fallback_tag(Digest("sha256", encoded)) == f"sha256-{encoded}"
    assert fallback_tag(Digest("sha512", "a" * 128)) == "sha512-" + "a" * 64


def test_a_digest_or_repository_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidDigestError):
        Digest.parse("sha256:" + "a" * 64 + "\n")
    assert not is_valid_repository("org/app\n")
