"""Authentication: `WWW-Authenticate` challenges, basic credentials, bearer tokens per scope.

The flow (distribution `docs/spec/auth/token.md`): a request answered 401 carries a challenge;
for `Basic` we resend with credentials; for `Bearer` we ask the realm for a token covering the
scopes the operation needs plus the ones the challenge names, cache it for its lifetime, and
resend. Once a registry's scheme is known, later requests authenticate up front and skip the
401 round trip.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from regtopo.registry.errors import AuthError, RegistryError, redact_url

log = logging.getLogger(__name__)

# A token without `expires_in` lives 60 s (token.md); we renew a little before that.
DEFAULT_TOKEN_LIFETIME = 60.0
RENEW_MARGIN = 5.0


@dataclass(frozen=True)
class Credentials:
    """A username and secret. `repr` never shows the secret."""

    username: str
    password: str = field(repr=False)
    # An identity (refresh) token is sent to the realm with the OAuth2 POST form instead.
    identity_token: str | None = field(default=None, repr=False)
    #: where they came from, for messages: "the topology", a config file, a helper
    origin: str = field(default="", compare=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse every `WWW-Authenticate` header value into challenges.

    Parameter values are quoted strings that may hold commas and spaces (a scope list does),
    so this is a tokenizer, not `split(",")`.
    """
    challenges: list[Challenge] = []
    for value in values:
        rest = value.strip()
        while rest:
            match = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
            if not match:
                break
            scheme = match.group(1).lower()
            rest = rest[match.end() :]
            params: dict[str, str] = {}
            while True:
                param = _PARAM.match(rest)
                if not param or not param.group(0).strip():
                    break
                # A bare word followed by a space and no '=' starts the next challenge.
                params[param.group(1).lower()] = (
                    param.group(2).replace('\\"', '"')
                    if param.group(2) is not None
                    else param.group(3)
                )
                rest = rest[param.end() :]
            challenges.append(Challenge(scheme, params))
            rest = rest.lstrip(", ")
    return challenges


@dataclass
class _Token:
    value: str
    expires_at: float


# Actions in the order the distribution spec's examples write them; others follow, sorted.
_ACTION_ORDER = {"pull": 0, "push": 1, "delete": 2}


def merge_scopes(scopes: Iterable[str]) -> set[str]:
    """One scope per resource, its actions united: `repository:a:pull` and
    `repository:a:push,pull` are `repository:a:pull,push`. Scopes that differ only in how
    they spell the same actions (a challenge naming `push,pull`) must not add up on renewal."""
    actions: dict[str, set[str]] = {}
    opaque: set[str] = set()
    for scope in scopes:
        resource, _, named = scope.rpartition(":")
        if not resource or ":" not in resource:
            opaque.add(scope)  # not `type:name:actions`: sent as it came
            continue
        actions.setdefault(resource, set()).update(a for a in named.split(",") if a)
    merged = {
        f"{resource}:{','.join(sorted(named, key=lambda a: (_ACTION_ORDER.get(a, 9), a)))}"
        for resource, named in actions.items()
    }
    return merged | opaque


