"""A handler that speaks the referrers API in front of a real Distribution registry.

Distribution 2.8 has no referrers API and never answers `OCI-Subject`. `ReferrersAPIProxy`
forwards every request to a real registry process and adds exactly those two behaviours:
  - a manifest PUT whose body has a `subject` is recorded, and the answer carries
    `OCI-Subject: <subject digest>` (distribution-spec "Pushing Manifests with Subject");
  - `GET /v2/<name>/referrers/<digest>[?artifactType=]` answers an OCI index of the recorded
    referrers, filtered by `artifactType` with `OCI-Filters-Applied: artifactType` (or, with
    `apply_filters=False`, unfiltered and without the header, which clients must handle).

`ForwardingProxy` is the plain pass-through underneath; tests subclass it to add one quirk of
one registry (a hook answers instead of the registry when it returns a response).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.registries import Registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class ForwardingProxy:
    """Forwards to `backend`, rewriting upload `Location`s to come back through the proxy."""

    def __init__(self, backend: Registry) -> None:
        self.backend = backend
        self.requests: list[Request] = []
        self._client = httpx.Client(timeout=30, follow_redirects=False)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def __enter__(self) -> ForwardingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seen(self, method: str, path_pattern: str) -> list[Request]:
        pattern = re.compile(path_pattern)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # hooks

    def intercept(self, request: Request) -> Answer | None:
        """Answer instead of the registry; None forwards the request."""
        return None

    def after(self, request: Request, answer: Answer) -> Answer:
        """Adjust the registry's answer before it goes back to the client."""
        return answer

    # plumbing

    def _serve(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
        answer = self.intercept(request)
        if answer is None:
            answer = self.forward(request)
        return self.after(request, answer)

    def forward(self, request: Request) -> Answer:
        query = [(k, v) for k, values in request.query.items() for v in values]
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", *_HOP_BY_HOP)
        }
        response = self._client.request(
            request.method,
            f"{self.backend.url}{request.path}",
            params=query,
            headers=headers,
            content=request.body if request.method not in ("GET", "HEAD") else None,
        )
        out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
        if "location" in out:
            out["location"] = out["location"].replace(self.backend.url, self.url)
        if request.method == "HEAD":
            out["content-length"] = response.headers.get("content-length", "0")
        return Answer(response.status_code, out, response.content)


class ReferrersAPIProxy(ForwardingProxy):
    """Distribution plus the referrers API and `OCI-Subject`, for the paths 2.8 cannot show."""

    def __init__(self, backend: Registry, *, apply_filters: bool = True) -> None:
        self.apply_filters = apply_filters
        self.referrers: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        super().__init__(backend)

    def intercept(self, request: Request) -> Answer | None:
        match = re.fullmatch(r"/v2/(.+)/referrers/([^/]+)", request.path)
        if match is None or request.method != "GET":
            return None
        with self._lock:
            entries = list(self.referrers.get((match[1], match[2]), {}).values())
        headers = {"content-type": OCI_INDEX}
        wanted = request.query.get("artifactType")
        if wanted and self.apply_filters:
            entries = [e for e in entries if e.get("artifactType") in wanted]
            headers["oci-filters-applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return Answer(200, headers, json.dumps(body).encode())

    def after(self, request: Request, answer: Answer) -> Answer:
        match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", request.path)
        if request.method != "PUT" or match is None or answer.status != 201:
            return answer
        try:
            document = json.loads(request.body)
        except ValueError:
            return answer
        subject = document.get("subject") if isinstance(document, dict) else None
        if not isinstance(subject, dict):
            return answer
        entry: dict[str, Any] = {
            "mediaType": document.get("mediaType") or request.headers.get("content-type"),
            "digest": "sha256:" + hashlib.sha256(request.body).hexdigest(),
            "size": len(request.body),
        }
        artifact_type = document.get("artifactType") or (document.get("config") or {}).get(
            "mediaType"
        )
        if artifact_type:
            entry["artifactType"] = artifact_type
        if document.get("annotations"):
            entry["annotations"] = document["annotations"]
        with self._lock:
            listed = self.referrers.setdefault((match[1], subject["digest"]), {})
            listed[entry["digest"]] = entry
        answer.headers["oci-subject"] = subject["digest"]
        return answer


def _make_handler(proxy: ForwardingProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

        def _body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(data)
                    data.extend(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            request = Request(
                self.command,
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                {k.lower(): v for k, v in self.headers.items()},
                self._body(),
            )
            answer = proxy._serve(request)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", answer.headers.get("content-length", "0"))
                self.end_headers()
                return
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    return Handler
