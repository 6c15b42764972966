"""The member check's error rates on simulated ensembles (ensemble.simulate): how often it flags a member of a
clean ensemble (false alarms), and how often it flags each kind of bad member (and nothing else).

    python benchmarks/bench_check.py [--clean 200] [--bad 40] [--seed 0]

Clean ensembles: 3 to 7 members of random quality (noise 0.3 to 2.0, VA bias, temporally smooth noise in
half of them), 8 to 60 videos of 150 to 600 frames, the test split up to 30 % harder for every member. Bad:
the same with one member of each kind of ``ensemble.simulate.BAD_MEMBERS`` added (``noise`` must not be
flagged), 12 to 60 videos.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ensemble.align import align
from ensemble.check import check_members
from ensemble.evaluate import truths_for
from ensemble.simulate import BAD_MEMBERS, MemberSpec, bad_member, simulate_splits


def random_ensemble(rng: np.random.Generator, seed: int, min_videos: int = 8):
    """(fit labels, fit tables, apply labels, apply tables) of a clean ensemble of random shape."""
    specs = [
        MemberSpec(float(rng.uniform(0.3, 2.0)), float(rng.uniform(-0.2, 0.2)), float(rng.choice([0, 0, 2, 5])))
        for _ in range(int(rng.integers(3, 8)))
    ]
    videos, frames = int(rng.integers(min_videos, 61)), int(rng.choice([150, 300, 600]))
    fit_labels, fit_tables, apply_labels, _ = simulate_splits(videos, frames, specs, seed=seed)
    harder = float(rng.uniform(1.0, 1.3))
    worse = [MemberSpec(s.noise * harder, s.bias, s.temporal) for s in specs]
    _, _, _, apply_tables = simulate_splits(videos, frames, worse, seed=seed)
    return fit_labels, fit_tables, apply_labels, apply_tables


def flagged(fit_labels, fit_tables, apply_tables) -> list[str]:
    val, test = align(fit_tables), align(apply_tables)
    return [r.name for r in check_members(val, test, truths_for(val.keys, fit_labels, val.edition)) if r.flags]


def clean_rate(n: int, seed: int) -> None:
    start, alarms, members = time.perf_counter(), 0, 0
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        fit_labels, fit_tables, _, apply_tables = random_ensemble(rng, seed + i)
        names = flagged(fit_labels, fit_tables, apply_tables)
        alarms, members = alarms + len(names), members + len(fit_tables)
        if names:
            print(f"  false alarm in clean ensemble {i}: {names}")
    print(
        f"clean: {alarms} member(s) flagged of {members} in {n} ensembles "
        f"(false-alarm rate {alarms / members:.4f} per member); {time.perf_counter() - start:.0f} s"
    )


def bad_rates(n: int, seed: int) -> None:
    for kind in BAD_MEMBERS:
        hits, collateral, members = 0, 0, 0
        for i in range(n):
            rng = np.random.default_rng(seed + 10_000 + i)
            fit_labels, fit_tables, apply_labels, apply_tables = random_ensemble(rng, seed + 10_000 + i, 12)
            fit, apply = bad_member(kind, fit_labels, apply_labels, seed=i)
            names = flagged(fit_labels, fit_tables + [fit], apply_tables + [apply])
            hits += kind in names
            collateral += len([name for name in names if name != kind])
            members += len(fit_tables)
        rate = f"flagged in {hits} of {n} ensembles" if kind != "noise" else f"flagged in {hits} of {n} (must be 0)"
        print(f"{kind}: {rate}; clean members flagged beside it: {collateral} of {members}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=int, default=200, help="clean ensembles")
    parser.add_argument("--bad", type=int, default=40, help="ensembles per kind of bad member")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clean_rate(args.clean, args.seed)
    bad_rates(args.bad, args.seed)
