"""Run the CLI in a child and kill it with SIGKILL at a chosen file-system step (a test helper; nothing in the
package knows about it). ``run`` forks: the child keeps the test process's imports, so it starts at once.
``spawn`` starts a new interpreter on this file (``python tests/faults.py ARGS``), which arms the fault named
by ``AFFECT_ENS_TEST_KILL=POINT:N`` and runs the CLI: for commands that import torch, whose threads make a
forked child of the test process hang. ``served`` runs such a command in a child forked by a server
(``python tests/faults.py --serve``) that has imported torch and the commands' modules but never ran them, so
no thread pool exists to hang the child, and the child skips the seconds of a new interpreter's imports.

POINT is where the N-th call dies, before the call unless it says ``after``:
``open`` (a file opened for writing by Python code), ``replace`` (``os.replace``), ``move`` (an ``os.replace``
of a command's temporary: an output moved into place), ``exchange`` (the one-step folder swap),
``after-exchange`` (right after it, before the old folder is deleted), ``unlink`` (deleting a file).
"""

from __future__ import annotations

import builtins
import os
import signal
import subprocess
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
    elif point == "move":
        os.replace = _counting(os.replace, nth, only=lambda src, *a, **k: outputs.TMP_TAG in os.fspath(src))
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
        _run_cli(args, kill, self._out.fileno(), self._err.fileno())

    def wait(self) -> Child:
        _, status = os.waitpid(self.pid, 0)
        self.returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        self._out.seek(0)
        self._err.seek(0)
        self.stdout, self.stderr = self._out.read(), self._err.read()
        return self


def run(*args, kill: tuple[str, int] | None = None) -> Child:
    return Child(args, kill).wait()


KILL_ENV = "AFFECT_ENS_TEST_KILL"
"""``POINT:N``: the fault a ``spawn``-ed child arms before it runs the CLI."""
PEAK_ENV = "AFFECT_ENS_TEST_PEAK"
"""The file a ``spawn``-ed child writes its peak resident memory to (bytes) when it exits."""


