"""The `redtier` command-line interface."""

from redtier.cli._app import app, main

__all__ = ["app", "main"]
