"""``affect-ens submit`` and ``validate-submission``: challenge files from a fused table, and checks."""

from __future__ import annotations

from pathlib import Path

import typer

from ensemble.cli.app import app, console, err_console
from ensemble.cli.common import EDITION
from ensemble.contract import read_table
from ensemble.errors import SubmissionError
from ensemble.frames import frame_counts

TRACK = typer.Option(..., "--track", help="Challenge track: expr, va, au or mtl (multi-task, 2022-2023).")
FRAMES = typer.Option(..., "--frames", help="Frame counts: a CSV manifest 'video,frames' or a folder of frame folders.")


@app.command()
def submit(
    fused: Path = typer.Argument(..., help="Fused (or single member's) prediction table of the test split."),
    track: str = TRACK,
    frames: Path = FRAMES,
    out: Path = typer.Option(..., "--out", help="Folder to create: predictions/<video>.txt and submission.zip."),
    edition: int = EDITION,
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Write one file per test video (a line for every frame), validate it, and zip it for upload."""
    from submissions import write_submission

    report = write_submission(
        read_table(fused, edition=edition), track, edition, frame_counts(frames), out, force=force
    )
    err_console.print(f"filled {report.filled} frame(s) without predictions from their neighbours")
    console.print(f"wrote {report.videos} video(s), {report.lines} frame lines: {report.zip_path}")


@app.command("validate-submission")
def validate_submission_cmd(
    source: Path = typer.Argument(..., help="Submission folder or zip file."),
    track: str = TRACK,
    frames: Path = FRAMES,
    edition: int = EDITION,
) -> None:
    """List every problem of a submission: missing or extra videos, headers, line counts, values."""
    from submissions import validate_submission

    problems = validate_submission(source, track, edition, frame_counts(frames))
    for problem in problems:
        console.print(f"- {problem}", highlight=False, markup=False)
    if problems:
        raise SubmissionError(f"{source}: {len(problems)} problem(s)")
    console.print(f"{source}: valid {track} submission for ABAW {edition}")
