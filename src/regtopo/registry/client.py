"""The distribution-spec client: one `RegistryClient` per registry, one `RemoteRepository` per
repository in it.

Every request goes through `RegistryClient.request`, which authenticates (answering 401
challenges, then authenticating up front), retries what can be retried, and turns every error
answer into a typed `RegistryError`. httpx follows redirects and drops `Authorization` when a
redirect leaves the registry's origin (storage redirects carry their own signed query).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import certifi
import httpx

from regtopo import __version__
from regtopo.errors import ManifestError
from regtopo.oci import mediatype as mt
from regtopo.oci.descriptor import Descriptor
from regtopo.oci.digest import Digest
from regtopo.oci.manifest import MAX_MANIFEST_SIZE, Manifest
from regtopo.oci.reference import api_host, canonical_host, is_valid_repository, is_valid_tag
from regtopo.registry.auth import Authenticator, Credentials, parse_challenges
from regtopo.registry.errors import (
    AuthError,
    RateLimitedError,
    RegistryError,
    RepositoryNotFoundError,
    UnreachableError,
    UnsupportedError,
    redact_url,
)
from regtopo.registry.retry import ATTEMPTS, retrying
from regtopo.registry.store import BlobOpener, PushResult, Repository

log = logging.getLogger(__name__)

# Blobs up to this size go up in one streamed PUT; larger ones in chunks of this size, so that
# a token expiring mid-upload costs one chunk, not the whole blob.
CHUNK_SIZE = 16 * 1024 * 1024
READ_CHUNK = 1024 * 1024
# A chunked upload whose registry confirms less than it was sent more often than this fails.
MAX_SHORT_RANGES = 8

Body = bytes | Callable[[], Iterable[bytes] | bytes] | None


@dataclass(frozen=True)
class TLSSettings:
    insecure: bool = False
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class ProductHints:
    """What the registry's product profile says that an error message can use."""

    title: str = ""
    #: how this product's credentials are made, for a refused login
    credentials: str | None = None
    #: the product's known request limits, for a rate-limited run
    limits: str | None = None


def ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """One context for every TLS setting, so that a CA bundle and a client certificate
    apply together (httpx ignores its separate `cert` once `verify` is a path or context)."""
    # Without a CA bundle: SSL_CERT_FILE or SSL_CERT_DIR as OpenSSL and httpx honour them
    # (a corporate TLS proxy's root), else certifi's roots as httpx uses by default.
    cafile = tls.ca_bundle or os.environ.get("SSL_CERT_FILE")
    capath = None if cafile else os.environ.get("SSL_CERT_DIR")
    if not cafile and not capath:
        cafile = certifi.where()
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    if tls.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_cert:
        context.load_cert_chain(tls.client_cert, tls.client_key)
    return context


