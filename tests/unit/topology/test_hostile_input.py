"""Malformed and hostile topologies end in a TopologyError with a position, never in a
traceback, and never in a network request (httpx's transports fail the test if called)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from typer.testing import CliRunner

from regtopo.cli.main import app
from regtopo.topology.loader import Problem, TopologyError, load

KEYS = [
    "version",
    "registries",
    "replications",
    "defaults",
    "host",
    "path",
    "provider",
    "credentials",
    "username",
    "password",
    "tls",
    "insecure",
    "ca_bundle",
    "max_connections",
    "requests_per_second",
    "source",
    "targets",
    "tags",
    "registry",
    "repository",
    "names",
    "include",
    "exclude",
    "semver",
    "latest",
    "order",
    "digests",
    "platforms",
    "mode",
    "name",
    "x-note",
    "<<",
    "",
    "*",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "ghcr.io",
            "http://127.0.0.1:1",
            "a/b",
            "a/*",
            "a/{name}",
            "{nope}",
            "sync",
            "mirror",
            "all",
            "linux/amd64",
            ">=1,<2",
            "(",
            "(a+)+$",
            "${env:HOME}",
            "sha256:" + "0" * 64,
            "latest",
            "created",
            "semver",
            "../../etc/passwd",
            "\x00",
            "\u202e",
            "a" * 300,
        ]
    ),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5)

HOSTILE_TEXTS = [
    "",
    "---\n...\n",
    "[1, 2",
    "registries: {a: {host: x}}\nregistries: {}\n",
    "a: &a [*a]\n",
    "a: &a\n  b: *a\n",
    "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    "[" * 5000 + "]" * 5000,
    "when: 2021-02-30\n",
    "!!python/object:os.system {}\n",
    "? [a, b]\n: c\n",
    "registries: !!set {a, b}\n",
    "\ufeffregistries: 1\n",
    "registries:\n  a: {host: ghcr.io}\nreplications:\n  - source: !custom a/b\n",
]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(self: Any, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a topology check sent a request: {request.method} {request.url}")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)
    yield


def assert_clear(problems: list[Problem]) -> None:
    assert problems
    for problem in problems:
        assert problem.line >= 1 and problem.column >= 1
        assert problem.message and "Traceback" not in problem.message


def load_or_error(path: Path) -> None:
    try:
        load(path)
    except TopologyError as err:
        assert_clear(err.problems)


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_hostile_text_ends_in_a_topology_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)

    with pytest.raises(TopologyError) as caught:
        load(path)

    assert_clear(caught.value.problems)


def test_an_alias_bomb_is_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(HOSTILE_TEXTS[6])

    with pytest.raises(TopologyError) as caught:
        load(path)

    assert [p.message for p in caught.value.problems] == [
        "the document expands to more than 100000 values (through YAML aliases?); a topology "
        "is far smaller"
    ]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=DOCUMENTS)
def test_random_documents_load_or_end_in_a_topology_error(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "t.yaml"
    with path.open("w") as stream:
        YAML(typ="safe").dump(document, stream)

    load_or_error(path)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    registries=st.dictionaries(
        st.sampled_from(["a", "b", "-bad", "c"]),
        st.fixed_dictionaries(
            {},
            optional={
                "host": SCALARS,
                "path": SCALARS,
                "provider": st.sampled_from(["ecr", "ghcr", "nope", None]),
                "max_connections": SCALARS,
            },
        ),
        max_size=3,
    ),
    replications=st.lists(
        st.fixed_dictionaries(
            {
                "source": st.sampled_from(["a/x", "b/y/*", "c/z", "a", "x/x", 3]),
                "targets": st.lists(
                    st.sampled_from(["a/x", "b/{name}", "c/{repository}", "a/{bad}", "q"]),
                    max_size=3,
                ),
            },
            optional={
                "tags": VALUES,
                "mode": SCALARS,
                "platforms": VALUES,
            },
        ),
        max_size=4,
    ),
)
def test_near_valid_topologies_load_or_end_in_a_topology_error(
    tmp_path: Path, registries: Any, replications: Any
) -> None:
    path = tmp_path / "t.yaml"
    with path.open("w") as stream:
        YAML(typ="safe").dump({"registries": registries, "replications": replications}, stream)

    load_or_error(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_regtopo_validate_on_arbitrary_text_exits_0_or_1_without_a_traceback(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    result = CliRunner().invoke(app, ["validate", str(path)])

    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert ":1:" in result.output or "error" in result.output
