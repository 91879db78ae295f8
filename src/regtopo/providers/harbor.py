"""Harbor's REST API (v2.0): the inventory retention reads.

`GET /api/v2.0/projects/{project}/repositories/{repository}/artifacts` lists a repository's
artifacts with their tags (`with_tag=true`), untagged ones included, each with its `push_time`
and, for an index, the `references` to its children. The OCI API cannot list untagged manifests
and does not say when something was pushed; this does.

- The first path component of a Harbor repository is its project; the rest is the repository
  name, URL-encoded twice when it holds a `/` (`a/b` -> `a%252Fb`), as the API reference says.
- Authentication is HTTP basic with the credentials the registry itself uses (a Harbor user or
  robot account, from the topology or the docker config); none means anonymous, which reads
  public projects only.
- Pages: `page` and `page_size` (at most 100); a `Link: <...>; rel="next"` or an
  `X-Total-Count` beyond what was read says there is more.
- Children of an index that carry no tag of their own are not judged alone: current Harbor
  leaves them out of the listing, some versions list them as untagged artifacts. Either way the
  index's `references` name them, and `manifests` leaves them out (they stay or go with their
  index), as retention does with the children ECR lists.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from regtopo.errors import RegtopoError
from regtopo.memo import PerKey
from regtopo.oci.digest import Digest
from regtopo.providers.errors import ProviderError
from regtopo.registry.client import RegistryClient
from regtopo.registry.errors import RegistryError
from regtopo.registry.retry import retrying

log = logging.getLogger(__name__)

API = "/api/v2.0"
PAGE_SIZE = 100  # the API's maximum
MAX_PAGES = 10_000
PERMISSION_HINT = (
    "the Harbor user or robot account the registry's credentials name needs 'list artifact' "
    "on the project; give it through the topology's `credentials` or `docker login`"
)


@dataclass(frozen=True)
class Artifact:
    """One artifact as retention needs it."""

    tags: list[str]
    pushed: datetime | None
    child: bool  # an index's `references` name it


Listing = dict[Digest, Artifact]


class _ProjectUnreadable(ProviderError):
    """403 or 404: this project cannot be read (missing, or outside the account's reach)."""


def split_repository(repository: str) -> tuple[str, str] | None:
    """`project/rest` -> (project, rest); None for a name without a project."""
    project, _, rest = repository.partition("/")
    return (project, rest) if project and rest else None


def artifacts_path(project: str, name: str) -> str:
    """The ListArtifacts path: the repository name URL-encoded twice (`a/b` -> `a%252Fb`)."""
    return (
        f"{API}/projects/{quote(project, safe='')}/repositories/"
        f"{quote(quote(name, safe=''), safe='')}/artifacts"
    )


def parse_push_time(value: object) -> datetime | None:
    """`push_time` (RFC 3339, as go-openapi writes it) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class HarborInventory:
    """`regtopo.plan.ages.ProviderInventory` for one Harbor registry, through ListArtifacts.

    Each repository is listed once per run (every page), whichever thread asks first; the others
    wait for that listing. When the API refuses the credentials (401), fails with 5xx after the
    retries, or cannot be reached, the registry is not asked again in the run; a 403 or 404
    (a project that is missing or out of the account's reach) stops only that project. Either
    way one warning, and ages come from the image's `created` and untagged manifests go
    unlisted, as on a registry without an inventory.
    """

    label = "harbor"

    def __init__(self, registry: str, client: RegistryClient) -> None:
        self.registry = registry
        self.client = client
        self._listings: PerKey[str, Listing | None] = PerKey()
        self._lock = threading.Lock()
        self.failure: str | None = None
        self.project_failures: dict[str, str] = {}

    def pushed_at(self, repository: str, digest: Digest) -> datetime | None:
        listing = self._listing(repository)
        entry = listing.get(digest) if listing is not None else None
        return entry.pushed if entry is not None else None

    def manifests(self, repository: str) -> list[tuple[Digest, list[str]]] | None:
        listing = self._listing(repository)
        if listing is None:
            return None
        return [
            (digest, artifact.tags)
            for digest, artifact in listing.items()
            if artifact.tags or not artifact.child
        ]

    def _listing(self, repository: str) -> Listing | None:
        # Listed once per run; other repositories are listed meanwhile.
        return self._listings.get(repository, lambda: self._read(repository))

    def _read(self, repository: str) -> Listing | None:
        parts = split_repository(repository)
        if parts is None:
            self.client.warn_once(
                f"harbor no project {repository}",
                "registry %r (Harbor): repository %r names no project (Harbor repositories are "
                "PROJECT/NAME); its ages come from the image's created",
                self.registry,
                repository,
            )
            return None
        project, _ = parts
        with self._lock:
            if self.failure is not None or project in self.project_failures:
                return None
        try:
            artifacts = self.list_artifacts(repository)
        except _ProjectUnreadable as err:
            self._failed(repository, err, project)
            return None
        except ProviderError as err:
            self._failed(repository, err, None)
            return None
        return self._index(repository, artifacts)

    def list_artifacts(self, repository: str) -> list[dict[str, Any]]:
        """Every artifact of `repository`, every page; a `ProviderError` when the API fails."""
        parts = split_repository(repository)
        if parts is None:
            raise ProviderError(f"Harbor repository {repository!r} names no project")
        url = self.client.url(artifacts_path(*parts))
        action = f"listing the artifacts of {self.registry}/{repository} through Harbor's API"
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"page": str(page), "page_size": str(PAGE_SIZE), "with_tag": "true"}
            response = self._get(url, params, action, parts[0])
            try:
                body = response.json()
            except ValueError as err:
                raise ProviderError(f"{action}: the answer is not JSON") from err
            if not isinstance(body, list):
                raise ProviderError(f"{action}: the answer is not a list of artifacts")
            found.extend(a for a in body if isinstance(a, dict))
            if not body or not _more(response, len(found)):
                return found
        raise ProviderError(f"{action}: more than {MAX_PAGES} pages")

    def _get(self, url: str, params: dict[str, str], action: str, project: str) -> httpx.Response:
        headers = {"Accept": "application/json"}
        credentials = self.client.auth.credentials
        if credentials is not None and credentials.password:
            headers["Authorization"] = credentials.basic_header()

        def attempt() -> httpx.Response:
            self.client.pacer.wait()
            self.client.request_count += 1
            response = self.client.http.get(url, params=params, headers=headers)
            if response.status_code == 200:
                return response
            raise RegistryError.from_response(action, response)

        try:
            return retrying(attempt, attempts=self.client.retry_attempts)
        except RegistryError as err:
            status, detail = err.status, err.message.removeprefix(f"{action}: ")
            if status == 401:
                whose = (
                    f"the credentials (from {credentials.origin})"
                    if credentials is not None and credentials.origin
                    else "the credentials"
                    if credentials is not None
                    else "anonymous access (no credentials configured)"
                )
                raise ProviderError(
                    f"{action}: Harbor refused {whose}: {detail}",
                    hint=PERMISSION_HINT,
                ) from err
            if status in (403, 404):
                raise _ProjectUnreadable(
                    f"{action}: project {project!r} is missing or not readable with these "
                    f"credentials: {detail}",
                    hint=PERMISSION_HINT,
                ) from err
            raise ProviderError(
                f"{action}: {detail}"
                + (f" (after {self.client.retry_attempts} attempts)" if err.retryable else ""),
            ) from err
        except httpx.TransportError as err:
            raise ProviderError(
                f"{action}: Harbor's API at {self.client.host} unreachable: "
                f"{type(err).__name__}: {err}"
            ) from err

    def _index(self, repository: str, artifacts: list[dict[str, Any]]) -> Listing:
        children: set[str] = set()
        for artifact in artifacts:
            for reference in artifact.get("references") or []:
                if isinstance(reference, dict) and reference.get("child_digest"):
                    children.add(str(reference["child_digest"]))
        listing: Listing = {}
        for artifact in artifacts:
            try:
                digest = Digest.parse(str(artifact.get("digest")))
            except RegtopoError as err:
                log.warning(
                    "Harbor %s/%s lists an unreadable digest: %s", self.registry, repository, err
                )
                continue
            tags = sorted(
                {
                    str(tag["name"])
                    for tag in artifact.get("tags") or []
                    if isinstance(tag, dict) and tag.get("name")
                }
            )
            pushed = parse_push_time(artifact.get("push_time"))
            listing[digest] = Artifact(tags, pushed, str(digest) in children)
        return listing

    def _failed(self, repository: str, err: ProviderError, project: str | None) -> None:
        with self._lock:
            if project is not None:
                first = project not in self.project_failures
                self.project_failures.setdefault(project, err.message)
            else:
                first = self.failure is None
                if first:
                    self.failure = err.message
        if not first:
            return
        scope = f"in project {project!r}" if project is not None else "there"
        log.warning(
            "registry %r (Harbor): %s; for the rest of this run, ages %s come from the image's "
            "created and untagged manifests are not listed (hint: %s)",
            self.registry,
            err.message,
            scope,
            err.hint or PERMISSION_HINT,
        )


def _more(response: httpx.Response, read: int) -> bool:
    """Whether another page follows: a `rel="next"` Link, or a total beyond what was read."""
    for value in response.headers.get_list("link"):
        if 'rel="next"' in value or "rel=next" in value:
            return True
    total = response.headers.get("x-total-count")
    return total is not None and total.isdigit() and int(total) > read
