"""Every file and folder a command writes goes through this module: the trust rules in one place.

- Names built from data (video ids, member names, class names) become paths only through ``safe_join``.
- ``Outputs`` is what a command writes: each output is locked for the whole command, written to a temporary
  sibling and moved into place when the command succeeds; on any failure nothing it found is changed and
  nothing it made is left behind. ``--force`` replaces only an output this tool made of the same kind (a folder whose
  ``.affect-ens`` marker names the same command and kind and whose files still match the digests it
  recorded, with no training run at any depth; a file carrying the tool's stamp for its kind and not part
  of another output), never a folder holding the command's inputs, the current folder, home or the root; an output path equal to an input or to another output is an error.
- Temporary files and folders are created with the modes ``open`` and ``mkdir`` give, so the user's umask
  decides the permissions, as for any other program.

Library code that writes one file on its own uses ``atomic_file``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ensemble.errors import AffectEnsError, OutputExistsError

MARKER = ".affect-ens"
"""File inside every folder the tool made: a JSON record of the command, the kind and the files written."""
STAMP = "affect-ens"
"""The ``generator`` the tool writes into its JSON, HTML and npz files and its tables' metadata."""
TMP_TAG = ".affect-ens-tmp-"
OLD_TAG = ".affect-ens-old-"


class OutputBusyError(AffectEnsError):
    """Another affect-ens command holds the lock of an output."""


class UnsafePathError(AffectEnsError):
    """A name from data would build a path outside the output folder, or a path breaks a trust rule."""


# --- names from data ---------------------------------------------------------------------------------------


def safe_name(name: object, what: str = "name") -> str:
    """``name`` if it is usable as one path component: not empty, not ``.``/``..``, no ``/``, ``\\``, NUL or
    other control character (so never an absolute path). Anything else is an ``UnsafePathError``.

    >>> safe_name("10-60-1280x720_right", "video id")
    '10-60-1280x720_right'
    """
    text = str(name) if name is not None else ""
    bad = (
        not text
        or text in (".", "..")
        or any(c in text for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in text)
    )
    if bad:
        raise UnsafePathError(f"{what} {text!r} cannot be used as a file name (it must be one plain path component)")
    return text


def safe_join(root: Path, name: object, suffix: str = "", what: str = "name") -> Path:
    """``root / (name + suffix)``, refused unless ``name`` is one plain component that stays inside ``root``."""
    path = Path(root) / (safe_name(name, what) + suffix)
    if resolved(path).parent != resolved(Path(root)):
        raise UnsafePathError(f"{what} {name!r} leads outside {root}")
    return path


# --- ownership ---------------------------------------------------------------------------------------------

MARKER_FORMAT = 2
"""Markers of this format record the command, the kind and a digest of every file written; format 1 markers
(``{"generator": "affect-ens"}``, written before) still count as the tool's, with the older rule."""
MARKER_CAP = 64 << 20
"""Largest marker read (its record names every file of the output)."""
FILE_JSON_CAP = 256 << 20
"""Largest JSON file read to decide whether the tool wrote it."""


