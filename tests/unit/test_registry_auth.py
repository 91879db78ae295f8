from __future__ import annotations

from regtopo.registry.auth import Credentials, merge_scopes, parse_challenges


def test_bearer_challenge_with_several_scopes_in_one_quoted_value() -> None:
    [challenge] = parse_challenges(
        [
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:dst/repo:pull,push repository:src/repo:pull"'
        ]
    )
    assert challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example/token"
    assert challenge.scopes == ("repository:dst/repo:pull,push", "repository:src/repo:pull")


def test_scheme_is_case_insensitive_and_errors_are_kept() -> None:
    [challenge] = parse_challenges(
        ['bearer realm="r",error="insufficient_scope",scope="repository:a:push"']
    )
    assert (challenge.scheme, challenge.params["error"]) == ("bearer", "insufficient_scope")


def test_basic_challenge_and_several_headers() -> None:
    challenges = parse_challenges(['Basic realm="local-basic"', 'Bearer realm="r",service="s"'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].params == {"realm": "local-basic"}


def test_credentials_never_show_their_secret_in_repr() -> None:
    credentials = Credentials("user", "s3cret-token")
    assert "s3cret" not in repr(credentials)
    assert credentials.basic_header() == "Basic dXNlcjpzM2NyZXQtdG9rZW4="


def test_scopes_for_one_resource_unite_their_actions_however_they_are_spelled() -> None:
    assert merge_scopes(
        [
            "repository:org/app:pull",
            "repository:org/app:push,pull",
            "repository:library/base:pull",
            "registry:catalog:*",
            "opaque",
        ]
    ) == {
        "repository:org/app:pull,push",
        "repository:library/base:pull",
        "registry:catalog:*",
        "opaque",
    }
