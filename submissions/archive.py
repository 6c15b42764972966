"""The files of a submission (a folder, a zip or one .txt file), read as streams of text blocks with bounded
memory: declared sizes are checked before anything is read, every read is capped, and a corrupt zip, a bad
CRC or a line without end is a problem to report, not a traceback.

Zip quirks are handled the way an upload form sees them: backslash paths (zips made on Windows) are read as
folders, ``__MACOSX/`` and ``._*`` entries (macOS Finder) are ignored with a warning, two entries with the
same file name are a problem (which one the organisers read is unknown).
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ensemble.errors import SubmissionError

CHUNK = 1 << 22
"""Bytes read at a time."""
MAX_LINE = 1 << 20
"""A line longer than this is no submission row; reading stops there."""
MACOS_JUNK = ("__MACOSX/", "._", ".DS_Store")


class EntryError(Exception):
    """A file of the submission cannot be read to its end (corrupt data, too large, not UTF-8)."""


@dataclass
class Entry:
    """One .txt file of the submission."""

    name: str  # file name without folders, e.g. 'v1.txt'
    where: str  # as named in messages: 'v1.txt' or 'sub/v1.txt' inside a zip
    size: int  # bytes (declared, for a zip entry)
    open: Callable[[], BinaryIO]


@dataclass
class Container:
    """The .txt files of a submission and what reading its container found."""

    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)  # file names not read (declared too large)


def _is_junk(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or "/__MACOSX/" in name or base.startswith("._") or base == ".DS_Store"


def shown(name: str, longest: int = 120) -> str:
    """An entry name as printed: control characters and other unprintable ones escaped (a name from a zip
    never moves the cursor or starts a new line), and at most ``longest`` characters."""
    text = name if name.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)
    return text if len(text) <= longest else text[: longest - 3] + "..."


def listed(names: list[str], more: int = 5) -> str:
    return ", ".join(shown(n) for n in names[:more]) + (" ..." if len(names) > more else "")


def _outside(name: str) -> bool:
    """An entry an unzip would write outside the folder it unpacks into: absolute, a drive, or ``..``."""
    return name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in name.split("/")


def _classify(infos: list[zipfile.ZipInfo]) -> tuple[dict[str, list[zipfile.ZipInfo]], dict[str, list[str]]]:
    """The .txt entries by file name, and the entries worth a warning by reason."""
    by_name: dict[str, list[zipfile.ZipInfo]] = {}
    odd: dict[str, list[str]] = {"backslash": [], "junk": [], "other": [], "nested": [], "outside": []}
    for info in infos:
        name = info.filename.replace("\\", "/")
        if info.is_dir() or name.endswith("/"):
            continue
        if "\\" in info.filename:
            odd["backslash"].append(info.filename)
        if _outside(name):
            odd["outside"].append(name)
        elif _is_junk(name):
            odd["junk"].append(name)
        elif not name.lower().endswith(".txt"):
            odd["other"].append(name)
        else:
            if "/" in name:
                odd["nested"].append(name)
            by_name.setdefault(name.rsplit("/", 1)[-1], []).append(info)
    return by_name, odd


WARNINGS = {
    "backslash": "{n} entry name(s) use backslashes (a zip made on Windows), read as folders",
    "junk": "ignored {n} macOS metadata entr(ies) (__MACOSX/, ._*): {names}",
    "other": "ignored {n} entr(ies) that are not .txt files: {names}",
    "nested": "{n} .txt file(s) inside folders, not at the zip's root: {names}",
}
PROBLEMS = {
    "outside": "{n} entr(ies) with an absolute path or '..', which an unzip writes outside its folder: {names}",
}


def _zip_entries(zf: zipfile.ZipFile, label: str, found: Container, limits: tuple[int, int]) -> None:
    by_name, odd = _classify(zf.infolist())
    for reason, names in odd.items():
        if names:
            said = found.problems if reason in PROBLEMS else found.warnings
            said.append(f"{label}: " + {**WARNINGS, **PROBLEMS}[reason].format(n=len(names), names=listed(names, 3)))
    single = []
    for name, infos in by_name.items():
        if len(infos) > 1:
            found.problems.append(
                f"{label}: {len(infos)} entries named {shown(name)}: {listed([i.filename for i in infos], 3)} "
                "(which one the organisers read is unknown)"
            )
        else:
            single.append(infos[0])
    _check_sizes(label, single, found, limits)
    for info in single:
        if info.filename.replace("\\", "/").rsplit("/", 1)[-1] in found.refused:
            continue
        if info.flag_bits & 0x1:
            found.problems.append(f"{label}: {shown(info.filename)} is encrypted")
            continue
        name = info.filename.replace("\\", "/").rsplit("/", 1)[-1]
        found.entries.append(Entry(name, shown(info.filename), info.file_size, lambda info=info: zf.open(info)))


def _check_sizes(label: str, infos: list[zipfile.ZipInfo], found: Container, limits: tuple[int, int]) -> None:
    """Declared sizes against what a valid submission can hold (a zip bomb declares, or lies, in vain: reads
    are capped at the declared size and at the limit)."""
    entry_limit, total_limit = limits
    for info in infos:
        if info.file_size > entry_limit:
            found.refused.add(info.filename.replace("\\", "/").rsplit("/", 1)[-1])
            found.problems.append(
                f"{label}: {shown(info.filename)} declares {info.file_size:,} bytes uncompressed, more than a valid "
                f"submission file can hold ({entry_limit:,}); not read (a zip bomb?)"
            )
    total = sum(i.file_size for i in infos if i.file_size <= entry_limit)
    if total > total_limit:
        found.problems.append(
            f"{label}: its files declare {total:,} bytes uncompressed, more than a valid submission can hold "
            f"({total_limit:,}); not read (a zip bomb?)"
        )
        found.refused.update(i.filename.replace("\\", "/").rsplit("/", 1)[-1] for i in infos)


def _folder_entries(folder: Path, found: Container) -> None:
    inner = folder / "predictions"
    folder = inner if inner.is_dir() and not any(folder.glob("*.txt")) else folder
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    junk = [p.name for p in paths if _is_junk(p.name)]
    if junk:
        found.warnings.append(f"{folder}: ignored {len(junk)} macOS metadata file(s) (._*): {listed(junk, 3)}")
    for path in paths:
        if path.suffix.lower() == ".txt" and not _is_junk(path.name):
            found.entries.append(Entry(path.name, path.name, path.stat().st_size, lambda p=path: open(p, "rb")))


@contextlib.contextmanager
def open_submission(path: str | Path, entry_limit: int, total_limit: int) -> Iterator[Container]:
    """The .txt files of the submission at ``path`` (a folder, a zip or a single .txt file)."""
    path = Path(path)
    found = Container()
    if path.is_dir():
        _folder_entries(path, found)
        yield found
    elif path.is_file() and path.suffix.lower() == ".txt":
        found.entries.append(Entry(path.name, path.name, path.stat().st_size, lambda: open(path, "rb")))
        yield found
    elif path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            found.problems.append(f"{path.name}: not a readable zip file ({exc})")
            yield found
            return
        with zf:
            _zip_entries(zf, path.name, found, (entry_limit, total_limit))
            yield found
    else:
        raise SubmissionError(f"{path}: not a submission folder or zip file (nothing there; a .txt file is taken too)")


def byte_blocks(entry: Entry, limit: int) -> Iterator[bytes]:
    """The entry's bytes as blocks of whole lines (no trailing newline), at most ``limit`` bytes read;
    unreadable data raises ``EntryError`` with a one-line reason."""
    tail, total = b"", 0
    try:
        with entry.open() as stream:
            while chunk := stream.read(CHUNK):
                total += len(chunk)
                if total > limit:
                    raise EntryError(f"larger than a valid submission file can be ({limit:,} bytes); stopped reading")
                data = tail + chunk
                cut = data.rfind(b"\n")
                if cut >= 0:
                    yield data[:cut]
                tail = data[cut + 1 :]
                if len(tail) > MAX_LINE:
                    raise EntryError(f"a line longer than {MAX_LINE:,} bytes; stopped reading")
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise EntryError(f"corrupt data ({' '.join(str(exc).split())})") from None
    if tail:
        yield tail