class RegistryClient:
    """HTTP access to one registry: a pooled connection, its auth state, its limits."""

    def __init__(
        self,
        name: str,
        host: str,
        *,
        scheme: str = "https",
        credentials: Credentials | None = None,
        tls: TLSSettings | None = None,
        max_connections: int = 8,
        requests_per_second: float | None = None,
        timeout: float = 60.0,
        chunk_size: int = CHUNK_SIZE,
        retry_attempts: int = ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
        product: ProductHints | None = None,
    ) -> None:
        self.name = name
        self.host = canonical_host(host)
        self.base_url = f"{scheme}://{api_host(self.host)}"
        self._origin = _origin(httpx.URL(self.base_url))
        try:
            context = ssl_context(tls or TLSSettings())
        except OSError as err:  # ssl.SSLError is an OSError
            raise RegistryError(
                f"registry {name!r}: reading its TLS settings: {err}",
                hint="check the files named by ca_bundle, client_cert and client_key",
            ) from err
        self.http = httpx.Client(
            follow_redirects=True,
            verify=context,
            timeout=httpx.Timeout(timeout, connect=10.0),
            # The pool is the per-registry bound: requests beyond max_connections wait.
            # A copy inside one registry holds a blob's GET open while its upload needs a
            # connection of the same pool, so that copy needs two even at max_connections 1.
            limits=httpx.Limits(
                max_connections=max(2, max_connections),
                max_keepalive_connections=max(2, max_connections),
            ),
            headers={"User-Agent": f"regtopo/{__version__}"},
            transport=transport,
        )
        self.chunk_size = chunk_size
        # Open blob reads leave one connection free for uploads: with every connection held by
        # a GET whose bytes wait for an upload to this registry, that upload would never start.
        self.blob_reads = threading.BoundedSemaphore(max(1, max_connections - 1))
        self.retry_attempts = retry_attempts
        self.product = product or ProductHints()
        self.auth = Authenticator(credentials, self.host)
        self.pacer = Pacer(requests_per_second)
        self.request_count = 0
        self._warned: set[str] = set()
        self.absent_repositories: dict[str, RepositoryNotFoundError] = {}
        self._absent_lock = threading.Lock()

    def repository(self, name: str) -> RemoteRepository:
        return RemoteRepository(self, name)

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def list_repositories(self, page_size: int = 1000) -> list[str]:
        """Every repository the catalog lists, following `Link` pages; sorted."""
        url: str | None = self.url("/v2/_catalog")
        params: list[tuple[str, str]] | None = [("n", str(page_size))]
        found: list[str] = []
        while url:
            response = self.request(
                "GET",
                url,
                scopes=_scopes("registry:catalog:*"),
                action=f"listing the repositories of registry {self.name!r}",
                params=params,
            )
            try:
                names = response.json().get("repositories") or []
            except (ValueError, AttributeError) as err:
                raise RegistryError(
                    f"listing the repositories of registry {self.name!r}: the catalog is not "
                    "a JSON object"
                ) from err
            found.extend(n for n in names if isinstance(n, str) and is_valid_repository(n))
            url, params = _next_link(response), None
        return sorted(set(found))

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: frozenset[str],
        action: str,
        headers: dict[str, str] | None = None,
        params: list[tuple[str, str]] | None = None,
        body: Body = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
        passthrough: tuple[int, ...] = (),
        read_limit: int | None = None,
    ) -> httpx.Response:
        """Send one logical request, authenticated and retried.

        Statuses in `ok` and `passthrough` are returned to the caller; every other answer is a
        `RegistryError`. `body` may be a factory, called once per attempt, so streamed uploads
        can be retried from the start.

        With `read_limit`, the body of an `ok` answer is read here, within the attempt (a
        connection lost mid-body is retried), but never more than `read_limit` bytes of it:
        a longer one raises `BodyTooLargeError` (not retried) as soon as it is known to be.
        """
        if read_limit is not None:
            stream = True

        def attempt() -> httpx.Response:
            response = self._send(method, url, scopes, headers, params, body, stream)
            if response.status_code == 401 and _origin(response.url) != self._origin:
                # Another origin (an upload handed elsewhere, a redirect) asks for its own
                # credentials: never answer it with ours, nor take its challenge as ours.
                _discard(response)
                raise AuthError(
                    f"{action}: {response.url.scheme}://{response.url.host} asks for "
                    f"credentials (HTTP 401), and it is not {self.host}, whose credentials "
                    "regtopo holds",
                    status=401,
                    hint="the registry sent the request to another host; check its storage "
                    "or upload redirection",
                )
            if response.status_code == 401:
                # A token that expired mid-copy (or the first challenge): renew once, resend.
                _discard(response)
                authorization = self.auth.authenticate(self.http, response, scopes)
                response = self._send(
                    method, url, scopes, headers, params, body, stream, authorization
                )
                if response.status_code == 401:
                    _discard(response)
                    self.auth.invalidate(scopes)
                    raise self._refused(action, response, scopes)
            if read_limit is not None and response.status_code in ok:
                return _read_capped(response, read_limit)
            if response.status_code in ok or response.status_code in passthrough:
                return response
            _discard(response)
            raise RegistryError.from_response(action, response)

        try:
            return retrying(attempt, attempts=self.retry_attempts)
        except RateLimitedError as err:
            hint = "lower max_connections for this registry, or try again later"
            if self.product.limits:
                hint += f" ({self.product.title}: {self.product.limits})"
            raise RateLimitedError(
                f"{err.message}; still rate limited after {self.retry_attempts} attempts",
                status=err.status,
                codes=err.codes,
                hint=hint,
            ) from err
        except httpx.TransportError as err:
            raise UnreachableError(
                f"{action}: registry {self.name!r} ({self.host}) unreachable: "
                f"{type(err).__name__}: {_short_cause(err)}",
                hint="check the host, the port, and whether it speaks https or http",
            ) from err

    def _refused(self, action: str, response: httpx.Response, scopes: frozenset[str]) -> AuthError:
        """The error for a 401 that a fresh token or the credentials did not cure."""
        error = RegistryError.from_response(action, response)
        challenge = next(
            iter(parse_challenges(response.headers.get_list("www-authenticate"))), None
        )
        if challenge is not None and challenge.params.get("error") == "insufficient_scope":
            wanted = " ".join(sorted(set(challenge.scopes) | scopes))
            return AuthError(
                f"{action}: access denied (DENIED): the token for {self.host} does not grant "
                f"{wanted}",
                status=401,
                codes=("DENIED",),
                hint="the credentials for this registry may not pull or push this repository",
            )
        detail = error.message.removeprefix(f"{action}: ")
        credentials = self.auth.credentials
        whose = f" (from {credentials.origin})" if credentials and credentials.origin else ""
        if credentials is None:
            whose = " (none configured: anonymous)"
        return AuthError(
            f"{action}: credentials{whose} refused (UNAUTHORIZED): {detail}",
            status=401,
            codes=error.codes or ("UNAUTHORIZED",),
            hint=self.product.credentials
            or "check the credentials for this registry (topology, docker config, auth.json)",
        )

    def _send(
        self,
        method: str,
        url: str,
        scopes: frozenset[str],
        headers: dict[str, str] | None,
        params: list[tuple[str, str]] | None,
        body: Body,
        stream: bool,
        authorization: str | None = None,
    ) -> httpx.Response:
        request_headers = dict(headers or {})
        if _origin(httpx.URL(url)) != self._origin:
            # An upload Location may send the session to another origin (a redirected POST,
            # a storage front end); that origin holds its own access, as on a redirect (C21).
            authorization = None
        else:
            authorization = authorization or self.auth.header_for(scopes)
            if authorization is None and self.auth.scheme == "bearer" and self.auth.realm:
                # The realm is known: fetch the token now instead of collecting another 401.
                token = self.auth.fetch_token(self.http, scopes, cache_key=scopes)
                authorization = f"Bearer {token}"
        if authorization:
            request_headers["Authorization"] = authorization
        content = body() if callable(body) else body
        self.pacer.wait()
        self.request_count += 1
        request = self.http.build_request(
            method,
            url,
            headers=request_headers,
            params=httpx.QueryParams(tuple(params)) if params else None,
            content=content,
        )
        started = time.monotonic()
        response = self.http.send(request, stream=stream)
        log.debug(
            "%s %s %d (%.0f ms)",
            method,
            redact_url(request.url),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def remember_absent(self, repository: str, err: RegistryError) -> RepositoryNotFoundError:
        """Record that `repository` does not exist here; the error every later push gets."""
        with self._absent_lock:
            known = self.absent_repositories.get(repository)
            if known is None:
                known = RepositoryNotFoundError(
                    f"pushing to {self.name}/{repository}: the repository does not exist "
                    f"(NAME_UNKNOWN), and {self.host} does not create repositories on push",
                    status=err.status,
                    codes=err.codes,
                    hint="create the repository first, or set `create_repositories: true` on "
                    f"registry {self.name!r} when its provider can create them (ECR)",
                )
                self.absent_repositories[repository] = known
            return known

    def warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


class Pacer:
    """Spaces requests at least 1/rate seconds apart across threads; no limit when rate is None."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


def _discard(response: httpx.Response) -> None:
    try:
        response.read()
    except httpx.HTTPError:
        pass
    response.close()


class BodyTooLargeError(Exception):
    """An answer whose body is longer than the caller accepts; `size` is what the registry
    declared (Content-Length), or None when the body merely ran past the limit."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"body of {size if size is not None else 'more than ' + str(limit)}")
        self.size = size
        self.limit = limit


def _read_capped(response: httpx.Response, limit: int) -> httpx.Response:
    """`response` (streamed) with its body read, or `BodyTooLargeError` without reading past
    `limit` bytes: a declared Content-Length above it is refused before the body, and a body
    without one is cut off once it passes the limit. The connection is closed either way."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise BodyTooLargeError(int(declared), limit)
    parts: list[bytes] = []
    held = 0
    try:
        for part in response.iter_bytes():
            held += len(part)
            if held > limit:
                raise BodyTooLargeError(None, limit)
            parts.append(part)
    finally:
        response.close()
    # The body as read (decoded), in a response that holds it: `content` works as usual.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(parts),
        request=response.request,
        extensions=response.extensions,
    )


def _short_cause(err: Exception) -> str:
    text = str(err) or repr(err)
    return text.splitlines()[0][:200]


def _scopes(*entries: str) -> frozenset[str]:
    return frozenset(entries)


class RemoteRepository(Repository):
    """A repository on a distribution-spec registry."""

    def __init__(self, client: RegistryClient, name: str) -> None:
        self.client = client
        self.name = name
        self.registry_name = client.name
        self.registry_id = f"remote:{client.host}"
        self.pull = _scopes(f"repository:{name}:pull")
        self.push = _scopes(f"repository:{name}:pull,push")

    def _path(self, suffix: str) -> str:
        return self.client.url(f"/v2/{self.name}/{suffix}")

    # manifests

    def head_manifest(self, reference: str) -> Descriptor | None:
        response = self.client.request(
            "HEAD",
            self._path(f"manifests/{reference}"),
            scopes=self.pull,
            action=f"checking manifest {self}:{reference}",
            headers={"Accept": mt.ACCEPT},
            passthrough=(404,),
        )
        if response.status_code == 404:
            return None
        header = response.headers.get("docker-content-digest")
        length = response.headers.get("content-length")
        if not header or not length:
            # Some registries (ECR) omit the digest on HEAD: read the manifest and hash it.
            manifest = self.get_manifest(reference)
            return manifest.descriptor() if manifest else None
        digest = Digest.parse(header)
        if reference.startswith(f"{digest.algorithm}:") and reference != str(digest):
            raise RegistryError(
                f"checking manifest {self}:{reference}: the registry answered with {digest}"
            )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Descriptor(media_type=media_type, digest=digest, size=int(length))

    def get_manifest(self, reference: str, expected: Digest | None = None) -> Manifest | None:
        if expected is None and ":" in reference:
            expected = Digest.parse(reference)
        try:
            response = self.client.request(
                "GET",
                self._path(f"manifests/{reference}"),
                scopes=self.pull,
                action=f"fetching manifest {self}:{reference}",
                headers={"Accept": mt.ACCEPT},
                passthrough=(404,),
                read_limit=MAX_MANIFEST_SIZE,
            )
        except BodyTooLargeError as err:
            # Never buffered: a broken or hostile source cannot make us hold an arbitrary body.
            size = f"{err.size} bytes" if err.size is not None else f"more than {err.limit} bytes"
            raise ManifestError(
                f"fetching manifest {self}:{reference}: the registry serves {size}, which "
                f"exceeds the {err.limit}-byte ({err.limit // 2**20} MiB) limit for manifests; "
                "regtopo stopped reading it",
                hint="registries need only accept manifests up to 4 MiB, so this one cannot "
                "be copied by digest; check the source registry (or a proxy in front of it)",
            ) from None
        if response.status_code == 404:
            _discard(response)
            return None
        manifest = Manifest.parse(
            response.content, response.headers.get("content-type"), expected=expected
        )
        header = response.headers.get("docker-content-digest")
        if header:
            served = Digest.parse(header)
            if served.algorithm == manifest.digest.algorithm and served != manifest.digest:
                raise RegistryError(
                    f"fetching manifest {self}:{reference}: the registry says {served} but the "
                    f"bytes hash to {manifest.digest}",
                    hint="the registry or a proxy altered the manifest; nothing was copied",
                )
        return manifest

    def put_manifest(self, manifest: Manifest, reference: str) -> PushResult:
        try:
            response = self.client.request(
                "PUT",
                self._path(f"manifests/{reference}"),
                scopes=self.push,
                action=f"pushing manifest {manifest.digest} to {self}:{reference}",
                headers={"Content-Type": manifest.media_type},
                body=manifest.raw,
                ok=(200, 201, 202),
                passthrough=(413,),
            )
        except RegistryError as err:
            algorithm = manifest.digest.algorithm
            if (
                reference == str(manifest.digest)
                and algorithm != "sha256"
                and ("DIGEST_INVALID" in err.codes)
            ):
                # Pushing by tag instead would leave the source's reference unresolvable.
                raise UnsupportedError(
                    f"pushing manifest {manifest.digest} to {self}: the target does not accept "
                    f"{algorithm} manifest references ({err.message})",
                    status=err.status,
                    codes=err.codes,
                    hint=f"the content is addressed by {algorithm} at the source; a target that "
                    "only stores sha256 references cannot hold it by the same digest",
                ) from err
            raise
        if response.status_code == 413:
            _discard(response)
            raise RegistryError(
                f"pushing manifest {manifest.digest} ({manifest.media_type}, {manifest.size} "
                f"bytes) to {self}:{reference}: the target refuses a manifest this large (413)",
                status=413,
                hint="registries must accept 4 MiB; this target accepts less, so the content "
                "cannot be copied there by digest",
            )
        header = response.headers.get("docker-content-digest")
        if header:
            stored = Digest.parse(header)
            if stored.algorithm == manifest.digest.algorithm and stored != manifest.digest:
                raise RegistryError(
                    f"pushing manifest to {self}:{reference}: stored as {stored}, "
                    f"expected {manifest.digest}",
                    hint="the registry rewrote the manifest; the copy is not digest-exact",
                )
        return PushResult(manifest.digest, subject_recorded="oci-subject" in response.headers)

    def exists(self) -> bool:
        """False when the registry says `NAME_UNKNOWN` for this repository."""
        try:
            self.client.request(
                "GET",
                self._path("tags/list"),
                scopes=self.pull,
                action=f"checking repository {self}",
                params=[("n", "1")],
            )
        except RepositoryNotFoundError:
            return False
        return True

    def delete_manifest(self, digest: Digest) -> None:
        scopes = _scopes(f"repository:{self.name}:delete")
        response = self.client.request(
            "DELETE",
            self._path(f"manifests/{digest}"),
            scopes=scopes,
            action=f"deleting manifest {self}@{digest}",
            ok=(200, 202, 204),
            passthrough=(400, 405),
        )
        if response.status_code in (400, 405):
            error = RegistryError.from_response(f"deleting manifest {self}@{digest}", response)
            raise UnsupportedError(error.message, status=error.status, codes=error.codes)

    # blobs

    def blob_exists(self, descriptor: Descriptor) -> bool:
        response = self.client.request(
            "HEAD",
            self._path(f"blobs/{descriptor.digest}"),
            scopes=self.pull,
            action=f"checking blob {self}@{descriptor.digest.short}",
            passthrough=(404,),
        )
        return response.status_code == 200

    @contextmanager
    def _stream_blob(self, descriptor: Descriptor) -> Iterator[Iterator[bytes]]:
        with self.client.blob_reads:
            response = self.client.request(
                "GET",
                self._path(f"blobs/{descriptor.digest}"),
                scopes=self.pull,
                action=f"fetching blob {self}@{descriptor.digest.short}",
                stream=True,
            )
            try:
                yield response.iter_bytes(READ_CHUNK)
            finally:
                response.close()

    def open_blob(self, descriptor: Descriptor) -> AbstractContextManager[Iterator[bytes]]:
        return self._stream_blob(descriptor)

    def push_blob(
        self, descriptor: Descriptor, opener: BlobOpener, *, mount_from: str | None = None
    ) -> str:
        params: list[tuple[str, str]] = []
        scopes = self.push
        if mount_from:
            params = [("mount", str(descriptor.digest)), ("from", mount_from)]
            scopes = self.push | {f"repository:{mount_from}:pull"}
        absent = self.client.absent_repositories.get(self.name)
        if absent is not None:
            # Known absent: one error per repository, not one failed upload per blob.
            raise absent
        try:
            response = self.client.request(
                "POST",
                self._path("blobs/uploads/"),
                scopes=scopes,
                action=f"starting upload of {descriptor.digest.short} to {self}",
                params=params,
                headers={"Content-Length": "0"},
                ok=(201, 202),
            )
        except RepositoryNotFoundError as err:
            raise self.client.remember_absent(self.name, err) from err
        _discard(response)
        if response.status_code == 201 and mount_from:
            return "mounted"
        location = _location(response)

        try:
            if descriptor.size <= self.client.chunk_size:
                self._put_monolithic(descriptor, opener, location)
            else:
                try:
                    self._put_chunked(descriptor, opener, location)
                except RegistryError as err:
                    if not _session_lost(err):
                        raise
                    # A chunk landed but its answer was lost, so the retry used a stale
                    # session state: the registry cannot resume it. Start over once.
                    log.warning(
                        "restarting the upload of %s to %s: %s", descriptor.digest.short, self, err
                    )
                    self._cancel_upload(location)
                    location = self._start_upload(descriptor)
                    self._put_chunked(descriptor, opener, location)
        except BaseException:
            self._cancel_upload(location)
            raise
        return "uploaded"

    def _start_upload(self, descriptor: Descriptor) -> str:
        response = self.client.request(
            "POST",
            self._path("blobs/uploads/"),
            scopes=self.push,
            action=f"starting upload of {descriptor.digest.short} to {self}",
            headers={"Content-Length": "0"},
            ok=(202,),
        )
        _discard(response)
        return _location(response)

    def _put_monolithic(self, descriptor: Descriptor, opener: BlobOpener, location: str) -> None:
        # The source is opened before the PUT takes a connection, as the chunked path does:
        # every copy then holds its read before it asks for a write, and blob reads always
        # leave a connection free (`blob_reads`), so no copy waits on a pool its own reads hold.
        with opener() as opened:
            unused: list[Iterator[bytes]] = [opened]

            def body() -> Iterable[bytes]:
                if unused:
                    yield from unused.pop()
                    return
                with opener() as chunks:  # a retried PUT reads the source again
                    yield from chunks

            response = self.client.request(
                "PUT",
                _with_digest(location, descriptor.digest),
                scopes=self.push,
                action=f"uploading blob {descriptor.digest.short} to {self}",
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(descriptor.size),
                },
                body=body,
                ok=(201, 204),
            )
        _discard(response)

    def _put_chunked(self, descriptor: Descriptor, opener: BlobOpener, location: str) -> None:
        """PATCH the blob in chunks, resuming wherever the registry says it stands.

        Each 202 confirms `Range: 0-N`: N+1 bytes received. Fewer than sent means the
        registry kept only part of a chunk (distribution-spec: resume from its offset): the
        rest of the chunk in hand goes again. Fewer than the chunk's own start means bytes
        already confirmed are gone: the source is opened again and read up to that offset.
        """
        offset = 0
        stalls = 0
        lost = True
        while lost:
            with opener() as source:
                location, offset, stalls, lost = self._send_chunks(
                    descriptor, _skip(source, offset), location, offset, stalls
                )
        response = self.client.request(
            "PUT",
            _with_digest(location, descriptor.digest),
            scopes=self.push,
            action=f"finishing upload of {descriptor.digest.short} to {self}",
            headers={"Content-Length": "0"},
            ok=(201, 204),
        )
        _discard(response)

    def _send_chunks(
        self,
        descriptor: Descriptor,
        source: Iterable[bytes],
        location: str,
        offset: int,
        stalls: int,
    ) -> tuple[str, int, int, bool]:
        """Send `source` (the blob from `offset` on) in chunks. Returns the newest location,
        the offset the registry confirmed, the count of short confirmations so far, and
        whether the registry lost bytes sent before the chunk in hand (the source must then be
        read again from that offset)."""
        for chunk in _rechunk(source, self.client.chunk_size):
            pending = chunk
            while pending:
                length = sum(len(part) for part in pending)
                end = offset + length - 1
                response = self.client.request(
                    "PATCH",
                    location,
                    scopes=self.push,
                    action=f"uploading a chunk of {descriptor.digest.short} to {self}",
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{end}",
                        "Content-Length": str(length),
                    },
                    body=_one_shot(pending),
                    ok=(202,),
                )
                _discard(response)
                location = _location(response)
                received = _received(response.headers.get("range"), end + 1)
                if received > end + 1:
                    raise RegistryError(
                        f"uploading {descriptor.digest.short} to {self}: the registry confirmed "
                        f"range 0-{received - 1}, more than the {end + 1} bytes sent"
                    )
                if received == end + 1:
                    offset, pending = received, []
                    continue
                # A short answer that still moved forward is progress (a registry keeping
                # less than a chunk per request); only answers that gained nothing count.
                if received <= offset:
                    stalls += 1
                if stalls > MAX_SHORT_RANGES:
                    raise RegistryError(
                        f"uploading {descriptor.digest.short} to {self}: the registry confirmed "
                        f"range 0-{received - 1} after bytes {offset}-{end} were sent, with no "
                        f"progress {MAX_SHORT_RANGES + 1} times",
                        hint="the registry keeps losing uploaded bytes; try again later",
                    )
                log.info(
                    "the registry kept %d of bytes %d-%d of %s for %s: resuming from %d",
                    max(received - offset, 0),
                    offset,
                    end,
                    descriptor.digest.short,
                    self,
                    received,
                )
                if received < offset:
                    return location, received, stalls, True
                pending = _drop_bytes(pending, received - offset)
                offset = received
            # Let go of this chunk before the next one is read: one held at a time.
            del chunk, pending
        return location, offset, stalls, False

    def _cancel_upload(self, location: str) -> None:
        try:
            response = self.client.http.delete(location)
            response.close()
        except httpx.HTTPError:
            pass

    # tags and referrers

    def list_tags(self) -> list[str]:
        url: str | None = self._path("tags/list")
        tags: list[str] = []
        invalid = 0
        while url:
            response = self.client.request(
                "GET", url, scopes=self.pull, action=f"listing tags of {self}", passthrough=(404,)
            )
            if response.status_code == 404:
                return []
            for tag in response.json().get("tags") or []:
                if isinstance(tag, str) and is_valid_tag(tag):
                    tags.append(tag)
                else:
                    invalid += 1
            url = _next_link(response)
        if invalid:
            # Planning and referrer discovery both list a repository: one warning per run.
            self.client.warn_once(
                f"invalid-tags:{self.name}:{invalid}",
                "skipped %d entries in the tag list of %s that are not valid tags",
                invalid,
                self,
            )
        return sorted(set(tags))

    def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        params = [("artifactType", artifact_type)] if artifact_type else None
        url: str | None = self._path(f"referrers/{digest}")
        found: list[Descriptor] = []
        while url:
            response = self.client.request(
                "GET",
                url,
                scopes=self.pull,
                action=f"listing referrers of {self}@{digest.short}",
                params=params,
                headers={"Accept": mt.OCI_INDEX},
                passthrough=(400, 404, 405, 406),
            )
            content_type = response.headers.get("content-type", "").split(";")[0].strip()
            if response.status_code != 200 or content_type != mt.OCI_INDEX:
                return None
            manifests = response.json().get("manifests") or []
            found.extend(Descriptor.from_json(m, where="referrers list") for m in manifests)
            filtered = "artifactType" in response.headers.get("oci-filters-applied", "")
            if artifact_type and not filtered:
                found = [d for d in found if d.artifact_type == artifact_type]
            url, params = _next_link(response), None
        return found


def _location(response: httpx.Response) -> str:
    """The upload session URL, resolved against the URL of the response that carried it."""
    location = response.headers.get("location")
    if not location:
        raise RegistryError(
            f"upload to {redact_url(response.request.url)}: the registry sent no Location"
        )
    return str(response.url.join(location))


def _session_lost(err: RegistryError) -> bool:
    """An upload session the registry no longer accepts where we are (stale state, 416)."""
    return err.status == 416 or bool(
        {"BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN"} & set(err.codes)
    )


def _with_digest(location: str, digest: Digest) -> str:
    """Append `digest=` to an opaque upload URL, keeping its own query intact."""
    separator = "&" if "?" in location else "?"
    return f"{location}{separator}digest={digest}"


def _next_link(response: httpx.Response) -> str | None:
    """Follow `Link: <url>; rel="next"` verbatim, resolved against the request URL."""
    for value in response.headers.get_list("link"):
        for part in value.split(","):
            if 'rel="next"' in part or "rel=next" in part:
                start, end = part.find("<"), part.find(">")
                if start != -1 and end > start:
                    return str(response.url.join(part[start + 1 : end]))
    return None


def _received(confirmed: str | None, sent: int) -> int:
    """The bytes a `Range: 0-N` header says the registry holds (N+1); `sent` when absent.

    Distribution writes `0-N` (no `bytes=`), and `0-0` for an empty session too, so `0-0`
    is read as one byte: a registry that holds none answers the next chunk with 416, which
    restarts the upload.
    """
    if not confirmed:
        return sent
    value = confirmed.strip().removeprefix("bytes=")
    first, _, last = value.partition("-")
    if not (first.strip() == "0" and last.strip().isdigit()):
        raise RegistryError(f"the registry confirmed an unreadable upload range {confirmed!r}")
    return int(last) + 1


def _drop_bytes(parts: list[bytes], count: int) -> list[bytes]:
    """`parts` without their first `count` bytes."""
    rest: list[bytes] = []
    for part in parts:
        if count >= len(part):
            count -= len(part)
            continue
        rest.append(part[count:] if count else part)
        count = 0
    return rest


def _skip(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    """`chunks` from byte `count` on: what a resumed upload sends of a reopened source."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0


def _one_shot(parts: list[bytes]) -> Callable[[], Iterable[bytes]]:
    """A body factory handing `parts` over as an iterator that lets go of them once sent.

    Why not `body=b"".join(parts)`: an httpx Response and its stream refer to each other, so a
    Response, and the Request with its content, is freed only by the cyclic garbage collector,
    which rarely runs during an upload. Chunks passed as bytes piled up, one per PATCH, until
    it did (peak RSS grew with the blob size: 293 MB for a 256 MiB layer). A generator holds
    `parts` only until it is exhausted, and small parts also spare httpcore's send loop from
    re-slicing a whole chunk after every partial socket write.
    """

    def pieces() -> Iterator[bytes]:
        yield from parts

    return pieces


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    """Group `chunks` into runs of exactly `size` bytes (the last may be shorter).

    Runs are lists of the pieces as read, never joined: a 16 MiB contiguous buffer per chunk
    made peak RSS vary by 20 MB from run to run with the allocator's whims.
    """
    parts: list[bytes] = []
    held = 0
    for chunk in chunks:
        rest = chunk
        while rest:
            room = size - held
            piece, rest = rest[:room], rest[room:]
            parts.append(piece)
            held += len(piece)
            if held == size:
                yield parts
                parts, held = [], 0
    if parts:
        yield parts


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port, the default port spelled out, for same-origin checks."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default
