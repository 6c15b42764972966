"""Fusion speed: vote and average on 5 members x 1,000,000 frames vs reading the tables and vs a plain
per-video pandas loop; the tuned average with post-processing (smoothing, thresholds) fitted on 5 members x
400,000 validation frames and applied to as many test frames, with the member check beside it; LightGBM
stacker fit time on 5 members x 400,000 frames per task.

    python benchmarks/bench_fusion.py [--frames 1000000] [--post-frames 400000] [--stack-frames 400000]

Targets: align + vote <= 1.5x and align + average <= 1.0x the read time, >= 20x faster than the loop (issues 6
and 20); tuned average with post-processing <= 60 s at 400,000 frames, the member check <= 10 % of that fuse
(issue 20); stacker <= 3 minutes per task (issue 6). The machine is shared: each line ends with the load
average (1 minute) when it was measured.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ensemble.align import align
from ensemble.check import check_members
from ensemble.contract import read_table, write_table
from ensemble.evaluate import truths_for
from ensemble.fusion import create_fuser
from ensemble.pipeline import fit_fusion, score_row
from ensemble.simulate import MemberSpec, simulate_labels, simulate_member

DATA = Path(__file__).parent / "_data"
SPECS = [MemberSpec(0.8 + 0.2 * i, 0.05 * (i - 2)) for i in range(5)]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def cpu_timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process): on a shared machine the CPU time is what the
    work costs, the wall time what it took beside the others' work."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start, time.process_time() - cpu


def load() -> str:
    return f"[load {os.getloadavg()[0]:.1f}]"


def write_members(frames: int, videos: int = 200, split: str = "val") -> tuple[dict, list[Path]]:
    labels = simulate_labels(videos, frames // videos, seed=0 if split == "val" else 1)
    paths = [DATA / f"member{i}_{frames}{'' if split == 'val' else '_test'}.parquet" for i in range(len(SPECS))]
    for i, (spec, path) in enumerate(zip(SPECS, paths)):
        if not path.exists():
            seed = i if split == "val" else 100 + i
            write_table(simulate_member(labels, spec, name=f"member{i}", seed=seed), path)
    return labels, paths


def pandas_loop_average(paths: list[Path]) -> pd.DataFrame:
    """The notebook way: per video, select each member's rows, merge them on frame, average the columns."""
    tables = [pd.read_parquet(p) for p in paths]
    cols = [c for c in tables[0].columns if c not in ("video", "frame")]
    out = []
    for video in tables[0]["video"].unique():
        merged = None
        for i, t in enumerate(tables):
            rows = t[t["video"] == video].rename(columns={c: f"{c}_{i}" for c in cols})
            merged = rows if merged is None else merged.merge(rows.drop(columns="video"), on="frame")
        avg = {c: merged[[f"{c}_{i}" for i in range(len(tables))]].mean(axis=1) for c in cols}
        out.append(pd.DataFrame({"video": video, "frame": merged["frame"], **avg}))
    return pd.concat(out, ignore_index=True)


def bench_fuse(frames: int, loop: bool = True) -> tuple[float, float]:
    _, paths = write_members(frames)
    tables, t_read, c_read = cpu_timed(lambda: [read_table(p) for p in paths])
    stack, t_align, c_align = cpu_timed(align, tables)
    print(
        f"read {len(paths)} tables x {frames:,} frames (validated): {t_read:.2f} s wall, {c_read:.2f} s CPU; "
        f"align: {t_align:.2f} s wall, {c_align:.2f} s CPU {load()}"
    )
    for method, goal in (("vote", 1.5), ("average", 1.0)):
        fuser = create_fuser(method).fit(stack, {})
        _, t, c = cpu_timed(fuser.predict, stack)
        print(
            f"{method}: fuse {t:.2f} s, align + fuse {t + t_align:.2f} s = {(t + t_align) / t_read:.2f}x read time "
            f"(CPU: {(c + c_align) / c_read:.2f}x; goal <= {goal}x) {load()}"
        )
    fuser = create_fuser("average").fit(stack, {})
    _, t_avg = timed(fuser.predict, stack)
    if loop:
        _, t_loop = timed(pandas_loop_average, paths)
        print(f"per-video pandas loop (average, reading included): {t_loop:.1f} s {load()}")
        print(f"speed-up of read + align + average over the loop: {t_loop / (t_read + t_align + t_avg):.0f}x")
    return t_read, c_read


