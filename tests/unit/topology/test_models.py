"""The file format: what loads, and the message and position of what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from regtopo.topology.loader import TopologyError, load
from regtopo.topology.models import Mode, TagSelector

HEAD = """\
registries:
  hub: {host: docker.io}
  ghcr: {host: ghcr.io}
  local: {host: "http://127.0.0.1:5000"}
  disk: {path: ./layout}
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(HEAD + body)
    return path


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        load(write(tmp_path, body))
    return [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems]


def test_exact_tag_list_of_the_walking_skeleton_still_loads(tmp_path: Path) -> None:
    loaded = load(
        write(
            tmp_path,
            "replications:\n  - {source: hub/a, targets: [ghcr/a], tags: [latest, '1.0']}\n",
        )
    )

    assert loaded.topology.replications[0].tags == ["latest", "1.0"]
    assert loaded.topology.replications[0].exact_tags == ["latest", "1.0"]


def test_defaults_anchors_merge_keys_and_user_keys_combine(tmp_path: Path) -> None:
    body = """\
x-notes: {owner: platform-team}
x-sync: &sync
  mode: sync
defaults:
  tags: {include: ['v.*']}
  platforms: [linux/amd64]
replications:
  - source: local/a
    targets: [disk/a]
    <<: *sync
    x-ticket: OPS-1
  - source: local/b
    targets: [disk/b]
    tags: [latest]
"""
    first, second = load(write(tmp_path, body)).topology.replications

    assert (first.mode, first.tags, first.platforms) == (
        Mode.SYNC,
        TagSelector(include=["v.*"]),
        ["linux/amd64"],
    )
    assert (second.mode, second.tags, second.platforms) == (
        Mode.MIRROR,
        ["latest"],
        ["linux/amd64"],
    )


def test_every_error_is_reported_at_once_with_its_position(tmp_path: Path) -> None:
    body = """\
replications:
  - source: hub/a
    targets: [ghcr/a]
    tags: {include: ['('], latest: 0}
  - source: ghcr/b
    targets: [nowhere/b]
    tags: latest
    platforms: [windows]
    mode: copy
"""
    assert problems(tmp_path, body) == [
        "9:21: include pattern '(' is not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
        "9:36: latest: input should be greater than or equal to 1",
        "12:11: expected a list of tag names (as [latest]) or a selector mapping "
        "(names, include, exclude, semver, latest, order, digests)",
        "13:16: 'windows' is not a platform; expected os/architecture[/variant], as "
        "linux/amd64 or linux/arm64/v8",
        "14:11: mode: input should be 'mirror' or 'sync'",
    ]


def test_an_error_in_the_defaults_points_at_the_defaults_block(tmp_path: Path) -> None:
    body = """\
defaults:
  tags: {semver: 'not a range'}
replications:
  - {source: hub/a, targets: [ghcr/a]}
"""
    assert problems(tmp_path, body) == [
        "7:18: semver range 'not a range' is not valid: Invalid specifier: 'not a range'; "
        "write it as '>=1.2,<2' (comma means and)"
    ]


def test_conflicting_selectors_are_refused_by_name(tmp_path: Path) -> None:
    body = """\
replications:
  - source: hub/a
    targets: [ghcr/a]
    tags: {names: [latest], exclude: ['lat.*']}
  - source: hub/b
    targets: [ghcr/b]
    tags: {order: created, include: ['.*']}
  - source: hub/c
    targets: [ghcr/c]
    tags: {}
  - source: hub/d
    targets: [ghcr/d]
    tags: {order: created}
"""
    assert [p.split(": ", 1)[1] for p in problems(tmp_path, body)] == [
        "tag 'latest' is named explicitly but excluded by 'lat.*'",
        "'order' ranks tags for 'latest'; set 'latest' too",
        "an empty tag selector selects nothing; give names, include, exclude, semver, "
        "latest or digests (include: ['.*'] selects every tag)",
        "'order' ranks tags for 'latest'; set 'latest' too",
    ]


def test_patterns_need_templates_and_a_catalog(tmp_path: Path) -> None:
    body = """\
replications:
  - {source: local/team/*, targets: [disk/copy], tags: [latest]}
  - {source: local/one, targets: ["disk/{name}"], tags: [latest]}
  - {source: local/team/*/x, targets: ["disk/{name}"], tags: [latest]}
"""
    assert problems(tmp_path, body) == [
        "7:5: the source local/team/* covers many repositories, so target disk/copy needs "
        "{name} or {repository} to keep them apart",
        "8:5: target disk/{name} uses {name}, which needs a source pattern such as 'one/*'",
        "9:14: 'team/*/x': a repository pattern has one '*', at the end (as in 'team/*')",
    ]


