"""``affect-ens fuse``: fit a fusion on validation tables, report honest scores, apply it to any split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ensemble.cli.app import app, err_console
from ensemble.cli.check import ACCEPT, DROP, run_check
from ensemble.cli.common import (
    ALIGN,
    EDITION,
    LABELS_SPLIT,
    load_stack,
    load_truths,
    note,
    one_row_per_item,
    print_scores,
)
from ensemble.cli.options import FuseCommand, given_flags, method_params
from ensemble.errors import AffectEnsError
from ensemble.fusion import FUSERS
from ensemble.outputs import Outputs

if TYPE_CHECKING:  # tables and fusions are read when the command runs: `affect-ens --help` starts without pandas
    from ensemble.align import Aligned
    from ensemble.pipeline import FittedFusion


@dataclass
class Loading:
    """How member tables become one stack: the edition asked for, the alignment policy, members left out."""

    edition: str | None
    policy: str
    drop: list[str]

    def stack(self, paths: list[Path], quiet: bool = False) -> Aligned:
        from ensemble.check import drop_members

        return drop_members(load_stack(paths, self.edition, self.policy, quiet=quiet), self.drop)


@dataclass
class FitRequest:
    """What ``fuse`` fits: the method and its parameters, post-processing, labels, members vouched for."""

    method: str
    params: dict
    smooth: bool
    thresholds: bool
    folds: int
    labels: Path
    labels_split: str
    accept: list[str]


def fit_on(predictions: list[Path], apply: list[Path] | None, fit: FitRequest, loading: Loading):
    """(fusion fitted on ``predictions``, the ``apply`` stack or None), after the member check when the
    fusion is applied to another split; prints the scores and the post-processing kept."""
    from ensemble.pipeline import fit_fusion

    stack = loading.stack(predictions)
    truths = load_truths(fit.labels, fit.labels_split, stack)
    target = None
    if apply:
        target = loading.stack(apply)
        run_check(stack, target, truths, fit.accept or [])
    elif fit.accept:
        raise AffectEnsError("--accept vouches for members in the member check, which runs only with --apply")
    smooth = fit.smooth and not one_row_per_item(stack)
    if fit.smooth and not smooth:
        note("temporal smoothing does not apply: every row is an image or a clip")
    with err_console.status(f"fitting {fit.method} on {len(stack.keys)} frames of {len(stack.members)} members"):
        fusion = fit_fusion(
            stack, truths, fit.method, fit.params, smooth=smooth, thresholds=fit.thresholds, folds=fit.folds
        )
    title = f"{stack.edition.name} scores on {fit.labels_split} (tuned rows out-of-fold)"
    print_scores(fusion.scores, stack.edition, title)
    if fusion.post is not None:
        note(f"post-processing {fusion.post.summary()}")
    return fusion, target


def refuse_fit_options(method: str | None, given: dict[str, Any], accept: list[str] | None) -> None:
    """A saved fusion keeps its method and parameters: options that would change them are an error, not ignored."""
    named = ["--method"] if method else []
    named += given_flags(given)
    named += ["--accept"] if accept else []
    if named:
        raise AffectEnsError(
            f"{named[0]} does not apply with --load-fusion: a saved fusion is applied as it was fitted"
        )


def check_output_names(out: Path, save_fusion: Path | None) -> None:
    from ensemble.contract import check_table_path

    check_table_path(out)
    if save_fusion and save_fusion.suffix.lower() != ".json":
        raise AffectEnsError(f"{save_fusion}: a fusion is saved as JSON; name it <name>.json")


def load_fitted(path: Path) -> FittedFusion:
    from ensemble.pipeline import FittedFusion

    return FittedFusion.load(path)


def write_fused(target: Aligned, fusion: FittedFusion, tmp: Path, out: Path) -> None:
    """The fused table of ``target`` into ``tmp`` (the output module moves it to ``out``)."""
    from ensemble.contract import write_table
    from ensemble.pipeline import fused_table

    write_table(fused_table(target, fusion.apply(target), fusion), tmp, name=str(out))


def fuse(
    predictions: list[Path] = typer.Argument(..., help="Members' validation tables (fit), one per member."),
    method: str = typer.Option(None, help=f"Fusion method: {', '.join(FUSERS.names())}. Default: average."),
    labels: Path = typer.Option(
        None, "--labels", help="Aff-Wild2 root with the annotation folders, or an image, clip or list dataset (to fit)."
    ),
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
    folds: int = typer.Option(5, min=2, help="Video-grouped folds for out-of-fold scores and the stacker."),
    smooth: bool = typer.Option(True, "--smooth/--no-smooth", help="Tune temporal smoothing windows per task."),
    thresholds: bool = typer.Option(True, "--thresholds/--no-thresholds", help="Tune per-AU decision thresholds."),
    labels_split: str = LABELS_SPLIT,
    edition: str = EDITION,
    align_policy: str = ALIGN,
    drop_member: list[str] = DROP,
    accept: list[str] = ACCEPT,
    force: bool = typer.Option(False, "--force", help="Overwrite existing outputs."),
    **method_given: Any,
) -> None:
    """Fuse members: fit on validation (scores out-of-fold by video), then write the fused table. Fitting on one
    split to apply to another (--apply) first runs the member check (see check-members). Method options apply to
    the method they name."""
    check_output_names(out, save_fusion)
    loading, fit = Loading(edition, align_policy, drop_member or []), None
    if load_fusion:  # the options are checked before anything is read or written
        refuse_fit_options(method, method_given, accept)
    elif labels is None:
        raise AffectEnsError("fitting a fusion needs --labels (or pass --load-fusion)")
    else:
        params = method_params(method or "average", method_given, {"folds": folds})
        fit = FitRequest(method or "average", params, smooth, thresholds, folds, labels, labels_split, accept)
    with Outputs(force=force, inputs=[*predictions, *(apply or []), load_fusion, labels]) as outs:
        out_tmp = outs.file(out)
        fusion_tmp = outs.file(save_fusion) if save_fusion else None
        fusion, target = fit_on(predictions, apply, fit, loading) if fit else (load_fitted(load_fusion), None)
        if target is None:
            target = loading.stack(apply or predictions, quiet=not load_fusion)
        write_fused(target, fusion, out_tmp, out)
        if fusion_tmp:
            fusion.save(fusion_tmp)
    err_console.print(f"wrote {out} ({len(target.keys)} frames)")


app.command(name="fuse")(FuseCommand(fuse))
