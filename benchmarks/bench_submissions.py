"""Submission speed: 1,000,000 frames over 200 videos written (gap-filled, decided, validated, zipped)
and validated again from the zip. Target (issue 7): <= 5 s on a 2-core machine.

    python benchmarks/bench_submissions.py [--frames 1000000] [--videos 200]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ensemble.simulate import MemberSpec, simulate_labels, simulate_member
from submissions import validate_submission, write_submission


def main(frames: int, videos: int) -> None:
    labels = simulate_labels(videos, frames // videos, seed=0)
    table = simulate_member(labels, MemberSpec(), name="fused", seed=0)
    rng = np.random.default_rng(0)
    table.data = table.data[rng.uniform(size=len(table.data)) > 0.03].reset_index(drop=True)  # 3% frames to fill
    counts = {v: frames // videos for v in table.data["video"].unique()}
    out = Path(tempfile.mkdtemp()) / "sub"
    try:
        for track in ("expr", "va", "au"):
            start = time.perf_counter()
            report = write_submission(table, track, 2025, counts, out, force=True)
            t_write = time.perf_counter() - start
            start = time.perf_counter()
            problems = validate_submission(report.zip_path, track, 2025, counts)
            t_check = time.perf_counter() - start
            print(
                f"{track}: wrote {report.lines:,} lines in {report.videos} files ({report.filled:,} filled) "
                f"in {t_write:.2f} s (validation of the written files included); "
                f"validated the zip again in {t_check:.2f} s; problems: {len(problems)}"
            )
    finally:
        shutil.rmtree(out.parent)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=200)
    args = parser.parse_args()
    main(args.frames, args.videos)
