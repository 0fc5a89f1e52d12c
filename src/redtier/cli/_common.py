"""Shared CLI plumbing: settings from the global options, consoles and JSON output."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from redtier.errors import ConfigError, StoreError
from redtier.settings import Settings
from redtier.store import Store

logger = logging.getLogger(__name__)

PIPE_WIDTH = 120
"""Width of tables written to a pipe or file, where the terminal width is unknown."""


def _make_console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


console = _make_console()
error_console = _make_console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    """Return the settings that the app callback stored on the context."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def open_store(ctx: typer.Context) -> Store:
    """Open the database named by --db, REDTIER_DB or the default location.

    Runs whose process on this host died without recording it are marked
    ``interrupted`` first, so no command shows a dead run as ``running``.
    """
    store = Store(settings_of(ctx).db_url)
    try:
        store.mark_abandoned_runs()
    except StoreError as error:  # a read-only database can still be read
        logger.warning("Could not mark abandoned runs as interrupted: %s", error)
    return store


def print_json(value: Any) -> None:
    """Write ``value`` as indented JSON to standard output."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first 16 bytes of every SQLite database file."""


def check_output_path(output: Path, settings: Settings, *, input_file: Path | None = None) -> None:
    """Reject an ``--output`` path whose opening for writing would destroy data.

    Opening a file for writing empties it at once, so ``output`` must not be
    ``input_file``, the results database, or any other SQLite database.

    Raises:
        ConfigError: ``output`` names one of those files.
    """
    database = make_url(settings.db_url).database
    if database and database != ":memory:" and _same_file(output, Path(database)):
        raise ConfigError(
            f"--output {str(output)!r} is the results database; writing there would erase "
            "every stored run. Give another path."
        )
    if input_file is not None and _same_file(output, input_file):
        raise ConfigError(
            f"--output {str(output)!r} is the input file; writing there would erase it before "
            "it is read. Give another path."
        )
    try:
        with output.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError:
        return
    if header == SQLITE_HEADER:
        raise ConfigError(
            f"--output {str(output)!r} is an SQLite database, which writing there would "
            "erase. Give another path, or delete the file first if it is no longer needed."
        )


def _same_file(first: Path, second: Path) -> bool:
    """Return whether two paths name one file, through links too."""
    try:
        if os.path.samefile(first, second):
            return True
    except OSError:
        pass
    return first.resolve() == second.resolve()
