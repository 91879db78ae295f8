"""The CI examples call only commands and options regtopo has.

Every string in the example files is scanned for `regtopo ...` invocations; each one's
subcommand and options are checked against what `regtopo <cmd> --help` lists (run through
typer's CliRunner), and option values against the choices the help shows.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from regtopo.cli.main import app
from regtopo.topology.loader import load

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
# A row of the options panel: `│ --name  -n  <metavar>  help...`; flags show `<bool>`.
OPTION_ROW = re.compile(r"^│\s+(--[\w-]+)\s+(?:(-\w)\s+)?(\S+)")
OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "(", ")", "2>", "{", "}"}


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        if node and all(isinstance(item, str) for item in node) and node[0] == "regtopo":
            # An exec-form command (`command: ["regtopo", ...]`): one command line.
            yield shlex.join(node)
            return
        for item in node:
            yield from strings(item)


def invocations(text: str) -> Iterator[list[str]]:
    """`regtopo` command lines in a shell script, continuation lines joined."""
    script = text.replace("\\\n", " ")
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
        for index, token in enumerate(tokens):
            previous = tokens[index - 1] if index else ""
            if token.rsplit("/", 1)[-1] == "regtopo" and previous not in ("install", "--user"):
                command = []
                for word in tokens[index:]:
                    if word in OPERATORS:
                        break
                    command.append(word)
                if len(command) > 1:  # a bare word `regtopo` (a workflow's name) runs nothing
                    yield command


def example_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        for document in YAML(typ="safe").load_all(path.read_text()):
            for text in strings(document):
                found.extend((path.name, command) for command in invocations(text))
    return found


def test_every_example_file_calls_regtopo() -> None:
    files = {name for name, _ in example_commands()}

    assert files == {"github-actions.yml", "gitlab-ci.yml", "kubernetes-drift-cronjob.yaml"}
    assert {command[1] for _, command in example_commands()} == {
        "validate",
        "plan",
        "apply",
        "drift",
    }


@dataclass(frozen=True)
class OptionHelp:
    takes_value: bool
    choices: frozenset[str] | None


def options_of(subcommand: str) -> dict[str, OptionHelp] | None:
    """The options `regtopo SUBCOMMAND --help` lists, or None for an unknown subcommand."""
    result = CliRunner().invoke(app, [subcommand, "--help"], terminal_width=200)
    if result.exit_code != 0:
        return None
    options = {}
    for line in result.stdout.splitlines():
        match = OPTION_ROW.match(line)
        if not match:
            continue
        long, short, metavar = match.groups()
        takes_value = metavar != "<bool>"
        choices = None
        if re.fullmatch(r"<[\w-]+(\|[\w-]+)+>", metavar):
            choices = frozenset(metavar.strip("<>").split("|"))
        for name in (long, short):
            if name:
                options[name] = OptionHelp(takes_value, choices)
    return options


def test_the_help_parser_sees_the_options_of_plan() -> None:
    options = options_of("plan")

    assert options is not None
    assert options["--format"] == OptionHelp(True, frozenset({"text", "json", "markdown"}))
    assert options["--detailed-exitcode"] == OptionHelp(False, None)
    assert options["-o"].takes_value
    assert options_of("no-such-command") is None


@pytest.mark.parametrize(
    ("name", "command"),
    example_commands(),
    ids=lambda value: " ".join(value) if isinstance(value, list) else value,
)
def test_each_example_invocation_uses_existing_subcommands_and_options(
    name: str, command: list[str]
) -> None:
    options = options_of(command[1])
    assert options is not None, f"{name}: no subcommand {command[1]!r}"

    words = iter(command[2:])
    for word in words:
        if not word.startswith("-"):
            continue
        option, _, inline = word.partition("=")
        assert option in options, f"{name}: regtopo {command[1]} has no option {option}"
        if options[option].takes_value:
            value = inline or next(words)
            choices = options[option].choices
            assert choices is None or value in choices, f"{name}: {option} {value}"


def test_the_kubernetes_example_topology_is_valid(tmp_path: Path) -> None:
    documents = list(
        YAML(typ="safe").load_all((EXAMPLES / "kubernetes-drift-cronjob.yaml").read_text())
    )
    [config_map] = [d for d in documents if d["kind"] == "ConfigMap"]
    topology = tmp_path / "topology.yaml"
    topology.write_text(config_map["data"]["topology.yaml"])

    loaded = load(topology)

    assert [r.label for r in loaded.topology.replications] == ["base-images"]


def test_examples_install_regtopo_from_what_the_user_builds_not_an_unpublished_name() -> None:
    """regtopo is not on PyPI: `pip install regtopo` would fail, or install someone else's."""
    for path in sorted(EXAMPLES.glob("*.y*ml")):
        text = path.read_text()
        assert "install regtopo" not in text and "--user regtopo" not in text, path.name
        assert ("$REGTOPO_PACKAGE" in text) or ("image: registry.example.com/tools/regtopo" in text)
