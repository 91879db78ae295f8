"""Acceptance: the regclient testrepo goes layout -> registry A -> registry B with everything
attached to v1, v2 and v3, and every referrer is discoverable at B under the same digests.

Distribution 2.8 has no referrers API, so at A and B the referrers live in fallback tags
(`sha256-<hex>`); B's are read with plain httpx, not with regtopo's client.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from regtopo.cli.main import app
from regtopo.oci.digest import Digest
from regtopo.registry.layout import LayoutRepository
from tests.support.registries import MakeRegistry, Registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(180)]

ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
TAGS = ["v1", "v2", "v3"]
MIRROR = "sha256:0514ce64171e869a0b065fa1ce1b533e82808c9228d5b97ea6e3ef2e026d9aed"
LOOP = "sha256:d69399e05204fac05b0184eef72e984538cdc9c5854a6484e8852e4357c543cb"
LOOP_CHILD = "sha256:8e54c6754f08d22f85c7552bb1951b228b8194d29b14a1639dbe50868da0273e"


def write_topology(
    path: Path,
    a: Registry,
    b: Registry,
    tags: list[str],
    extra: str = "",
    second: str | None = None,
) -> Path:
    """layout -> A -> B; `extra` is YAML added to both replications, `second` to the second."""
    topology = path / "topology.yaml"
    topology.write_text(
        f"""
registries:
  layout: {{path: layout}}
  a: {{host: "http://{a.host}"}}
  b: {{host: "http://{b.host}"}}
replications:
  - name: layout-to-a
    source: layout/testrepo
    targets: a/testrepo
    tags: {json.dumps(tags)}
{extra}
  - name: a-to-b
    source: a/testrepo
    targets: b/testrepo
    tags: {json.dumps(tags)}
{extra if second is None else second}
"""
    )
    return topology


@pytest.fixture
def workdir(tmp_path: Path, fixtures_dir: Path) -> Path:
    """The read-only fixture copied into a layout registry of its own."""
    shutil.copytree(fixtures_dir / "regclient-testrepo", tmp_path / "layout" / "testrepo")
    for path in (tmp_path / "layout").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tmp_path


def source_referrers(layout: Path, subject: str) -> set[str]:
    """What the layout says refers to `subject`: `subject` fields and fallback tags, the oracle."""
    repository = LayoutRepository("layout", layout, "testrepo")
    digest = Digest.parse(subject)
    found = {str(d.digest) for d in repository.referrers(digest) or []}
    fallback = repository.get_manifest(f"sha256-{digest.encoded}")
    if fallback is not None and fallback.kind == "index" and fallback.digest != digest:
        found |= {str(c.digest) for c in fallback.children}
    return found


def fallback_digests(registry: Registry, subject: str) -> set[str]:
    """The referrers a client finds at `registry` through the tag schema, with plain httpx."""
    response = httpx.get(
        f"{registry.url}/v2/testrepo/manifests/sha256-{subject.split(':', 1)[1]}",
        headers={"Accept": ACCEPT},
    )
    if response.status_code == 404:
        return set()
    response.raise_for_status()
    return {entry["digest"] for entry in response.json()["manifests"]}


def manifest_digest(registry: Registry, reference: str) -> str | None:
    response = httpx.head(
        f"{registry.url}/v2/testrepo/manifests/{reference}", headers={"Accept": ACCEPT}
    )
    return response.headers["docker-content-digest"] if response.status_code == 200 else None


def tree(layout: Path, tag: str) -> list[str]:
    """The tagged manifest and, for an index, its children: every subject regtopo asks about."""
    repository = LayoutRepository("layout", layout, "testrepo")
    root = repository.get_manifest(tag)
    assert root is not None
    return [str(root.digest), *(str(c.digest) for c in root.children)]


def run(topology: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, str(topology)], catch_exceptions=False)
    assert result.exit_code in (0, 2), result.output
    return result.output


def test_every_referrer_of_v1_v2_v3_is_discoverable_at_the_last_hop_with_the_same_digests(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    a, b = make_registry(), make_registry()
    topology = write_topology(workdir, a, b, TAGS)
    layout = workdir / "layout"

    run(topology, "apply", "--auto-approve")

    expected: dict[str, set[str]] = {}
    for tag in TAGS:
        for subject in tree(layout, tag):
            wanted = source_referrers(layout, subject)
            if wanted:
                expected[subject] = wanted
    # The fixture's own promises: v2 and its children have referrers, v3's two are untagged.
    v3 = tree(layout, "v3")[0]
    assert len(expected[v3]) == 2
    assert len(expected[tree(layout, "v2")[0]]) == 2
    assert sum(1 for s in tree(layout, "v2")[1:] if s in expected) == 3

    for subject, wanted in expected.items():
        assert fallback_digests(b, subject) >= wanted, subject
        for digest in wanted:
            assert manifest_digest(b, digest) == digest
    for tag in TAGS:
        assert manifest_digest(b, tag) == tree(layout, tag)[0]


def test_content_that_refers_to_itself_is_copied_once_and_listed_where_the_source_lists_it(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    """`loop` is an index whose child is also its subject; `mirror`'s fallback tag is itself."""
    a, b = make_registry(), make_registry()
    topology = write_topology(workdir, a, b, ["loop", "mirror"])

    output = run(topology, "apply", "--auto-approve")

    assert "Apply complete: 4 done, 0 failed" in output
    assert manifest_digest(b, "loop") == LOOP
    assert manifest_digest(b, "mirror") == MIRROR
    # The loop index is its child's referrer at the source, so it is at B as well.
    assert fallback_digests(b, LOOP_CHILD) == {LOOP}
    # mirror's `sha256-<hex>` tag is mirror itself, not a referrers index: nothing to list.
    assert manifest_digest(b, f"sha256-{MIRROR.split(':', 1)[1]}") is None


