"""Reading small files the tool or the user wrote (JSON configs, fusions, run files) with one-line errors.

Writing lives in ``ensemble.outputs``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ensemble.errors import DataError, OutputExistsError


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed content of ``path``; a missing, unreadable or malformed file is a one-line ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: {what} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def read_json_object(path: str | Path, what: str = "JSON file") -> dict:
    """``read_json`` for files holding one JSON object."""
    doc = read_json(path, what)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: {what} must hold a JSON object, got {type(doc).__name__}")
    return doc


# Being replaced by ensemble.outputs (issue 15): the commands not converted yet still use these.


def check_output(path: Path, force: bool) -> None:
    """Refuse to replace an existing output unless ``force``."""
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: output exists; pass --force to overwrite it")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
