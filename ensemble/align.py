"""Align several members' prediction tables into one members x frames x outputs array."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ensemble.contract import KEY, PredictionTable, TableMeta, check_label_set, output_columns
from ensemble.errors import ContractError
from ensemble.tasks import POLICIES, TASKS, Edition, get_edition


@dataclass
class Aligned:
    """Members' outputs on common frames: ``values[m, i, j]`` is member m, frame ``keys.iloc[i]``, column j."""

    keys: pd.DataFrame
    values: np.ndarray
    columns: list[str]
    members: list[str]
    tasks: tuple[str, ...]
    edition: Edition

    def task_values(self, task: str) -> np.ndarray:
        """(members, frames, outputs) slice of ``task``'s columns."""
        return self.values[:, :, self.slices[task]]

    @property
    def slices(self) -> dict[str, slice]:
        """Each task's columns among ``columns``."""
        return self.edition.task_slices(self.tasks)

    def take(self, rows: np.ndarray) -> Aligned:
        """The stack on a subset of frames (whole videos keep their order and contiguity)."""
        keys = self.keys.iloc[rows].reset_index(drop=True)
        return Aligned(keys, self.values[:, rows], self.columns, self.members, self.tasks, self.edition)

    def video_codes(self) -> np.ndarray:
        """An integer per frame naming its video, for grouping and for windows within a video."""
        return pd.factorize(self.keys["video"])[0]

    def table(self, outputs: np.ndarray, member: str, split: str, extra: dict) -> PredictionTable:
        """A contract table of (frames, columns) ``outputs`` computed from the stack (a fusion, a vote)."""
        data = pd.concat([self.keys.reset_index(drop=True), pd.DataFrame(outputs, columns=self.columns)], axis=1)
        return PredictionTable(data, TableMeta.of(self.tasks, self.edition, member=member, split=split, extra=extra))


def common_tasks(tables: list[PredictionTable]) -> tuple[str, ...]:
    return tuple(t for t in TASKS if all(t in tab.meta.tasks for tab in tables))


def _member_names(tables: list[PredictionTable]) -> list[str]:
    names: list[str] = []
    for i, tab in enumerate(tables):
        name = tab.meta.member or f"member{i + 1}"
        names.append(name if name not in names else f"{name}#{i + 1}")
    return names


def _same_keys(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two tables cover the same frames in the same order (then their arrays need no merge)."""
    return (
        len(a) == len(b)
        and np.array_equal(a["frame"].to_numpy(), b["frame"].to_numpy())
        and bool((a["video"].array == b["video"].array).all())  # Arrow strings compare without Python objects
    )


def _coverage_error(ref: str, other: str, a: pd.DataFrame, b: pd.DataFrame) -> ContractError:
    merged = a[KEY].merge(b[KEY], on=KEY, how="outer", indicator=True)
    only_a, only_b = merged[merged["_merge"] == "left_only"], merged[merged["_merge"] == "right_only"]
    first = (only_a if len(only_a) else only_b).iloc[0]
    return ContractError(
        f"members cover different frames: {len(only_a)} frame(s) only in {ref!r}, {len(only_b)} only in "
        f"{other!r}, first at video {first['video']!r} frame {first['frame']}; "
        "pass --align intersect to fuse the common frames"
    )


def _common_keys(tables: list[PredictionTable]) -> pd.DataFrame:
    index = pd.MultiIndex.from_frame(tables[0].data[KEY])
    for tab in tables[1:]:
        index = index.intersection(pd.MultiIndex.from_frame(tab.data[KEY]))
    if len(index) == 0:
        raise ContractError("members share no frames: nothing to fuse")
    return index.sort_values().to_frame(index=False)


def _positions(tab: PredictionTable, keys: pd.DataFrame) -> np.ndarray:
    return pd.MultiIndex.from_frame(tab.data[KEY]).get_indexer(pd.MultiIndex.from_frame(keys))


def _fill(out: np.ndarray, data: pd.DataFrame, cols: list[str], rows: np.ndarray | None, block: int = 1 << 15) -> None:
    """``out[i, j] = data[cols[j]][rows[i]]`` (all rows when ``rows`` is None), a block of rows at a time: each
    column is copied whole into a small column-major buffer that is transposed into ``out`` while it is in
    cache (pandas' own ``to_numpy`` interleaves columns into a frames-sized column-major array first)."""
    columns = [data[c].to_numpy(np.float32) for c in cols]
    buffer = np.empty((len(cols), block), dtype=np.float32)
    for start in range(0, len(out), block):
        stop = min(start + block, len(out))
        part = slice(start, stop) if rows is None else rows[start:stop]
        for j, column in enumerate(columns):
            buffer[j, : stop - start] = column[part]
        out[start:stop] = buffer[:, : stop - start].T


def align(
    tables: list[PredictionTable],
    *,
    tasks: tuple[str, ...] | None = None,
    policy: str = "strict",
    edition: Edition | None = None,
) -> Aligned:
    """Align ``tables`` on their common frames; frames not covered by every member are an error under
    ``strict`` and dropped under ``intersect``. The stack is scored by ``edition`` (default: the first
    table's), whose label sets every table must share."""
    if not tables:
        raise ContractError("no prediction tables given")
    if policy not in POLICIES:
        raise ContractError(f"unknown alignment policy {policy!r}; choose one of: {', '.join(POLICIES)}")
    names = _member_names(tables)
    edition = edition or get_edition(tables[0].meta.edition)
    tasks = tasks or common_tasks(tables)
    if not tasks:
        raise ContractError(f"members {names} share no task: nothing to fuse")
    for name, tab in zip(names, tables):
        missing = [t for t in tasks if t not in tab.meta.tasks]
        if missing:
            raise ContractError(f"member {name!r} has no {', '.join(missing)} outputs (it predicts {tab.meta.tasks})")
        check_label_set(tab.meta, edition.key, name)
    keys = tables[0].data[KEY]
    same = [True] + [_same_keys(keys, tab.data) for tab in tables[1:]]
    if policy == "strict" and not all(same):
        bad = same.index(False)
        raise _coverage_error(names[0], names[bad], tables[0].data, tables[bad].data)
    if not all(same):
        keys = _common_keys(tables)
    cols = output_columns(tasks, edition)
    values = np.empty((len(tables), len(keys), len(cols)), dtype=np.float32)
    for m, tab in enumerate(tables):
        rows = None if all(same) else _positions(tab, keys)
        _fill(values[m], tab.data, cols, rows)
    return Aligned(keys.reset_index(drop=True), values, cols, names, tasks, edition)
