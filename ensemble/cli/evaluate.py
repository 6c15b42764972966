"""``affect-ens evaluate``: challenge scores of prediction tables against labels."""

from __future__ import annotations

from pathlib import Path

import typer

from ensemble.cli.app import app
from ensemble.cli.common import (
    ALIGN,
    EDITION,
    LABELS_SPLIT,
    load_stack,
    load_truths,
    print_confusion,
    print_scores,
)


@app.command()
def evaluate(
    predictions: list[Path] = typer.Argument(..., help="Prediction tables (.parquet or .csv) of the same split."),
    labels: Path = typer.Option(
        ..., "--labels", help="Aff-Wild2 root holding the annotation folders, or an image, clip or list dataset."
    ),
    labels_split: str = LABELS_SPLIT,
    edition: str = EDITION,
    align_policy: str = ALIGN,
) -> None:
    """Score each prediction table as the organisers do and print one row per table."""
    from ensemble.pipeline import member_rows

    stack = load_stack(predictions, edition, align_policy)
    truths = load_truths(labels, labels_split, stack)
    title = f"{stack.edition.name} scores on {labels_split}"
    print_scores(member_rows(stack, truths), stack.edition, title)
    if stack.edition.title:
        print_confusion(stack, truths)
