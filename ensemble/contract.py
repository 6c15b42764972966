"""The prediction-table contract: one table per member per split, rows are frames keyed by (video, frame).

Tables are validated when written and when read; every violation raises one ``ContractError`` whose
message names the file, the rule, a count and the first offending key.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ensemble.errors import AffectEnsError, ContractError, DataError
from ensemble.io import parse_json
from ensemble.outputs import STAMP, atomic_file
from ensemble.tasks import DEFAULT_EDITION, EDITIONS, TASKS, Edition, get_edition, label_set, resolve_edition

KEY = ["video", "frame"]
META_KEY = b"affect_ens"
CONTRACT_VERSION = 1
SUM_TOLERANCE = 0.01
"""Expression rows may sum to 1 +- this (CSV members round their probabilities); they are rescaled on read."""
TABLE_SUFFIXES = (".parquet", ".pq")
SPLIT_SUFFIX = re.compile(r"[_.-](train|training|val|valid|validation|test)$", re.IGNORECASE)


@dataclass
class TableMeta:
    """What travels with a table: which tasks and label set it holds, and where it came from."""

    tasks: tuple[str, ...]
    edition: int | str = DEFAULT_EDITION  # an edition's key ('abaw10'); tables of earlier versions hold a year
    member: str = ""
    split: str = ""
    extra: dict = field(default_factory=dict)  # config, gap-fill record, fused members, ...
    inferred: bool = field(default=False, compare=False)  # no metadata: edition and tasks told from the columns

    def to_json(self) -> str:
        doc = {**asdict(self), "tasks": list(self.tasks), "version": CONTRACT_VERSION, "generator": STAMP}
        doc.pop("inferred")
        return json.dumps(doc)

    @classmethod
    def from_dict(cls, d: dict, source: str = "table") -> TableMeta:
        """Metadata read from a file; anything but a dict with a task list and an edition is an error."""
        try:
            tasks, edition = tuple(d["tasks"]), d["edition"]
            member, split, extra = str(d.get("member", "")), str(d.get("split", "")), dict(d.get("extra", {}))
            if isinstance(edition, bool) or not isinstance(edition, (int, str)):
                raise TypeError(edition)
            if "label_set" in extra:  # another challenge's classes: known again from their names
                edition = labels_edition(extra["label_set"], edition, source)
            get_edition(edition)
        except (KeyError, TypeError, ValueError):
            raise ContractError(
                f"{source}: metadata is not affect-ens table metadata (needs tasks and edition)"
            ) from None
        except ContractError:
            raise  # already names the file (a label set that does not fit its key)
        except AffectEnsError as exc:
            raise ContractError(f"{source}: metadata names {exc}") from None
        if not all(isinstance(t, str) for t in tasks):
            raise ContractError(f"{source}: metadata tasks must be names, got {list(tasks)}")
        return cls(tasks, edition, member, split, extra)

    @classmethod
    def of(cls, tasks: tuple[str, ...], edition: Edition, **fields) -> TableMeta:
        """Metadata for ``edition``; a label set of another challenge travels by its class names."""
        extra = dict(fields.pop("extra", {}))
        if edition.title:
            extra["label_set"] = list(edition.expr_classes)
        return cls(tuple(tasks), edition.key, extra=extra, **fields)


def labels_edition(names, key: int | str, source: str) -> str:
    """The number of the label set ``names`` stored in a table's metadata; it must be the one the table names."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ContractError(f"{source}: metadata label_set must be a list of class names")
    found = label_set(names).key
    if found != key:
        raise ContractError(f"{source}: metadata label_set does not match its edition {key!r}")
    return found


@dataclass
class PredictionTable:
    """Validated rows sorted by (video, frame), with the output columns of ``meta.tasks`` as float32."""

    data: pd.DataFrame
    meta: TableMeta

    @property
    def edition(self) -> Edition:
        return get_edition(self.meta.edition)

    def outputs(self, task: str) -> np.ndarray:
        """(frames, outputs) float32 array of ``task``'s columns."""
        return self.data[self.edition.output_columns(task)].to_numpy(np.float32)


