"""Start-up time of the command line: `affect-ens --help` run N times in fresh processes; the median wall time
and the modules that cost most (`python -X importtime`).

    python benchmarks/bench_startup.py [--runs 7]

Target (issue 16): under 0.5 s on this machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMAND = [sys.executable, "-m", "ensemble.cli", "--help"]


def wall_times(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(COMMAND, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def costliest_imports(top: int = 5) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the top-level imports of one start, costliest first."""
    err = subprocess.run([sys.executable, "-X", "importtime", *COMMAND[1:]], capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:top]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    times = wall_times(args.runs)
    print(
        f"affect-ens --help: median {statistics.median(times):.3f} s, min {min(times):.3f} s over {args.runs} runs "
        f"(goal < 0.5 s) [load {os.getloadavg()[0]:.1f}]"
    )
    for micros, name in costliest_imports():
        print(f"  {micros / 1e6:.3f} s  {name.strip()}")
