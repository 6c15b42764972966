"""``affect-ens fuse``: fit a fusion on validation tables, report honest scores, apply it to any split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer
from rich.markup import escape

from ensemble.align import Aligned
from ensemble.check import drop_members
from ensemble.cli.app import app, err_console
from ensemble.cli.check import ACCEPT, DROP, run_check
from ensemble.cli.common import ALIGN, EDITION, LABELS_SPLIT, load_stack, load_truths, print_scores
from ensemble.contract import check_table_path, write_table
from ensemble.errors import AffectEnsError
from ensemble.fusion import FUSERS
from ensemble.outputs import Outputs
from ensemble.pipeline import FittedFusion, fit_fusion, fused_table


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


@dataclass
class Loading:
    """How member tables become one stack: the edition asked for, the alignment policy, members left out."""

    edition: str | None
    policy: str
    drop: list[str]

    def stack(self, paths: list[Path], quiet: bool = False) -> Aligned:
        return drop_members(load_stack(paths, self.edition, self.policy, quiet=quiet), self.drop)


@dataclass
class FitRequest:
    """What ``fuse`` fits: the method and its parameters, post-processing, labels, members vouched for."""

    method: str
    params: dict
    smooth: bool
    thresholds: bool
    folds: int
    labels: Path | None
    labels_split: str
    accept: list[str]


def fit_on(predictions: list[Path], apply: list[Path] | None, fit: FitRequest, loading: Loading):
    """(fusion fitted on ``predictions``, the ``apply`` stack or None), after the member check when the
    fusion is applied to another split; prints the scores and the post-processing kept."""
    if fit.labels is None:
        raise AffectEnsError("fitting a fusion needs --labels (or pass --load-fusion)")
    FUSERS.get(fit.method)
    stack = loading.stack(predictions)
    truths = load_truths(fit.labels, fit.labels_split, stack)
    target = None
    if apply:
        target = loading.stack(apply)
        run_check(stack, target, truths, fit.accept or [])
    with err_console.status(f"fitting {fit.method} on {len(stack.keys)} frames of {len(stack.members)} members"):
        fusion = fit_fusion(
            stack, truths, fit.method, fit.params, smooth=fit.smooth, thresholds=fit.thresholds, folds=fit.folds
        )
    title = f"ABAW {stack.edition.name} scores on {fit.labels_split} (tuned rows out-of-fold)"
    print_scores(fusion.scores, stack.edition, title)
    if fusion.post is not None:
        err_console.print(f"post-processing {escape(fusion.post.summary())}", highlight=False)
    return fusion, target


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
    max_frames: int = typer.Option(None, min=1, help="stack: subsample training frames to this many for speed."),
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Tune temporal smoothing windows per task."),
    thresholds: bool = typer.Option(True, "--thresholds/--no-thresholds", help="Tune per-AU decision thresholds."),
    labels_split: str = LABELS_SPLIT,
    edition: str = EDITION,
    align_policy: str = ALIGN,
    drop_member: list[str] = DROP,
    accept: list[str] = ACCEPT,
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
) -> None:
    """Fuse members: fit on validation (scores out-of-fold by video), then write the fused table. Fitting on one
    split to apply to another (--apply) first runs the member check (see check-members)."""
    check_table_path(out)
    if save_fusion and save_fusion.suffix.lower() != ".json":
        raise AffectEnsError(f"{save_fusion}: a fusion is saved as JSON; name it <name>.json")
    inputs = [*predictions, *(apply or []), load_fusion, labels]
    with Outputs(force=force, inputs=inputs) as outs:
        out_tmp = outs.file(out)
        fusion_tmp = outs.file(save_fusion) if save_fusion else None
        target = None
        if load_fusion:
            fusion = FittedFusion.load(load_fusion)
        else:
            params = method_params(
                method, parse_weights(weights), tune_weights, tie_break, lead, context, folds, max_frames
            )
            fit = FitRequest(method, params, smooth, thresholds, folds, labels, labels_split, accept)
            fusion, target = fit_on(predictions, apply, fit, Loading(edition, align_policy, drop_member or []))
        if target is None:
            target = Loading(edition, align_policy, drop_member or []).stack(
                apply or predictions, quiet=not load_fusion
            )
        write_table(fused_table(target, fusion.apply(target), fusion), out_tmp, name=str(out))
        if fusion_tmp:
            fusion.save(fusion_tmp)
    err_console.print(f"wrote {out} ({len(target.keys)} frames)")
