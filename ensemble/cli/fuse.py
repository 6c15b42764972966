"""``affect-ens fuse``: fit a fusion on validation tables, report honest scores, apply it to any split."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from ensemble.check import drop_members
from ensemble.cli.app import app, err_console
from ensemble.cli.check import ACCEPT, DROP, run_check
from ensemble.cli.common import ALIGN, EDITION, LABELS_SPLIT, load_stack, load_truths, print_scores
from ensemble.contract import write_table
from ensemble.errors import AffectEnsError
from ensemble.fusion import FUSERS
from ensemble.io import check_output
from ensemble.pipeline import Fusion, fit_fusion, fused_table


def parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise AffectEnsError(f"--weights must be comma-separated numbers, got {text!r}") from None


def method_params(method: str, weights, tune_weights, tie_break, lead, context, folds, max_frames) -> dict:
    """Options of the chosen method only (the others are not its parameters)."""
    if method == "vote":
        return {"weights": weights, "tie_break": tie_break, "lead": lead}
    if method == "average":
        return {"weights": weights, "tune": tune_weights}
    if method == "stack":
        return {"weights": weights, "context": context, "folds": folds, "max_frames": max_frames}
    return {"weights": weights}


@app.command()
def fuse(
    predictions: list[Path] = typer.Argument(..., help="Members' validation tables (fit), one per member."),
    method: str = typer.Option("average", help=f"Fusion method: {', '.join(FUSERS.names())}."),
    labels: Path = typer.Option(None, "--labels", help="Aff-Wild2 root with the annotation folders (needed to fit)."),
    out: Path = typer.Option(..., "--out", help="Fused prediction table to write (.parquet)."),
    apply: list[Path] = typer.Option(
        None, "--apply", help="Tables of the split to fuse (repeat; same members, same order). Default: the fit tables."
    ),
    load_fusion: Path = typer.Option(
        None, "--load-fusion", help="Apply a fusion saved by --save-fusion instead of fitting."
    ),
    save_fusion: Path = typer.Option(
        None, "--save-fusion", help="Save the fitted fusion (JSON) for later --load-fusion."
    ),
    weights: str = typer.Option(None, help="Member weights, comma-separated, in member order (vote, average)."),
    tune_weights: bool = typer.Option(
        False, "--tune-weights", help="average: tune weights on validation (greedy selection)."
    ),
    tie_break: str = typer.Option("soft", help="vote: lead, soft or best."),
    lead: str = typer.Option(None, help="vote: the member deciding ties with --tie-break lead."),
    context: int = typer.Option(0, min=0, help="stack: half-width of temporal context features (0: none)."),
    folds: int = typer.Option(5, min=2, help="Video-grouped folds for out-of-fold scores and the stacker."),
    max_frames: int = typer.Option(None, help="stack: subsample training frames to this many for speed."),
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Tune temporal smoothing windows per task."),
    thresholds: bool = typer.Option(True, "--thresholds/--no-thresholds", help="Tune per-AU decision thresholds."),
    labels_split: str = LABELS_SPLIT,
    edition: int = EDITION,
    align_policy: str = ALIGN,
    drop_member: list[str] = DROP,
    accept: list[str] = ACCEPT,
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Fuse members: fit on validation (scores out-of-fold by video), then write the fused table. Fitting on one
    split to apply to another (--apply) first runs the member check (see check-members)."""
    check_output(out, force)
    if save_fusion:
        check_output(save_fusion, force)
    target = None
    if load_fusion:
        fusion = Fusion.load(load_fusion)
    else:
        if labels is None:
            raise AffectEnsError("fitting a fusion needs --labels (or pass --load-fusion)")
        FUSERS.get(method)
        stack = drop_members(load_stack(predictions, edition, align_policy), drop_member or [])
        truths = load_truths(labels, labels_split, stack)
        if apply:
            target = drop_members(load_stack(apply, edition, align_policy), drop_member or [])
            run_check(stack, target, truths, accept)
        params = method_params(
            method, parse_weights(weights), tune_weights, tie_break, lead, context, folds, max_frames
        )
        err_console.print(f"fitting {method} on {len(stack.keys)} frames of {len(stack.members)} members ...")
        fusion = fit_fusion(
            stack,
            truths,
            method,
            params,
            smooth=smooth,
            thresholds=thresholds,
            folds=folds,
        )
        print_scores(fusion.scores, edition, f"ABAW {edition} scores on {labels_split} (tuned rows out-of-fold)")
        if fusion.post is not None:
            err_console.print(f"post-processing {escape(fusion.post.summary())}", highlight=False)
    if target is None:
        target = drop_members(load_stack(apply or predictions, edition, align_policy), drop_member or [])
    write_table(fused_table(target, fusion.apply(target), fusion), out)
    if save_fusion:
        fusion.save(save_fusion)
    err_console.print(f"wrote {out} ({len(target.keys)} frames)")
