"""The Typer app, the consoles and option helpers shared by every command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

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
def _root(ctx: typer.Context) -> None:
    """Ensembles and fusion for ABAW facial-affect challenge submissions on Aff-Wild2."""
    from ensemble.outputs import use_command

    use_command(ctx.invoked_subcommand)  # the markers of the outputs record which command made them


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


class RateColumn(ProgressColumn):
    """Items per second, e.g. '31.2 frames/s'."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"-- {self.unit}/s", style="progress.data.speed")


@contextmanager
def phase_bars(unit: str) -> Iterator[Callable[[str, int, int], None]]:
    """Rich progress bars on stderr, one per phase, showing ``unit``/s; yields ``update(phase, done, total)``
    (a total of 0: unknown)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        RateColumn(unit),
    )
    bar = Progress(*columns, console=err_console, transient=False)
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # at the first update: an error before any progress prints just its one line
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total or None)
        bar.update(tasks[phase], completed=done, total=total or None)

    try:
        yield update
    except BaseException:
        bar.disable = True  # as in progress_bar: a failed command prints its one error line, not a half bar
        raise
    finally:
        if tasks:
            bar.stop()


@contextmanager
def collection_bar() -> Iterator[Callable[[int, int, int, int], None]]:
    """A Rich bar on stderr for a collection of videos; yields ``update(videos done, videos, frames done,
    frames)`` and shows the videos done, the frames and frames/s."""
    columns = (
        TextColumn("{task.fields[videos]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        RateColumn("frames"),
    )
    bar = Progress(*columns, console=err_console, transient=False)
    task: list[int] = []

    def update(videos_done: int, videos: int, done: int, total: int) -> None:
        if not task:
            bar.start()  # at the first update, as phase_bars
            task.append(bar.add_task("frames", total=total or None, videos=""))
        bar.update(task[0], completed=done, total=total or None, videos=f"videos {videos_done}/{videos}, frames")

    try:
        yield update
    except BaseException:
        bar.disable = True
        raise
    finally:
        if task:
            bar.stop()
