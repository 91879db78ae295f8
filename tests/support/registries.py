"""Real OCI registries on loopback for tests: Distribution 2.8 processes, a token issuer, oracles.

Why real processes: regtopo's value is talking to real registries, and the quirks that matter
(auth challenges, digest checks, 405 on DELETE, token scopes) are the registry's, not ours. A
fake would encode our own assumptions. Each :class:`Registry` is one ``docker-registry serve``
process on 127.0.0.1 with its own storage, config and access log in a private directory.

The helpers at the bottom (:func:`push_random_image`, the ``skopeo_*`` functions) are test
oracles: they deliberately do not use regtopo's client, so a bug there cannot hide itself.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Protocol, Self
from urllib.parse import parse_qs, urljoin, urlsplit

import bcrypt
import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.tls import TLSFiles

__all__ = [
    "DEFAULT_ISSUER",
    "DEFAULT_SERVICE",
    "AccessLogEntry",
    "AuthMode",
    "MakeRegistry",
    "Registry",
    "RegistryStartError",
    "SkopeoError",
    "TokenIssuer",
    "TokenRequest",
    "docker_registry_binary",
    "push_random_image",
    "skopeo_binary",
    "skopeo_copy",
    "skopeo_digest",
    "skopeo_inspect_raw",
]

AuthMode = Literal["none", "basic", "token"]

DEFAULT_SERVICE = "regtopo-test"
DEFAULT_ISSUER = "regtopo-test-issuer"
DEFAULT_USERNAME = "regtopo"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# A query parameter that marks our own "flush" requests in the access log (see request_lines).
_LOG_MARKER = "regtopo-log-marker"

# Apache combined log format, as written by the registry's gorilla logging handler:
# 127.0.0.1 - - [03/Dec/2026:18:32:18 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
_ACCESS_LINE = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" '
    r'(?P<status>\d{3}) (?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"'
)


def docker_registry_binary() -> str | None:
    """Path of ``docker-registry`` (Debian's Distribution 2.8 package), or None if missing."""
    return shutil.which("docker-registry")


def skopeo_binary() -> str | None:
    """Path of ``skopeo``, the independent client used as an oracle, or None if missing."""
    return shutil.which("skopeo")


def _free_port() -> int:
    """An unused loopback port. Racy by nature, so Registry retries if the bind fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# Token issuer
# --------------------------------------------------------------------------------------------


class TokenRequest(NamedTuple):
    """One call to the issuer's ``/token``: what a test asserts a client asked for.

    ``query`` maps each parameter to its last value, except ``scope``, always a list of the
    values as sent (the protocol repeats the parameter; a value may also hold several
    space-separated scopes, which the grant logic splits but this record keeps). ``had_basic_auth`` is true when any Basic header was sent, valid or not.
    """

    query: dict[str, Any]
    had_basic_auth: bool


class TokenIssuer:
    """A tiny Docker-style token server, the stand-in for auth.docker.io or ghcr.io/token.

    Why our own: Distribution 2.8 only verifies tokens, it never issues them. This one signs
    ES256 JWTs with an EC P-256 key whose self-signed certificate is the registry's
    ``rootcertbundle`` and puts that certificate in the JWT header ``x5c``, so no libtrust
    ``kid`` is needed.

    Knobs a test may change at any time (read per request):

    - ``lifetime``: seconds from now to ``exp`` (and the ``expires_in`` reported). Note that
      Distribution 2.8 adds 60 s of leeway to ``exp``: a token only fails at the registry once
      ``lifetime + 60`` seconds have passed, so use a negative lifetime (e.g. -120) to hand out
      tokens that are already expired.
    - ``omit_expires_in``: answer with ``{"token": ...}`` only, like minimal issuers do.
    - ``denied_repositories``: names that get an empty action list (the registry then answers
      401 ``insufficient_scope``; the issuer itself never refuses a scope, per the spec).
    - ``grant_delete``: whether ``delete`` (and ``*``) is grantable on repositories.
    - ``anonymous_actions``: what a caller without credentials gets (default nothing), to
      emulate public repositories.
    - ``require_auth``: answer 401 to callers without credentials instead of an empty grant.
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        lifetime: int = 300,
        require_auth: bool = False,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.username = username
        self.password = password
        self.service = service
        self.issuer = issuer
        self.lifetime = lifetime
        self.omit_expires_in = False
        self.denied_repositories: set[str] = set()
        self.grant_delete = True
        self.anonymous_actions: set[str] = set()
        self.require_auth = require_auth
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()

        self._key = ec.generate_private_key(ec.SECP256R1())
        self.cert_pem, cert_der = _self_signed_cert(self._key, issuer)
        self._x5c = [base64.b64encode(cert_der).decode("ascii")]

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_token_handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        # A short poll interval so stop() returns in ~50 ms instead of serve_forever's 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"token-issuer-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    @property
    def realm(self) -> str:
        """The URL a registry advertises in its ``Bearer realm=...`` challenge."""
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

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
        return f"TokenIssuer(realm={self.realm!r}, service={self.service!r})"

    def issue(self, scopes: Iterable[str], *, authenticated: bool, subject: str = "") -> str:
        """Sign a token granting the allowed part of ``scopes``; public for tests that need one."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,  # Distribution 2.8 rejects an array here: keep it a string.
            "exp": now + self.lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "access": [self._grant(scope, authenticated) for scope in scopes if scope],
        }
        # PyJWT writes ES256 signatures as JWS requires (raw r||s); 2.8 rejects DER ones.
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"x5c": self._x5c})

    def _grant(self, scope: str, authenticated: bool) -> dict[str, Any]:
        # Names may carry "host:port/" so split the type off the front and actions off the end.
        rtype, _, rest = scope.partition(":")
        name, _, actions_text = rest.rpartition(":")
        requested = [a for a in actions_text.split(",") if a]
        if rtype.split("(")[0] == "repository":
            allowed = {"pull", "push"} | ({"delete", "*"} if self.grant_delete else set())
            if "*" in requested and "*" not in allowed:
                requested = ["pull", "push", "delete"]  # "*" means all: grant what we may
            if not authenticated:
                allowed = set(self.anonymous_actions)
            if name in self.denied_repositories:
                allowed = set()
        elif rtype == "registry" and name == "catalog":
            allowed = {"*"} if authenticated else set()
        else:
            allowed = set()
        return {"type": rtype, "name": name, "actions": [a for a in requested if a in allowed]}

    def _record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _check_basic(self, header: str | None) -> bool | None:
        """None: no Basic header; True/False: the credentials match / do not match."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            user, _, pw = base64.b64decode(header[6:].strip()).decode().partition(":")
        except ValueError:
            return False
        if self.username is None:
            return True  # no credentials configured: anyone who says who they are gets in
        return secrets.compare_digest(user, self.username) and secrets.compare_digest(
            pw, self.password or ""
        )


def _self_signed_cert(key: ec.EllipticCurvePrivateKey, common_name: str) -> tuple[bytes, bytes]:
    """A certificate for the signing key: the registry trusts exactly the keys in its bundle."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
    )


def _make_token_handler(owner: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "regtopo-test-issuer/1"

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log; ``owner.requests`` is the record."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
                return
            params = parse_qs(url.query, keep_blank_values=True)
            query: dict[str, Any] = {k: v[-1] for k, v in params.items() if k != "scope"}
            query["scope"] = params.get("scope", [])  # as sent: not split on spaces
            header = self.headers.get("Authorization")
            basic = owner._check_basic(header)
            owner._record(TokenRequest(query, basic is not None))

            if basic is False or (basic is None and owner.require_auth):
                # Wrong credentials are an error (as on Docker Hub), never a silent downgrade.
                self._reply(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    {"WWW-Authenticate": 'Basic realm="regtopo-test-issuer"'},
                )
                return
            service = query.get("service")
            if service not in (None, owner.service):
                self._reply(400, {"errors": [{"code": "UNSUPPORTED", "message": "service"}]})
                return
            now = dt.datetime.now(dt.UTC)
            # Without configured credentials everyone counts as authenticated.
            token = owner.issue(
                [one for joined in query["scope"] for one in joined.split(" ")],
                authenticated=basic is True or owner.username is None,
                subject=(owner.username or "") if basic else "",
            )
            body: dict[str, Any] = {"token": token}
            if not owner.omit_expires_in:
                body |= {
                    "access_token": token,
                    "expires_in": owner.lifetime,
                    "issued_at": _rfc3339(now),
                }
            self._reply(200, body)

        def _reply(
            self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


# --------------------------------------------------------------------------------------------
# Registry process
# --------------------------------------------------------------------------------------------


class RegistryStartError(RuntimeError):
    """The registry process exited or never answered ``GET /v2/``; the message has its log."""


@dataclass(frozen=True)
class AccessLogEntry:
    """One request as the registry logged it (combined log format)."""

    method: str
    path: str  # without the query string
    target: str  # as sent, query included
    status: int
    line: str


class Registry:
    """One ``docker-registry serve`` process on 127.0.0.1, with its own storage and log.

    ``auth`` picks the provider: ``"none"``, ``"basic"`` (htpasswd with one bcrypt user) or
    ``"token"`` (Bearer tokens from a :class:`TokenIssuer`; one is created, owned and stopped
    with the registry unless ``issuer`` is given). ``username``/``password`` are the
    credentials a client should use (at the registry for basic, at the issuer for token), and
    are None for ``"none"``.

    ``delete_enabled=False`` makes manifest DELETE answer 405 ``UNSUPPORTED``, like registries
    that refuse deletion over the API (GHCR, Docker Hub).

    The process is always stopped by :meth:`stop` (also on ``with`` exit); if startup fails,
    the constructor stops everything it started before raising.
    """

    START_TIMEOUT = 10.0

    def __init__(
        self,
        auth: AuthMode = "none",
        *,
        delete_enabled: bool = True,
        workdir: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        issuer: TokenIssuer | None = None,
        extra_config: Mapping[str, Any] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        if auth not in ("none", "basic", "token"):
            raise ValueError(f"unknown auth mode {auth!r}")
        binary = docker_registry_binary()
        if binary is None:
            raise FileNotFoundError(
                "docker-registry is not installed: apt-get install docker-registry skopeo"
            )
        self.auth: AuthMode = auth
        self.delete_enabled = delete_enabled
        # With TLS the registry requires a client certificate signed by the test CA.
        self.tls = tls
        self._own_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="regtopo-registry-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage_dir = self.workdir / "storage"
        self.log_path = self.workdir / "registry.log"
        self.config_path = self.workdir / "config.json"
        self.username: str | None = None
        self.password: str | None = None
        self.issuer: TokenIssuer | None = None
        self._own_issuer = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: io.BufferedWriter | None = None
        self._log_offset = 0
        self._stopped = False
        self.port = 0

        try:
            auth_config = self._prepare_auth(auth, username, password, issuer)
            for _attempt in range(3):
                self.port = _free_port()
                config = self._config(auth_config, extra_config or {})
                self.config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
                self._launch(binary)
                if self._wait_ready():
                    return
            raise RegistryStartError(f"could not bind a free port\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    # -- setup ------------------------------------------------------------------------------

    def _prepare_auth(
        self,
        auth: AuthMode,
        username: str | None,
        password: str | None,
        issuer: TokenIssuer | None,
    ) -> dict[str, Any]:
        if auth == "none":
            return {}
        if auth == "basic":
            self.username = username or DEFAULT_USERNAME
            self.password = password or secrets.token_urlsafe(12)
            # Cost 4: the registry checks the hash on every request; the default cost (12)
            # makes a copy of a few blobs take seconds.
            hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{self.username}:{hashed}\n")
            return {"htpasswd": {"realm": "regtopo-test-basic", "path": str(htpasswd)}}
        if issuer is None:
            self.username = username or DEFAULT_USERNAME
            self.password = password or secrets.token_urlsafe(12)
            issuer = TokenIssuer(username=self.username, password=self.password)
            self._own_issuer = True
        else:
            self.username, self.password = issuer.username, issuer.password
        self.issuer = issuer
        bundle = self.workdir / "rootcertbundle.pem"
        bundle.write_bytes(issuer.cert_pem)
        return {
            "token": {
                "realm": issuer.realm,
                "service": issuer.service,
                "issuer": issuer.issuer,
                "rootcertbundle": str(bundle),
            }
        }

    def _config(self, auth_config: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {
            "version": "0.1",
            # warn keeps the log to access lines (one per request) plus real problems.
            "log": {"level": "warn", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage_dir)},
                "delete": {"enabled": self.delete_enabled},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                # Without it 2.8 invents one per start and warns; fixed is also restart-safe.
                "secret": secrets.token_hex(16),
            },
        }
        if auth_config:
            config["auth"] = auth_config
        if self.tls is not None:
            config["http"]["tls"] = {
                "certificate": str(self.tls.server_cert),
                "key": str(self.tls.server_key),
                "clientcas": [str(self.tls.ca)],
            }
        return _deep_merge(config, extra)

    def _launch(self, binary: str) -> None:
        if self._log_file is None:
            self._log_file = open(self.log_path, "ab")  # closed in stop()
        # REGISTRY_* variables override config keys (skopeo users often export
        # REGISTRY_AUTH_FILE, which makes 2.8 refuse to start): never pass them through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        # PDEATHSIG fires when the creating *thread* exits, so only arm it from the main
        # thread: a registry started from a worker thread must outlive that thread.
        arm = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        self._log_offset = self._log_file.tell()
        self._proc = subprocess.Popen(
            [binary, "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if arm else None,
        )

    def _wait_ready(self) -> bool:
        """True once ``GET /v2/`` answers 200/401; False if the port was taken (retry)."""
        assert self._proc is not None
        deadline = time.monotonic() + self.START_TIMEOUT
        verify: Any = self.tls.client_context() if self.tls else True
        with httpx.Client(timeout=1.0, verify=verify) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    tail = self.log_tail()
                    with open(self.log_path, "rb") as log:
                        log.seek(self._log_offset)
                        this_attempt = log.read().decode(errors="replace")
                    if "address already in use" in this_attempt:
                        self._proc = None
                        return False
                    raise RegistryStartError(
                        f"docker-registry exited with {self._proc.returncode}\n{tail}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/v2/").status_code in (200, 401):
                        return True
                time.sleep(0.02)
        raise RegistryStartError(
            f"docker-registry did not answer on {self.url} within {self.START_TIMEOUT} s\n"
            f"{self.log_tail()}"
        )

    # -- public API -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS), the Distribution API's base."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """``(username, password)`` or None for an open registry."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the registry's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def request_lines(self) -> list[str]:
        """The access-log lines recording HTTP requests, oldest first.

        The registry writes a line just *after* it has sent the response, so a client can see
        the answer before the line exists. To make counts exact, this first sends a marker
        request and waits until its own line appears; marker lines are left out of the result.
        """
        marker = uuid.uuid4().hex
        try:
            httpx.get(f"{self.url}/v2/?{_LOG_MARKER}={marker}", timeout=2.0)
            deadline = time.monotonic() + 5.0
        except httpx.TransportError:
            deadline = 0.0  # registry gone (stopped): the log is final, read it as is
        while True:
            text = self.log_path.read_text(errors="replace")
            if marker in text or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return [
            line
            for line in text.splitlines()
            if _ACCESS_LINE.match(line) and _LOG_MARKER not in line
        ]

    def access_log(self) -> list[AccessLogEntry]:
        """:meth:`request_lines`, parsed."""
        entries = []
        for line in self.request_lines():
            m = _ACCESS_LINE.match(line)
            assert m is not None
            target = m["target"]
            entries.append(
                AccessLogEntry(m["method"], target.split("?")[0], target, int(m["status"]), line)
            )
        return entries

    def count_requests(self, method: str | None = None, path: str | None = None) -> int:
        """How many logged requests match ``method`` and the regex ``path`` (fullmatch).

        Example: ``count_requests("PUT", r"/v2/app/manifests/.*")``.
        """
        pattern = re.compile(path) if path is not None else None
        return sum(
            1
            for e in self.access_log()
            if (method is None or e.method == method)
            and (pattern is None or pattern.fullmatch(e.path))
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; stops an owned issuer too. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        finally:
            if self._log_file is not None:
                self._log_file.close()
            if self._own_issuer and self.issuer is not None:
                self.issuer.stop()
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

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
        return f"Registry(url={self.url!r}, auth={self.auth!r})"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, recursing into mappings so one nested key can be overridden."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the parent thread exits.

    Why: if pytest itself is killed (CI cancel, ``pytest-timeout`` thread method), finalizers
    never run and the registry would be orphaned, holding its port.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class MakeRegistry(Protocol):
    """Type of the ``make_registry`` fixture (a factory)."""

    def __call__(
        self, auth: AuthMode = "none", delete_enabled: bool = True, **kwargs: Any
    ) -> Registry: ...


# --------------------------------------------------------------------------------------------
# skopeo, the independent client
# --------------------------------------------------------------------------------------------


class SkopeoError(RuntimeError):
    """skopeo exited non-zero; ``stderr`` holds its reason."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"skopeo failed ({returncode}): {' '.join(argv)}\n{stderr.strip()}")
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr


def _run_skopeo(args: Sequence[str], timeout: float) -> bytes:
    """Run skopeo in a sandbox: its own HOME, auth file, policy and registries config.

    Why: skopeo reads and writes ``~/.docker/config.json``, ``$XDG_RUNTIME_DIR/containers``,
    ``/etc/containers/policy.json`` (absent on minimal hosts) and registries.conf (which can
    rewrite names through mirrors). A test must not depend on, or change, any of them.
    """
    binary = skopeo_binary()
    if binary is None:
        raise FileNotFoundError("skopeo is not installed: apt-get install docker-registry skopeo")
    with tempfile.TemporaryDirectory(prefix="regtopo-skopeo-") as tmp:
        home = Path(tmp)
        (home / "auth.json").write_text("{}")
        (home / "policy.json").write_text(
            json.dumps({"default": [{"type": "insecureAcceptAnything"}]})
        )
        (home / "registries.conf").write_text("")
        (home / "registries.d").mkdir()
        (home / "tmp").mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(home),
            "XDG_CONFIG_HOME": str(home),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "CONTAINERS_REGISTRIES_CONF": str(home / "registries.conf"),
            "TMPDIR": str(home / "tmp"),
        }
        argv = [
            binary,
            "--policy",
            str(home / "policy.json"),
            "--registries.d",
            str(home / "registries.d"),
            *args,
        ]
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SkopeoError(argv, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout


def _docker_ref(registry: Registry, reference: str) -> str:
    return f"docker://{registry.host}/{reference}"


def skopeo_inspect_raw(registry: Registry, reference: str, *, timeout: float = 30) -> bytes:
    """The manifest bytes exactly as the registry serves them (``repo:tag`` or ``repo@digest``)."""
    args = ["inspect", "--raw", "--tls-verify=false"]
    if registry.credentials is not None:
        args += ["--creds", "{}:{}".format(*registry.credentials)]
    return _run_skopeo([*args, _docker_ref(registry, reference)], timeout)


def skopeo_digest(registry: Registry, reference: str) -> str:
    """``sha256:<hex>`` of :func:`skopeo_inspect_raw`'s bytes: the manifest digest per skopeo."""
    return _sha256_digest(skopeo_inspect_raw(registry, reference))


CopyEndpoint = str | tuple[Registry, str]


def skopeo_copy(src: CopyEndpoint, dst: CopyEndpoint, *args: str, timeout: float = 120) -> bytes:
    """``skopeo copy [args] SRC DST``; returns stdout.

    Each endpoint is either a skopeo transport string (``oci:/dir:tag``,
    ``docker://host/repo:tag``) passed as is, or ``(registry, "repo:tag")``, for which the
    ``docker://`` reference, ``--{src,dest}-tls-verify=false`` and ``--{src,dest}-creds`` are
    added. Extra flags such as ``--all`` or ``--preserve-digests`` go in ``args``.
    """
    argv: list[str] = ["copy"]
    refs: list[str] = []
    for side, endpoint in (("src", src), ("dest", dst)):
        if isinstance(endpoint, str):
            refs.append(endpoint)
            continue
        registry, reference = endpoint
        argv.append(f"--{side}-tls-verify=false")
        if registry.credentials is not None:
            argv += [f"--{side}-creds", "{}:{}".format(*registry.credentials)]
        refs.append(_docker_ref(registry, reference))
    return _run_skopeo([*argv, *args, *refs], timeout)


# --------------------------------------------------------------------------------------------
# push_random_image: a plain-httpx pusher, independent of regtopo's client
# --------------------------------------------------------------------------------------------


def _random_layer(size: int) -> tuple[bytes, str]:
    """A real gzip'd tar holding one file of ``size`` random bytes; returns (blob, diff_id)."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(f"random-{secrets.token_hex(4)}.bin")
        info.size = size
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    tar_bytes = tar_buf.getvalue()
    return gzip.compress(tar_bytes, mtime=0), _sha256_digest(tar_bytes)


def _auth_headers(client: httpx.Client, registry: Registry, repo: str) -> dict[str, str]:
    if registry.auth == "none":
        return {}
    if registry.auth == "basic":
        assert registry.credentials is not None
        raw = "{}:{}".format(*registry.credentials).encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
    assert registry.issuer is not None
    response = client.get(
        registry.issuer.realm,
        params={"service": registry.issuer.service, "scope": f"repository:{repo}:pull,push"},
        auth=registry.credentials,  # None: anonymous
    )
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _upload_blob(client: httpx.Client, base: str, repo: str, data: bytes) -> str:
    digest = _sha256_digest(data)
    start = client.post(f"{base}/v2/{repo}/blobs/uploads/")
    start.raise_for_status()
    # The Location carries the upload state (``_state=...``) in its query: append, not replace
    # (httpx's ``params=`` would drop the existing query).
    location = urljoin(f"{base}/", start.headers["Location"])
    separator = "&" if urlsplit(location).query else "?"
    done = client.put(
        f"{location}{separator}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return digest


def push_random_image(
    registry: Registry, repo: str, tag: str, layers: Sequence[int] = (1024,)
) -> str:
    """Push a small real OCI image (config + one gzip'd tar layer per size) and tag it.

    Returns the manifest digest. Raises ``httpx.HTTPStatusError`` on any refusal (e.g. 401
    when the issuer denies ``repo``), so tests can assert on ``exc.response``.
    """
    blobs = [_random_layer(size) for size in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in blobs]},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    with httpx.Client(timeout=30) as client:
        client.headers.update(_auth_headers(client, registry, repo))
        layer_descs = [
            {
                "mediaType": OCI_LAYER_GZIP,
                "digest": _upload_blob(client, registry.url, repo, blob),
                "size": len(blob),
            }
            for blob, _ in blobs
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": _upload_blob(client, registry.url, repo, config_bytes),
                "size": len(config_bytes),
            },
            "layers": layer_descs,
        }
        body = json.dumps(manifest, indent=2).encode()
        response = client.put(
            f"{registry.url}/v2/{repo}/manifests/{tag}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        response.raise_for_status()
    digest = _sha256_digest(body)
    served = response.headers.get("Docker-Content-Digest")
    if served != digest:
        raise AssertionError(f"registry says {served}, we computed {digest}")
    return digest