class Authenticator:
    """Holds one registry's auth state: its scheme, its realm, and a token per scope set.

    Thread-safe: the executor copies several images through one client at once.
    """

    def __init__(self, credentials: Credentials | None, registry_host: str) -> None:
        self.credentials = credentials
        self.registry_host = registry_host
        self.scheme: str | None = None
        self.realm: str | None = None
        self.service: str | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._lock = threading.Lock()
        self.token_requests = 0

    def header_for(self, scopes: frozenset[str]) -> str | None:
        """The Authorization value to send up front, or None to go anonymous first."""
        if self.scheme == "basic" and self.credentials:
            return self.credentials.basic_header()
        if self.scheme == "bearer":
            with self._lock:
                token = self._tokens.get(scopes)
            if token and token.expires_at > time.monotonic():
                return f"Bearer {token.value}"
        return None

    def has_challenge(self) -> bool:
        return self.scheme is not None

    def authenticate(
        self,
        client: httpx.Client,
        response: httpx.Response,
        scopes: frozenset[str],
    ) -> str:
        """Answer the 401 `response` carries; return the Authorization value to resend with."""
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)

        if bearer is not None:
            self.scheme = "bearer"
            self.realm = bearer.params.get("realm")
            self.service = bearer.params.get("service")
            error = bearer.params.get("error")
            if error == "insufficient_scope" and self._has_token(scopes):
                raise AuthError(
                    f"the token for {self.registry_host} does not grant {' '.join(sorted(scopes))}"
                    " (DENIED)",
                    status=401,
                    codes=("DENIED",),
                    hint="the credentials may not pull or push this repository",
                )
            token = self.fetch_token(client, scopes | set(bearer.scopes), cache_key=scopes)
            return f"Bearer {token}"

        if basic is not None:
            self.scheme = "basic"
            if self.credentials is None:
                raise AuthError(
                    f"{self.registry_host} requires credentials and none are configured",
                    status=401,
                    hint="set credentials for this registry in the topology or `docker login`",
                )
            return self.credentials.basic_header()

        raise AuthError(
            f"{self.registry_host} answered 401 without a challenge regtopo understands",
            status=401,
        )

    def invalidate(self, scopes: frozenset[str]) -> None:
        with self._lock:
            self._tokens.pop(scopes, None)

    def fetch_token(
        self,
        client: httpx.Client,
        scopes: frozenset[str] | set[str],
        *,
        cache_key: frozenset[str],
    ) -> str:
        """Ask the realm for a token for exactly this de-duplicated scope set, and cache it.

        `cache_key` is the scope set the operation asked for; the token may cover more (the
        challenge's scopes), never less.
        """
        if not self.realm:
            raise AuthError(f"{self.registry_host} sent a Bearer challenge without a realm")
        # Push scopes first: some registries read only the first scope.
        ordered = sorted(
            merge_scopes(scopes), key=lambda s: (":push" not in s and ",push" not in s, s)
        )
        params: list[tuple[str, str]] = []
        if self.service:
            params.append(("service", self.service))
        params.extend(("scope", scope) for scope in ordered)

        headers = {}
        if self.credentials and self.credentials.identity_token:
            response = self._post_refresh_token(client, params)
        else:
            if self.credentials:
                headers["Authorization"] = self.credentials.basic_header()
            response = self._send_token_request(
                client,
                lambda: client.get(
                    self.realm or "", params=httpx.QueryParams(tuple(params)), headers=headers
                ),
            )

        try:
            body = response.json()
            value = body.get("token") or body.get("access_token")
        except ValueError:
            value = None
        if not value:
            raise AuthError(f"the token endpoint {redact_url(self.realm)} returned no token")

        try:
            lifetime = max(float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME), 1.0)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        # Lifetime counts from when we received the token, not from a stale issued_at.
        expires_at = time.monotonic() + max(lifetime - RENEW_MARGIN, lifetime / 2)
        with self._lock:
            self._tokens[cache_key] = _Token(str(value), expires_at)
        return str(value)

    def _has_token(self, scopes: frozenset[str]) -> bool:
        with self._lock:
            return scopes in self._tokens

    def _post_refresh_token(
        self, client: httpx.Client, params: list[tuple[str, str]]
    ) -> httpx.Response:
        assert self.credentials and self.credentials.identity_token
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self.credentials.identity_token,
            "client_id": "regtopo",
            "service": self.service or "",
            "scope": " ".join(v for k, v in params if k == "scope"),
        }
        return self._send_token_request(client, lambda: client.post(self.realm or "", data=form))

    def _send_token_request(
        self, client: httpx.Client, send: Callable[[], httpx.Response]
    ) -> httpx.Response:
        """One token request. A 429 or 5xx raises a retryable error: the registry request
        that needed the token retries the whole attempt, so the two bounds never multiply."""
        self.token_requests += 1
        response = send()
        if response.status_code >= 400:
            raise RegistryError.from_response(
                f"requesting a token for {self.registry_host}", response
            )
        return response
