"""Run the CLI in a forked child and kill it with SIGKILL at a chosen file-system step (a test helper; nothing
in the package knows about it). Forking keeps the test process's imports, so each run starts at once.

POINT is where the N-th call dies, before the call unless it says ``after``:
``open`` (a file opened for writing by Python code), ``replace`` (``os.replace``), ``exchange`` (the one-step
folder swap), ``after-exchange`` (right after it, before the old folder is deleted), ``unlink`` (deleting a
file).
"""

from __future__ import annotations

import builtins
import os
import signal
import sys
import tempfile
from pathlib import Path


def _counting(real, nth: int, after: bool = False, only=lambda *a, **k: True):
    calls = [0]

    def wrapped(*args, **kwargs):
        if only(*args, **kwargs):
            calls[0] += 1
            if calls[0] == nth and not after:
                os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if after and calls[0] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapped


def _writes(file, mode="r", *args, **kwargs) -> bool:
    return any(c in mode for c in "wax+")


def arm(point: str, nth: int) -> None:
    """Make the ``nth`` call at ``point`` kill this process."""
    import io

    import ensemble.outputs as outputs

    if point == "open":
        builtins.open = io.open = _counting(builtins.open, nth, only=_writes)
    elif point == "replace":
        os.replace = _counting(os.replace, nth)
    elif point in ("exchange", "after-exchange"):
        outputs._exchange = _counting(outputs._exchange, nth, after=point == "after-exchange")
    elif point == "unlink":
        os.unlink = _counting(os.unlink, nth)
    else:
        raise ValueError(f"unknown fault point {point!r}")


class Child:
    """A forked ``affect-ens ARGS``: ``returncode`` is -9 when it was killed."""

    def __init__(self, args, kill: tuple[str, int] | None = None) -> None:
        self._out = tempfile.TemporaryFile("w+")
        self._err = tempfile.TemporaryFile("w+")
        self.pid = os.fork()
        if self.pid == 0:
            self._run_child([str(a) for a in args], kill)

    def _run_child(self, args, kill) -> None:
        os.dup2(self._out.fileno(), 1)
        os.dup2(self._err.fileno(), 2)
        sys.stdout, sys.stderr = os.fdopen(1, "w", closefd=False), os.fdopen(2, "w", closefd=False)
        code = 1
        try:
            if kill:
                arm(*kill)
            from ensemble.cli import main

            sys.argv = ["affect-ens", *args]
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def wait(self) -> Child:
        _, status = os.waitpid(self.pid, 0)
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self._out.seek(0)
        self._err.seek(0)
        self.stdout, self.stderr = self._out.read(), self._err.read()
        return self


def run(*args, kill: tuple[str, int] | None = None) -> Child:
    return Child(args, kill).wait()


__all__ = ["Child", "Path", "arm", "run"]