def resolved(path: Path) -> Path:
    """``path.resolve()``, with a symlink loop or an unreadable component as one-line ``UnsafePathError``."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError on a symlink loop
        raise UnsafePathError(f"{path}: cannot be resolved ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, RuntimeError) else (exc.strerror or type(exc).__name__)
    return "a symbolic link loop" if "loop" in text.lower() or getattr(exc, "errno", 0) == 40 else text[:200]


def _load_json(path: Path, cap: int) -> object:
    try:
        with open(path, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None
            raw = file.read(cap + 1)
        return None if len(raw) > cap else json.loads(raw.decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return None


def _stamped(path: Path, *, needs: str | None = None, never: tuple[str, ...] = ()) -> bool:
    doc = _load_json(path, FILE_JSON_CAP)
    if not isinstance(doc, dict) or doc.get("generator") != STAMP:
        return False
    return (needs is None or needs in doc) and not any(key in doc for key in never)


def _fusion_is_ours(path: Path) -> bool:
    """A fusion file (``fuse --save-fusion``), never a run's ``config.json`` nor a table's metadata."""
    return _stamped(path, needs="fuser", never=("member",))


def _table_metadata_is_ours(path: Path) -> bool:
    return _stamped(path, needs="version", never=("member", "fuser"))


def _csv_record_is_ours(path: Path) -> bool:
    """The ``<name>.csv.json`` record of a class submission (``submissions.classes``)."""
    return _stamped(path, needs="rows", never=("member", "fuser"))


def _csv_is_ours(path: Path) -> bool:
    """A CSV whose ``<name>.csv.json`` the tool wrote: a class submission's record or a table's metadata."""
    record = path.with_name(path.name + ".json")
    return _csv_record_is_ours(record) or _table_metadata_is_ours(record)


def _head_has(marker: bytes) -> Callable[[Path], bool]:
    def check(path: Path) -> bool:
        with open(path, "rb") as file:
            return marker in file.read(4096)

    return check


def _parquet_is_ours(path: Path) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return b"affect_ens" in (pq.read_schema(path).metadata or {})
    except (pa.ArrowException, OSError):
        return False


def _npz_is_ours(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return "generator.npy" in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _mp4_is_ours(path: Path) -> bool:
    """A video whose container metadata carries ``comment=affect-ens`` (members.face.video.VideoWriter)."""
    import av  # imported here: only replacing a video pays for it

    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment") == STAMP
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return False


OWNER_CHECKS: dict[str, Callable[[Path], bool]] = {
    ".csv.json": _csv_record_is_ours,  # before ".json": the longest ending of the name decides
    ".json": _fusion_is_ours,
    ".html": _head_has(f'<meta name="generator" content="{STAMP}">'.encode()),
    ".parquet": _parquet_is_ours,
    ".pq": _parquet_is_ours,
    ".npz": _npz_is_ours,
    ".csv": _csv_is_ours,
    ".mp4": _mp4_is_ours,
}
"""How to recognise a file output the tool wrote, by the ending of its name (the ending is the file's kind: a
``.json`` output is a fusion, so a run's ``config.json`` is never one; a ``.csv.json`` is a class submission's
record); a module writing a new kind of file adds its check."""


def read_marker(folder: Path) -> dict | None:
    """The marker of a folder the tool made, or None: a marker is a regular file holding a JSON object with the
    tool's stamp (an empty or foreign ``.affect-ens`` makes nothing the tool's)."""
    path = folder / MARKER
    if path.is_symlink():
        return None
    doc = _load_json(path, MARKER_CAP)
    return doc if isinstance(doc, dict) and doc.get("generator") == STAMP else None


def is_ours(path: Path) -> bool:
    """True for a folder holding the tool's marker or a file carrying the tool's stamp."""
    if path.is_dir():
        return read_marker(path) is not None
    name = path.name.lower()
    check = next((check for end, check in OWNER_CHECKS.items() if name.endswith(end)), None)
    return bool(check and path.is_file() and check(path))


CHECKPOINT = "last.pt"
"""A training run's resumable checkpoint (``members.training.runs`` writes it): the one mark of a training run."""


def _walk(folder: Path) -> Iterator[Path]:
    """Every file, link and special file below ``folder`` (links are not followed), sorted, markers included."""
    for top, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            yield Path(top) / name


