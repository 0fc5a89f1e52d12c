"""The `redtier` command: global options, logging set-up and error reporting."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType
from typing import Annotated

import typer
from rich.logging import RichHandler

from redtier import __version__
from redtier.cli import _doctor, _exec, _judge, _listing, _plan, _queue, _scan
from redtier.cli._common import error_console
from redtier.errors import RedtierError
from redtier.settings import Settings

app = typer.Typer(
    name="redtier",
    help="Adversarial testing for language models: probes, verdicts and a stored vulnerability log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(_scan.scan)
app.command()(_listing.runs)
app.command()(_listing.show)
app.command("judge")(_judge.judge_file)
app.command()(_listing.export)
app.command()(_listing.models)
app.command()(_listing.probes)
app.command()(_listing.detectors)
app.command()(_doctor.doctor)
app.command("exec")(_exec.exec_file)
app.command()(_plan.plan)
app.command()(_queue.submit)
app.command()(_queue.queue)
app.command()(_queue.cancel)
app.command()(_queue.worker)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"redtier {__version__}\n")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(help="Database file or SQLAlchemy URL. Default: REDTIER_DB, else ~/.local/share/redtier/redtier.db.")] = None,
    catalog: Annotated[str | None, typer.Option(help="YAML file of extra models. Default: REDTIER_CATALOG, else ~/.config/redtier/models.yaml if present.")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="Folder for converted weights. Default: REDTIER_CACHE_DIR, else ~/.cache/redtier, or /var/cache/redtier as root.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Adversarial testing for language models."""
    _configure_logging(verbose)
    ctx.obj = Settings.resolve(db=db, catalog=catalog, cache_dir=cache_dir)


def _configure_logging(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    handler = RichHandler(console=error_console, show_path=False, show_time=verbose)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
    except ImportError:
        pass


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Run the CLI; print user errors without a traceback.

    Click's standalone mode reports usage errors (exit status 2) and turns
    ``typer.Exit`` into the exit status; errors redtier raises for bad input
    reach this function and exit with status 2 as well.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        app(standalone_mode=True)
    except RedtierError as error:
        error_console.print(f"[red]error:[/red] {error}", highlight=False)
        sys.exit(2)
