"""The `regtopo` command: one module per subcommand, wired here.

Exit codes: 0 success, 1 an expected failure (bad input, a registry refused, a failed action),
2 changes planned (with `--detailed-exitcode`) or drift (`drift`), 3 a bug (with a
traceback), 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer

from regtopo import __version__
from regtopo.errors import RegtopoError

app = typer.Typer(
    name="regtopo",
    help="Keep a fleet of OCI registries in the shape one YAML topology declares.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def configure_logging(verbose: int) -> None:
    """Logs go to stderr; stdout carries the plan. `-v` is INFO, `-vv` adds HTTP detail."""
    level_name = os.environ.get("REGTOPO_LOG_LEVEL")
    level = logging.WARNING
    if verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    if level_name:
        level = logging.getLevelName(level_name.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("regtopo")
    package.handlers[:] = [handler]
    package.setLevel(level)
    package.propagate = False
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose >= 3 else logging.WARNING)
    # stamina announces every scheduled retry; the final error says what failed, so its notes
    # are detail for -vv.
    logging.getLogger("stamina").setLevel(logging.INFO if verbose >= 2 else logging.ERROR)


def handle_errors(command: F) -> F:
    """Turn expected failures into one message and exit 1; anything else is a bug."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
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
        int, typer.Option("--verbose", "-v", count=True, help="more logs on stderr (-vv: HTTP)")
    ] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    configure_logging(verbose)


def _register() -> None:
    from regtopo.cli import apply, drift, export, graph, plan, schema, validate, verify

    for module in (validate, plan, apply, drift, verify, export, schema, graph):
        module.register(app)


_register()


def main() -> None:
    app()
