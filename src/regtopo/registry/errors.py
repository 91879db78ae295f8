"""Registry errors, typed after the distribution-spec error body.

Every error carries the method, a redacted URL and the spec's error codes, and says whether a
retry can help. URLs lose their query strings before they reach a message: upload locations and
storage redirects carry signed tokens there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from regtopo.errors import RegtopoError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def redact_url(url: httpx.URL | str) -> str:
    """The URL without userinfo or query: both may hold secrets."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(query=None, fragment=None, username=None, password=None))


@dataclass(frozen=True)
class SpecError:
    code: str
    message: str
    detail: str = ""


def parse_error_body(response: httpx.Response, limit: int = 4096) -> list[SpecError]:
    """The `errors` list of a distribution-spec error body; empty for other bodies."""
    try:
        body = json.loads(response.content[:limit])
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return []
    return [
        SpecError(str(e.get("code", "")), str(e.get("message", "")), _detail(e.get("detail")))
        for e in body["errors"]
        if isinstance(e, dict)
    ]


def _detail(value: object) -> str:
    """The spec's free-form `detail` as text: Distribution puts a blob's digest there."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class RegistryError(RegtopoError):
    """A registry answered with an error, or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        codes: tuple[str, ...] = (),
        hint: str | None = None,
        retry_after: float | None = None,
        details: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.codes = codes
        self.retry_after = retry_after
        # Each error's `detail`, unprinted: large, and for callers that look for a digest in it.
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUS or "TOOMANYREQUESTS" in self.codes

    @classmethod
    def from_response(cls, action: str, response: httpx.Response) -> RegistryError:
        errors = parse_error_body(response)
        codes = tuple(e.code for e in errors)
        detail = "; ".join(f"{e.code}: {e.message}" if e.message else e.code for e in errors)
        if not detail:
            detail = response.reason_phrase or "no error body"
        status = response.status_code
        error_class: type[RegistryError] = cls
        hint = None
        if status == 429 or "TOOMANYREQUESTS" in codes:
            error_class, detail = RateLimitedError, f"rate limited ({detail})"
        elif status in (401, 403) or "DENIED" in codes or "UNAUTHORIZED" in codes:
            error_class = AuthError
            hint = "check the credentials for this registry and that they may push and pull here"
        elif status == 404 and ("NAME_UNKNOWN" in codes):
            error_class = RepositoryNotFoundError
        from regtopo.registry.retry import retry_after_seconds

        method = response.request.method
        return error_class(
            f"{action}: {status} {detail} ({method} {redact_url(response.request.url)})",
            status=status,
            codes=codes,
            hint=hint,
            retry_after=retry_after_seconds(response),
            details=tuple(e.detail for e in errors),
        )


class AuthError(RegistryError):
    """Credentials were refused, or a token did not grant the scope asked for (`DENIED`)."""


class RateLimitedError(RegistryError):
    """429 `TOOMANYREQUESTS` after every retry."""


class RepositoryNotFoundError(RegistryError):
    """`NAME_UNKNOWN`: the repository does not exist (ECR does not create them on push)."""


class UnreachableError(RegistryError):
    """The connection failed: DNS, refused, TLS, or dropped mid-response."""


class UnsupportedError(RegistryError):
    """The registry does not offer an operation (deletion over the API, a digest algorithm)."""
