"""Bad topologies end in one clear message with file, line and column, and exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from regtopo.topology.loader import TopologyError, load
from tests.support.cli import run

VALID = """\
registries:
  hub:
    host: registry-1.docker.io
  local:
    path: ./mirror
replications:
  - source: hub/library/alpine
    targets: [local/alpine]
    tags: ["3.20"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(text)
    return path


def test_valid_topology_loads(tmp_path: Path) -> None:
    loaded = load(_write(tmp_path, VALID))
    assert [r.source.repository for r in loaded.topology.replications] == ["library/alpine"]
    result = run("validate", str(tmp_path / "topology.yaml"))
    assert result.exit_code == 0
    assert "valid (2 registries, 1 replication)" in result.stdout


def test_not_yaml_names_the_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "registries:\n  hub: {host: [unclosed\n")
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:3:1: not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_registry_points_at_the_reference(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("targets: [local/alpine]", "targets: [ghcr/alpine]"))
    with pytest.raises(TopologyError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.column) == (8, 15)
    assert problem.message == "unknown registry 'ghcr'; expected one of: hub, local"


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace('    tags: ["3.20"]\n', ""))
    result = run("validate", str(path))
    assert result.exit_code == 1
    assert f"{path}:7:5: missing required field 'tags'" in result.stderr


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("host: registry-1.docker.io", "hots: registry-1.docker.io").replace(
        '["3.20"]', '["-bad"]'
    )
    with pytest.raises(TopologyError) as caught:
        load(_write(tmp_path, text))
    messages = sorted(p.message for p in caught.value.problems)
    assert any("unknown field 'hots'" in m for m in messages)
    assert any("'-bad' is not a valid tag" in m for m in messages)


def test_two_sources_for_one_target_tag_are_refused(tmp_path: Path) -> None:
    text = VALID + (
        '  - source: hub/library/busybox\n    targets: [local/alpine]\n    tags: ["3.20"]\n'
    )
    with pytest.raises(TopologyError, match="local/alpine:3.20 is also written by replication 1"):
        load(_write(tmp_path, text))


def test_a_cycle_is_refused_and_named(tmp_path: Path) -> None:
    text = VALID + (
        '  - source: local/alpine\n    targets: [hub/library/alpine]\n    tags: ["3.20"]\n'
    )
    with pytest.raises(
        TopologyError,
        match=r"replication cycle: (local/alpine -> )?hub/library/alpine -> local/alpine",
    ):
        load(_write(tmp_path, text))


def test_user_keys_and_anchors_are_allowed(tmp_path: Path) -> None:
    text = 'x-tags: &tags ["1", "2"]\n' + VALID.replace('["3.20"]', "*tags").replace(
        "  hub:\n", "  hub:\n    x-owner: platform-team\n"
    )
    loaded = load(_write(tmp_path, text))
    assert loaded.topology.replications[0].tags == ["1", "2"]


def test_unset_environment_variable_is_named_without_a_value(tmp_path: Path) -> None:
    text = VALID.replace(
        "    host: registry-1.docker.io\n",
        "    host: http://127.0.0.1:1\n    credentials:\n"
        "      username: u\n      password: ${env:REGTOPO_TEST_UNSET_SECRET}\n",
    )
    result = run("plan", str(_write(tmp_path, text)))
    assert result.exit_code == 1
    assert "environment variable REGTOPO_TEST_UNSET_SECRET is not set" in result.stderr


def test_c11_docker_hub_spellings_are_one_target_when_checking_writers(tmp_path: Path) -> None:
    """Cases C11: `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry,
    and `hello-world` is `library/hello-world` there: two replications writing the same tag
    through different spellings are refused, as they are with one spelling."""
    text = """\
registries:
  hub: {host: docker.io}
  hub2: {host: index.docker.io}
  hub3: {host: registry-1.docker.io}
  src: {path: ./a}
  other: {path: ./b}
replications:
  - source: src/app
    targets: [hub/library/hello-world]
    tags: [v1]
  - source: other/app
    targets: [hub2/hello-world]
    tags: [v1]
  - source: src/app
    targets: [hub3/hello-world]
    tags: [v1]
"""
    with pytest.raises(TopologyError) as caught:
        load(_write(tmp_path, text))
    [problem] = caught.value.problems
    assert problem.message == (
        "hub2/hello-world:v1 is also written by replication 1 from src/app; "
        "a target tag needs exactly one source"
    )
    assert (problem.line, problem.column) == (12, 15)


