"""Logging for the CLI: logs and progress go to stderr, the plan to stdout."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

#: the -v count given before the subcommand
_root_verbosity = 0


def configure_logging(verbose: int, *, root: bool = False) -> None:
    """Logs go to stderr; stdout carries the plan. `-v` is INFO, `-vv` adds HTTP detail.

    `-v` may come before the subcommand (`root`) and after it; the counts add up.
    """
    global _root_verbosity
    if root:
        _root_verbosity = verbose
    else:
        verbose += _root_verbosity
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


def _subcommand_verbosity(value: int) -> int:
    if value:
        configure_logging(value)
    return value


#: `-v` after the subcommand too (`regtopo plan -vv t.yaml`), adding to any given before it
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        callback=_subcommand_verbosity,
        help="more logs on stderr (-vv: every HTTP request)",
        show_default=False,
    ),
]
