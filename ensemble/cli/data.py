"""``affect-ens make-demo-data``: the synthetic Aff-Wild2-like dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from ensemble.cli.app import app, console, progress_bar
from ensemble.cli.common import EDITION, say_edition
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
) -> None:
    """Write a synthetic dataset: face-like frames whose features follow smooth per-frame labels."""
    from members.synthetic import SyntheticConfig, make_dataset

    resolved, how = resolve_edition(edition)
    say_edition(resolved, how)
    cfg = SyntheticConfig(
        seed, train_videos, val_videos, test_videos, min_frames, max(max_frames, min_frames), size, resolved.year
    )
    with Outputs(force=force) as outs, progress_bar("drawing videos") as advance:
        summary = make_dataset(outs.folder(out, kind="dataset"), cfg, progress=advance)
    frames = {split: sum(v.values()) for split, v in summary["frames"].items()}
    console.print(
        f"wrote {out}: " + ", ".join(f"{s} {len(summary['frames'][s])} videos/{n} frames" for s, n in frames.items())
    )
