"""Retry-After parsing and WWW-Authenticate challenges, the parts with grammar of their own."""

from __future__ import annotations

import email.utils
import time

import httpx

from regtopo.registry.auth import parse_challenges
from regtopo.registry.retry import MAX_RETRY_AFTER, retry_after_seconds


def answer(**headers: str) -> httpx.Response:
    return httpx.Response(429, headers=headers)


def test_retry_after_as_delta_seconds() -> None:
    assert retry_after_seconds(answer(**{"Retry-After": "3"})) == 3.0


def test_retry_after_as_http_date() -> None:
    later = email.utils.formatdate(time.time() + 5, usegmt=True)
    seconds = retry_after_seconds(answer(**{"Retry-After": later}))
    assert seconds is not None and 3.5 <= seconds <= 5.0


def test_retry_after_is_capped_and_never_negative() -> None:
    assert retry_after_seconds(answer(**{"Retry-After": "86400"})) == MAX_RETRY_AFTER
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert retry_after_seconds(answer(**{"Retry-After": past})) == 0.0


def test_retry_after_absent_or_unreadable_is_none() -> None:
    assert retry_after_seconds(answer()) is None
    assert retry_after_seconds(answer(**{"Retry-After": "soon"})) is None


def test_bearer_challenge_with_several_scopes_and_commas_in_quotes() -> None:
    (challenge,) = parse_challenges(
        [
            'Bearer realm="https://auth.example/token",service="registry.example",'
            'scope="repository:dst/repo:pull,push repository:src/repo:pull",error="insufficient_scope"'
        ]
    )
    assert challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example/token"
    assert challenge.scopes == ("repository:dst/repo:pull,push", "repository:src/repo:pull")
    assert challenge.params["error"] == "insufficient_scope"


def test_scheme_is_case_insensitive_and_basic_is_recognised() -> None:
    challenges = parse_challenges(['basic realm="ECR"', 'BEARER realm="r",service="s"'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[1].params == {"realm": "r", "service": "s"}