def spawn(*args, kill: tuple[str, int] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``affect-ens ARGS`` in a new interpreter, killed at ``kill`` as ``run`` does (``returncode`` -9); its
    ``peak`` is the child's peak resident memory in bytes (None when it was killed)."""
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill:
        env[KILL_ENV] = f"{kill[0]}:{kill[1]}"
    with tempfile.TemporaryDirectory() as folder:
        env[PEAK_ENV] = os.path.join(folder, "peak")
        command = [sys.executable, __file__, *map(str, args)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        done.peak = int(Path(env[PEAK_ENV]).read_text()) if os.path.exists(env[PEAK_ENV]) else None
    return done


PRELOAD = ("torch", "timm", "av", "cv2", "ensemble.cli", "members.face.crop", "members.face.predict")
"""What the server imports before it forks: the torch commands' heavy imports (none of them runs anything)."""


class _Server:
    """``python tests/faults.py --serve``: one JSON request per line (args, cwd, environment, fault, output
    files), answered with the child's pid, then with its exit status once it has ended."""

    def __init__(self) -> None:
        command = [sys.executable, __file__, "--serve"]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, args, kill, timeout: float) -> subprocess.CompletedProcess:
        return self.start(args, kill).wait(timeout)

    def start(self, args, kill=None) -> ServedChild:
        import json

        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        request = {"args": list(map(str, args)), "cwd": os.getcwd(), "env": dict(os.environ), "kill": kill}
        request["fds"] = [f"/proc/{os.getpid()}/fd/{out.fileno()}", f"/proc/{os.getpid()}/fd/{err.fileno()}"]
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return ServedChild(self, args, int(self.proc.stdout.readline()), out, err)


class ServedChild:
    """A command running in a child of the fork server: ``pid`` (to kill it), ``wait`` for its outcome (the
    server serves one command at a time, so wait before starting the next)."""

    def __init__(self, server: _Server, args, pid: int, out, err) -> None:
        self.server, self.args, self.pid, self.out, self.err = server, args, pid, out, err

    def poll(self) -> bool:
        """True once the command has ended (the server has written its exit status)."""
        import select

        return bool(select.select([self.server.proc.stdout], [], [], 0)[0])

    def wait(self, timeout: float = 600) -> subprocess.CompletedProcess:
        import select

        with self.out, self.err:
            if not select.select([self.server.proc.stdout], [], [], timeout)[0]:
                os.kill(self.pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(self.args, timeout)
            code = int(self.server.proc.stdout.readline())
            self.out.seek(0)
            self.err.seek(0)
            return subprocess.CompletedProcess(self.args, code, self.out.read(), self.err.read())


_SERVER: list[_Server] = []


def _server() -> _Server:
    """The fork server of this test process, started on first use."""
    if not _SERVER or _SERVER[0].proc.poll() is not None:
        _SERVER[:] = [_Server()]
    return _SERVER[0]


def served(*args, kill: tuple[str, int] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``affect-ens ARGS`` in a child of the fork server (started on first use, one per test process), killed
    at ``kill`` as ``run`` does (``returncode`` -9)."""
    return _server().run(args, kill, timeout)


def start_served(*args) -> ServedChild:
    """``affect-ens ARGS`` started in a child of the fork server; the caller kills or waits for it."""
    return _server().start(args)


def _serve() -> None:
    import importlib
    import json

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    for name in PRELOAD:
        importlib.import_module(name)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)


def _child(request: dict) -> None:
    """A served command: the test's working folder, environment and output files; the fault armed."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    out, err = (os.open(path, os.O_WRONLY | os.O_APPEND) for path in request["fds"])
    _run_cli(request["args"], request["kill"], out, err)


def exit_status(exc: SystemExit) -> int:
    """The status Python exits with on ``exc``: its int code, 0 for none, else 1 after printing the message
    to stderr (``sys.exit("message")``)."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _run_cli(args, kill, out: int, err: int) -> None:
    """In a forked child: ``affect-ens ARGS`` writing to the descriptors ``out`` and ``err``, the fault ``kill``
    armed; the child then ends with the command's exit status (1 for an error escaping the command)."""
    code = 1
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout, sys.stderr = os.fdopen(1, "w", closefd=False), os.fdopen(2, "w", closefd=False)
        if kill:
            arm(*kill)
        from ensemble.cli import main

        sys.argv = ["affect-ens", *map(str, args)]
        main()
        code = 0
    except SystemExit as exc:
        code = exit_status(exc)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _peak_rss() -> int:
    """This interpreter's peak resident memory in bytes: /proc's VmHWM, which belongs to the process's own
    memory since its exec. Not ``getrusage``'s ru_maxrss, which Linux carries across exec: after the
    parent's vfork it counts the test process's own peak (a test process grown past 512 MB by torch tests
    failed harm 5's memory check with a child that read nothing)."""
    with os.fdopen(os.open("/proc/self/status", os.O_RDONLY)) as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _write_peak() -> None:
    peak = _peak_rss()
    fd = os.open(os.environ[PEAK_ENV], os.O_WRONLY | os.O_CREAT)  # not ``open``: a fault may be armed there
    os.write(fd, str(peak).encode())
    os.close(fd)


def _spawned() -> None:
    import atexit

    sys.path[0] = str(Path(__file__).resolve().parents[1])  # the package these tests belong to, not tests/
    if os.environ.get(PEAK_ENV):
        atexit.register(_write_peak)
    if os.environ.get(KILL_ENV):
        point, nth = os.environ[KILL_ENV].rsplit(":", 1)
        arm(point, int(nth))
    from ensemble.cli import main

    sys.argv = ["affect-ens", *sys.argv[1:]]
    main()


if __name__ == "__main__":
    _serve() if sys.argv[1:] == ["--serve"] else _spawned()


__all__ = ["Child", "Path", "ServedChild", "arm", "exit_status", "run", "served", "spawn", "start_served"]
