"""Reading small files the tool or the user wrote (JSON configs, fusions, run files) with one-line errors.

Writing lives in ``ensemble.outputs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ensemble.errors import DataError


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed content of ``path``; a missing, unreadable or malformed file is a one-line ``DataError``."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a {what}")
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
