"""Loading a topology file: YAML with positions, then the models, then the cross-checks.

Every error names the file, the line and the column, and what was expected. Errors are
collected, not raised one by one, so a user fixes a file in one round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from regtopo.errors import RegtopoError
from regtopo.topology.models import Topology


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class TopologyError(RegtopoError):
    """A topology file that cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        summary = "\n".join(str(p) for p in problems)
        super().__init__(summary)

    def diagnostics(self) -> str:
        count = len(self.problems)
        head = f"{count} error{'s' if count != 1 else ''} in the topology:"
        return head + "\n" + "\n".join(f"  {p}" for p in self.problems)


@dataclass(frozen=True)
class LoadedTopology:
    topology: Topology
    path: Path
    document: Any

    def position(self, location: tuple[Any, ...]) -> tuple[int, int]:
        return position_of(self.document, location)


def position_of(
    document: Any, location: tuple[Any, ...], *, at_key: bool = False
) -> tuple[int, int]:
    """1-based line and column of the node at `location`, or of its nearest ancestor.

    With `at_key`, a mapping entry's own key is the place (an unknown field is its key, and
    a block mapping's value starts on the next line)."""
    node = document
    line, column = 1, 1
    for depth, key in enumerate(location, start=1):
        if isinstance(node, CommentedMap) and key in node:
            if at_key and depth == len(location):
                try:
                    line, column = node.lc.key(key)
                except (KeyError, TypeError, AttributeError):
                    line, column = node.lc.line, node.lc.col
                break
            try:
                line, column = node.lc.value(key)
            except (KeyError, TypeError, AttributeError):
                line, column = node.lc.line, node.lc.col
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            try:
                line, column = node.lc.item(key)
            except (KeyError, TypeError, AttributeError):
                line, column = node.lc.line, node.lc.col
            node = node[key]
        else:
            break
        if isinstance(node, CommentedMap | CommentedSeq):
            line, column = node.lc.line, node.lc.col
    return line + 1, column + 1


def read_yaml(path: Path) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RegtopoError(f"reading topology {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise TopologyError([Problem(str(path), 1, 1, "the file is not UTF-8 text")]) from err
    try:
        return yaml.load(text)
    except RecursionError as err:
        raise TopologyError(
            [Problem(str(path), 1, 1, "not valid YAML: nested too deeply to read")]
        ) from err
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = err.problem or err.context or "invalid YAML"
        raise TopologyError([Problem(str(path), line, column, f"not valid YAML: {what}")]) from err
    except YAMLError as err:
        raise TopologyError([Problem(str(path), 1, 1, f"not valid YAML: {err}")]) from err
    except (ValueError, TypeError, OverflowError) as err:
        # ruamel's constructors raise these for scalars like `2021-02-30` (not a date).
        raise TopologyError([Problem(str(path), 1, 1, f"not valid YAML: {_short(err)}")]) from err


def _short(err: Exception) -> str:
    return (str(err) or type(err).__name__).splitlines()[0][:200]


def _pydantic_message(error: Any) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value"))
    if kind == "missing":
        return f"missing required field {error['loc'][-1]!r}"
    if kind == "extra_forbidden":
        return f"unknown field {error['loc'][-1]!r} (user keys must start with 'x-')"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        # Most often an indentation slip: the key above has nothing under it.
        return "expected a mapping here (check the indentation of the lines above)"
    if kind == "string_type" and isinstance(error.get("input"), int | float):
        return (
            f"expected a string, got the number {error['input']!r}; quote it "
            "(YAML reads 1.10 as the number 1.1)"
        )
    field = error["loc"][-1] if error.get("loc") else None
    text = message.removeprefix("Value error, ")
    if isinstance(field, str) and text.startswith("Input should be"):
        return f"{field}: {text[0].lower()}{text[1:]}"
    return text


def load(path: str | Path) -> LoadedTopology:
    """Read, validate and cross-check a topology file, or raise `TopologyError`."""
    path = Path(path)
    document = read_yaml(path)
    if document is None:
        raise TopologyError([Problem(str(path), 1, 1, "the file is empty; expected a mapping")])
    if not isinstance(document, dict):
        raise TopologyError([Problem(str(path), 1, 1, "expected a mapping at the top level")])

    try:
        plain = _plain(document, _Budget())
    except _TooLarge as err:
        raise TopologyError([Problem(str(path), 1, 1, str(err))]) from None

    try:
        topology = Topology.model_validate(plain)
    except ValidationError as err:
        problems = []
        for error in err.errors():
            location = _from_defaults(
                document, tuple(k for k in error["loc"] if not _is_pydantic_tag(k))
            )
            at_key = error["type"] == "extra_forbidden"
            line, column = position_of(document, location, at_key=at_key)
            problems.append(Problem(str(path), line, column, _pydantic_message(error)))
        raise TopologyError(sorted(_unique(problems), key=lambda p: (p.line, p.column))) from None

    loaded = LoadedTopology(topology, path, document)
    from regtopo.topology.validate import cross_check

    problems = cross_check(loaded)
    if problems:
        raise TopologyError(problems)
    return loaded


_UNION_TAGS = {"str", "dict", "list", "exact-names", "selector"}


def _is_pydantic_tag(key: Any) -> bool:
    # Union members appear in locations as type names ('str', 'function-after[...]') or as
    # the tags of discriminated unions ('exact-names', 'selector').
    return isinstance(key, str) and ("[" in key or key in _UNION_TAGS)


def _from_defaults(document: Any, location: tuple[Any, ...]) -> tuple[Any, ...]:
    """Point at the `defaults` block when a replication's failing field came from there."""
    if len(location) < 3 or location[0] != "replications" or not isinstance(document, dict):
        return location
    replications, defaults = document.get("replications"), document.get("defaults")
    index, field = location[1], location[2]
    if (
        isinstance(replications, list)
        and isinstance(index, int)
        and 0 <= index < len(replications)
        and isinstance(replications[index], dict)
        and field not in replications[index]
        and isinstance(defaults, dict)
        and field in defaults
    ):
        return ("defaults", *location[2:])
    return location


# A topology is small; a document past this many nodes is an alias bomb, not a topology.
MAX_NODES = 100_000
MAX_DEPTH = 64


class _TooLarge(Exception):
    pass


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0


def _plain(node: Any, budget: _Budget, depth: int = 0) -> Any:
    """ruamel's round-trip containers as plain dicts and lists (merge keys resolved).

    Aliases are copied, so the node count and depth are bounded: a self-referencing alias or
    a billion-laughs document ends in a clear error instead of exhausting memory.
    """
    budget.nodes += 1
    if budget.nodes > MAX_NODES:
        raise _TooLarge(
            f"the document expands to more than {MAX_NODES} values (through YAML aliases?); "
            "a topology is far smaller"
        )
    if depth > MAX_DEPTH:
        raise _TooLarge(
            f"the document nests more than {MAX_DEPTH} levels deep (a self-referencing YAML alias?)"
        )
    if isinstance(node, dict):
        return {
            (k if isinstance(k, str) else str(k)): _plain(v, budget, depth + 1)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_plain(v, budget, depth + 1) for v in node]
    return node


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[int, int, str]] = set()
    out = []
    for problem in problems:
        key = (problem.line, problem.column, problem.message)
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out
