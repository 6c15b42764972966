"""``crop-faces``, ``predict-video`` and ``webcam``: from raw video (or a camera) to aligned faces and
predictions. One detection and alignment path serves all three (``members.face.crop``).

torch, PyAV, OpenCV and facenet-pytorch are imported inside the commands, so the CLI starts fast.
"""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.markup import escape

from ensemble.cli.app import app, collection_bar, console, err_console, phase_bars
from ensemble.errors import AffectEnsError
from ensemble.outputs import Outputs, WorkFolder, partial_path

CROP_SIZE = typer.Option(
    112,
    "--size",
    min=32,
    max=1024,
    help="Side of the aligned face crops in pixels (112 as Aff-Wild2's cropped_aligned).",
)
MAX_FACES = typer.Option(
    2,
    "--max-faces",
    min=1,
    help="Most faces per frame. Two people give folders <video>_left and <video>_right, as Aff-Wild2 names them "
    "(a second face counts when it is on at least a fifth of the frames with a face); 1: the largest face only.",
)
MIN_FACE = typer.Option(
    40,
    "--min-face",
    min=12,
    help="Smallest face side searched, in the video's pixels (smaller: slower); ssd and yunet drop smaller faces.",
)
DETECTOR = typer.Option(
    "mtcnn",
    "--detector",
    help="Face detector: mtcnn (facenet-pytorch, weights in its wheel), ssd (OpenCV's res10 SSD: --detector-model "
    ".caffemodel and --detector-config .prototxt; no landmarks, so faces are cropped from the box) or yunet "
    "(OpenCV Zoo's YuNet: --detector-model .onnx). The OpenCV models are your own copies; nothing is downloaded.",
)
DETECTOR_MODEL = typer.Option(
    None, "--detector-model", help="The model file of --detector ssd (.caffemodel) or yunet (.onnx)."
)
DETECTOR_CONFIG = typer.Option(
    None, "--detector-config", help="The network file of --detector ssd (deploy.prototxt) that goes with its model."
)
FORCE = typer.Option(False, "--force", help="Replace outputs that affect-ens wrote before.")
THREADS = typer.Option(
    1,
    "--threads",
    min=1,
    help="CPU threads for face search and members (torch). On a busy CPU more threads wait on each other "
    "(measured 10x slower on this 2-core machine); raise it on an idle machine with many cores.",
)
DEVICE = typer.Option(
    "auto",
    "--device",
    help="Where the face search and the members run: auto (the GPU when torch sees one, else the CPU), cpu or cuda.",
)
TABLE_OUT = typer.Option(
    ...,
    "--out",
    help="Prediction table to write (.parquet): a row for every frame of every face folder "
    "(<video>, or <video>_left and <video>_right).",
)
FUSION = typer.Option(
    None,
    "--fusion",
    help="Fusion saved by 'fuse --save-fusion' on these members (same run names, same order), applied with its "
    "smoothing and thresholds. Without it each task is the mean of the members predicting it.",
)
OVERLAY = typer.Option(
    None, "--overlay", help="Also write the video with each face's box, expression and a valence/arousal disc (.mp4)."
)
MEMBERS_HELP = "Run folder of an image member (cnn or keras, from train-member); repeat the option for several."


def detect_every_option(default: int) -> typer.Option:
    return typer.Option(
        default,
        "--detect-every",
        min=1,
        help="Search faces every N frames and track them in between (1: search every frame; faster with more).",
    )


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    """One line on stdout, printed as is (names from data are no markup) and never wrapped."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def _use_threads(threads: int) -> int:
    """torch's threads for the rest of the command (the face search takes the same number)."""
    import torch

    torch.set_num_threads(threads)
    return threads


def _detector(name: str, model: Path | None, config: Path | None, device: str = "auto"):
    """The face detector chosen, its options checked before anything is written or imported; a note when
    ``--device cuda`` asks for what an OpenCV detector does not do."""
    from members.face.detectors import DetectorChoice

    if device == "cuda" and name != "mtcnn":
        _warn(f"--detector {name} runs on the CPU (OpenCV's DNN backend) whatever --device says")
    return DetectorChoice(name, model, config).check()


def _check_suffix(path: Path | None, suffixes: tuple[str, ...], option: str) -> None:
    if path is not None and path.suffix.lower() not in suffixes:
        raise AffectEnsError(f"{option} {path}: expected a {' or '.join(suffixes)} file")