def output_columns(tasks: tuple[str, ...], edition: Edition) -> list[str]:
    return [c for t in tasks for c in edition.output_columns(t)]


def _fail(source: str, rule: str, data: pd.DataFrame, mask: np.ndarray) -> None:
    count = int(mask.sum())
    if count:
        first = int(np.flatnonzero(mask)[0])
        video, frame = data["video"].iloc[first], data["frame"].iloc[first]
        raise ContractError(f"{source}: {rule}: {count} row(s), first at video {video!r} frame {frame}")


def _check_columns(data: pd.DataFrame, expected: list[str], source: str) -> None:
    present = set(data.columns)
    missing = [c for c in expected if c not in present]
    extra = [c for c in data.columns if c not in set(expected)]
    if missing:
        hint = f"; unexpected: {', '.join(map(str, extra))}" if extra else ""
        raise ContractError(f"{source}: missing columns: {len(missing)} ({', '.join(missing)}){hint}")
    if extra:
        raise ContractError(f"{source}: unexpected columns: {len(extra)} ({', '.join(map(str, extra))})")


def _check_dtypes(data: pd.DataFrame, outputs: list[str], source: str) -> None:
    if not (pd.api.types.is_string_dtype(data["video"]) or data["video"].dtype == object):
        raise ContractError(f"{source}: column 'video' must hold strings, got {data['video'].dtype}")
    if not pd.api.types.is_integer_dtype(data["frame"]):
        raise ContractError(f"{source}: column 'frame' must hold integers, got {data['frame'].dtype}")
    for col in outputs:
        if not pd.api.types.is_numeric_dtype(data[col]) or pd.api.types.is_bool_dtype(data[col]):
            raise ContractError(f"{source}: column {col!r} must be numeric, got {data[col].dtype}")


