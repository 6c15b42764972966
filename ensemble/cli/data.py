"""``affect-ens make-demo-data``: the synthetic Aff-Wild2-like dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from ensemble.cli.app import app, console, progress_bar
from ensemble.cli.common import EDITION, say_edition
from ensemble.errors import AffectEnsError
from ensemble.outputs import Outputs
from ensemble.tasks import resolve_edition


@app.command("make-demo-data")
def make_demo_data(
    out: Path = typer.Argument(..., help="Folder to create (Aff-Wild2 layout: cropped_aligned/, annotation folders)."),
    seed: int = typer.Option(0, min=0, help="Random seed (0 or more); the same seed gives the same dataset."),
    train_videos: int = typer.Option(8, min=1, help="Videos in the training split."),
    val_videos: int = typer.Option(6, min=1, help="Videos in the validation split."),
    test_videos: int = typer.Option(4, min=1, help="Videos in the test split (labels go to test_labels/)."),
    min_frames: int = typer.Option(120, min=10, help="Fewest frames per video."),
    max_frames: int = typer.Option(200, min=10, help="Most frames per video."),
    size: int = typer.Option(48, min=24, max=256, help="Image side in pixels."),
    edition: str = EDITION,
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
    kind: str = typer.Option(
        "aff-wild2",
        "--kind",
        help="aff-wild2 (default); images: a Kaggle challenge (train/<class>/ of 9 classes, test_kaggle/, "
        "sample_submission.csv, the hidden test_truth.csv); fer: FER2013 class folders 0..6; clips: EmotiW-style "
        "<split>/<Class>/<clip>/<frames>.",
    ),
    per_class: int = typer.Option(20, min=2, help="images, fer, clips: training images (or clips) per class."),
    test_items: int = typer.Option(60, min=1, help="images: test images; fer, clips: about this many, per class."),
) -> None:
    """Write a synthetic dataset: face-like frames whose features follow smooth per-frame labels (or, with
    --kind, drawn faces in an image or clip challenge's layout)."""
    from members.synthetic.dataset import SyntheticConfig, make_dataset

    if kind != "aff-wild2":
        return make_image_demo_data(out, kind, seed, per_class, test_items, size, force)

    resolved, how = resolve_edition(edition)
    say_edition(resolved, how)
    cfg = SyntheticConfig(
        seed, train_videos, val_videos, test_videos, min_frames, max(max_frames, min_frames), size, resolved.key
    )
    with Outputs(force=force) as outs, progress_bar("drawing videos") as advance:
        summary = make_dataset(outs.folder(out, kind="dataset"), cfg, progress=advance)
    frames = {split: sum(v.values()) for split, v in summary["frames"].items()}
    console.print(
        f"wrote {out}: " + ", ".join(f"{s} {len(summary['frames'][s])} videos/{n} frames" for s, n in frames.items())
    )


def make_image_demo_data(out: Path, kind: str, seed: int, per_class: int, test: int, size: int, force: bool) -> None:
    """make-demo-data --kind images|fer|clips."""
    from members.synthetic.images import KINDS, make_image_dataset

    if kind not in KINDS:
        raise AffectEnsError(f"--kind {kind!r}: choose one of: aff-wild2, {', '.join(KINDS)}")
    with Outputs(force=force) as outs:
        summary = make_image_dataset(
            outs.folder(out, kind="dataset"), kind, seed=seed, per_class=per_class, test=test, size=size
        )
    counts = ", ".join(f"{s} {summary[s]}" for s in ("train", "val", "test") if s in summary)
    console.print(f"wrote {out}: {kind}, {len(summary['classes'])} classes; {counts}", highlight=False, markup=False)