@app.command("crop-faces")
def crop_faces_cmd(
    sources: list[Path] = typer.Argument(
        ...,
        help="Video files or folders of videos; each file's name without its suffix is its video id (ids must differ).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Dataset folder to create: cropped_aligned/<video>/00001.jpg ... and frames.csv (video,frames).",
    ),
    size: int = CROP_SIZE,
    max_faces: int = MAX_FACES,
    min_face: int = MIN_FACE,
    detect_every: int = detect_every_option(1),
    detector: str = DETECTOR,
    detector_model: Path = DETECTOR_MODEL,
    detector_config: Path = DETECTOR_CONFIG,
    threads: int = THREADS,
    device: str = DEVICE,
    force: bool = FORCE,
) -> None:
    """Find, align and crop the faces of every frame in Aff-Wild2's layout (frames without a face are absent).
    A killed run resumes at the videos not yet done; under torchrun the processes share the videos."""
    choice = _detector(detector, detector_model, detector_config, device)
    settings = {"--size": size, "--max-faces": max_faces, "--min-face": min_face, "--detect-every": detect_every}
    settings |= _detector_settings(choice) | {"--device": device}
    main = os.environ.get("RANK", "0") == "0"  # torchrun's rank 0 alone claims, assembles and prints
    inputs = [*sources, detector_model, detector_config]
    with Outputs(force=force, inputs=inputs) if main else nullcontext() as outs, collection_bar() as bar:
        # first: a refused output is answered before torch is imported
        work = outs.resumable_folder(out, kind="faces", settings=settings) if outs else WorkFolder(partial_path(out))
        from members.face.crop import FaceSearch

        search = FaceSearch(min_face, max_faces, detect_every, threads, detector_choice=choice)
        report, resumed = _crop_shared(sources, work, search, size, device, bar if main else None)
    if not main:
        return
    _resumed(resumed)
    for video in report.faceless:
        _warn(f"{video}: no face found on any of its frames; it has no crops and no line in frames.csv")
    crops = sum(report.crops.values())
    _say(
        f"wrote {out}: {crops} face crops in {len(report.crops)} folder(s) from {report.videos} video(s) "
        f"({report.decoded} frames)"
    )


def _crop_shared(sources: list[Path], work, search, size: int, device: str, bar):
    """This process's share of the videos cropped into the work folder (rank 0 prepares it first, waits for
    the others and writes the manifest); returns rank 0's report and the records done before, else (None, {})."""
    from members.face.crop import crop_collection, finish_dataset
    from members.face.video import video_collection

    videos = video_collection(sources)
    launch, search, _ = _launch(search, device)
    mine, done = _my_videos(videos, work, launch)
    progress = (lambda v, vs, f, fs: bar(len(done) + v, len(videos), f, fs)) if bar else None
    crop_collection(mine, work, search, size, progress)
    if not launch.main:
        return None, {}
    _wait_for_videos(videos, work)
    return finish_dataset(videos, work), done


@app.command("predict-video")
def predict_video_cmd(
    sources: list[Path] = typer.Argument(
        ..., help="Video files (any format FFmpeg decodes) or folders of videos; each file's name is its video id."
    ),
    member: list[Path] = typer.Option(..., "--member", help=MEMBERS_HELP),
    out: Path = TABLE_OUT,
    fusion: Path = FUSION,
    overlay: Path = OVERLAY,
    plot: Path = typer.Option(None, "--plot", help="Also write a self-contained page of the per-frame curves (.html)."),
    size: int = CROP_SIZE,
    max_faces: int = MAX_FACES,
    min_face: int = MIN_FACE,
    detect_every: int = detect_every_option(1),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Faces per batch through the members."),
    detector: str = DETECTOR,
    detector_model: Path = DETECTOR_MODEL,
    detector_config: Path = DETECTOR_CONFIG,
    threads: int = THREADS,
    device: str = DEVICE,
    force: bool = FORCE,
) -> None:
    """Predict every frame of videos: faces as crop-faces finds them, members, fusion, faceless frames filled.
    Several videos make one table, as predict-member writes; a killed run resumes at the videos not done, and
    under torchrun the processes share the videos."""
    from members.face.crop import FaceSearch
    from members.face.video import video_collection

    _check_suffix(overlay, (".mp4",), "--overlay")
    _check_suffix(plot, (".html",), "--plot")
    videos = video_collection(sources)
    choice = _detector(detector, detector_model, detector_config, device)
    search = FaceSearch(min_face, max_faces, detect_every, threads, detector_choice=choice)
    inputs = [*member, fusion, detector_model, detector_config]
    if len(videos) == 1 and os.environ.get("WORLD_SIZE", "1") == "1":
        options = {"size": size, "batch_size": batch_size, "device": device}
        _predict_one(videos, inputs, member, out, fusion, overlay, plot, search, options, force)
        return
    if overlay or plot:
        raise AffectEnsError("--overlay and --plot draw one video: give one video file (and no torchrun)")
    settings = {"--member": [str(p.resolve()) for p in member], "--fusion": str(fusion.resolve()) if fusion else None}
    settings |= {"--size": size, "--max-faces": max_faces, "--min-face": min_face, "--detect-every": detect_every}
    settings |= _detector_settings(choice) | {"--batch-size": batch_size, "--device": device}
    _predict_many(videos, [*sources, *inputs], member, out, fusion, search, settings, force)


