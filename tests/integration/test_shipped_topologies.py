"""Every file in topologies/ validates, and plans as intended against real Distribution
registries standing in for its hosts (hosts rewritten to loopback, credentials dropped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from regtopo.apply.executor import Executor
from regtopo.plan.actions import ActionKind, Plan
from regtopo.plan.planner import Planner
from regtopo.plan.session import Session
from regtopo.topology.loader import load
from tests.support.registries import MakeRegistry, Registry, push_random_image

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
SHIPPED = sorted(TOPOLOGIES.glob("*.yaml"))

# What each shipped file plans when its sources hold these tags: (kind, target) pairs.
SEEDS: dict[str, dict[tuple[str, str], list[str]]] = {
    "dockerhub-to-ghcr.yaml": {
        ("hub", "acme/api"): [
            "latest",
            "0.9.0",
            "1.0.0",
            "1.1.0",
            "1.2.0",
            "1.3.0",
            "1.4.0",
            "2.0.0-rc.1",
            "2.0.0",
        ],
        ("hub", "acme/worker"): ["latest", "1.0.0"],
        ("hub", "acme/web"): ["v1.0.0", "1.1.0", "1.2.0-beta.1", "latest"],
    },
    "multi-cloud-mirror.yaml": {
        ("ghcr", "acme/payments"): ["0.9.0", "1.0.0", "1.1.0", "latest"],
        ("ghcr", "acme/ledger"): ["2.0.0"],
        ("ecr", "acme/payments"): ["1.0.9"],  # a release GHCR lost: mode sync deletes it
    },
    "air-gapped.yaml": {
        ("harbor", "platform/base"): ["1.0.0", "2.0.0", "2.1.0", "3.0.0"],
        ("harbor", "platform/tools/cli"): ["2.0.0"],
        ("harbor", "other/app"): ["9.0.0"],  # outside the pattern
    },
    "promotion-chain.yaml": {
        ("dev", "shop/web"): ["1.0.0", "1.1.0", "1.2.0-rc.1", "1.2.0-rc.2", "nightly"],
        ("staging", "shop/web"): ["stable", "0.9.0"],
    },
}

EXPECTED: dict[str, set[tuple[str, str]]] = {
    "dockerhub-to-ghcr.yaml": {
        *(
            ("copy", f"ghcr/acme/api:{t}")
            for t in ["latest", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "2.0.0"]
        ),
        ("copy", "ghcr/acme/worker:latest"),
        ("copy", "ghcr/acme/worker:1.0.0"),
        ("copy", "ghcr/acme/web:v1.0.0"),
        ("copy", "ghcr/acme/web:1.1.0"),
    },
    "multi-cloud-mirror.yaml": {
        *(
            ("copy", f"{target}:{tag}")
            for target in [
                "ecr/acme/payments",
                "gar/acme-prod/images/payments",
                "acr/acme/payments",
            ]
            for tag in ["1.0.0", "1.1.0"]
        ),
        *(
            ("copy", f"{target}:2.0.0")
            for target in ["ecr/acme/ledger", "gar/acme-prod/images/ledger", "acr/acme/ledger"]
        ),
        ("delete", "ecr/acme/payments:1.0.9"),
    },
    "air-gapped.yaml": {
        ("copy", "transfer/platform/base:3.0.0"),
        ("copy", "transfer/platform/base:2.1.0"),
        ("copy", "transfer/platform/tools/cli:2.0.0"),
        ("copy", "internal/mirror/platform/base:3.0.0"),
        ("copy", "internal/mirror/platform/base:2.1.0"),
        ("copy", "internal/mirror/platform/tools/cli:2.0.0"),
    },
    "promotion-chain.yaml": {
        *(
            ("copy", f"staging/shop/web:{t}")
            for t in ["1.0.0", "1.1.0", "1.2.0-rc.1", "1.2.0-rc.2"]
        ),
        ("copy", "prod/shop/web:1.0.0"),
        ("copy", "prod/shop/web:1.1.0"),
        ("copy", "prod/shop/web-stable:stable"),
    },
}


def test_every_shipped_topology_has_a_planned_outcome() -> None:
    assert [p.name for p in SHIPPED] == sorted(EXPECTED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_topology_validates(path: Path) -> None:
    loaded = load(path)

    assert loaded.topology.replications


def stand_in(
    path: Path, tmp_path: Path, make_registry: MakeRegistry
) -> tuple[Path, dict[str, Registry]]:
    """A copy of the topology whose hosts are loopback registries and whose paths are in tmp."""
    yaml = YAML(typ="rt")
    document: Any = yaml.load(path.read_text())
    registries: dict[str, Registry] = {}
    for name, spec in document["registries"].items():
        for key in ("credentials", "tls"):
            spec.pop(key, None)
        if "host" in spec:
            registries[name] = make_registry()
            spec["host"] = registries[name].url
        else:
            spec["path"] = str(tmp_path / name)
    out = tmp_path / path.name
    with out.open("w") as stream:
        yaml.dump(document, stream)
    return out, registries


def plan_of(path: Path) -> tuple[Plan, Session]:
    loaded = load(path)
    session = Session(loaded.topology, base_dir=path.parent)
    return Planner(loaded, session).plan(), session


@pytest.mark.registry
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_topology_plans_against_stand_in_registries(
    path: Path, tmp_path: Path, make_registry: MakeRegistry
) -> None:
    rewritten, registries = stand_in(path, tmp_path, make_registry)
    for (registry, repository), tags in SEEDS[path.name].items():
        for tag in tags:
            push_random_image(registries[registry], repository, tag)

    plan, session = plan_of(rewritten)
    session.close()

    changes = {(a.kind.value, str(a.target)) for a in plan.actions if a.is_change}
    assert changes == EXPECTED[path.name]


@pytest.mark.registry
def test_promotion_chain_applied_gives_prod_the_digest_dev_built_and_replans_clean(
    tmp_path: Path, make_registry: MakeRegistry
) -> None:
    path = TOPOLOGIES / "promotion-chain.yaml"
    rewritten, registries = stand_in(path, tmp_path, make_registry)
    built = push_random_image(registries["dev"], "shop/web", "1.1.0")
    push_random_image(registries["staging"], "shop/web", "stable")

    plan, session = plan_of(rewritten)
    hops = {str(a.target): a.hop for a in plan.changes}
    report = Executor(session).apply(plan)
    session.close()
    again, session = plan_of(rewritten)
    session.close()

    assert hops == {
        "staging/shop/web:1.1.0": 0,
        "prod/shop/web:1.1.0": 1,
        "prod/shop/web-stable:stable": 0,
    }
    assert all(r.ok for r in report.results)
    prod = [a for a in again.actions if str(a.target) == "prod/shop/web:1.1.0"]
    assert [(a.kind, a.content.digest if a.content else None) for a in prod] == [
        (ActionKind.IN_SYNC, built)
    ]
    assert again.changes == []