def _digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + os.readlink(path)
    if not path.is_file():
        return "special"
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def folder_record(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file in ``folder`` except its own marker."""
    return {rel: _digest(path) for path in _walk(folder) if (rel := path.relative_to(folder).as_posix()) != MARKER}


def training_run_in(folder: Path) -> Path | None:
    """The first checkpoint (``CHECKPOINT``) at any depth of ``folder``: hours of training no other command's
    --force may replace; None when there is none."""
    return next((p for p in _walk(folder) if p.name == CHECKPOINT), None)


def holds_training(folder: Path) -> bool:
    """True when ``folder`` is a training run or holds one at any depth."""
    return training_run_in(folder) is not None


def write_marker(
    folder: Path, kind: str, command: str | None = None, record: dict | None = None, extra: dict | None = None
) -> None:
    """Mark ``folder`` as the tool's: which command made it, what kind of output it is and (for an output
    written whole) the digest of every file in it, which ``--force`` checks before replacing it."""
    doc = {**(extra or {}), "generator": STAMP, "format": MARKER_FORMAT, "command": command or current_command()}
    doc["kind"] = kind
    if record is not None:
        doc["files"] = record
    (folder / MARKER).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


_COMMAND = ["python"]


def use_command(name: str | None) -> None:
    """Name the affect-ens command running (the CLI calls this before any command); markers record it."""
    _COMMAND[0] = name or "python"


def current_command() -> str:
    """The affect-ens command running, or ``python`` for library use."""
    return _COMMAND[0]


def _describe(marker: dict) -> str:
    return f"a {marker.get('kind', 'folder')} made by affect-ens {marker.get('command', '')}".rstrip()


def check_replaceable_folder(path: Path, kind: str, command: str) -> None:
    """Refuse (``UnsafePathError``, naming the file) unless ``path`` is an output of ``kind`` made by
    ``command`` whose files are exactly those it wrote: no training run at any depth, no file added or
    changed. A format-1 marker (older version) is accepted for any command, but never over a training run."""
    marker = read_marker(path)
    if marker is None:
        raise UnsafePathError(f"{path}: was not written by affect-ens, so --force will not replace it")
    run = training_run_in(path)
    if run is not None:
        raise UnsafePathError(
            f"{path}: holds a training run ({run.relative_to(path)}), which --force never replaces; "
            "choose another output"
        )
    if marker.get("format", 1) == 1:
        return
    if (marker.get("kind"), marker.get("command")) != (kind, command):
        raise UnsafePathError(
            f"{path}: is {_describe(marker)}; --force replaces only a {kind} made by affect-ens {command}; "
            "choose another output"
        )
    _check_unchanged(path, marker)


def _check_unchanged(path: Path, marker: dict) -> None:
    record = marker.get("files")
    if not isinstance(record, dict):
        raise UnsafePathError(f"{path}: changed since affect-ens wrote it (its record is missing); --force refused")
    for file in _walk(path):
        rel = file.relative_to(path).as_posix()
        if rel == MARKER:
            continue
        if rel not in record:
            raise UnsafePathError(f"{path}: holds {rel!r}, which affect-ens did not write; --force refused")
        if record[rel] != _digest(file):
            raise UnsafePathError(f"{path}: {rel!r} changed since affect-ens wrote it; --force refused")
    missing = next((rel for rel in record if not (path / rel).exists() and not (path / rel).is_symlink()), None)
    if missing is not None:
        raise UnsafePathError(f"{path}: {missing!r} was removed since affect-ens wrote it; --force refused")


def _enclosing_output(path: Path) -> tuple[Path, dict] | None:
    """The nearest folder above ``path`` holding a marker, with the marker."""
    for folder in resolved(path).parents:
        marker = read_marker(folder) if (folder / MARKER).exists() else None
        if marker is not None:
            return folder, marker
    return None


def check_replaceable_file(path: Path) -> None:
    """Refuse unless ``path`` carries the tool's stamp for its kind (suffix) and is not a file another output
    of the tool recorded (a file of a dataset, submission or committee)."""
    if not is_ours(path):
        raise UnsafePathError(f"{path}: was not written by affect-ens, so --force will not replace it")
    found = _enclosing_output(path)
    if found is None:
        return
    folder, marker = found
    rel = resolved(path).relative_to(folder).as_posix()
    if isinstance(marker.get("files"), dict) and rel in marker["files"]:
        raise UnsafePathError(f"{path}: is part of {folder} ({_describe(marker)}); choose another output")


# --- atomic writes -----------------------------------------------------------------------------------------


_TEMP_NAME = re.compile(r"\.([^/]+?)" + re.escape(TMP_TAG) + r"\d+-[0-9a-f]+")


def public_names(text: str) -> str:
    """``text`` with each command temporary's name replaced by the output it becomes (for messages)."""
    return _TEMP_NAME.sub(r"\1", text)


