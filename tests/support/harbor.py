"""A stand-in for Harbor's REST API, in front of a real Distribution registry.

Harbor itself (core, database, jobservice) cannot run here, so this is not Harbor: it is a
handler written from Harbor's public v2.0 API reference (the swagger's `listArtifacts`, its
`Artifact`, `Tag` and `Reference` models, and the `Link` / `X-Total-Count` paging headers), and
from how Harbor's list query treats index children. It answers only
`GET /api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts`; every `/v2/`
request goes on to the Distribution registry behind the same `tests.support.proxy.Proxy`, which
holds the content and does the deleting.

What it lists is read from that registry's storage directory, so it follows pushes and deletes
made through the OCI API: each manifest revision of the repository is an artifact, each tag
link a tag. `push_time` is what the test set with :meth:`HarborApi.set_pushed` (Harbor stamps
it at push; a test cannot wait months), else the revision's file time.

Reproduced from the reference:

- the repository name after the project is URL-encoded twice when it holds `/`
  (`a/b` -> `a%252Fb`); a name encoded once does not match the route (404);
- HTTP basic authentication; no or wrong credentials answer 401 with Harbor's error body
  (`{"errors": [{"code": "UNAUTHORIZED", ...}]}`), an unknown project 403 `FORBIDDEN` to an
  authenticated user, as `RequireProjectAccess` does;
- `page` (from 1) and `page_size` (default 10, at most 100, else 422), `X-Total-Count`, and a
  `Link` header with `rel="prev"` / `rel="next"` URLs;
- `with_tag` (default true): `tags` is a list of tag objects, or null when untagged;
- an index's children are `references` (`child_digest`, `platform`, ...); current Harbor leaves
  a child with no tag of its own out of the list (`list_children=False`), some versions list it
  as an untagged artifact (`list_children=True`).
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from tests.support.proxy import MakeProxy, Proxy, ProxyRequest, Reply
from tests.support.registries import Registry

ROUTE = re.compile(r"/api/v2\.0/projects/([^/]+)/repositories/([^/]+)/artifacts")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
NEVER = "0001-01-01T00:00:00.000Z"  # Harbor's pull_time for an artifact never pulled


def harbor_time(moment: datetime) -> str:
    """RFC 3339 with milliseconds and `Z`, as go-openapi's DateTime writes it."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def error(status: int, code: str, message: str) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return Reply(status, {"Content-Type": "application/json"}, body)


