"""The member check's error rates on simulated ensembles (ensemble.simulate): how often it flags a member of a
clean ensemble (false alarms), and how often it flags each kind of bad member (and nothing else), on splits
whose labels are distributed alike and on splits whose labels are not.

    python benchmarks/bench_check.py [--clean 200] [--bad 40] [--seed 0] [--no-labels] [--quick]
        [--only clean|bad] [--shifts both|without|with] [--kinds leaky ...]

Clean ensembles: 3 to 7 members of random quality (noise 0.3 to 2.0, VA bias, temporally smooth noise in
half of them), 8 to 60 videos of 150 to 600 frames, the test split up to 30 % harder for every member. With
shifts, besides: each member of a random calibration (``ensemble.simulate.CALIBRATIONS``: plain, sharp, flat,
eager, shy; the same on both splits) and the test labels distributed otherwise (EXPR class shares drawn
for each split, AU rates and VA offsets moved by up to 0.3: ``ensemble.simulate.random_prevalences``). Bad:
the same with one member of each kind of ``ensemble.simulate.BAD_MEMBERS`` added (``noise`` must not be
flagged), 12 to 60 videos. ``--no-labels`` checks without the validation labels (members' sensitivities
measured against their consensus); ``--quick`` runs a quarter of the ensembles.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ensemble.align import align
from ensemble.check import check_members
from ensemble.evaluate import truths_for
from ensemble.simulate import BAD_MEMBERS, CALIBRATIONS, MemberSpec, bad_member, random_prevalences, simulate_splits


def random_ensemble(rng: np.random.Generator, seed: int, min_videos: int = 8, shifts: bool = False):
    """(fit labels, fit tables, apply labels, apply tables) of a clean ensemble of random shape; with
    ``shifts``, members of random calibration and test labels distributed otherwise (drawn after the rest,
    so that the ensembles without shifts stay those of earlier runs)."""
    specs = [
        MemberSpec(float(rng.uniform(0.3, 2.0)), float(rng.uniform(-0.2, 0.2)), float(rng.choice([0, 0, 2, 5])))
        for _ in range(int(rng.integers(3, 8)))
    ]
    videos, frames = int(rng.integers(min_videos, 61)), int(rng.choice([150, 300, 600]))
    harder = float(rng.uniform(1.0, 1.3))
    prevalences = None
    if shifts:
        kinds = rng.choice(list(CALIBRATIONS), size=len(specs))
        specs = [MemberSpec(s.noise, s.bias, s.temporal, *CALIBRATIONS[k]) for s, k in zip(specs, kinds)]
        prevalences = random_prevalences(rng)
    fit_labels, fit_tables, apply_labels, _ = simulate_splits(videos, frames, specs, seed, prevalences=prevalences)
    worse = [MemberSpec(s.noise * harder, s.bias, s.temporal, s.signal, s.offset) for s in specs]
    _, _, _, apply_tables = simulate_splits(videos, frames, worse, seed, prevalences=prevalences)
    return fit_labels, fit_tables, apply_labels, apply_tables


def flagged(fit_labels, fit_tables, apply_tables, labels: bool = True) -> list[str]:
    val, test = align(fit_tables), align(apply_tables)
    truths = truths_for(val.keys, fit_labels, val.edition) if labels else None
    return [r.name for r in check_members(val, test, truths) if r.flags]


def clean_rate(n: int, seed: int, shifts: bool, labels: bool) -> None:
    start, alarms, members = time.perf_counter(), 0, 0
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        fit_labels, fit_tables, _, apply_tables = random_ensemble(rng, seed + i, shifts=shifts)
        names = flagged(fit_labels, fit_tables, apply_tables, labels)
        alarms, members = alarms + len(names), members + len(fit_tables)
        if names:
            print(f"  false alarm in clean ensemble {i}: {names}")
    print(
        f"clean{' (shifts)' if shifts else ''}: {alarms} member(s) flagged of {members} in {n} ensembles "
        f"(false-alarm rate {alarms / members:.4f} per member); {time.perf_counter() - start:.0f} s"
    )


def bad_rates(n: int, seed: int, shifts: bool, labels: bool, kinds=BAD_MEMBERS) -> None:
    for kind in kinds:
        hits, collateral, members = 0, 0, 0
        for i in range(n):
            rng = np.random.default_rng(seed + 10_000 + i)
            fit_labels, fit_tables, apply_labels, apply_tables = random_ensemble(rng, seed + 10_000 + i, 12, shifts)
            fit, apply = bad_member(kind, fit_labels, apply_labels, seed=i)
            names = flagged(fit_labels, fit_tables + [fit], apply_tables + [apply], labels)
            hits += kind in names
            collateral += len([name for name in names if name != kind])
            members += len(fit_tables)
        rate = f"flagged in {hits} of {n} ensembles" if kind != "noise" else f"flagged in {hits} of {n} (must be 0)"
        print(
            f"{kind}{' (shifts)' if shifts else ''}: {rate}; clean members flagged beside it: {collateral} of {members}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=int, default=200, help="clean ensembles, with and without shifts each")
    parser.add_argument("--bad", type=int, default=40, help="ensembles per kind of bad member, with and without shifts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-labels", action="store_true", help="check without the validation labels")
    parser.add_argument("--quick", action="store_true", help="a quarter of the ensembles")
    parser.add_argument("--only", choices=["clean", "bad"], help="run one half (to run the halves in parallel)")
    parser.add_argument("--shifts", choices=["both", "without", "with"], default="both", help="which splits")
    parser.add_argument("--kinds", nargs="+", choices=BAD_MEMBERS, default=BAD_MEMBERS, help="bad members to add")
    args = parser.parse_args()
    clean, bad = (args.clean // 4, args.bad // 4) if args.quick else (args.clean, args.bad)
    print(f"validation labels: {'not given' if args.no_labels else 'given'}")
    for shifts in {"both": (False, True), "without": (False,), "with": (True,)}[args.shifts]:
        if args.only != "bad":
            clean_rate(clean, args.seed, shifts, not args.no_labels)
        if args.only != "clean":
            bad_rates(bad, args.seed, shifts, not args.no_labels, args.kinds)