def temp_sibling(path: Path) -> Path:
    """A fresh name beside ``path`` that no other process picks (hidden, tagged, pid and random token)."""
    return path.with_name(f".{path.name}{TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}")


def new_file(path: Path) -> None:
    """Create ``path`` empty, exclusively, with the umask's permissions (mode 0666 & ~umask)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``path``; it replaces ``path`` only if the block succeeds.

    A path that is already a command's temporary (from ``Outputs``) is yielded as it is: the command moves it
    into place, and a temporary of a temporary would be a name no clean-up looks for."""
    path = Path(path)
    if TMP_TAG in path.name:
        yield path
        return
    tmp = temp_sibling(path)
    new_file(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _renameat2(a: Path, b: Path, flags: int) -> bool | None:
    """Linux ``renameat2``: True when done, False when refused (errno set), None where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd = -100
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), flags) == 0


def rename_new(source: Path, target: Path) -> bool:
    """Move ``source`` to ``target`` only if nothing is there (Linux ``RENAME_NOREPLACE``, so two processes
    racing for one name cannot both win); False when ``target`` exists."""
    done = _renameat2(source, target, 1)
    if done is None:  # no renameat2: check, then rename (a directory is never renamed over a non-empty one)
        if target.exists() or target.is_symlink():
            return False
        os.rename(source, target)
        return True
    if not done and ctypes.get_errno() != 17:  # EEXIST is the one refusal expected
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(target))
    return done


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    return bool(_renameat2(a, b, 2))


def replace_folder(new: Path, path: Path) -> None:
    """Put folder ``new`` at ``path``; an old ``path`` is swapped out in one step and then deleted, so a
    killed process leaves either the old folder or the new one (a fallback two-step swap is undone by
    ``recover_folder`` on the next command)."""
    if not path.exists():
        os.replace(new, path)
        return
    if _exchange(new, path):
        _remove(new)  # now the old folder
        return
    old = path.with_name(f".{path.name}{OLD_TAG}{secrets.token_hex(4)}")
    os.replace(path, old)
    os.replace(new, path)
    _remove(old)


def recover_folder(path: Path) -> None:
    """Undo a two-step folder swap that was killed between its steps: put the old folder back."""
    olds = sorted(path.parent.glob(f".{path.name}{OLD_TAG}*"))
    if olds and not path.exists() and is_ours(olds[-1]):
        os.replace(olds[-1], path)
    for stale in path.parent.glob(f".{path.name}{OLD_TAG}*"):
        _remove(stale)


def remove_stale_temps(path: Path) -> None:
    """Temporary siblings of ``path`` left by a killed command (only called with ``path``'s lock held)."""
    for stale in path.parent.glob(f".{path.name}{TMP_TAG}*"):
        _remove(stale)


# --- resumable outputs -------------------------------------------------------------------------------------

PARTIAL_TAG = ".affect-ens-partial"
ITEMS, STAGE, PENDING = ".items", ".stage", ".pending"
"""Inside a work folder: one record per finished item, the items being built, and the entries of each item
being moved into place (written before the first move: what a command killed mid-move left is known)."""


def partial_path(path: Path) -> Path:
    """The work folder of a resumable output: a hidden sibling that outlives a killed command."""
    return path.with_name(f".{path.name}{PARTIAL_TAG}")


class WorkFolder:
    """An output built item by item (a dataset video by video) so that a killed command resumes.

    Each item is built in ``.stage/`` and moved into place when whole: its entries (every entry two levels
    down in its staging folder, ``cropped_aligned/<face folder>``) are listed in ``.pending/<item>.json``,
    moved to the same paths in the work folder, then the item's record ``.items/<item>.json`` is written,
    which makes it done. Several processes may commit items at once; two items claiming one entry is an
    error. ``prepare`` removes what a killed command left half-made (staging folders, entries of pending
    items) and refuses a work folder holding anything else the tool did not write.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def done(self) -> dict[str, dict]:
        """The records of the finished items, by item name."""
        return self._records(ITEMS)

    def done_names(self) -> set[str]:
        """The names of the finished items, from the folder listing alone (a record appears whole: it is
        renamed into place), for waiting on other processes without reading every record."""
        return {file.stem for file in (self.root / ITEMS).glob("*.json")}

    def _records(self, folder: str) -> dict[str, dict]:
        records = {}
        for file in sorted((self.root / folder).glob("*.json")):
            doc = _load_json(file, FILE_JSON_CAP)
            if isinstance(doc, dict) and isinstance(doc.get("entries"), list):
                records[file.stem] = doc
        return records

    def prepare(self, keep: Callable[[str, dict], bool]) -> dict[str, dict]:
        """Remove what a killed command left half-made and the finished items ``keep`` rejects (their source
        changed or is gone); returns the records kept. Called by one process only, before the others start.
        Anything in the work folder that no record names is refused first, and nothing is changed."""
        records = self.done()
        kept = {item: record for item, record in records.items() if keep(item, record)}
        self.check_foreign(records)
        claimed = _named(kept.values())
        for entry, rel in self._present():  # first: a kill from here on leaves every entry still named
            if rel not in claimed:
                _remove(entry)
        for item in records.keys() - kept.keys():
            (self.root / ITEMS / f"{item}.json").unlink()
        _remove(self.root / PENDING)
        _remove(self.root / STAGE)
        self.begin()
        return kept

    def check_foreign(self, done: dict[str, dict] | None = None) -> None:
        """Refuse a work folder holding what the tool did not write: a file beside its marker, or an entry no
        record (finished or pending) names. ``done``: the finished records, when already read."""
        done = self.done() if done is None else done
        ours = _named([*done.values(), *self._records(PENDING).values()])
        for entry, rel in self._present():
            if rel not in ours and TMP_TAG not in entry.name:
                raise UnsafePathError(
                    f"{entry}: in the work folder of a killed run but not written by affect-ens; move it out to "
                    "resume, or delete the work folder to start over"
                )

    def _present(self) -> Iterator[tuple[Path, str]]:
        """What is in the work folder besides its bookkeeping: files beside the marker and the entries two
        levels down, with their relative paths."""
        for path in sorted(self.root.iterdir()):
            if path.name in (MARKER, ITEMS, STAGE, PENDING):
                continue
            for entry in [path] if not path.is_dir() or path.is_symlink() else sorted(path.iterdir()):
                yield entry, entry.relative_to(self.root).as_posix()

    def begin(self) -> None:
        """Start the bookkeeping (kept records stay)."""
        (self.root / ITEMS).mkdir(exist_ok=True)
        (self.root / PENDING).mkdir(exist_ok=True)
        (self.root / STAGE).mkdir()

    def stage(self, item: str) -> Path:
        """A fresh folder to build ``item`` in."""
        folder = self.root / STAGE / f"{safe_name(item, 'item')}-{os.getpid()}-{secrets.token_hex(4)}"
        folder.mkdir()
        return folder

    def commit(self, item: str, staged: Path, record: dict) -> None:
        """Move the entries of ``staged`` into place, then write the item's record: the item is done."""
        entries = sorted(p.relative_to(staged).as_posix() for p in staged.glob("*/*"))
        pending = safe_join(self.root / PENDING, item, ".json", what="item")
        with atomic_file(pending) as tmp:
            tmp.write_text(json.dumps({"entries": entries}))
        for rel in entries:
            (self.root / rel).parent.mkdir(exist_ok=True)
            if not rename_new(staged / rel, self.root / rel):
                raise UnsafePathError(f"{rel}: made by two items ({item!r} and another); rename one of them")
        with atomic_file(safe_join(self.root / ITEMS, item, ".json", what="item")) as tmp:
            tmp.write_text(json.dumps({**record, "entries": entries}, sort_keys=True))
        pending.unlink()
        _remove(staged)

    def tidy(self) -> None:
        """Remove the bookkeeping: what is left is the finished output."""
        _remove(self.root / ITEMS)
        _remove(self.root / PENDING)
        _remove(self.root / STAGE)


def _named(records) -> set[str]:
    """The entries the records name (a crafted record's other values name nothing)."""
    return {entry for record in records for entry in record["entries"] if isinstance(entry, str)}


def _only_ours(work: WorkFolder) -> bool:
    """True when the work folder holds nothing but what the tool wrote (``WorkFolder.check_foreign``)."""
    try:
        work.check_foreign()
    except (UnsafePathError, OSError):
        return False
    return True


# --- locks -------------------------------------------------------------------------------------------------


class OutputLock:
    """An exclusive, non-blocking lock on an output path, held by this process for the whole command.

    The lock file ``.<name>.lock`` beside the output holds the holder's pid (named in the busy message) and
    is deleted while still locked, so no later command sees a stale one.
    """

    def __init__(self, path: Path) -> None:
        from filelock import FileLock  # imported here: only commands that write pay for it

        self.path = path
        self.file = path.with_name(f".{path.name}.lock")
        self._lock = FileLock(self.file, timeout=0, is_singleton=False)

    def acquire(self) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise OutputBusyError(
                f"{self.path}: being written by another affect-ens command ({self._holder()}); "
                "wait for it to finish or choose another output"
            ) from None
        self.file.write_text(f"{os.getpid()}\n")

    def _holder(self) -> str:
        try:
            return f"pid {int(self.file.read_text())}"
        except (OSError, ValueError):
            return "pid unknown"

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.file.unlink()  # while still locked: a waiter that opened this file sees it unlinked and retries
        self._lock.release()


# --- what a command writes ---------------------------------------------------------------------------------


def _same(a: Path, b: Path) -> bool:
    if resolved(a) == resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    return resolved(child).is_relative_to(resolved(folder))


def protected_folders() -> list[Path]:
    """Folders ``--force`` never replaces: the root, home, the current folder (and what holds them)."""
    return [Path("/"), Path.home(), Path.cwd()]


class Outputs:
    """The outputs of one command, declared up front and written all or nothing.

    >>> with Outputs(force=False, inputs=[fused]) as outs:          # doctest: +SKIP
    ...     write_table(table, outs.file(out))
    ...     build_submission(outs.folder(out_dir))

    ``file`` and ``folder`` return temporary paths to write; when the block ends without an error each is
    moved over its output; on an error they are deleted and every output is left as it was.
    ``update_folder`` returns a folder kept and changed in place (a training run, the demo's folder).
    """

    def __init__(
        self, *, force: bool = False, inputs: Iterable[str | Path | None] = (), command: str | None = None
    ) -> None:
        self.force = force
        self.command = command or current_command()
        self.inputs = [Path(p) for p in inputs if p is not None]
        self._locks: list[OutputLock] = []
        self._moves: list[tuple[Path, Path, str | None]] = []  # (temporary, target, folder kind or None)
        self._made: list[Path] = []  # folders this command created (removed again on failure)
        self._fresh: list[tuple[Path, Callable[[Path], bool]]] = []  # new update folders and their keep test
        self._targets: list[Path] = []
        self._partials: list[tuple[Path, Path, str | None]] = []  # (work folder, target, folder kind or None)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None:
                self._commit()
        finally:
            self._finish(failed=kind is not None)

    # declaring outputs

    def file(self, path: str | Path) -> Path:
        """A new file replacing ``path`` when the command succeeds; returns the temporary path to write."""
        path = self._claim(Path(path), None)
        tmp = temp_sibling(path)
        new_file(tmp)
        self._moves.append((tmp, path, None))
        return tmp

    def folder(self, path: str | Path, *, kind: str) -> Path:
        """A new folder of ``kind`` (dataset, submission, committee, faces) replacing ``path`` when the command
        succeeds; returns the temporary folder to fill. Its marker records the command, the kind and, when
        the command succeeds, the digest of every file written."""
        path = self._claim(Path(path), kind)
        tmp = temp_sibling(path)
        tmp.mkdir()
        self._moves.append((tmp, path, kind))
        write_marker(tmp, kind, self.command)
        return tmp

    def update_folder(self, path: str | Path, *, kind: str, keep: Callable[[Path], bool] = lambda p: False) -> Path:
        """A folder of ``kind`` (a training run, the demo's folder) the command changes in place (each file
        written with ``atomic_file``): created and marked if absent, else it must be the tool's and of that
        kind. If the command fails and the folder is new, it is removed unless ``keep(path)`` (a checkpoint
        worth resuming from)."""
        path = Path(path)
        self._check_collisions(path, folder=True)
        self._mkdirs(path.parent)
        self._lock(path)
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            what = "a link" if path.is_symlink() else "a file"
            raise UnsafePathError(f"{path}: is {what}, not a folder; choose a new folder")
        marker = read_marker(path) if path.exists() else None
        if path.exists() and marker is None:
            raise UnsafePathError(f"{path}: exists and was not made by affect-ens; choose a new folder")
        if marker is not None and marker.get("format", 1) != 1 and marker.get("kind") != kind:
            raise UnsafePathError(f"{path}: is {_describe(marker)}, not a {kind}; choose a new folder")
        if not path.exists():
            path.mkdir()
            write_marker(path, kind, self.command)
            self._fresh.append((path, keep))
        return path

    def resumable_folder(self, path: str | Path, *, kind: str, settings: dict) -> WorkFolder:
        """A folder of ``kind`` built item by item in its work folder (``partial_path``) and moved into place
        when the command succeeds. A killed command leaves the work folder to the next one with the same
        ``settings`` (option flag to value), which resumes it; other settings are an error unless ``--force``,
        which starts over. A failed command keeps the work folder only if it holds finished items."""
        path = self._claim(Path(path), kind)
        work = self._work_folder(path, kind, settings)
        self._partials.append((work, path, kind))
        return WorkFolder(work)

    def resumable_file(self, path: str | Path, *, kind: str, settings: dict) -> tuple[Path, WorkFolder]:
        """A file made from items built in a work folder, as ``resumable_folder`` keeps them: the temporary
        file to write and the work folder, removed once the file is in place."""
        tmp = self.file(path)
        work = self._work_folder(Path(path), kind, settings)
        self._partials.append((work, Path(path), None))
        return tmp, WorkFolder(work)

    def _work_folder(self, path: Path, kind: str, settings: dict) -> Path:
        """The work folder of ``path``: the one a killed command left with these settings, or a new one."""
        work = partial_path(path)
        self._check_collisions(work, folder=True)
        settings = json.loads(json.dumps(settings))
        before = self._partial_settings(work, kind)
        if before is not None and before != settings:
            if not self.force:
                old = " ".join(f"{k} {before[k]}" for k in sorted(before) if before.get(k) != settings.get(k))
                raise OutputExistsError(
                    f"{work}: a killed {self.command} run with other options ({old}) left its finished work here; "
                    "run it again with those to resume, or pass --force to start over"
                )
            WorkFolder(work).check_foreign()  # --force starts over on the tool's own work only
            _remove(work)
        if not work.exists():
            work.mkdir()
            write_marker(work, f"{kind}-partial", self.command, extra={"settings": settings})
        return work

    def _partial_settings(self, work: Path, kind: str) -> dict | None:
        """The settings of the work folder a killed command left, or None when there is none."""
        if not work.exists() and not work.is_symlink():
            return None
        marker = read_marker(work) if work.is_dir() and not work.is_symlink() else None
        if marker is None or (marker.get("kind"), marker.get("command")) != (f"{kind}-partial", self.command):
            raise UnsafePathError(
                f"{work}: exists and is not the work folder of affect-ens {self.command}; remove it or choose "
                "another output"
            )
        settings = marker.get("settings")
        return settings if isinstance(settings, dict) else {}

    # checks

    def _claim(self, path: Path, kind: str | None) -> Path:
        self._check_collisions(path, kind is not None)
        self._mkdirs(path.parent)
        self._lock(path)
        if kind is not None:
            recover_folder(path)
        remove_stale_temps(path)
        self._check_existing(path, kind)
        return path

    def _check_collisions(self, path: Path, folder: bool) -> None:
        resolved(path)  # a symlink loop on the way is said first
        if folder and any(_inside(p, path) for p in protected_folders()):  # the most basic refusal first
            raise UnsafePathError(f"{path}: refusing to write over the root, home or the current folder")
        for other in self._targets:
            if _same(path, other):
                raise UnsafePathError(f"{path}: named twice as an output of this command")
        for source in self.inputs:
            if _same(path, source):
                raise UnsafePathError(f"{path}: is also an input of this command; choose another output")
            if folder and path.exists() and _inside(source, path):
                raise UnsafePathError(f"{path}: holds an input of this command ({source}); choose another output")
        self._targets.append(path)

    def _check_existing(self, path: Path, kind: str | None) -> None:
        if not path.exists() and not path.is_symlink():
            return
        if path.is_symlink() or path.is_dir() != (kind is not None):
            what = "a link" if path.is_symlink() else ("a folder" if path.is_dir() else "a file")
            raise UnsafePathError(f"{path}: exists and is {what}; choose another output")
        if not self.force:
            raise OutputExistsError(f"{path}: output exists; pass --force to overwrite it")
        if kind is None:
            check_replaceable_file(path)
        else:
            check_replaceable_folder(path, kind, self.command)

    def _lock(self, path: Path) -> None:
        lock = OutputLock(path)
        lock.acquire()
        self._locks.append(lock)

    def _mkdirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir()
            self._made.append(made)

    # finishing

    def _commit(self) -> None:
        folders = [(w, t, k) for w, t, k in self._partials if k is not None]
        self._partials = [p for p in self._partials if p[2] is None]  # work folders of files: removed at the end
        for work, target, kind in folders:  # renamed away first: a kill from here on leaves no half-tidied work
            tmp = temp_sibling(target)
            os.rename(work, tmp)
            WorkFolder(tmp).tidy()
            self._moves.append((tmp, target, kind))
        for tmp, _, kind in self._moves:
            if kind is not None:  # the record of what was written, before anything is moved into place
                write_marker(tmp, kind, self.command, folder_record(tmp))
        while self._moves:
            tmp, target, kind = self._moves.pop(0)
            replace_folder(tmp, target) if kind is not None else os.replace(tmp, target)
        while self._partials:
            _remove(self._partials.pop(0)[0])

    def _finish(self, failed: bool) -> None:
        """Delete what was not moved into place; on failure also what this command created; unlock."""
        for tmp, _, _ in self._moves:
            _remove(tmp)
        for work, _, _ in self._partials:
            if not WorkFolder(work).done() and _only_ours(WorkFolder(work)):
                _remove(work)  # nothing finished to resume
        if failed:
            for path, keep in self._fresh:
                if not keep(path):
                    _remove(path)
        for lock in reversed(self._locks):
            lock.release()
        if failed:
            for made in reversed(self._made):
                with contextlib.suppress(OSError):
                    made.rmdir()  # only if still empty
