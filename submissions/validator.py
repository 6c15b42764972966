"""Check a submission (ours or anyone's) against a track's format and the frame source the organisers gave.

Every problem is listed with its file, line and count: missing, extra or duplicated files, a wrong header, a
UTF-8 byte-order mark, blank lines (a line-based reader shifts every later frame), rows out of the frame
source's order, integers written as decimals, out-of-range values, too few or too many rows. Files are read
as streams of blocks, so memory stays bounded on a million rows and on a zip bomb; a block that passes the
fast whole-block checks is not looked at line by line.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ensemble.frames import FrameSource
from ensemble.tasks import Edition
from submissions.archive import Entry, EntryError, byte_blocks, listed, open_submission
from submissions.formats import PREDICTIONS, TrackFormat, check_source, get_format

DECIMAL_INT = re.compile(r"[-+]?\d+\.0*")
FIELD_BYTES = 32
"""Most bytes a value may take, for the size bounds of a valid file."""
COMMA, NEWLINE = ord(","), ord("\n")
BOM = b"\xef\xbb\xbf"


@dataclass
class ValidationReport:
    """Problems (the organisers would reject or misread the file) and warnings (they are ignored or harmless)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _top(kind: str, fmt: TrackFormat) -> int:
    """How many one-digit values a field of ``kind`` takes: the classes, or 0 and 1 for an AU."""
    return len(fmt.edition.expr_classes) if kind == "class" else 2


def _key_blob(keys: list[str]) -> tuple[bytes, np.ndarray]:
    """The image names as one UTF-8 string and the byte offset where each starts (and the end)."""
    blob = "".join(keys).encode("utf-8")
    lengths = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    if len(blob) != int(lengths.sum()):  # non-ASCII names: count bytes, not characters
        lengths = np.fromiter((len(k.encode("utf-8")) for k in keys), dtype=np.int64, count=len(keys))
    return blob, np.r_[0, np.cumsum(lengths)]


