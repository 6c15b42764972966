"""``affect-ens submit`` and ``validate-submission``: challenge files from a fused table, and checks."""

from __future__ import annotations

from pathlib import Path

import typer

from ensemble.cli.app import app, console
from ensemble.cli.common import EDITION, given_edition, note, say_edition
from ensemble.errors import SubmissionError
from ensemble.tasks import SINGLE_FILE, editions_where
from submissions.formats import DEFAULT_FILL

TRACK = typer.Option(
    ...,
    "--track",
    help=f"Challenge track: expr, va, au or mtl (multi-task, in {editions_where(lambda e: 'mtl' in e.tracks)}).",
)
FRAMES = typer.Option(
    ...,
    "--frames",
    help="The frames to list, in order: the organisers' example file (header 'image_location,...'; "
    f"{editions_where(lambda e: e.layout == SINGLE_FILE)}), their MTL image list, a 'video,frames' manifest or a "
    "folder of frame folders (told apart by content).",
)
VIDEOS = typer.Option(
    None,
    "--videos",
    help="The organisers' video-name list of the track (<Track>_test_set_release.txt, one name per line): "
    "selects the track's videos and fixes their order.",
)
FILL = typer.Option(
    DEFAULT_FILL,
    "--fill",
    help="Frames the table lacks (no face found): previous (copy the closest earlier predicted frame, as "
    "participants do), nearest, linear (interpolate, then decide) or sentinel (-1/-5 rows; only "
    f"{editions_where(lambda e: e.sentinel_fill)}).",
)


def _frame_source(frames: Path, videos: Path | None):
    from ensemble.frames import describe, read_frame_source

    source = read_frame_source(frames, videos)
    note(f"frames: {describe(source)}")
    return source


@app.command()
def submit(
    fused: Path = typer.Argument(..., help="Fused (or single member's) prediction table of the test split."),
    track: str = TRACK,
    frames: Path = FRAMES,
    videos: Path = VIDEOS,
    out: Path = typer.Option(..., "--out", help="Folder to create: predictions/ (the files) and submission.zip."),
    edition: str = EDITION,
    fill: str = FILL,
    force: bool = typer.Option(False, "--force", help="Replace OUT if affect-ens wrote it."),
) -> None:
    """Write the track's challenge files (one per video or one file, as the edition's organisers take them;
    the multi-task file in image-list order), validate them against the frame source, and zip them."""
    from ensemble.contract import read_table, table_edition
    from submissions import get_format, write_submission
    from submissions.fill import check_fill

    key = given_edition(edition)
    table = read_table(fused)
    fmt = get_format(track, key if key is not None else table.meta.edition)
    track = fmt.track  # fails before the frames are read
    resolved, how = table_edition(key, [table], [str(fused)], fmt.tasks)
    say_edition(resolved, how)
    check_fill(fill, resolved)
    source = _frame_source(frames, videos)
    report = write_submission(
        table, track, resolved, source, out, fill=fill, force=force, inputs=(fused, frames, videos)
    )
    note(f"filled {report.filled:,} frame(s) without predictions (--fill {report.fill})")
    if report.dropped:
        note(f"left out {report.dropped} video(s) of the table that the frame source does not list")
    console.print(
        f"wrote {report.files} file(s), {report.rows:,} rows ({fmt.layout} layout, {track} track, "
        f"edition {report.edition}): {report.zip_path}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("validate-submission")
def validate_submission_cmd(
    source: Path = typer.Argument(..., help="Submission folder, zip file or single .txt file."),
    track: str = TRACK,
    frames: Path = FRAMES,
    videos: Path = VIDEOS,
    edition: str = EDITION,
) -> None:
    """List every problem of a submission with its file, line and count: missing, extra or duplicated files,
    headers, byte-order marks, blank lines, row order against the frame source, values, row counts."""
    from ensemble.tasks import resolve_edition
    from submissions import get_format, validate_submission

    resolved, how = resolve_edition(edition)
    say_edition(resolved, how)
    fmt = get_format(track, resolved)
    track = fmt.track
    report = validate_submission(source, fmt, _frame_source(frames, videos))
    for warning in report.warnings:
        note(f"warning: {warning}")
    for problem in report.problems:
        console.print(f"- {problem}", highlight=False, markup=False, soft_wrap=True)
    if report.problems:
        raise SubmissionError(f"{source}: {len(report.problems)} problem(s)")
    console.print(
        f"{source}: valid {track} submission for {resolved.name} ({report.files} file(s), {report.rows:,} rows)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