@dataclass
class HarborApi:
    """The `/api/v2.0` half of a Harbor stand-in; `rule` goes on a proxy before Distribution."""

    registry: Registry
    username: str
    password: str
    projects: set[str] = field(default_factory=set)
    list_children: bool = False
    #: a status every API request gets instead of an answer (401, 503), None for none
    refuse: int | None = None
    pushed: dict[tuple[str, str], datetime] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_pushed(self, repository: str, digest: str, moment: datetime) -> None:
        with self._lock:
            self.pushed[(repository, digest)] = moment

    def rule(self, request: ProxyRequest) -> Reply | None:
        raw_path = urlsplit(request.target).path
        if not raw_path.startswith("/api/"):
            return None
        match = ROUTE.fullmatch(raw_path)
        if request.method != "GET" or match is None:
            return error(404, "NOT_FOUND", f"no route for {request.method} {raw_path}")
        if self.refuse is not None:
            return error(self.refuse, _code(self.refuse), "refused by the test")
        if not self._authenticated(request):
            return error(401, "UNAUTHORIZED", "unauthorized")
        project = unquote(match.group(1))
        once = unquote(match.group(2))
        if "/" in once:
            # Encoded once, the name's `/` splits the path: no route matches it.
            return error(404, "NOT_FOUND", f"no route for {request.method} {raw_path}")
        repository = f"{project}/{unquote(once)}"
        if project not in self.projects:
            return error(403, "FORBIDDEN", "forbidden")

        query = request.query
        try:
            page = int(query.get("page", ["1"])[0])
            size = int(query.get("page_size", ["10"])[0])
        except ValueError:
            return error(422, "UNPROCESSABLE_ENTITY", "page and page_size are integers")
        if page < 1 or not 1 <= size <= 100:
            return error(422, "UNPROCESSABLE_ENTITY", "page_size in body should be <= 100")
        with_tag = query.get("with_tag", ["true"])[0] != "false"

        artifacts = self.artifacts(repository, with_tag=with_tag)
        chunk = artifacts[(page - 1) * size : page * size]
        headers = {"Content-Type": "application/json", "X-Total-Count": str(len(artifacts))}
        links = []
        if page > 1 and (page - 1) * size < len(artifacts):
            links.append(f'<{_page_url(raw_path, query, page - 1, size)}>; rel="prev"')
        if page * size < len(artifacts):
            links.append(f'<{_page_url(raw_path, query, page + 1, size)}>; rel="next"')
        if links:
            headers["Link"] = " , ".join(links)
        return Reply(200, headers, json.dumps(chunk).encode())

    def _authenticated(self, request: ProxyRequest) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.username, self.password)

    # what the registry holds, read from its storage

    def artifacts(self, repository: str, *, with_tag: bool = True) -> list[dict[str, Any]]:
        """The repository's artifacts as ListArtifacts answers them, newest push first."""
        base = self._storage / "repositories" / repository / "_manifests"
        revisions = base / "revisions" / "sha256"
        digests: dict[str, float] = {}
        if revisions.is_dir():
            for entry in revisions.iterdir():
                link = entry / "link"
                if link.is_file():
                    digests[f"sha256:{entry.name}"] = link.stat().st_mtime
        tags: dict[str, list[str]] = {}
        tag_root = base / "tags"
        if tag_root.is_dir():
            for entry in sorted(tag_root.iterdir()):
                link = entry / "current" / "link"
                if link.is_file():
                    tags.setdefault(link.read_text().strip(), []).append(entry.name)

        ids = {digest: n for n, digest in enumerate(sorted(digests), start=1)}
        documents = {digest: self._manifest(digest) for digest in digests}
        references: dict[str, list[dict[str, Any]]] = {}
        children: set[str] = set()
        for digest, (document, media_type, _) in documents.items():
            if media_type not in INDEX_TYPES:
                continue
            for child in document.get("manifests") or []:
                child_digest = str(child.get("digest"))
                children.add(child_digest)
                references.setdefault(digest, []).append(
                    {
                        "parent_id": ids[digest],
                        "child_id": ids.get(child_digest, 0),
                        "child_digest": child_digest,
                        "platform": child.get("platform"),
                        "urls": child.get("urls"),
                        "annotations": child.get("annotations"),
                    }
                )

        out = []
        for digest, mtime in digests.items():
            if digest in children and digest not in tags and not self.list_children:
                continue
            document, media_type, size = documents[digest]
            with self._lock:
                pushed = self.pushed.get((repository, digest))
            pushed = pushed or datetime.fromtimestamp(mtime, UTC)
            config = document.get("config") or {}
            artifact = {
                "id": ids[digest],
                "type": "IMAGE",
                "media_type": config.get("mediaType", media_type),
                "manifest_media_type": media_type,
                "artifact_type": document.get("artifactType") or config.get("mediaType"),
                "project_id": 1,
                "repository_id": 1,
                "repository_name": repository,
                "digest": digest,
                "size": size,
                "icon": "",
                "push_time": harbor_time(pushed),
                "pull_time": NEVER,
                "extra_attrs": {},
                "annotations": document.get("annotations"),
                "references": references.get(digest),
                "tags": None,
                "labels": None,
                "accessories": None,
            }
            if with_tag and digest in tags:
                artifact["tags"] = [
                    {
                        "id": ids[digest] * 100 + n,
                        "repository_id": 1,
                        "artifact_id": ids[digest],
                        "name": name,
                        "push_time": harbor_time(pushed),
                        "pull_time": NEVER,
                        "immutable": False,
                    }
                    for n, name in enumerate(tags[digest])
                ]
            out.append(artifact)
        out.sort(key=lambda a: (a["push_time"], a["digest"]), reverse=True)
        return out

    @property
    def _storage(self) -> Path:
        return self.registry.storage_dir / "docker" / "registry" / "v2"

    def _manifest(self, digest: str) -> tuple[dict[str, Any], str, int]:
        hex_ = digest.removeprefix("sha256:")
        data = (self._storage / "blobs" / "sha256" / hex_[:2] / hex_ / "data").read_bytes()
        document = json.loads(data)
        media_type = document.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        return document, str(media_type), len(data)


def _code(status: int) -> str:
    return {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}.get(
        status, "INTERNAL_SERVER_ERROR" if status >= 500 else "UNKNOWN"
    )


def _page_url(path: str, query: dict[str, list[str]], page: int, size: int) -> str:
    params = {k: v[0] for k, v in query.items()} | {"page": str(page), "page_size": str(size)}
    return path + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def harbor_registry(registry: Registry, make_proxy: MakeProxy, api: HarborApi) -> Proxy:
    """`registry` behind a proxy that answers Harbor's `/api/v2.0` with `api`."""
    return make_proxy(registry.url, name="harbor").add(api.rule)