class FileCheck:
    """The running checks of one file: its header, its rows block by block, and a tally of broken rules.

    A block first gets whole-block checks on its bytes (fields per line, image names, one-digit classes and
    bits, floats in range); only a block that fails them is read line by line to name the rule and the line.
    """

    def __init__(self, where: str, fmt: TrackFormat, keys: list[str] | None, rows: int):
        self.where, self.fmt, self.keys, self.expected = where, fmt, keys, rows
        digits = [j for j, k in enumerate(fmt.kinds) if k != "float"]  # one contiguous run in every layout
        keyed = int(keys is not None)
        self.digits = slice(digits[0] + keyed, digits[-1] + 1 + keyed) if digits else None
        self.tops = np.array([_top(fmt.kinds[j], fmt) for j in digits], dtype=np.uint8)
        self.floats = [j for j, k in enumerate(fmt.kinds) if k == "float"]
        if keys is not None:
            self.key_blob, self.key_offsets = _key_blob(keys)
        self.rules: dict[str, list] = {}  # rule -> [count, first line, detail]
        self.head: list[str] = []
        self.row, self.line, self.crlf = 0, 1, 0

    def note(self, rule: str, line: int, detail: str = "") -> None:
        tally = self.rules.setdefault(rule, [0, line, detail])
        tally[0] += 1

    def header(self, raw: bytes) -> None:
        if raw.startswith(BOM):
            self.head.append(
                f"{self.where}: starts with a UTF-8 byte-order mark (BOM, bytes EF BB BF): a reader sees "
                f"'\\ufeff{raw[3:19].decode('utf-8', 'replace')}...' as the first column name; save the file "
                "without BOM"
            )
            raw = raw[3:]
        self.crlf += raw.endswith(b"\r")
        text = raw.removesuffix(b"\r").decode("utf-8", "replace")
        if text != self.fmt.header:
            self.head.append(f"{self.where}: wrong header on line 1: expected {self.fmt.header!r}, got {text[:80]!r}")

    def block(self, raw: bytes) -> None:
        if b"\r" in raw:
            self.crlf += raw.count(b"\r\n") + raw.endswith(b"\r")
            raw = raw.replace(b"\r\n", b"\n").removesuffix(b"\r")
        n = raw.count(b"\n") + 1
        if self._fast(raw, n):
            self.row += n
            self.line += n
        else:
            self._slow(raw.split(b"\n"))

    # whole-block checks

    def _fast(self, raw: bytes, n: int) -> bool:
        """True when every line of the block is a valid row in its place."""
        limit = len(self.keys) if self.keys is not None else self.expected
        if self.row + n > limit:
            return False
        keyed = self.keys is not None
        per_line = self.fmt.width + keyed  # fields per line
        arr = np.frombuffer(raw, dtype=np.uint8)
        seps = np.flatnonzero((arr == COMMA) | (arr == NEWLINE))
        if len(seps) != n * per_line - 1:
            return False
        newline = arr[seps] == NEWLINE
        if int(newline.sum()) != n - 1 or not newline[per_line - 1 :: per_line].all():
            return False
        starts = np.r_[0, seps + 1].reshape(n, per_line)
        ends = np.r_[seps, len(arr)].reshape(n, per_line)
        if keyed and not self._keys_match(arr, starts[:, 0], ends[:, 0]):
            return False
        return self._digits_ok(arr, starts, ends) and self._floats_ok(raw, n)

    def _keys_match(self, arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
        """The block's image names are the source's, byte for byte, in order."""
        offsets = self.key_offsets[self.row : self.row + len(starts) + 1]
        lengths = ends - starts
        if not np.array_equal(lengths, np.diff(offsets)):
            return False
        index = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(int(lengths.sum()))
        return arr[index].tobytes() == self.key_blob[offsets[0] : offsets[-1]]

    def _digits_ok(self, arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> bool:
        """Class indices and AU bits are one allowed digit each."""
        if self.digits is None:
            return True
        first = starts[:, self.digits]
        if not (ends[:, self.digits] - first == 1).all():
            return False
        return bool((arr[first] - ord("0") < self.tops).all())  # bytes below '0' wrap around to large values

    def _floats_ok(self, raw: bytes, n: int) -> bool:
        """Every float parses (pandas' C reader: no quotes, an empty field is NaN) and lies in [-1, 1]."""
        if not self.floats:
            return True
        import pandas as pd

        keyed = int(self.keys is not None)
        columns = [j + keyed for j in self.floats]
        try:
            x = pd.read_csv(
                io.BytesIO(raw),
                header=None,
                names=range(self.fmt.width + keyed),
                usecols=columns,
                dtype=dict.fromkeys(columns, np.float64),
                quoting=csv.QUOTE_NONE,
                skip_blank_lines=False,
                engine="c",
            ).to_numpy()
        except (ValueError, pd.errors.ParserError):
            return False
        return x.shape == (n, len(columns)) and bool((np.abs(x) <= 1).all())

    # line-by-line checks

    def _slow(self, lines: list[bytes]) -> None:
        """Line-by-line checks of a block that failed the whole-block ones."""
        for raw in lines:
            self.line += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.note("bytes that are not UTF-8 text", self.line)
                text = raw.decode("utf-8", "replace")
            if not text.strip():
                self.note("blank line (a line-based reader shifts every later row)", self.line)
                continue
            values = text.split(",")
            if self.keys is not None:
                if self.row >= len(self.keys):
                    self.note("rows after the frame source's last image", self.line, f": {text[:60]!r}")
                    self.row += 1
                    continue
                self._key(values.pop(0))
            self._values(values)
            self.row += 1

    def _key(self, key: str) -> None:
        if key != self.keys[self.row]:
            detail = f": {key[:60]!r}, expected {self.keys[self.row]!r}"
            self.note("image names out of the frame source's order", self.line, detail)

    def _values(self, values: list[str]) -> None:
        if len(values) != self.fmt.width:
            self.note(f"expected {self.fmt.width} value(s) per line", self.line, f": found {len(values)}")
            return
        for kind, value in zip(self.fmt.kinds, values):
            rule = value_rule(kind, value.strip(), self.fmt.edition)
            if rule:
                self.note(rule, self.line, f": {value[:20]!r}")

    def finish(self) -> list[str]:
        problems = list(self.head)
        for rule, (count, line, detail) in self.rules.items():
            problems.append(f"{self.where}: {rule}: {count:,} line(s), first line {line}{detail}")
        if self.keys is not None and self.row < len(self.keys):
            problems.append(
                f"{self.where}: {len(self.keys) - self.row:,} image(s) of the frame source missing at the end: "
                f"{self.row:,} row(s) for {len(self.keys):,} listed; first missing {self.keys[self.row]!r}"
            )
        if self.keys is None and self.row != self.expected:
            problems.append(
                f"{self.where}: wrong line count: {self.row:,} frame line(s), the video has {self.expected:,}"
            )
        return problems


def value_rule(kind: str, value: str, edition: Edition) -> str | None:
    """The rule ``value`` breaks as a value of ``kind`` (``class``, ``bit``, ``float``), or None."""
    if kind == "float":
        try:
            x = float(value)
        except ValueError:
            return "values that are not numbers"
        if not math.isfinite(x):
            return "values that are not numbers"
        ok = abs(x) <= 1 or (edition.sentinel_fill and x == -5)
        return None if ok else "values outside [-1, 1]" + (" (or -5 for no face)" if edition.sentinel_fill else "")
    allowed = {str(i) for i in range(len(edition.expr_classes) if kind == "class" else 2)}
    if value in allowed or (edition.sentinel_fill and value == "-1"):
        return None
    if DECIMAL_INT.fullmatch(value):
        return "integers written as decimals (like '3.0'; write '3')"
    if kind == "class":
        return f"class indices outside 0..{len(edition.expr_classes) - 1}"
    return "AU values other than 0/1"


def check_file(entry: Entry, fmt: TrackFormat, keys: list[str] | None, rows: int, limit: int) -> tuple[list, int]:
    """Problems of one file and its CRLF line count."""
    check = FileCheck(entry.where, fmt, keys, rows)
    first = True
    try:
        for raw in byte_blocks(entry, limit):
            if first:
                head, newline, raw = raw.partition(b"\n")
                check.header(head)
                first = False
                if not newline:
                    continue
            check.block(raw)
            if check.line > 2 * rows + 1000:
                check.note("far more lines than the frame source lists; stopped reading at line", check.line)
                break
    except EntryError as exc:
        return [f"{entry.where}: {exc}"], 0
    if first:
        return [f"{entry.where}: empty file"], 0
    return check.finish(), check.crlf


def _limits(fmt: TrackFormat, source: FrameSource) -> tuple[int, int]:
    """Bytes a valid file of the largest video and a valid submission can hold, with room to spare."""
    row = fmt.width * FIELD_BYTES + 2
    if fmt.keyed:
        longest = max(map(len, source.images)) if source.images else 0
        row += max(longest, max(len(v.encode()) for v in source.videos) + 24) + 1
        total = len(fmt.header) + len(source) * row + 65536
        return total, total
    counts = source.counts().values()
    per_file = len(fmt.header) + max(counts) * row + 65536
    return per_file, per_file + sum(counts) * row + 65536 * len(source.videos)


def _check_per_video(found, fmt: TrackFormat, source: FrameSource, report: ValidationReport, limit: int) -> None:
    entries = {e.name: e for e in found.entries}
    counts = source.counts()
    expected = {fmt.file_name(v): v for v in source.videos}
    missing = [n for n in expected if n not in entries and n not in found.refused]
    extra = sorted(n for n in entries if n not in expected)
    if missing:
        report.problems.append(f"missing videos: {len(missing)} ({listed(missing)})")
    if extra:
        report.problems.append(f"extra videos: {len(extra)} ({listed(extra)})")
    for name, video in expected.items():
        if name in entries:
            problems, crlf = check_file(entries[name], fmt, None, counts[video], limit)
            report.problems += problems
            report.rows += counts[video]
            report.files += 1
            _crlf_warning(report, entries[name], crlf)


def _check_one_file(found, fmt: TrackFormat, source: FrameSource, report: ValidationReport, limit: int) -> None:
    if not found.entries:
        if found.refused:
            return
        report.problems.append(f"no .txt file with the {fmt.track} predictions (expected one, like {PREDICTIONS})")
        return
    entry = found.entries[0]
    if len(found.entries) > 1:
        names = sorted(e.name for e in found.entries)
        report.problems.append(f"{len(names)} .txt files, the {fmt.layout} layout has one: {listed(names)}")
        named = [e for e in found.entries if e.name == PREDICTIONS]
        if not named:
            return
        entry = named[0]
    problems, crlf = check_file(entry, fmt, source.image_names(), len(source), limit)
    report.problems += problems
    report.rows, report.files = len(source), 1
    _crlf_warning(report, entry, crlf)


def _crlf_warning(report: ValidationReport, entry: Entry, crlf: int) -> None:
    if crlf:
        report.warnings.append(f"{entry.where}: {crlf:,} line(s) end with CRLF (Windows line ends)")


def validate_submission(
    path: str | Path, track: TrackFormat | str, frames: FrameSource, edition: Edition | int | str | None = None
) -> ValidationReport:
    """Every problem of the submission at ``path`` (a folder, a zip or one .txt) for ``track`` against the
    frame source ``frames``; ``report.ok`` when there is none."""
    fmt = track if isinstance(track, TrackFormat) else get_format(track, edition)
    check_source(fmt, frames)
    per_file, total = _limits(fmt, frames)
    report = ValidationReport()
    with open_submission(path, per_file, total) as found:
        report.problems += found.problems
        report.warnings += found.warnings
        (_check_one_file if fmt.keyed else _check_per_video)(found, fmt, frames, report, per_file)
    return report
