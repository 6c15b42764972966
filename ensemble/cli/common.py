"""Helpers shared by the fusion commands: loading members and labels, printing score tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ensemble.align import POLICIES, Stack, align
from ensemble.cli.app import console
from ensemble.contract import read_table
from ensemble.evaluate import Truth, truths_for
from ensemble.labels import read_labels
from ensemble.tasks import DEFAULT_EDITION, SPLIT_FOLDERS, check_split, get_edition

EDITION = typer.Option(DEFAULT_EDITION, help="ABAW edition: label sets and scoring (2020-2021 weigh in accuracy).")
ALIGN = typer.Option("strict", "--align", help=f"Members covering different frames: {' or '.join(POLICIES)}.")
LABELS_SPLIT = typer.Option("val", "--labels-split", help=f"Split of the labels: {', '.join(SPLIT_FOLDERS)}.")

COLUMN_NAMES = {
    "expr_f1": "EXPR F1",
    "expr_accuracy": "EXPR acc",
    "expr_score": "EXPR score",
    "va_ccc_valence": "CCC V",
    "va_ccc_arousal": "CCC A",
    "va_score": "VA score",
    "au_f1": "AU F1",
    "au_accuracy": "AU acc",
    "au_score": "AU score",
}


def load_stack(paths: list[Path], edition: int, policy: str) -> Stack:
    """Read, validate and align members' tables for ``edition``."""
    get_edition(edition)
    return align([read_table(p, edition=edition) for p in paths], policy=policy)


def load_truths(root: Path, split: str, stack: Stack) -> dict[str, Truth]:
    """Labels of every task of ``stack`` from an Aff-Wild2 annotation root, matched to its frames."""
    check_split(split)
    labels = {task: read_labels(root, task, split, stack.edition) for task in stack.tasks}
    return truths_for(stack.keys, labels, stack.edition)


def _shown(key: str, edition_year: int) -> bool:
    weighted = get_edition(edition_year).expr_weights[1] > 0
    return key in COLUMN_NAMES and (weighted or not key.endswith(("_accuracy", "expr_score", "au_score")))


def print_scores(rows: list[dict[str, Any]], edition: int, title: str) -> None:
    """Rows are members and fusions, columns the edition's metrics, best of each column in bold."""
    keys = [k for k in rows[0] if _shown(k, edition)]
    table = Table(title=escape(title), title_justify="left")
    table.add_column("predictions")
    for key in keys:
        table.add_column(COLUMN_NAMES[key], justify="right")
    best = {k: max((r.get(k, float("-inf")) for r in rows), default=None) for k in keys}
    for row in rows:
        cells = [
            f"[bold]{row[k]:.4f}[/bold]" if row.get(k) == best[k] else f"{row.get(k, float('nan')):.4f}" for k in keys
        ]
        table.add_row(Text(str(row["name"])), *cells)  # names come from data: never read as markup
    console.print(table)
