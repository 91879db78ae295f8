"""The `regtopo` command: one module per subcommand, wired here.

Exit codes: 0 success, 1 an expected failure (bad input, a registry refused, a failed action),
2 changes planned (with `--detailed-exitcode`) or drift (`drift`), 3 a bug (with a
traceback), 130 interrupted.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from regtopo import __version__
from regtopo.cli.logs import configure_logging
from regtopo.errors import RegtopoError

app = typer.Typer(
    name="regtopo",
    help="Keep a fleet of OCI registries in the shape one YAML topology declares.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


#: set once a command's body starts: an exit before that is the parser's, a usage error
_command_started = False


def handle_errors(command: F) -> F:
    """Turn expected failures into one message and exit 1; anything else is a bug."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _command_started
        _command_started = True
        try:
            return command(*args, **kwargs)
        except RegtopoError as err:
            typer.echo(f"error: {err.diagnostics()}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception:
            typer.echo(traceback.format_exc(), err=True)
            typer.echo(
                f"regtopo {__version__} hit a bug; please report it with the traceback above",
                err=True,
            )
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"regtopo {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="more logs on stderr (-vv: every HTTP request)"
        ),
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    configure_logging(verbose, root=True)


def _register() -> None:
    from regtopo.cli import apply, drift, export, graph, plan, schema, validate, verify

    for module in (validate, plan, apply, drift, verify, export, schema, graph):
        module.register(app)


_register()


def main() -> None:
    """The console script. Click ends a usage error with 2, which `--detailed-exitcode` and
    `drift` mean as changes; a CI job must not read a mistyped flag as drift, so it is 1."""
    global _command_started
    _command_started = False
    try:
        app()
    except SystemExit as exit:
        if exit.code == 2 and not _command_started:
            sys.exit(1)
        raise