def test_c11_a_target_that_is_its_source_under_another_spelling_is_refused(
    tmp_path: Path,
) -> None:
    text = """\
registries:
  hub: {host: docker.io}
  mirror: {host: registry-1.docker.io}
replications:
  - source: hub/alpine
    targets: [mirror/library/alpine]
    tags: ["3.20"]
"""
    with pytest.raises(TopologyError, match="a target equals the source"):
        load(_write(tmp_path, text))


def test_duplicate_replication_names_are_refused(tmp_path: Path) -> None:
    text = VALID.replace(
        "  - source: hub/library/alpine\n", "  - name: x\n    source: hub/library/alpine\n"
    ) + (
        "  - name: x\n    source: hub/library/busybox\n    targets: [local/busybox]\n"
        '    tags: ["1"]\n'
    )
    with pytest.raises(TopologyError) as caught:
        load(_write(tmp_path, text))
    [problem] = caught.value.problems
    assert problem.message == (
        "replication name 'x' is already used by replication 1; names must be unique"
    )
    assert problem.line == 11


def test_every_invalid_tag_of_a_list_is_named_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace('["3.20"]', '[latest, "-x", ".y", "a:b"]'))
    with pytest.raises(TopologyError) as caught:
        load(path)
    [problem] = caught.value.problems
    assert problem.message.startswith("'-x', '.y', 'a:b' are not valid tags")


def test_messages_name_the_field_and_explain_common_yaml_slips(tmp_path: Path) -> None:
    """Pydantic's wording made readable: the field named, indentation and unquoted numbers
    explained, errors in file order."""
    text = VALID.replace("  hub:\n    host: registry-1.docker.io\n", "  hub:\n  host: x\n").replace(
        '["3.20"]', "[3.20, latest]"
    )
    with pytest.raises(TopologyError) as caught:
        load(_write(tmp_path, text))
    messages = [p.message for p in caught.value.problems]
    lines = [p.line for p in caught.value.problems]
    assert lines == sorted(lines)
    assert "expected a mapping here (check the indentation of the lines above)" in messages
    assert (
        "expected a string, got the number 3.2; quote it (YAML reads 1.10 as the number 1.1)"
        in messages
    )


def test_a_target_deeper_than_its_product_allows_is_refused(tmp_path: Path) -> None:
    """The provider profiles' `max_repository_depth`: Docker Hub takes namespace/name."""
    text = (
        VALID.replace("replications:\n", "  hub2: {host: docker.io}\nreplications:\n")
        + '  - source: local/alpine\n    targets: [hub2/acme/team/alpine]\n    tags: ["3.20"]\n'
    )
    with pytest.raises(TopologyError) as caught:
        load(_write(tmp_path, text))
    assert [p.message for p in caught.value.problems] == [
        "Docker Hub takes repository names of at most 2 components; 'acme/team/alpine' has 3"
    ]


def test_an_unknown_field_is_placed_at_its_key_not_at_its_value(tmp_path: Path) -> None:
    """A block mapping's value starts on the next line: the key is where the mistake is."""
    path = _write(
        tmp_path,
        "version: 1\nregistries:\n  a:\n    path: ./a\n    hostname: x\nreplication:\n"
        "  - source: a/x\n",
    )
    with pytest.raises(TopologyError) as caught:
        load(path)
    assert [(p.line, p.column, p.message.split(" (")[0]) for p in caught.value.problems] == [
        (5, 5, "unknown field 'hostname'"),
        (6, 1, "unknown field 'replication'"),
    ]