def _detector_settings(choice) -> dict:
    """The detector options as a resumed run must repeat them."""
    files = {"--detector-model": choice.model, "--detector-config": choice.config}
    return {"--detector": choice.name} | {k: str(v.resolve()) if v else None for k, v in files.items()}


def _predict_one(videos, inputs, member, out, fusion, overlay, plot, search, options: dict, force: bool) -> None:
    """predict-video on one video, with its overlay and plot where asked."""
    from ensemble.contract import check_table_path

    ((video_id, path),) = videos.items()
    with Outputs(force=force, inputs=[path, *inputs]) as outs, phase_bars("frames") as bar:
        table = outs.file(check_table_path(out))  # refusals come before torch's import
        files = [table] + [outs.file(p) if p else None for p in (overlay, plot)]
        from ensemble.pipeline import saved_fusion
        from members.face.predict import predict_video
        from members.training.distributed import choose_device

        where = choose_device(options["device"])
        search = dataclasses.replace(search, threads=_use_threads(search.threads), device=str(where))
        fuse = saved_fusion(fusion, split="video") if fusion else None
        result = predict_video(
            path,
            video_id,
            member,
            fuse=fuse,
            search=search,
            size=options["size"],
            batch_size=options["batch_size"],
            progress=bar,
            device=where,
        )
        _write_results(result, files, out, bar)
    for subject, track in result.faces.subjects.items():
        _say(f"{subject}: face found on {len(track)} of {result.faces.frames} frames")
    err_console.print(f"filled {result.filled} frame(s) without a face from their neighbours")
    _say(f"wrote {', '.join(str(p) for p in (out, overlay, plot) if p)}")


def _predict_many(videos, inputs, member, out, fusion, search, settings: dict, force: bool) -> None:
    """predict-video on several videos (or under torchrun): one table, built video by video in a work folder."""
    from ensemble.contract import check_table_path

    main = os.environ.get("RANK", "0") == "0"
    with Outputs(force=force, inputs=inputs) if main else nullcontext() as outs:
        if outs:  # refusals come before torch's import
            table, work = outs.resumable_file(check_table_path(out), kind="table", settings=settings)
        else:
            work = WorkFolder(partial_path(out))
        from ensemble.contract import write_table
        from ensemble.pipeline import saved_fusion
        from members.face.predict import collected_table, open_members, predict_collection

        fuse = saved_fusion(fusion, split="video") if fusion else None
        with collection_bar() as bar:
            launch, search, where = _launch(search, settings["--device"])
            members = open_members(member, where)
            mine, done = _my_videos(videos, work, launch)
            progress = (lambda v, vs, f, fs: bar(len(done) + v, len(videos), f, fs)) if main else None
            predict_collection(
                mine,
                members,
                work,
                search,
                size=settings["--size"],
                batch_size=settings["--batch-size"],
                per_member=fuse is not None,
                progress=progress,
            )
        if not launch.main:
            return
        _wait_for_videos(videos, work)
        result = collected_table(videos, work, fuse)
        write_table(result.table, table, name=str(out))
    _resumed(done)
    for video in result.faceless:
        _warn(f"{video}: no face found on any of its frames; it has no rows in the table")
    err_console.print(f"filled {result.filled} frame(s) without a face from their neighbours")
    data = result.table.data
    _say(f"wrote {out}: {len(data)} frames of {data['video'].nunique()} face folder(s) from {len(videos)} video(s)")


