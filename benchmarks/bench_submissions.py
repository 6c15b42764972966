"""Submission speed and the validator's memory.

Speed: 1,000,000 frames over 200 videos, 3% of them without a prediction. For each track of the default
edition (single-file layout) and of the last per-video edition: read the frame source (the organisers'
example file and video-name list; a manifest for per-video), write (fill, decide, write, validate the written
files, zip), then validate the zip again. Target (issue 14): written and validated in <= 5 s per track.
Wall time depends on what else runs on the machine; the CPU time of this single-threaded work does not.

Memory: the validator's peak resident memory (VmHWM of a fresh process) on the 1M-row file, and on a
zip bomb (a 2.6 MB zip whose one entry inflates to 1 GB), next to the same process's memory before validating.

    python benchmarks/bench_submissions.py [--frames 1000000] [--videos 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from ensemble.frames import read_frame_source
from ensemble.simulate import MemberSpec, simulate_labels, simulate_member
from ensemble.tasks import DEFAULT_EDITION, EDITIONS, PER_VIDEO, TASKS, get_edition
from submissions import get_format, validate_submission, write_submission

PEAK = """
import sys
from ensemble.frames import read_frame_source
from submissions import get_format, validate_submission
def peak():  # VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's across exec)
    line = next(ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
fmt = get_format(sys.argv[3], sys.argv[4])
frames = read_frame_source(sys.argv[2])
before = peak()
report = validate_submission(sys.argv[1], fmt, frames)
print(f"{before:.0f} {peak():.0f} {len(report.problems)} {report.problems[:1]}")
"""


def organiser_files(root: Path, counts: dict[str, int], track: str, edition) -> tuple[Path, Path]:
    """An example file (every frame of every video) and a video-name list, as the organisers give them."""
    root.mkdir(exist_ok=True)
    names = root / f"{track}_names.txt"
    names.write_text("".join(f"{v}\n" for v in counts))
    if edition.layout == PER_VIDEO:
        manifest = root / "frames.csv"
        manifest.write_text("video,frames\n" + "".join(f"{v},{n}\n" for v, n in counts.items()))
        return manifest, names
    example = root / f"{track}_example.txt"
    rows = (f"{v}/{f:05d}.jpg,\n" for v, n in counts.items() for f in range(1, n + 1))
    example.write_text(f"image_location,{edition.header(track)}\n" + "".join(rows))
    return example, names


def time_track(table, counts: dict[str, int], track: str, edition, root: Path) -> tuple[float, Path]:
    frames, names = organiser_files(root, counts, track, edition)
    cpu = time.process_time()
    start = time.perf_counter()
    source = read_frame_source(frames, names)
    t_read = time.perf_counter() - start
    report = write_submission(table, track, edition, source, root / f"sub_{track}", force=True)
    t_write = time.perf_counter() - start - t_read
    check = validate_submission(report.zip_path, get_format(track, edition), source)
    t_check = time.perf_counter() - start - t_read - t_write
    total, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"{edition.name} {track:4s} {report.layout:11s}: {report.rows:,} rows in {report.files} file(s), "
        f"{report.filled:,} filled; read frames {t_read:.2f} s, write (validation included) {t_write:.2f} s, "
        f"validate zip {t_check:.2f} s; total {total:.2f} s wall, {cpu:.2f} s CPU; problems: {len(check.problems)}"
    )
    return total, frames


def peak_memory(submission: Path, frames: Path, track: str, edition) -> str:
    code = subprocess.run(
        [sys.executable, "-c", PEAK, str(submission), str(frames), track, edition.key],
        capture_output=True,
        text=True,
        check=True,
    )
    before, peak, problems, first = code.stdout.split(" ", 3)
    return f"peak {peak} MB (after reading the frame source: {before} MB); problems: {problems} {first.strip()}"


def zip_bomb(path: Path, size: int = 1 << 30) -> Path:
    """A zip whose single predictions.txt inflates to ``size`` bytes of one repeated row."""
    row = b"v0000/00001.jpg,0\n" * 4096
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("predictions.txt", "w", force_zip64=True) as entry:
            for _ in range(size // len(row)):
                entry.write(row)
    return path


def main(frames: int, videos: int) -> None:
    labels = simulate_labels(videos, frames // videos, seed=0)
    counts = dict.fromkeys(labels["va"]["video"].unique().tolist(), frames // videos)
    table = simulate_member(labels, MemberSpec(), name="fused", seed=0)
    rng = np.random.default_rng(0)
    table.data = table.data[rng.uniform(size=len(table.data)) > 0.03].reset_index(drop=True)  # 3% frames to fill
    per_video = max(n for n, e in EDITIONS.items() if e.layout == PER_VIDEO and set(TASKS) <= set(e.tracks))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in (DEFAULT_EDITION, f"abaw{per_video}"):
            for track in TASKS:
                time_track(table, counts, track, get_edition(name), root / name)
        edition = get_edition(DEFAULT_EDITION)
        example = root / str(DEFAULT_EDITION) / "expr_example.txt"
        sub = root / str(DEFAULT_EDITION) / "sub_expr" / "submission.zip"
        print(f"validator memory, {sum(counts.values()):,}-row expr file: {peak_memory(sub, example, 'expr', edition)}")
        bomb = zip_bomb(root / "bomb.zip")
        print(
            f"validator memory, zip bomb ({bomb.stat().st_size / 1e6:.1f} MB zip, 1 GB inflated): "
            f"{peak_memory(bomb, example, 'expr', edition)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=200)
    args = parser.parse_args()
    main(args.frames, args.videos)
