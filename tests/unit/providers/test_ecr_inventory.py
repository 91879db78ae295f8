"""ECR's DescribeImages as a provider inventory, against botocore's Stubber (no server)."""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from regtopo.errors import RegtopoError
from regtopo.oci.digest import Digest
from regtopo.providers.ecr import EcrInventory

boto3 = pytest.importorskip("boto3")
stub = pytest.importorskip("botocore.stub")

HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
A, B, C = (Digest.parse("sha256:" + c * 64) for c in "abc")


def client() -> Any:
    return boto3.client(
        "ecr",
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def detail(digest: Digest, tags: list[str], pushed: datetime) -> dict[str, Any]:
    found: dict[str, Any] = {"imageDigest": str(digest), "imagePushedAt": pushed}
    if tags:  # ECR leaves `imageTags` out for an untagged manifest
        found["imageTags"] = tags
    return found


def test_every_page_is_read_once_with_the_account_of_the_host() -> None:
    ecr = client()
    old, new = datetime(2024, 1, 2, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    asked = {"repositoryName": "team/app", "registryId": "123456789012"}
    with stub.Stubber(ecr) as stubber:
        stubber.add_response(
            "describe_images",
            {"imageDetails": [detail(A, ["v2", "v1"], old)], "nextToken": "page-2"},
            asked,
        )
        stubber.add_response(
            "describe_images",
            {"imageDetails": [detail(B, [], old), detail(C, ["latest"], new)]},
            asked | {"nextToken": "page-2"},
        )
        inventory = EcrInventory("ecr", HOST, client=ecr)

        listed = inventory.manifests("team/app")
        ages = {d: inventory.pushed_at("team/app", d) for d in (A, B, C)}
        again = inventory.manifests("team/app")  # a third DescribeImages would fail the stub
        stubber.assert_no_pending_responses()

    assert listed == [(A, ["v1", "v2"]), (B, []), (C, ["latest"])]
    assert again == listed
    assert ages == {A: old, B: old, C: new}
    assert inventory.pushed_at("team/app", Digest.parse("sha256:" + "d" * 64)) is None


def test_threads_asking_for_one_repository_share_one_listing() -> None:
    calls = []
    gate = threading.Event()

    class Paginator:
        def paginate(self, **arguments: Any) -> list[dict[str, Any]]:
            calls.append(arguments["repositoryName"])
            gate.wait(5)
            return [{"imageDetails": [detail(A, ["v1"], datetime(2025, 1, 1, tzinfo=UTC))]}]

    class Client:
        exceptions = client().exceptions

        def get_paginator(self, name: str) -> Paginator:
            assert name == "describe_images"
            return Paginator()

    inventory = EcrInventory("ecr", HOST, client=Client())
    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(inventory.pushed_at, "team/app", A) for _ in range(16)]
        gate.set()
        moments = {f.result() for f in answers}

    assert calls == ["team/app"]
    assert moments == {datetime(2025, 1, 1, tzinfo=UTC)}


def test_a_failing_api_warns_once_and_lists_nothing_for_the_rest_of_the_run(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's logging setup, run by earlier tests, keeps regtopo's records from caplog.
    monkeypatch.setattr(logging.getLogger("regtopo"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("regtopo"), "handlers", [])
    ecr = client()
    with stub.Stubber(ecr) as stubber:
        stubber.add_client_error(
            "describe_images", "AccessDeniedException", "not authorized", http_status_code=400
        )
        inventory = EcrInventory("prod-ecr", HOST, client=ecr)
        with caplog.at_level(logging.WARNING, logger="regtopo"):
            first = inventory.manifests("team/app")
            other = inventory.manifests("team/other")  # not asked: the stub has no response
            age = inventory.pushed_at("team/app", A)

    assert (first, other, age) == (None, None, None)
    [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.name == "regtopo.providers.ecr"
    assert "registry 'prod-ecr' (ECR)" in warning.getMessage()
    assert "AccessDeniedException" in warning.getMessage()


def test_a_repository_ecr_does_not_know_holds_nothing() -> None:
    ecr = client()
    with stub.Stubber(ecr) as stubber:
        stubber.add_client_error("describe_images", "RepositoryNotFoundException", "no such")
        inventory = EcrInventory("ecr", HOST, client=ecr)

        assert inventory.manifests("team/new") == []


def test_without_boto3_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    inventory = EcrInventory("ecr", HOST)

    with pytest.raises(RegtopoError) as raised:
        inventory.manifests("team/app")

    assert "reading ECR registry 'ecr' for retention needs boto3" in str(raised.value)
    assert raised.value.hint == "install regtopo with the ecr extra: pip install 'regtopo[ecr]'"
