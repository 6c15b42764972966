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
    None,
    "--track",
    help=f"Challenge track: expr, va, au or mtl (multi-task, in {editions_where(lambda e: 'mtl' in e.tracks)}).",
)
FRAMES = typer.Option(
    None,
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


SAMPLE = typer.Option(
    None,
    "--sample",
    help="Image or clip challenges (tables of a dataset's own classes): the organisers' sample_submission.csv, whose "
    "columns and rows, in order, the file takes (Kaggle: image_path,emotion). Without it a clip,label CSV.",
)


def _abaw_options(track: str | None, frames: Path | None) -> None:
    if track is None or frames is None:
        raise SubmissionError(f"an ABAW submission needs {'--track' if track is None else '--frames'}")


def _class_submit(table, fused: Path, out: Path, sample: Path | None, given: dict, force: bool) -> None:
    """``submit`` for a table of another challenge's classes: one CSV (``submissions.classes``)."""
    from submissions.classes import read_sample, write_class_submission

    stray = [flag for flag, value in given.items() if value is not None]
    if stray:
        raise SubmissionError(f"{fused}: a table of {table.edition.name} takes no {', '.join(stray)} (ABAW only)")
    rows = write_class_submission(
        table, out, read_sample(sample) if sample else None, force=force, inputs=(fused, sample)
    )
    layout = f"the rows and columns of {sample}" if sample else "clip,label"
    console.print(f"wrote {out}: {rows:,} rows ({layout}; labels: {table.edition.name})", highlight=False, markup=False)


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
    out: Path = typer.Option(
        ..., "--out", help="Folder to create: predictions/ (the files) and submission.zip; a .csv for --sample."
    ),
    edition: str = EDITION,
    fill: str = FILL,
    force: bool = typer.Option(False, "--force", help="Replace OUT if affect-ens wrote it."),
    sample: Path = SAMPLE,
) -> None:
    """Write the track's challenge files (one per video or one file, as the edition's organisers take them;
    the multi-task file in image-list order), validate them against the frame source, and zip them. A table of
    an image or clip dataset's classes gives one CSV instead (--sample, else clip,label)."""
    from ensemble.contract import read_table, table_edition
    from submissions import get_format, write_submission
    from submissions.fill import check_fill

    key = given_edition(edition)
    table = read_table(fused)
    if table.edition.title:
        given = {"--track": track, "--frames": frames, "--videos": videos, "--edition": edition}
        return _class_submit(table, fused, out, sample, given, force)
    if sample is not None:
        raise SubmissionError(f"{fused}: --sample is for image and clip challenges; this table is ABAW's")
    _abaw_options(track, frames)
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
    sample: Path = SAMPLE,
    data: Path = typer.Option(
        None, "--data", help="Image or clip challenges: the dataset (its classes; without --sample its test clips)."
    ),
    classes: str = typer.Option(
        None, "--classes", help="Image or clip challenges: the class names, comma-separated (default: --data's)."
    ),
) -> None:
    """List every problem of a submission with its file, line and count: missing, extra or duplicated files,
    headers, byte-order marks, blank lines, row order against the frame source, values, row counts. An image or
    clip challenge's CSV (--sample, --data or --classes) is checked against the sample's header and rows or the
    dataset's test clips, and its labels against the classes."""
    from ensemble.tasks import resolve_edition
    from submissions import get_format, validate_submission

    if sample is not None or data is not None or classes is not None:
        return _validate_classes(source, sample, data, classes)
    _abaw_options(track, frames)
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


def _validate_classes(source: Path, sample: Path | None, data: Path | None, classes: str | None) -> None:
    """validate-submission for an image or clip challenge's CSV."""
    from ensemble.datasets import read_dataset
    from submissions.classes import check_class_submission, read_sample

    if data is None and (classes is None or sample is None):
        raise SubmissionError("checking an image or clip submission needs --data (or --classes and --sample)")
    dataset = read_dataset(data) if data is not None else None
    names = tuple(c.strip() for c in classes.split(",")) if classes else dataset.classes
    keys = None if sample else list(dataset.frames("test")["video"].drop_duplicates())
    problems = check_class_submission(source, names, read_sample(sample) if sample else None, keys)
    for problem in problems:
        console.print(f"- {problem}", highlight=False, markup=False, soft_wrap=True)
    if problems:
        raise SubmissionError(f"{source}: {len(problems)} problem(s)")
    console.print(f"{source}: valid submission ({len(names)} classes)", highlight=False, markup=False)
