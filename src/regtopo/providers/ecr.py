"""Amazon ECR's control plane: repository creation, and the inventory retention reads.

`CreateRepository` creates target repositories (ECR does not create them on push);
`DescribeImages` lists every manifest of a repository with its tags and `imagePushedAt`, which
the OCI API cannot (untagged manifests) or does not say (push times). Both go through boto3, the
`ecr` extra. Region and account come from the registry host
(`<account>.dkr.ecr.<region>.amazonaws.com`); boto3 finds its own credentials and honours
`AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL`, which is how tests reach moto's server.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

from regtopo.errors import RegtopoError
from regtopo.memo import PerKey
from regtopo.oci.digest import Digest
from regtopo.providers.errors import ProviderError

log = logging.getLogger(__name__)

HOST_PATTERN = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)
INSTALL_HINT = "install regtopo with the ecr extra: pip install 'regtopo[ecr]'"

__all__ = ["EcrInventory", "EcrProvider", "EcrRegistry", "ProviderError"]


class EcrRegistry:
    """One ECR registry's control plane: the account and region its host names, and a client."""

    def __init__(self, host: str, *, client: Any = None) -> None:
        host = host.removeprefix("https://").removeprefix("http://")
        match = HOST_PATTERN.fullmatch(host.split(":")[0])
        self.account = match.group("account") if match else None
        self.region = match.group("region") if match else None
        self._client = client
        self._client_lock = threading.Lock()

    def _ecr(self, needed_for: str) -> Any:
        # Creating a client from boto3's default session is not thread-safe; using one is.
        with self._client_lock:
            if self._client is None:
                try:
                    import boto3
                except ImportError as err:
                    raise ProviderError(f"{needed_for} needs boto3", hint=INSTALL_HINT) from err
                self._client = boto3.client("ecr", region_name=self.region)
            return self._client

    def _registry_id(self) -> dict[str, Any]:
        # Without an account in the host, boto3's credentials decide (the caller's account).
        return {"registryId": self.account} if self.account else {}


class EcrProvider(EcrRegistry):
    """Creates repositories in one ECR registry."""

    name = "ecr"

    def create_repository(self, repository: str) -> bool:
        """Create `repository`; False when it existed already (another writer won the race)."""
        client = self._ecr("creating ECR repositories")
        try:
            client.create_repository(repositoryName=repository, **self._registry_id())
        except client.exceptions.RepositoryAlreadyExistsException:
            return False
        except Exception as err:  # botocore raises many types; report them all the same way
            raise ProviderError(
                f"creating ECR repository {repository!r}: {type(err).__name__}: {err}",
                hint="the credentials need ecr:CreateRepository on this registry",
            ) from err
        log.info("created ECR repository %s", repository)
        return True


Listing = dict[Digest, tuple[list[str], datetime | None]]


class EcrInventory(EcrRegistry):
    """`regtopo.plan.ages.ProviderInventory` for one ECR registry, through `DescribeImages`.

    Each repository is listed once per run (every page), whichever thread asks first; the
    others wait for that listing. When the API fails (AccessDenied, throttling, no endpoint)
    the registry is not asked again in the run: one warning, and ages come from the image's
    `created` and untagged manifests go unlisted, as on a registry without an inventory.
    """

    label = "ecr"

    def __init__(self, registry: str, host: str, *, client: Any = None) -> None:
        super().__init__(host, client=client)
        self.registry = registry
        self._listings: PerKey[str, Listing | None] = PerKey()
        self._lock = threading.Lock()
        self.failure: str | None = None

    def pushed_at(self, repository: str, digest: Digest) -> datetime | None:
        listing = self._listing(repository)
        entry = listing.get(digest) if listing is not None else None
        return entry[1] if entry is not None else None

    def manifests(self, repository: str) -> list[tuple[Digest, list[str]]] | None:
        listing = self._listing(repository)
        if listing is None:
            return None
        return [(digest, tags) for digest, (tags, _) in listing.items()]

    def _listing(self, repository: str) -> Listing | None:
        # Listed once per run; other repositories are listed meanwhile.
        return self._listings.get(repository, lambda: self._describe(repository))

    def _describe(self, repository: str) -> Listing | None:
        with self._lock:
            if self.failure is not None:
                return None
        # A missing boto3 is an installation to fix, not a reason to judge by other ages.
        client = self._ecr(f"reading ECR registry {self.registry!r} for retention")
        listing: Listing = {}
        try:
            pages = client.get_paginator("describe_images").paginate(
                repositoryName=repository, **self._registry_id()
            )
            for page in pages:
                for detail in page.get("imageDetails") or []:
                    self._add(listing, repository, detail)
        except client.exceptions.RepositoryNotFoundException:
            return {}
        except Exception as err:  # botocore raises many types; each means "no inventory here"
            self._failed(repository, err)
            return None
        return listing

    def _add(self, listing: Listing, repository: str, detail: dict[str, Any]) -> None:
        try:
            digest = Digest.parse(str(detail.get("imageDigest")))
        except RegtopoError as err:
            log.warning("ECR %s/%s lists an unreadable digest: %s", self.registry, repository, err)
            return
        pushed = detail.get("imagePushedAt")
        moment = pushed.astimezone(UTC) if isinstance(pushed, datetime) else None
        listing[digest] = (sorted(detail.get("imageTags") or []), moment)

    def _failed(self, repository: str, err: Exception) -> None:
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = f"{type(err).__name__}: {err}"
        if first:
            log.warning(
                "registry %r (ECR): DescribeImages for %s failed (%s); for the rest of this run "
                "its ages come from the image's created and its untagged manifests are not "
                "listed (the credentials need ecr:DescribeImages)",
                self.registry,
                repository,
                self.failure,
            )
