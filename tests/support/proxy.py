"""A fault and behaviour proxy on loopback, in front of a real Distribution registry.

Why: Distribution 2.8 never answers 429, never pages a tag list, never sends a relative or
non-`/v2/` upload Location, never redirects blobs to storage, and stores what real vendors
refuse. Those behaviours broke other replication tools (shared/cases), so tests put this proxy
between regtopo and a real registry and switch on the one behaviour a test is about. Everything
else is forwarded verbatim, so the registry still decides what is valid.

Each :class:`Proxy` records every request it saw (method, target, headers, body size and the
status it answered), so a test can assert what regtopo sent: Content-Type per PUT, no
Authorization towards a storage origin, the `scope=` parameters of token requests.

Rules are plain callables run in order before forwarding; the first that returns something
decides: a :class:`Reply` is sent as is, :data:`DROP` closes the connection without an answer,
a :class:`Forward` sends the request upstream under another target. Rewrites run on every
upstream answer. The factories below build the rules the tests use.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

__all__ = [
    "DROP",
    "BlobStore",
    "Forward",
    "Proxy",
    "ProxyRequest",
    "Reply",
    "Seen",
    "absent_repositories",
    "corrupt_blob",
    "drop",
    "error_reply",
    "expire_tokens_after",
    "gar_locations",
    "inject",
    "redirect_blobs",
    "redirect_uploads",
    "refuse_schema1",
    "refuse_sha512_manifests",
    "relative_locations",
    "require_foreign_blobs",
    "short_patch",
    "rewrite_realm",
    "strip_header",
    "tag_pages",
]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "content-length",
}


@dataclass
class ProxyRequest:
    """A request as the proxy received it."""

    method: str
    target: str  # path and query, as sent
    headers: httpx.Headers
    body: bytes

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.target).path)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)


@dataclass
class Reply:
    """An answer. `stream`, when set, is sent instead of `body` with chunked transfer coding
    (no Content-Length), piece by piece, until the client hangs up."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Iterable[bytes] | None = None


@dataclass(frozen=True)
class Forward:
    """Send the request upstream under `target` instead of its own."""

    target: str


DROP = object()

Rule = Callable[[ProxyRequest], Any]
Rewrite = Callable[[ProxyRequest, Reply], Reply]


@dataclass(frozen=True)
class Seen:
    """One recorded request and what the proxy answered (0: connection dropped)."""

    method: str
    target: str
    headers: httpx.Headers
    body_size: int
    status: int
    at: float

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.target).path)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)


def error_reply(
    status: int,
    code: str,
    message: str = "",
    headers: dict[str, str] | None = None,
    detail: object = None,
) -> Reply:
    """A distribution-spec error body: `{"errors":[{"code","message"[,"detail"]}]}`."""
    error: dict[str, object] = {"code": code, "message": message or code.lower()}
    if detail is not None:
        error["detail"] = detail
    body = json.dumps({"errors": [error]}).encode()
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, body)


