"""Reading the files the tool parses, bounded: regular files only (a FIFO, device or socket is refused before
it can block), a size cap per kind checked against the declared size before anything is read and again while
reading, JSON nesting limited. Every refusal is a one-line ``DataError`` naming the file.

Writing lives in ``ensemble.outputs``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ensemble.errors import DataError

MiB = 1 << 20
CAPS: dict[str, int] = {
    "annotation file": 64 * MiB,  # an Aff-Wild2 AU file of 100,000 frames is about 3 MiB
    "fusion file": 256 * MiB,  # a stacked fusion holds LightGBM model text for each task
    "JSON file": 16 * MiB,  # run configs, config files, table metadata
    "Keras config": 16 * MiB,  # a Keras model_config / config.json (EfficientNet-B7: under 1 MiB)
    "Keras weights": 2048 * MiB,  # the weights of one Keras model, whole file or zip entry
    "Keras array": 1024 * MiB,  # one weights array, by its declared shape and type
    "face detector model": 64 * MiB,  # OpenCV's res10 SSD .caffemodel is 10.2 MiB, YuNet's .onnx 0.2 MiB
    "face detector config": 1 * MiB,  # the SSD's deploy.prototxt is 28 KiB
}
"""The largest file of each kind the tool reads (stated in the README's Safety section)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a JSON file (a Keras model config nests about 10)."""


def cap_of(what: str) -> int:
    return CAPS.get(what, CAPS["JSON file"])


def too_large(label: object, size: int, cap: int, what: str) -> DataError:
    return DataError(f"{label}: {size:,} bytes, over the {what} cap of {cap:,} bytes; not read")


def read_bounded(path: str | Path, what: str, cap: int | None = None) -> bytes:
    """The bytes of regular file ``path``, at most ``cap`` (default: the cap of ``what``); anything else
    (missing, a folder, a FIFO, device or socket, larger than the cap) is a one-line ``DataError``."""
    path, cap = Path(path), cap_of(what) if cap is None else cap
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: {what} cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        _check_regular(path, os.fstat(fd), cap, what)
        with os.fdopen(fd, "rb", closefd=False) as file:
            raw = file.read(cap + 1)
    finally:
        os.close(fd)
    if len(raw) > cap:
        raise too_large(path, len(raw), cap, what)
    return raw


def _check_regular(path: Path, info: os.stat_result, cap: int, what: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path}: a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file (a pipe, device or socket); a {what} is expected")
    if info.st_size > cap:
        raise too_large(path, info.st_size, cap, what)


def parse_json(raw: bytes, label: object, what: str = "JSON file") -> Any:
    """JSON text (UTF-8, a byte-order mark ignored) nested at most ``MAX_JSON_DEPTH`` deep."""
    try:
        doc = json.loads(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        raise DataError(f"{label}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{label}: {what} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise DataError(f"{label}: {what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    if json_depth(doc) > MAX_JSON_DEPTH:
        raise DataError(f"{label}: {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return doc


def json_depth(doc: Any) -> int:
    """How deep arrays and objects nest in ``doc`` (walked without recursion)."""
    deepest, todo = 0, [(doc, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                todo.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed content of ``path``, read bounded (``CAPS[what]``); a missing, unreadable, oversized or
    malformed file is a one-line ``DataError``."""
    return parse_json(read_bounded(path, what), Path(path), what)


def read_json_object(path: str | Path, what: str = "JSON file") -> dict:
    """``read_json`` for files holding one JSON object."""
    doc = read_json(path, what)
    if not isinstance(doc, dict):
        raise DataError(f"{path}: {what} must hold a JSON object, got {type(doc).__name__}")
    return doc