def bench_post(frames: int) -> None:
    """What ``affect-ens fuse --tune-weights --apply ...`` does, step by step, on 5 members x ``frames``."""
    labels, val_paths = write_members(frames)
    _, test_paths = write_members(frames, split="test")
    (val, test), t_read, c_read = cpu_timed(
        lambda: [align([read_table(p) for p in ps]) for ps in (val_paths, test_paths)]
    )
    truths = truths_for(val.keys, labels, val.edition)
    reports, t_check, c_check = cpu_timed(check_members, val, test, truths)
    params = {"tune": True}
    fusion, t_fit, c_fit = cpu_timed(fit_fusion, val, truths, "average", params, smooth=True, thresholds=True)
    _, t_apply, c_apply = cpu_timed(fusion.apply, test)
    wall, cpu = t_read + t_check + t_fit + t_apply, c_read + c_check + c_fit + c_apply
    flags = sum(bool(r.flags) for r in reports)
    print(
        f"tuned average + post-processing on {len(SPECS)} members x {frames:,} frames: fit (weights, out-of-fold "
        f"scores, windows, thresholds) {t_fit:.1f} s wall, {c_fit:.1f} s CPU (goal <= 60 s); apply to "
        f"{len(test.keys):,} test frames {t_apply:.1f} s wall {load()}"
    )
    print(
        f"member check (validation vs test, {flags} flagged): {t_check:.1f} s wall, {c_check:.1f} s CPU = "
        f"{t_check / wall:.1%} (wall) and {c_check / cpu:.1%} (CPU) of the whole fuse: {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU with reading {t_read:.1f} s (goal <= 10 %) {load()}"
    )
    print(f"post-processing {fusion.post.summary()}")


def bench_stack(frames: int, read: tuple[float, float] | None, params: dict) -> None:
    """Each task's stacker fit, with its out-of-fold scores; ``read``: (wall, CPU) seconds of reading the
    tables in ``bench_fuse``, the yardstick of the goal."""
    labels, paths = write_members(frames)
    stack = align([read_table(p) for p in paths])
    truths = truths_for(stack.keys, labels, stack.edition)
    for task in ("va", "expr", "au"):
        sub = stack_for(stack, task)
        fuser, t, c = cpu_timed(create_fuser("stack", **params).fit, sub, {task: truths[task]})
        row = score_row("stack", sub, {task: truths[task]}, fuser.oof_)
        oof = ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k.startswith(task))
        ratio = f" = {t / read[0]:.1f}x the read time (CPU: {c / read[1]:.1f}x; goal <= 10x)" if read else ""
        print(
            f"stack fit {task}: {t:.1f} s wall, {c:.1f} s CPU{ratio} on {len(SPECS)} members x {frames:,} frames, "
            f"stride {fuser.strides_[task]}; out-of-fold {oof} {load()}",
            flush=True,
        )


def stack_for(stack, task):
    from ensemble.align import Aligned

    cols = stack.edition.output_columns(task)
    return Aligned(stack.keys, stack.task_values(task), cols, stack.members, (task,), stack.edition)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--post-frames", type=int, default=400_000)
    parser.add_argument("--stack-frames", type=int, default=400_000)
    parser.add_argument("--no-loop", action="store_true", help="skip the per-video pandas loop")
    parser.add_argument("--stack-param", action="append", default=[], help="NAME=VALUE passed to the stacker")
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    np.random.seed(0)
    read = bench_fuse(args.frames, not args.no_loop) if args.frames else None
    if args.post_frames:
        bench_post(args.post_frames)
    if args.stack_frames:
        params = dict(p.split("=", 1) for p in args.stack_param)
        bench_stack(args.stack_frames, read, {k: float(v) if "." in v else int(v) for k, v in params.items()})