def test_a_pattern_over_a_registry_without_catalog_is_refused(tmp_path: Path) -> None:
    body = 'replications:\n  - {source: ghcr/team/*, targets: ["disk/{name}"], tags: [latest]}\n'

    assert problems(tmp_path, body) == [
        "7:14: the source pattern ghcr/team/* needs the repository list, and GitHub Container "
        "Registry serves no catalog; name the repositories one by one",
    ]


def test_sync_to_a_registry_that_cannot_delete_is_refused(tmp_path: Path) -> None:
    body = "replications:\n  - {source: local/a, targets: [ghcr/a], tags: [latest], mode: sync}\n"

    assert problems(tmp_path, body) == [
        "7:64: mode sync deletes tags at ghcr/a, and GitHub Container Registry does not "
        "delete through the registry API; use mode mirror"
    ]


def test_two_sources_writing_one_target_tag_are_named(tmp_path: Path) -> None:
    body = """\
replications:
  - {source: hub/a, targets: [local/x], tags: [latest]}
  - {source: ghcr/a, targets: [local/x], tags: [latest, '1.0']}
"""
    assert problems(tmp_path, body) == [
        "8:32: local/x:latest is also written by replication 1 from hub/a; a target tag "
        "needs exactly one source"
    ]


def test_cross_checks_and_a_cycle_are_reported_in_one_run_naming_named_replications(
    tmp_path: Path,
) -> None:
    body = """\
replications:
  - {name: x, source: hub/a, targets: [local/x], tags: [latest]}
  - {source: ghcr/a, targets: [local/x], tags: [latest]}
  - {source: local/b, targets: [disk/b], tags: [v1]}
  - {source: disk/b, targets: [local/b], tags: [v1]}
  - {source: local/c, targets: [ghcr/c], tags: [v1], mode: sync}
"""
    # In file order; the cycle at the first replication in it (line 9).
    assert problems(tmp_path, body) == [
        "8:32: local/x:latest is also written by replication 'x' from hub/a; a target tag "
        "needs exactly one source",
        "9:5: replication cycle: disk/b -> local/b -> disk/b",
        "11:60: mode sync deletes tags at ghcr/c, and GitHub Container Registry does not "
        "delete through the registry API; use mode mirror",
    ]


def test_a_host_with_credentials_in_it_is_refused_without_repeating_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("registries:\n  a: {host: 'http://alice:Secret45@127.0.0.1:5000'}\n")

    with pytest.raises(TopologyError) as caught:
        load(path)

    [problem] = caught.value.problems
    assert "Secret45" not in problem.message and "alice" not in problem.message
    assert problem.message.startswith(
        "'http://<credentials>@127.0.0.1:5000' is not a registry host: credentials go under"
    )


def test_a_cycle_of_selectors_is_refused(tmp_path: Path) -> None:
    body = """\
replications:
  - {source: local/a, targets: [disk/a], tags: {include: ['.*']}}
  - {source: disk/a, targets: [local/a], tags: {semver: '>=1'}}
"""
    assert problems(tmp_path, body) == ["7:5: replication cycle: disk/a -> local/a -> disk/a"]


def test_registry_settings_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "registries:\n"
        "  a: {host: 'ghcr.io/org', requests_per_second: 0}\n"
        "  b: {path: ./x, provider: ecr}\n"
        "  c: {host: example.com, provider: dockerhubb}\n"
    )

    with pytest.raises(TopologyError) as caught:
        load(path)

    assert [f"{p.line}:{p.column}: {p.message}" for p in caught.value.problems] == [
        "2:13: 'ghcr.io/org' is not a registry host; expected host[:port], optionally after "
        "http:// or https://, without a path",
        "2:49: requests_per_second: input should be greater than 0",
        "3:6: 'provider' applies to a host; a 'path' is an OCI layout directory",
        "4:36: unknown provider 'dockerhubb'; expected one of: acr, artifactory, "
        "distribution, dockerhub, ecr, gar, generic, ghcr, gitlab, harbor, nexus, quay, zot",
    ]
