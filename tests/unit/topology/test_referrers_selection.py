"""The `referrers:` field of a replication."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from regtopo.topology.models import ReplicationSpec


def spec(**extra: object) -> ReplicationSpec:
    return ReplicationSpec.model_validate(
        {"source": "hub/app", "targets": "ghcr/app", "tags": ["v1"], **extra}
    )


def test_referrers_default_to_all() -> None:
    assert spec().referrers == "all"


def test_referrers_take_none_or_kinds_and_artifact_types() -> None:
    assert spec(referrers="none").referrers == "none"
    chosen = ["signatures", "sboms", "attestations", "application/vnd.example+json"]
    assert spec(referrers=chosen).referrers == chosen


def test_an_unknown_kind_name_is_refused_with_the_names_that_exist() -> None:
    with pytest.raises(ValidationError) as caught:
        spec(referrers=["signature"])
    assert "'signature' is neither signatures, sboms, attestations nor an artifact type" in str(
        caught.value
    )
