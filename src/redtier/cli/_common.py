"""Shared CLI plumbing: settings from the global options, consoles and JSON output."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import typer
from rich.console import Console

from redtier.settings import Settings
from redtier.errors import StoreError
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
