"""ECR in tests: moto's server as the control plane, a real Distribution as the data plane.

moto (`ThreadedMotoServer`) answers ECR's API the way AWS does, and boto3 reaches it through
`AWS_ENDPOINT_URL_ECR`; the `ecr_api` fixture (tests/conftest.py) puts a recording proxy in
front of it, so a test counts the operations regtopo called. The registry is a real
Distribution behind `tests.support.proxy`, answering `NAME_UNKNOWN` for every repository moto
does not know, as ECR does. The server runs in this process, so a test adjusts moto's backend
objects directly where the API has no call for it (push times).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from tests.support.proxy import MakeProxy, Proxy, ProxyRequest, absent_repositories
from tests.support.registries import Registry

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def operation(request: ProxyRequest | Any) -> str:
    """The ECR operation a recorded request called (`CreateRepository`, `DescribeImages`)."""
    return str(request.headers.get("x-amz-target") or "").removeprefix(TARGET_PREFIX)


def calls(api: Proxy, name: str) -> int:
    return sum(1 for s in api.seen("POST") if operation(s) == name)


def ecr_registry(registry: Registry, make_proxy: MakeProxy) -> Proxy:
    """The data plane: `registry` behind a proxy that knows only the repositories moto has."""
    import boto3

    client = boto3.client("ecr")

    def exists(repository: str) -> bool:
        names = client.describe_repositories()["repositories"]
        return any(r["repositoryName"] == repository for r in names)

    proxy = make_proxy(registry.url)
    return proxy.add(absent_repositories(proxy, exists))


def register_image(registry: Registry, repository: str, digest: str, tag: str | None) -> None:
    """Tell moto about a manifest pushed to the data plane, with the very bytes stored there."""
    import boto3

    response = httpx.get(
        f"{registry.url}/v2/{repository}/manifests/{digest}",
        headers={"Accept": MANIFEST_TYPES},
        timeout=30,
    )
    response.raise_for_status()
    arguments: dict[str, Any] = {
        "repositoryName": repository,
        "imageManifest": response.text,
        "imageManifestMediaType": response.headers["content-type"],
        "imageDigest": digest,
    }
    if tag is not None:
        arguments["imageTag"] = tag
    boto3.client("ecr").put_image(**arguments)


def set_pushed_at(repository: str, digest: str, moment: datetime) -> None:
    """Make moto answer `imagePushedAt` = `moment` for `digest` (it stamps the put time)."""
    from moto.ecr.models import ecr_backends

    images = ecr_backends[ACCOUNT][REGION].repositories[repository].images
    [image] = [i for i in images if i.image_digest == digest]
    image.image_pushed_at = int(moment.timestamp())


def describe_images_repositories(api: Proxy) -> list[str]:
    """A rule for `api` that records the repository of each DescribeImages, in call order."""
    names: list[str] = []

    def rule(request: ProxyRequest) -> None:
        if operation(request) == "DescribeImages":
            names.append(json.loads(request.body)["repositoryName"])

    api.add(rule)
    return names
