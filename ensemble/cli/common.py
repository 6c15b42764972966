"""Helpers shared by the fusion commands: loading members and labels, printing score tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ensemble.cli.app import console, err_console
from ensemble.tasks import (
    DEFAULT_EDITION,
    POLICIES,
    SPLIT_FOLDERS,
    TASKS,
    Edition,
    check_split,
    editions_where,
    get_edition,
    score_columns,
    score_formulas,
)

if TYPE_CHECKING:  # tables are read when a command runs: `affect-ens --help` starts without pandas
    from ensemble.align import Aligned
    from ensemble.evaluate import Truth

_DEFAULT = get_edition(DEFAULT_EDITION)
EDITION = typer.Option(
    None,
    "--edition",
    help=f"ABAW edition, by ABAW number ({_DEFAULT.key}, {_DEFAULT.number}th) or by a year that holds one set of rules "
    f"({_DEFAULT.year}): label sets, scoring (accuracy counts in {editions_where(lambda e: e.expr_weights[1] > 0)}) "
    f"and submission layout. Default: the edition the input tables name, else {_DEFAULT.name}.",
)
ALIGN = typer.Option("strict", "--align", help=f"Members covering different frames: {' or '.join(POLICIES)}.")
LABELS_SPLIT = typer.Option("val", "--labels-split", help=f"Split of the labels: {', '.join(SPLIT_FOLDERS)}.")

NOTES: list[str] = []
"""What a command tells the user about its inputs (edition, frame source): printed to stderr when it
succeeds (``main`` calls ``flush_notes``), dropped when it fails, so that an error stays one line."""


def note(text: str) -> None:
    NOTES.append(text)


def flush_notes() -> None:
    for text in NOTES:
        err_console.print(text, highlight=False, markup=False, soft_wrap=True)
    NOTES.clear()


def say_edition(edition: Edition, how: str) -> None:
    """Tell the user which edition is used and where it came from (``edition ABAW10 (CVPR 2026) (the default)``)."""
    note(f"edition {edition.name} ({how})")


def one_row_per_item(stack: Aligned) -> bool:
    """Whether every row is an image or a clip (frame 1 of its own key), where temporal smoothing has nothing to do."""
    return bool((stack.keys["frame"].to_numpy() == 1).all())


def print_confusion(stack: Aligned, truths: dict[str, Truth]) -> None:
    """Counts of true (rows) against predicted (columns) classes of each table, for label sets of other
    challenges (ABAW's confusion matrices are in the report)."""
    import numpy as np

    truth = truths["expr"]
    classes = stack.edition.expr_classes
    for m, name in enumerate(stack.members):
        pred = stack.values[m][truth.rows][:, stack.slices["expr"]].argmax(1)
        counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
        np.add.at(counts, (truth.values.astype(int), pred), 1)
        table = Table(title=escape(f"confusion of {name} (rows: true class)"), title_justify="left")
        table.add_column("true \\ predicted")
        for c in classes:
            table.add_column(Text(c), justify="right")
        for c, row in zip(classes, counts):
            table.add_row(Text(c), *[str(v) for v in row])
        console.print(table)


def given_edition(edition: str | None) -> str | None:
    """The key of an edition named on the command line (an ABAW number or a year), None if not given."""
    return None if edition is None else get_edition(edition).key


def load_stack(paths: list[Path], edition: str | None, policy: str, *, quiet: bool = False) -> Aligned:
    """Read, validate and align members' tables for ``edition`` (default: the one their metadata names);
    says which edition unless ``quiet``."""
    from ensemble.align import align
    from ensemble.contract import read_table, table_edition

    key = given_edition(edition)
    tables = [read_table(p, edition=key) for p in paths]
    resolved, how = table_edition(key, tables, [str(p) for p in paths])
    if not quiet:
        say_edition(resolved, how)
    return align(tables, policy=policy, edition=resolved)


def load_truths(root: Path, split: str, stack: Aligned) -> dict[str, Truth]:
    """Labels of every task of ``stack`` from an Aff-Wild2 annotation root, matched to its frames; only the
    annotation files of the videos ``stack`` names are read."""
    from ensemble.evaluate import truths_for
    from ensemble.labels import read_labels

    check_split(split)
    videos = set(stack.keys["video"])  # only these videos' annotation files are opened
    labels = {task: read_labels(root, task, split, stack.edition, videos) for task in stack.tasks}
    return truths_for(stack.keys, labels, stack.edition)


def print_scores(rows: list[dict[str, Any]], edition: Edition, title: str) -> None:
    """Rows are members and fusions, columns the edition's metrics, best of each column in bold."""
    tasks = [t for t in TASKS if f"{t}_score" in rows[0]]
    columns = score_columns(edition, tasks)
    caption = escape("; ".join(score_formulas(edition, tasks))) or None
    table = Table(title=escape(title), title_justify="left", caption=caption)
    table.add_column("predictions")
    for _, header in columns:
        table.add_column(header, justify="right")
    best = {k: max((r.get(k, float("-inf")) for r in rows), default=None) for k, _ in columns}
    for row in rows:
        cells = [
            f"[bold]{row[k]:.4f}[/bold]" if row.get(k) == best[k] else f"{row.get(k, float('nan')):.4f}"
            for k, _ in columns
        ]
        table.add_row(Text(str(row["name"])), *cells)  # names come from data: never read as markup
    console.print(table)
