"""The Typer app, the consoles and option helpers shared by every command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(
    name="affect-ens",
    help="Ensembles and fusion for ABAW facial-affect challenge submissions on Aff-Wild2.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()  # tables and results: stdout
err_console = Console(stderr=True)  # progress and logs: stderr


@app.callback()
def _root() -> None:
    """Ensembles and fusion for ABAW facial-affect challenge submissions on Aff-Wild2."""


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator:
    """A Rich progress bar on stderr; yields ``advance(done, total)`` for library callbacks."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=total)

        def update(done: int, total_now: int | None = None) -> None:
            bar.update(task, completed=done, total=total_now if total_now is not None else total)

        try:
            yield update
        except BaseException:
            bar.disable = True  # a failed command prints its one error line, not a half-finished bar
            raise