def _launch(search, device: str):
    """This process's launch (torchrun's rank and world, or one process), the search made concrete for its
    device and share of the cores, and the device."""
    from members.face.crop import parallel_search
    from members.training.distributed import choose_device, launch_from_env

    launch = launch_from_env()
    where = choose_device(device, launch)
    search = dataclasses.replace(search, device=str(where), **parallel_search(str(where), launch.world))
    return launch, search, where


def _my_videos(videos: dict[str, Path], work, launch) -> tuple[dict[str, Path], dict]:
    """This process's share of the videos not done yet (rank r takes every r-th) and the records of those done
    before; rank 0 first clears what a killed run left half-made."""
    from members.face.crop import same_source
    from members.training.distributed import wait_for_all

    if launch.main:
        work.prepare(same_source(videos))
    wait_for_all(launch)
    done = work.done()
    pending = [video for video in videos if video not in done]
    return {video: videos[video] for video in pending[launch.rank :: launch.world]}, done


def _wait_for_videos(videos: dict[str, Path], work) -> None:
    """Rank 0 waits until every video is done (the other processes commit theirs as they finish)."""
    while not videos.keys() <= work.done_names():
        time.sleep(0.2)


def _resumed(done: dict) -> None:
    if done:
        err_console.print(f"resumed: {len(done)} video(s) were done by an earlier, killed run", highlight=False)


def _write_results(result, files: list[Path | None], out: Path, bar) -> None:
    """The table, and where asked the overlay video and the plot page, into the command's temporary files."""
    from ensemble.contract import write_table
    from members.face.overlay import write_overlay
    from members.face.plot import plot_html

    table_file, overlay_file, plot_file = files
    write_table(result.table, table_file, name=str(out))
    if overlay_file:
        write_overlay(result, overlay_file, lambda d, t: bar("drawing", d, t))
    if plot_file:
        plot_file.write_text(plot_html(result), encoding="utf-8")


@app.command()
def webcam(
    member: list[Path] = typer.Option(None, "--member", help=MEMBERS_HELP + " Their mean is shown; none: faces only."),
    source: str = typer.Option(
        "0", "--source", help="Camera index (0: the default camera) or a video file, read by the same loop."
    ),
    frames: int = typer.Option(
        None, "--frames", min=1, help="Stop after this many frames (default: when the source ends, q, or Ctrl+C)."
    ),
    detect_every: int = detect_every_option(5),
    max_faces: int = MAX_FACES,
    min_face: int = MIN_FACE,
    window: bool = typer.Option(
        None, "--window/--no-window", help="Show the frames in a window (default: when a display is available)."
    ),
    overlay: Path = typer.Option(None, "--overlay", help="Also record the drawn frames as a video (.mp4)."),
    detector: str = DETECTOR,
    detector_model: Path = DETECTOR_MODEL,
    detector_config: Path = DETECTOR_CONFIG,
    threads: int = THREADS,
    force: bool = FORCE,
) -> None:
    """The live demo: faces, expressions and valence/arousal drawn on a camera's frames, with the frame rate."""
    _check_suffix(overlay, (".mp4",), "--overlay")
    choice = _detector(detector, detector_model, detector_config)
    camera = source.isascii() and source.isdigit()
    inputs = [None if camera else Path(source), *(member or []), detector_model, detector_config]
    with Outputs(force=force, inputs=inputs) as outs, phase_bars("frames") as bar:
        record = outs.file(overlay) if overlay else None  # refusals come before torch's import
        from members.face.crop import FaceSearch
        from members.face.predict import open_image_runs
        from members.face.video import parse_source
        from members.face.webcam import run_live

        stream, members = parse_source(source), open_image_runs(member) if member else []
        search = FaceSearch(min_face, max_faces, detect_every, _use_threads(threads), detector_choice=choice)
        show = _window(window)
        report = run_live(
            stream, members, search, limit=frames, show=show, record=record, progress=lambda d, t: bar("live", d, t)
        )
    _say(
        f"{report.frames} frames in {report.seconds:.2f} s: {report.fps:.1f} frames/s "
        f"(faces searched on {report.searched} frames, every {detect_every}; a face on {report.with_face})"
    )
    if overlay:
        _say(f"wrote {overlay}")


def _window(asked: bool | None):
    """The window's ``show``, or None: asked for and impossible is an error; by default, a warning."""
    from members.face.webcam import display_available, open_window

    if asked is False or (asked is None and not display_available()):
        return None
    try:
        return open_window()
    except AffectEnsError as exc:
        if asked:
            raise
        _warn(f"{exc}; running without a window")
        return None