class Proxy:
    """A reverse proxy on 127.0.0.1 with per-test rules. Stop it (or use `with`)."""

    def __init__(
        self,
        upstream: str | None,
        *,
        upstream_auth: tuple[str, str] | None = None,
        name: str = "proxy",
    ) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.name = name
        self.rules: list[Rule] = []
        self.rewrites: list[Rewrite] = []
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(
            follow_redirects=False, timeout=30.0, auth=upstream_auth, trust_env=False
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, *rules: Rule) -> Self:
        self.rules.extend(rules)
        return self

    def rewrite(self, *rewrites: Rewrite) -> Self:
        self.rewrites.extend(rewrites)
        return self

    def forward(self, request: ProxyRequest, target: str | None = None) -> Reply:
        """Send `request` upstream and return the answer, body read whole."""
        if self.upstream is None:
            return error_reply(502, "UNKNOWN", "this proxy has no upstream")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        # The registry builds absolute Locations from Host: keep them pointing at the proxy.
        headers["Host"] = self.host
        response = self._client.request(
            request.method,
            f"{self.upstream}{target or request.target}",
            headers=headers,
            content=request.body if request.body or request.method in ("PUT", "PATCH") else None,
        )
        out_headers: dict[str, str] = {}
        for key, value in response.headers.multi_items():
            if key.lower() in _HOP_BY_HOP and key.lower() != "content-length":
                continue
            out_headers[key] = value if key not in out_headers else f"{out_headers[key]}, {value}"
        return Reply(response.status_code, out_headers, response.content)

    # what tests read

    def seen(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        """Recorded requests matching `method` and the regex `path` (fullmatch)."""
        pattern = re.compile(path) if path else None
        with self._lock:
            snapshot = list(self.requests)
        return [
            s
            for s in snapshot
            if (method is None or s.method == method)
            and (pattern is None or pattern.fullmatch(s.path))
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.seen(method, path))

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Proxy({self.url} -> {self.upstream})"

    # serving

    def _handle(self, request: ProxyRequest) -> Reply | object:
        for rule in self.rules:
            decision = rule(request)
            if decision is None:
                continue
            if isinstance(decision, Forward):
                return self._rewritten(request, self.forward(request, decision.target))
            return decision
        return self._rewritten(request, self.forward(request))

    def _rewritten(self, request: ProxyRequest, reply: Reply) -> Reply:
        for rewrite in self.rewrites:
            reply = rewrite(request, reply)
        return reply

    def _record(self, request: ProxyRequest, status: int) -> None:
        with self._lock:
            self.requests.append(
                Seen(
                    request.method,
                    request.target,
                    request.headers,
                    len(request.body),
                    status,
                    time.monotonic(),
                )
            )


def _make_handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            request = ProxyRequest(
                self.command, self.path, httpx.Headers(self.headers.items()), self._read_body()
            )
            with proxy._lock:
                proxy.in_flight += 1
                proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
            try:
                decision = proxy._handle(request)
            except Exception as err:  # a broken rule shows up as a 500 the test can see
                decision = error_reply(500, "UNKNOWN", f"proxy rule failed: {err!r}")
            finally:
                with proxy._lock:
                    proxy.in_flight -= 1
            if decision is DROP:
                proxy._record(request, 0)
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            assert isinstance(decision, Reply)
            proxy._record(request, decision.status)
            self.send_response(decision.status)
            headers = dict(decision.headers)
            upstream_length = next(
                (v for k, v in headers.items() if k.lower() == "content-length"), None
            )
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            for key, value in headers.items():
                self.send_header(key, value)
            if self.command == "HEAD":
                # HEAD keeps the upstream's Content-Length: it is the size of the content.
                self.send_header("Content-Length", upstream_length or str(len(decision.body)))
                self.end_headers()
                return
            if decision.stream is not None:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._write_chunked(decision.stream)
                return
            self.send_header("Content-Length", str(len(decision.body)))
            self.end_headers()
            try:
                self.wfile.write(decision.body)
            except OSError:  # a client that refused the body unread (e.g. by its length)
                self.close_connection = True

        def _write_chunked(self, pieces: Iterable[bytes]) -> None:
            try:
                for piece in pieces:
                    if piece:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:  # the client hung up mid-body: what the tests look for
                self.close_connection = True
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

    return Handler


# --------------------------------------------------------------------------------------------
# Rules and rewrites
# --------------------------------------------------------------------------------------------


def _matches(request: ProxyRequest, method: str | None, path: str) -> bool:
    return (method is None or request.method == method) and re.fullmatch(
        path, request.path
    ) is not None


def inject(method: str | None, path: str, *replies: Reply) -> Rule:
    """Answer the first matching requests with `replies`, in order; forward the rest."""
    pending = list(replies)
    lock = threading.Lock()

    def rule(request: ProxyRequest) -> Reply | None:
        if not _matches(request, method, path):
            return None
        with lock:
            return pending.pop(0) if pending else None

    return rule


def drop(method: str | None, path: str, times: int = 1) -> Rule:
    """Close the connection without an answer, `times` times."""
    counter = itertools.count()

    def rule(request: ProxyRequest) -> object | None:
        if _matches(request, method, path) and next(counter) < times:
            return DROP
        return None

    return rule


def strip_header(name: str, method: str | None = None, path: str = r".*") -> Rewrite:
    """Remove a response header (e.g. Docker-Content-Digest, as ECR does)."""

    def rewrite(request: ProxyRequest, reply: Reply) -> Reply:
        if _matches(request, method, path):
            reply.headers = {k: v for k, v in reply.headers.items() if k.lower() != name.lower()}
        return reply

    return rewrite


def relative_locations() -> Rewrite:
    """Upload Locations become relative (`relativeurls: true`, as behind Harbor)."""

    def rewrite(request: ProxyRequest, reply: Reply) -> Reply:
        for key, value in list(reply.headers.items()):
            if key.lower() == "location" and "/blobs/uploads/" in value:
                parts = urlsplit(value)
                reply.headers[key] = parts.path + (f"?{parts.query}" if parts.query else "")
        return reply

    return rewrite


def gar_locations() -> tuple[Rule, Rewrite]:
    """Upload Locations under `/artifacts-uploads/...` (GAR); only that path continues them.

    Returns the rule (maps the GAR-style path back to the registry's session) and the
    rewrite (hands out GAR-style Locations). A request to the registry's own session path is
    refused, so a client that rebuilt the URL from the repository name would fail.
    """
    sessions: dict[str, str] = {}
    counter = itertools.count(1)
    lock = threading.Lock()

    def rule(request: ProxyRequest) -> Forward | Reply | None:
        path = request.path
        if path.startswith("/artifacts-uploads/"):
            session_id = path.rsplit("/", 1)[1]
            with lock:
                original = sessions.get(session_id)
            if original is None:
                return error_reply(404, "BLOB_UPLOAD_UNKNOWN")
            extra = {k: v for k, v in request.query.items() if k != "x"}
            parts = urlsplit(original)
            query = parts.query
            for key, values in extra.items():
                for value in values:
                    query += f"&{key}={quote(value, safe=':')}"
            return Forward(f"{parts.path}?{query}")
        if request.method in ("PUT", "PATCH") and "/blobs/uploads/" in path:
            return error_reply(404, "BLOB_UPLOAD_UNKNOWN", "sessions continue at their Location")
        return None

    def rewrite(request: ProxyRequest, reply: Reply) -> Reply:
        for key, value in list(reply.headers.items()):
            if key.lower() == "location" and "/blobs/uploads/" in value:
                session_id = f"u{next(counter)}"
                with lock:
                    sessions[session_id] = value
                reply.headers[key] = (
                    f"/artifacts-uploads/namespaces/p/repositories/r/uploads/{session_id}?x=1"
                )
        return reply

    return rule, rewrite


def redirect_uploads(to: Proxy) -> Rule:
    """Answer upload POSTs with 307 to the same path on another server (`to`)."""

    def rule(request: ProxyRequest) -> Reply | None:
        if request.method == "POST" and request.path.endswith("/blobs/uploads/"):
            return Reply(307, {"Location": f"{to.url}{request.target}"})
        return None

    return rule


def redirect_blobs(store: BlobStore) -> Rule:
    """Blob GET/HEAD answered 307 to a storage origin with a signed query (ACR, S3)."""

    def rule(request: ProxyRequest) -> Reply | None:
        if request.method in ("GET", "HEAD") and re.fullmatch(r"/v2/.+/blobs/[^/]+", request.path):
            return Reply(307, {"Location": store.signed_url(request.path)})
        return None

    return rule


class BlobStore(Proxy):
    """Object storage stand-in: serves `/obj?sig=...&path=...`, refuses any Authorization.

    It reads the blob from the registry with its own credentials (the registry's storage
    driver does that in real life), so the client needs none here.
    """

    def __init__(self, upstream: str, *, upstream_auth: tuple[str, str] | None = None) -> None:
        super().__init__(upstream, upstream_auth=upstream_auth, name="blobstore")
        self.add(self._serve_object)

    def signed_url(self, path: str) -> str:
        signature = hashlib.sha256(path.encode()).hexdigest()[:16]
        return f"{self.url}/obj?sig={signature}&path={quote(path, safe='')}"

    def _serve_object(self, request: ProxyRequest) -> Reply | Forward:
        if "authorization" in request.headers:
            return Reply(400, {"Content-Type": "text/plain"}, b"Authorization is not allowed")
        path = request.query.get("path", [""])[0]
        if request.query.get("sig", [""])[0] != hashlib.sha256(path.encode()).hexdigest()[:16]:
            return Reply(403, {"Content-Type": "text/plain"}, b"bad signature")
        return Forward(quote(path, safe="/:"))


def tag_pages(repository: str, tags: Iterable[str], page_size: int) -> Rule:
    """Serve `/v2/<repository>/tags/list` in pages linked by `Link: <...>; rel="next"`.

    Each Link carries an opaque `cursor` a client can only follow verbatim (`last` alone
    would not do): a request without the right cursor gets a 400.
    """
    entries = list(tags)

    def rule(request: ProxyRequest) -> Reply | None:
        if request.method != "GET" or request.path != f"/v2/{repository}/tags/list":
            return None
        cursor = request.query.get("cursor", ["0"])[0]
        if not cursor.isdigit():
            return error_reply(400, "PAGINATION_NUMBER_INVALID")
        start = int(cursor)
        page = entries[start : start + page_size]
        headers = {"Content-Type": "application/json"}
        if start + page_size < len(entries):
            last = quote(page[-1], safe="")
            headers["Link"] = (
                f'</v2/{repository}/tags/list?n={page_size}&last={last}&cursor={start + page_size}>; rel="next"'
            )
        return Reply(200, headers, json.dumps({"name": repository, "tags": page}).encode())

    return rule


def refuse_sha512_manifests() -> Rule:
    """Distribution's answer to `PUT /manifests/sha512:...`: 400 DIGEST_INVALID."""

    def rule(request: ProxyRequest) -> Reply | None:
        if request.method == "PUT" and re.fullmatch(r"/v2/.+/manifests/sha512:.*", request.path):
            return error_reply(
                400, "DIGEST_INVALID", "provided digest did not match uploaded content"
            )
        return None

    return rule


def refuse_schema1(status: int = 500) -> Rule:
    """A registry with schema1 disabled: an opaque 500 (2.7) or 400 MANIFEST_INVALID."""

    def rule(request: ProxyRequest) -> Reply | None:
        content_type = request.headers.get("content-type", "")
        if request.method == "PUT" and "manifest.v1+" in content_type:
            if status == 500:
                return error_reply(500, "UNKNOWN", "unknown error")
            return error_reply(400, "MANIFEST_INVALID", "manifest invalid")
        return None

    return rule


def absent_repositories(proxy: Proxy, exists: Callable[[str], bool]) -> Rule:
    """ECR: a repository that was not created answers 404 NAME_UNKNOWN to everything; one
    that was created lists its tags (empty) even before the first push."""

    def rule(request: ProxyRequest) -> Reply | None:
        match = re.fullmatch(r"/v2/(.+?)/(manifests|blobs|tags|referrers)/.*", request.path)
        if not match:
            return None
        repository = match.group(1)
        if not exists(repository):
            return error_reply(404, "NAME_UNKNOWN", f"repository {repository} does not exist")
        if request.method == "GET" and match.group(2) == "tags":
            reply = proxy.forward(request)
            if reply.status == 404:
                body = json.dumps({"name": repository, "tags": []}).encode()
                return Reply(200, {"Content-Type": "application/json"}, body)
            return reply
        return None

    return rule


def short_patch(proxy: Proxy, which: int, keep: int) -> Rule:
    """The `which`-th PATCH (0-based) reaches the registry with only its first `keep` bytes
    (its Content-Range shortened to match), so the registry keeps part of the chunk and its
    `Range` confirms less than the client sent, as a registry that stored a partial write."""
    counter = itertools.count()

    def rule(request: ProxyRequest) -> Reply | None:
        if request.method != "PATCH" or next(counter) != which:
            return None
        start = int(request.headers["content-range"].split("-")[0])
        headers = httpx.Headers(request.headers)
        headers["Content-Range"] = f"{start}-{start + keep - 1}"
        shortened = ProxyRequest(request.method, request.target, headers, request.body[:keep])
        return proxy._rewritten(request, proxy.forward(shortened))

    return rule


def corrupt_blob(digest: str) -> Rewrite:
    """Flip one byte of a blob's body on its way out (a broken cache or proxy)."""

    def rewrite(request: ProxyRequest, reply: Reply) -> Reply:
        if request.method == "GET" and request.path.endswith(f"/blobs/{digest}") and reply.body:
            body = bytearray(reply.body)
            body[len(body) // 2] ^= 0xFF
            reply.body = bytes(body)
        return reply

    return rewrite


def require_foreign_blobs(proxy: Proxy) -> Rule:
    """A registry that demands non-distributable blobs: MANIFEST_BLOB_UNKNOWN when missing."""

    def rule(request: ProxyRequest) -> Reply | None:
        match = re.fullmatch(r"/v2/(.+)/manifests/[^/]+", request.path)
        if request.method != "PUT" or not match:
            return None
        document = json.loads(request.body)
        for layer in document.get("layers") or []:
            if not layer.get("urls"):
                continue
            probe = ProxyRequest(
                "HEAD", f"/v2/{match.group(1)}/blobs/{layer['digest']}", httpx.Headers(), b""
            )
            if proxy.forward(probe).status == 404:
                # As Distribution answers: the digest in `detail`.
                return error_reply(
                    400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", detail=layer["digest"]
                )
        return None

    return rule


def expire_tokens_after(seconds: float, realm: str, service: str) -> Rule:
    """401 with a fresh Bearer challenge for any token first seen more than `seconds` ago.

    Distribution allows 60 s of clock slack on `exp`; this makes expiry mid-copy quick to
    test. The challenge names the scope the request needs, as the registry's would.
    """
    first_seen: dict[str, float] = {}
    lock = threading.Lock()

    def rule(request: ProxyRequest) -> Reply | None:
        authorization = request.headers.get("authorization", "")
        match = re.fullmatch(r"/v2/(.+?)/(manifests|blobs|tags)/.*", request.path)
        if not authorization.lower().startswith("bearer ") or not match:
            return None
        now = time.monotonic()
        with lock:
            born = first_seen.setdefault(authorization, now)
        if now - born <= seconds:
            return None
        actions = "pull" if request.method in ("GET", "HEAD") else "pull,push"
        challenge = (
            f'Bearer realm="{realm}",service="{service}",'
            f'scope="repository:{match.group(1)}:{actions}",error="invalid_token"'
        )
        return error_reply(401, "UNAUTHORIZED", "token expired", {"WWW-Authenticate": challenge})

    return rule


def rewrite_realm(realm: str) -> Rewrite:
    """Point Bearer challenges at another token endpoint (a proxy in front of the issuer)."""

    def rewrite(request: ProxyRequest, reply: Reply) -> Reply:
        for key, value in list(reply.headers.items()):
            if key.lower() == "www-authenticate":
                reply.headers[key] = re.sub(r'realm="[^"]*"', f'realm="{realm}"', value)
        return reply

    return rewrite


# The `make_proxy` fixture (tests/conftest.py): `make_proxy(upstream_url, **kwargs)`.
MakeProxy = Callable[..., Proxy]