def test_an_unchanged_second_run_plans_no_changes_and_asks_little_per_tag(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    a, b = make_registry(), make_registry()
    topology = write_topology(workdir, a, b, [*TAGS, "mirror"])
    run(topology, "apply", "--auto-approve")
    before_a, before_b = len(a.access_log()), len(b.access_log())

    output = run(topology, "plan")

    assert "No changes. 8 in sync." in output
    # Per target tag: one HEAD of the tag. Per registry: one referrers API probe; per repository
    # one tag list. Per subject that has referrers at the source: one GET of the target's
    # fallback tag. A has 4 in-sync tags and 6 such subjects for its hop; B the same.
    # (access_log's own marker request is not counted.)
    assert len(a.access_log()) - before_a == 4 + 1 + 1 + 6
    assert len(b.access_log()) - before_b == 4 + 1 + 1 + 6


def test_a_subject_in_sync_whose_referrers_are_missing_plans_copy_referrers_and_gets_them(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    """First without referrers, then with all of them: only the referrers move."""
    a, b = make_registry(), make_registry()
    layout = workdir / "layout"
    v2 = tree(layout, "v2")[0]
    run(
        write_topology(workdir, a, b, ["v2"], extra="    referrers: none"),
        "apply",
        "--auto-approve",
    )
    assert fallback_digests(b, v2) == set()

    topology = write_topology(workdir, a, b, ["v2"])
    plan = run(topology, "plan")
    output = run(topology, "apply", "--auto-approve")

    assert "& copy-referrers a/testrepo:v2" in plan
    assert "5 referrer(s) missing at the target" in plan
    assert "Plan: 0 to copy, 0 to retag, 2 to complete with referrers" in plan
    assert "Apply complete: 2 done, 0 failed" in output
    assert output.count("done in") == 2 and output.count("5 referrer(s) copied") == 2
    assert fallback_digests(b, v2) == source_referrers(layout, v2)
    assert "No changes. 2 in sync." in run(topology, "plan")


def test_a_later_hop_expects_only_what_the_earlier_hops_selections_let_through(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    """layout -> A takes SBOMs only; A -> B takes all, and gets the SBOM without failing."""
    a, b = make_registry(), make_registry()
    layout = workdir / "layout"
    v2 = tree(layout, "v2")[0]
    topology = write_topology(
        workdir, a, b, ["v2"], extra="    referrers: [sboms]", second="    referrers: all"
    )

    output = run(topology, "apply", "--auto-approve")

    assert "Apply complete: 2 done, 0 failed" in output
    sbom = "sha256:0484e93c23cddf24a8400547119558312023295af241d4cd1eaf1b27145c5026"
    assert fallback_digests(a, v2) == {sbom}
    assert fallback_digests(b, v2) == {sbom}
    assert "No changes. 2 in sync." in run(topology, "plan")


def test_the_bytes_a_plan_prices_for_a_tag_are_the_blob_bytes_apply_puts_at_a_fresh_target(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    """v2 registry to registry: its referrers' blobs travel with it, so the plan prices them
    (they were left out: 5.2 kB planned against what apply sent). Counted on the wire."""
    from tests.support.proxy import Proxy

    a, b = make_registry(), make_registry()
    run(write_topology(workdir, a, b, ["v2"]), "apply", "--auto-approve", "--target", "layout-to-a")
    with Proxy(b.url) as proxy:
        second = workdir / "second.yaml"
        second.write_text(
            f"""
registries:
  a: {{host: "http://{a.host}"}}
  c: {{host: "{proxy.url}"}}
replications:
  - {{name: a-to-c, source: a/testrepo, targets: c/other, tags: [v2]}}
"""
        )
        plan_file = workdir / "plan.json"
        run(second, "plan", "-o", str(plan_file))
        [action] = json.loads(plan_file.read_text())["actions"]
        result = CliRunner().invoke(app, ["apply", str(plan_file)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        uploaded = sum(
            s.body_size
            for s in proxy.seen(path=r"/v2/other/blobs/uploads/.*")
            if s.method in ("PUT", "PATCH")
        )

    # The tree's blobs and the five referrers' (the empty config once): each blob once.
    assert action["bytes_to_send"] == uploaded == 5216
    assert action["blobs_to_send"] == 12


def test_apply_counts_the_referrers_the_plan_counts_and_names_those_inside_the_content(
    workdir: Path, make_registry: MakeRegistry
) -> None:
    """Planned 9 referrers for v1, v2 and loop, reported 6 copied: loop's referrer is the loop
    index itself and v1's is one of its own children, so the copy of the tag brings them.
    The plan says so, and apply reports the same numbers."""
    from regtopo.apply.executor import Executor
    from regtopo.plan.planner import Planner
    from regtopo.plan.session import Session
    from regtopo.render.text import action_details, render_result
    from regtopo.topology.loader import load

    a, b = make_registry(), make_registry()
    tags = ["v1", "v2", "loop"]
    run(write_topology(workdir, a, b, tags), "apply", "--auto-approve", "--target", "layout-to-a")
    second = workdir / "second.yaml"
    second.write_text(
        f"""
registries:
  a: {{host: "http://{a.host}"}}
  b: {{host: "http://{b.host}"}}
replications:
  - {{name: a-to-b, source: a/testrepo, targets: b/testrepo, tags: {json.dumps(tags)}}}
"""
    )
    loaded = load(second)
    session = Session(loaded.topology, base_dir=workdir)
    try:
        plan = Planner(loaded, session).plan()
        report = Executor(session).apply(plan)
    finally:
        session.close()

    planned = {a.target.tag: a for a in plan.actions}
    assert {t: len(a.referrers_to_copy) for t, a in planned.items()} == {
        "v1": 0,
        "v2": 5,
        "loop": 0,
    }
    assert {t: [r.digest for r in a.referrers_in_tree] for t, a in planned.items()} == {
        "v1": ["sha256:d910434391624641a9398ec921067e2dbd9a76aac69f120257906f811f0eecb8"],
        "v2": [],
        "loop": [LOOP],
    }
    assert plan.summary()["referrers"] == 5
    assert "1 referrer(s) inside the content itself" in "; ".join(action_details(planned["loop"]))
    for result in report.results:
        action, stats = result.action, result.stats
        assert stats.referrers_copied == len(action.referrers_to_copy), render_result(result)
        assert stats.referrers_in_tree == len(action.referrers_in_tree), render_result(result)
        assert stats.referrers_present == 0
    done = {r.action.target.tag: render_result(r) for r in report.results}
    assert "1 referrer(s) inside the content itself, listed under their subject" in done["v1"]
