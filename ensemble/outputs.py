"""Every file and folder a command writes goes through this module: the trust rules in one place.

- Names built from data (video ids, member names, class names) become paths only through ``safe_join``.
- ``Outputs`` is what a command writes: each output is locked for the whole command, written to a temporary
  sibling and moved into place when the command succeeds; on any failure nothing it found is changed and
  nothing it made is left behind. ``--force`` replaces only an output this tool made (a folder holding the
  ``.affect-ens`` marker, a file carrying the tool's stamp), never a folder holding the command's inputs,
  the current folder, home or the root; an output path equal to an input or to another output is an error.
- Temporary files and folders are created with the modes ``open`` and ``mkdir`` give, so the user's umask
  decides the permissions, as for any other program.

Library code that writes one file on its own uses ``atomic_file``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ensemble.errors import AffectEnsError, OutputExistsError

MARKER = ".affect-ens"
"""File inside every folder the tool made; ``--force`` replaces a folder only if it holds one."""
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
    if path.resolve().parent != Path(root).resolve():
        raise UnsafePathError(f"{what} {name!r} leads outside {root}")
    return path


# --- ownership ---------------------------------------------------------------------------------------------


def _json_is_ours(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("generator") == STAMP


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
    ".json": _json_is_ours,
    ".html": _head_has(f'<meta name="generator" content="{STAMP}">'.encode()),
    ".parquet": _parquet_is_ours,
    ".pq": _parquet_is_ours,
    ".npz": _npz_is_ours,
    ".csv": lambda path: _json_is_ours(path.with_name(path.name + ".json")),  # the table's metadata sidecar
    ".mp4": _mp4_is_ours,
}
"""How to recognise a file the tool wrote, by suffix; a module writing a new kind of file adds its check."""


def is_ours(path: Path) -> bool:
    """True for a folder holding the marker or a file carrying the tool's stamp."""
    if path.is_dir():
        return (path / MARKER).is_file()
    check = OWNER_CHECKS.get(path.suffix.lower())
    return bool(check and path.is_file() and check(path))


CHECKPOINT = "last.pt"
"""A training run's resumable checkpoint (``members.training.runs`` writes it): the one mark of a training run."""


def holds_training(folder: Path) -> bool:
    """True when ``folder`` is a training run or holds one (a committee's backbones, a demo folder) within two
    levels: weights and a checkpoint hours of training made, which no other command's --force may replace and
    a failed train-member keeps. The one rule of what a training run is."""
    return any(any(folder.glob(pattern)) for pattern in (CHECKPOINT, f"*/{CHECKPOINT}", f"*/*/{CHECKPOINT}"))


def write_marker(folder: Path) -> None:
    """Mark ``folder`` as made by the tool (what ``--force`` looks for before replacing it)."""
    (folder / MARKER).write_text(json.dumps({"generator": STAMP}) + "\n")


# --- atomic writes -----------------------------------------------------------------------------------------


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


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd, exchange = -100, 2
    return renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), exchange) == 0


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
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, folder: Path) -> bool:
    return child.resolve().is_relative_to(folder.resolve())


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

    def __init__(self, *, force: bool = False, inputs: Iterable[str | Path | None] = ()) -> None:
        self.force = force
        self.inputs = [Path(p) for p in inputs if p is not None]
        self._locks: list[OutputLock] = []
        self._moves: list[tuple[Path, Path, bool]] = []  # (temporary, target, is_folder)
        self._made: list[Path] = []  # folders this command created (removed again on failure)
        self._fresh: list[tuple[Path, Callable[[Path], bool]]] = []  # new update folders and their keep test
        self._targets: list[Path] = []

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
        path = self._claim(Path(path), folder=False)
        tmp = temp_sibling(path)
        new_file(tmp)
        self._moves.append((tmp, path, False))
        return tmp

    def folder(self, path: str | Path) -> Path:
        """A new folder (marked as the tool's) replacing ``path`` when the command succeeds; returns the
        temporary folder to fill."""
        path = self._claim(Path(path), folder=True)
        tmp = temp_sibling(path)
        tmp.mkdir()
        self._moves.append((tmp, path, True))
        write_marker(tmp)
        return tmp

    def update_folder(self, path: str | Path, *, keep: Callable[[Path], bool] = lambda p: False) -> Path:
        """A folder the command changes in place (each file in it written with ``atomic_file``): created and
        marked if absent, else it must be the tool's. If the command fails and the folder is new, it is
        removed unless ``keep(path)`` (a checkpoint worth resuming from)."""
        path = Path(path)
        self._check_collisions(path, folder=True)
        self._mkdirs(path.parent)
        self._lock(path)
        if path.exists() and not path.is_dir():
            raise UnsafePathError(f"{path}: is a file, not a folder; choose a new folder")
        if path.exists() and not is_ours(path):
            raise UnsafePathError(f"{path}: exists and was not made by affect-ens; choose a new folder")
        if not path.exists():
            path.mkdir()
            write_marker(path)
            self._fresh.append((path, keep))
        return path

    # checks

    def _claim(self, path: Path, *, folder: bool) -> Path:
        self._check_collisions(path, folder)
        self._mkdirs(path.parent)
        self._lock(path)
        if folder:
            recover_folder(path)
        remove_stale_temps(path)
        self._check_existing(path, folder)
        return path

    def _check_collisions(self, path: Path, folder: bool) -> None:
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

    def _check_existing(self, path: Path, folder: bool) -> None:
        if not path.exists() and not path.is_symlink():
            return
        if path.is_symlink() or path.is_dir() != folder:
            kind = "a link" if path.is_symlink() else ("a folder" if path.is_dir() else "a file")
            raise UnsafePathError(f"{path}: exists and is {kind}; choose another output")
        if not self.force:
            raise OutputExistsError(f"{path}: output exists; pass --force to overwrite it")
        if not is_ours(path):
            raise UnsafePathError(f"{path}: was not written by affect-ens, so --force will not replace it")
        if folder and holds_training(path):
            raise UnsafePathError(
                f"{path}: holds a training run ({CHECKPOINT}), which --force never replaces; choose another output"
            )

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
        while self._moves:
            tmp, target, is_folder = self._moves.pop(0)
            replace_folder(tmp, target) if is_folder else os.replace(tmp, target)

    def _finish(self, failed: bool) -> None:
        """Delete what was not moved into place; on failure also what this command created; unlock."""
        for tmp, _, _ in self._moves:
            _remove(tmp)
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
