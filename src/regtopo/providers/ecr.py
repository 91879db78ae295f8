"""Amazon ECR: the registry does not create repositories on push, so regtopo creates them.

Only `CreateRepository` is used here (boto3, the `ecr` extra). Region and account come from the
registry host (`<account>.dkr.ecr.<region>.amazonaws.com`); boto3 finds its own credentials and
honours `AWS_ENDPOINT_URL_ECR` / `AWS_ENDPOINT_URL`, which is how tests reach moto's server.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from regtopo.errors import RegtopoError

log = logging.getLogger(__name__)

HOST_PATTERN = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$"
)


class ProviderError(RegtopoError):
    """A provider's own API refused or failed."""


class EcrProvider:
    """Creates repositories in one ECR registry."""

    name = "ecr"

    def __init__(self, host: str, *, client: Any = None) -> None:
        match = HOST_PATTERN.match(host.split(":")[0])
        self.account = match.group("account") if match else None
        self.region = match.group("region") if match else None
        self._client = client

    def _ecr(self) -> Any:
        if self._client is None:
            try:
                import boto3
            except ImportError as err:
                raise ProviderError(
                    "creating ECR repositories needs boto3",
                    hint="install regtopo with the ecr extra: pip install 'regtopo[ecr]'",
                ) from err
            self._client = boto3.client("ecr", region_name=self.region)
        return self._client

    def create_repository(self, repository: str) -> bool:
        """Create `repository`; False when it existed already (another writer won the race)."""
        arguments: dict[str, Any] = {"repositoryName": repository}
        if self.account:
            arguments["registryId"] = self.account
        client = self._ecr()
        try:
            client.create_repository(**arguments)
        except client.exceptions.RepositoryAlreadyExistsException:
            return False
        except Exception as err:  # botocore raises many types; report them all the same way
            raise ProviderError(
                f"creating ECR repository {repository!r}: {type(err).__name__}: {err}",
                hint="the credentials need ecr:CreateRepository on this registry",
            ) from err
        log.info("created ECR repository %s", repository)
        return True