def _floats(data: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Columns as float64 with missing values (NaN, None, pandas NA) as NaN."""
    return data[columns].to_numpy(np.float64, na_value=np.nan)


def _check_keys(data: pd.DataFrame, source: str) -> None:
    _fail(source, "missing video ids", data, data["video"].isna().to_numpy())
    _fail(source, "missing frame numbers", data, data["frame"].isna().to_numpy())
    _fail(source, "empty video ids", data, data["video"].astype(str).str.len().to_numpy() == 0)
    _fail(source, "frame numbers below 1", data, data["frame"].to_numpy(np.int64, na_value=1) < 1)


def _check_values(data: pd.DataFrame, tasks: tuple[str, ...], edition: Edition, source: str) -> None:
    _check_keys(data, source)
    for task in tasks:
        values = _floats(data, edition.output_columns(task))
        _fail(source, f"NaN or infinite {task} values", data, ~np.isfinite(values).all(axis=1))
        low = -1.0 if task == "va" else 0.0
        rule = "values outside [-1, 1]" if task == "va" else "probabilities outside [0, 1]"
        _fail(source, f"{task} {rule}", data, ((values < low) | (values > 1.0)).any(axis=1))
        if task == "expr":
            off = np.abs(values.sum(axis=1) - 1.0) > SUM_TOLERANCE + 1e-9  # the same margin on both sides
            _fail(source, f"expression probabilities do not sum to 1 (+-{SUM_TOLERANCE})", data, off)


def sort_by_key(data: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows sorted by (video, frame); duplicate keys are an error."""
    codes, _ = pd.factorize(data["video"], sort=True)
    frames = data["frame"].to_numpy(np.int64)
    ordered = np.all((np.diff(codes) > 0) | ((np.diff(codes) == 0) & (np.diff(frames) > 0)))
    if not ordered:
        order = np.lexsort((frames, codes))  # no composite key: any int64 frame number sorts without overflow
        data, codes, frames = data.iloc[order].reset_index(drop=True), codes[order], frames[order]
    dup = np.concatenate([[False], (np.diff(codes) == 0) & (np.diff(frames) == 0)])
    _fail(source, "duplicate (video, frame) keys", data, dup)
    return data


def _rescale_expression(data: pd.DataFrame, tasks: tuple[str, ...], edition: Edition) -> None:
    """Expression rows divided by their sum, so every row sums to 1 within float32 precision."""
    if "expr" in tasks:
        cols = edition.output_columns("expr")
        data[cols] = data[cols].div(data[cols].sum(axis=1), axis=0).astype(np.float32)


def validate_table(data: pd.DataFrame, meta: TableMeta, source: str) -> PredictionTable:
    """Check ``data`` against the contract for ``meta``; return it sorted, outputs as float32."""
    edition = get_edition(meta.edition)
    bad = [t for t in meta.tasks if t not in TASKS]
    if bad or not meta.tasks:
        raise ContractError(f"{source}: metadata names unknown tasks {bad or '(none)'}; valid: {TASKS}")
    outputs = output_columns(meta.tasks, edition)
    _check_columns(data, KEY + outputs, source)
    if len(data) == 0:
        raise ContractError(f"{source}: empty table: 0 rows")
    _check_dtypes(data, outputs, source)
    _check_values(data, meta.tasks, edition, source)
    data = data[KEY + outputs].astype({c: np.float32 for c in outputs}).astype({"video": str, "frame": np.int64})
    _rescale_expression(data, meta.tasks, edition)
    return PredictionTable(sort_by_key(data.reset_index(drop=True), source), meta)


def _tasks_present(columns: list[str], edition: Edition) -> tuple[str, ...]:
    return tuple(t for t in TASKS if set(edition.output_columns(t)) & set(columns))


def infer_meta(columns: list[str], source: str, edition: int | str | None = None) -> TableMeta:
    """Tasks and the fitting edition from a table's columns (for CSV without a sidecar): ``edition`` (else the
    default edition) if its label sets fit, else the latest edition that fits.

    When no edition's columns fit exactly, ``edition`` is kept so that validation names the missing or
    unexpected columns.
    """
    for ed in [get_edition(edition or DEFAULT_EDITION), *reversed(EDITIONS.values())]:
        tasks = _tasks_present(columns, ed)
        if tasks and set(output_columns(tasks, ed)) <= set(columns):
            return TableMeta(tasks, ed.key, member=member_name(Path(source)), inferred=True)
    ed = get_edition(edition or DEFAULT_EDITION)
    tasks = _tasks_present(columns, ed)
    if not tasks:
        raise ContractError(
            f"{source}: no task's output columns found (expected expr_<class>, valence, arousal or au<k>)"
        )
    return TableMeta(tasks, ed.key, member=member_name(Path(source)), inferred=True)


def _metadata(raw: bytes | str | None, source: str) -> dict | None:
    if raw is None:
        return None
    return parse_json(raw, source, "table metadata")  # depth-limited like every JSON we read


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict | None]:
    try:
        table = pq.read_table(path)
        data = table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ContractError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    return data, _metadata((table.schema.metadata or {}).get(META_KEY), str(path))


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict | None]:
    with open(path, "rb") as file:  # pandas parses a file of NUL bytes whole, holding all of it in memory
        if b"\0" in file.read(1 << 16):
            raise ContractError(f"{path}: not a readable CSV file (NUL bytes: binary, not text)")
    try:
        data = pd.read_csv(path, dtype={"video": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ContractError(f"{path}: not a readable CSV file ({type(exc).__name__})") from None
    sidecar = path.with_suffix(path.suffix + ".json")
    return data, _metadata(sidecar.read_bytes() if sidecar.is_file() else None, str(sidecar))


def member_name(path: Path) -> str:
    """A member's name from its file: the stem without a trailing split word, so ``m_val.csv`` and
    ``m_test.csv`` are the same member ``m``.

    >>> member_name(Path("preds/resnet18_val.csv"))
    'resnet18'
    """
    return SPLIT_SUFFIX.sub("", path.stem) or path.stem


def read_table(path: str | Path, *, edition: int | str | None = None) -> PredictionTable:
    """Read and validate a Parquet or CSV prediction table.

    ``edition`` is the label set the caller expects; a table written for another label set is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prediction file not found")
    if path.suffix.lower() not in (*TABLE_SUFFIXES, ".csv"):
        raise ContractError(f"{path}: unknown table format {path.suffix!r}; use .parquet or .csv")
    data, raw = (_read_csv if path.suffix.lower() == ".csv" else _read_parquet)(path)
    meta = TableMeta.from_dict(raw, str(path)) if raw else infer_meta(list(data.columns), str(path), edition)
    if edition is not None:
        check_label_set(meta, edition, str(path))
    if not meta.member:
        meta.member = member_name(path)
    return validate_table(data, meta, str(path))


def check_label_set(meta: TableMeta, edition: int | str, source: str, tasks: tuple[str, ...] | None = None) -> None:
    """A table is usable for ``edition`` (a key or a name) when every task it holds (or each of ``tasks``) has
    the same label set there."""
    theirs, ours = get_edition(meta.edition), get_edition(edition)
    for task in [t for t in meta.tasks if tasks is None or t in tasks]:
        if theirs.output_columns(task) != ours.output_columns(task):
            raise ContractError(
                f"{source}: {task} label set of edition {theirs.name} "
                f"({len(theirs.output_columns(task))} outputs) does not match edition {ours.name} "
                f"({len(ours.output_columns(task))} outputs)"
            )


def table_edition(
    given: int | str | None, tables: list[PredictionTable], sources: list[str], tasks: tuple[str, ...] | None = None
) -> tuple[Edition, str]:
    """The edition a command uses on ``tables`` (read from ``sources``) and where it came from: ``given``, else
    the one their metadata names, else the default. Every table's label set (of ``tasks``, default all) must
    fit it: a one-line error otherwise, never a silent choice."""
    found = [(str(src), get_edition(tab.meta.edition)) for src, tab in zip(sources, tables)]
    if given is None and len({ed.key for _, ed in found}) > 1:
        newest = max((ed for _, ed in found), key=lambda ed: ed.number)  # an unfit label set says more
        for src, tab in zip(sources, tables):
            check_label_set(tab.meta, newest.key, str(src), tasks)
    edition, how = resolve_edition(given, [(src, ed.key) for src, ed in found])
    for src, tab in zip(sources, tables):
        check_label_set(tab.meta, edition.key, str(src), tasks)
    named = sorted({ed.name for _, ed in found if ed.key != edition.key})
    if given is not None and named:  # compatible label sets, but the user should know the rules changed
        how += f"; the tables name {', '.join(named)}"
    elif given is None and all(tab.meta.inferred for tab in tables):
        how = "the default" if edition.key == get_edition(DEFAULT_EDITION).key else "the latest that fits"
        how += ": the tables name no edition"
    return edition, how


def check_table_path(path: str | Path) -> Path:
    """A path a table may be written to: tables are written as Parquet (CSV is accepted on input only)."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ContractError(f"{path}: tables are written as Parquet; name the output <name>.parquet")
    return path


def write_table(table: PredictionTable, path: str | Path, *, name: str | None = None) -> Path:
    """Validate and write ``table`` as Parquet with its metadata; the file appears whole or not at all.

    ``name`` is the file named in errors when ``path`` is a temporary stand-in for it."""
    path = Path(path)
    checked = validate_table(table.data, table.meta, name or str(path))
    arrow = pa.Table.from_pandas(checked.data, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), META_KEY: table.meta.to_json()})
    with atomic_file(path) as tmp:
        pq.write_table(arrow, tmp)
    return path
