"""The ``affect-ens`` command line: thin commands that parse, call one library function, and print.

Every command module registers itself on ``app``; ``main`` turns every user error into one line.
"""

from __future__ import annotations

import inspect
import os
import sys

import typer
from rich.markup import escape

from ensemble.cli import check, committee, data, demo, evaluate, fuse, members, submit, video  # noqa: F401  (register the commands)
from ensemble.cli.app import app, err_console
from ensemble.cli.common import NOTES, flush_notes
from ensemble.errors import AffectEnsError
from ensemble.outputs import public_names

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors


def rewrap_help() -> None:
    """Each command's help as its docstring's paragraphs, each on one line, and its line in ``affect-ens --help``
    as the first paragraph (Typer keeps the docstring's line breaks, which cut sentences in the middle)."""
    for info in app.registered_commands:
        doc = inspect.cleandoc(info.help or (info.callback.__doc__ if info.callback else None) or "")
        paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
        info.help = "\n\n".join(paragraphs)
        info.short_help = info.short_help or paragraphs[0]


rewrap_help()

USER_ERROR = 2
MAX_MESSAGE = 2000
"""Longest error line printed (a message naming millions of items is cut, saying how long it was)."""
"""Exit code of every error the user can fix (bad input, bad option, refused output); 1 is left to bugs."""


def fail(message: str) -> None:
    """Print ``error: <message>`` as one line on stderr and exit with ``USER_ERROR``. Under torchrun a
    process other than rank 0 says which it is (an error may happen in one process only: its data share)."""
    one_line = public_names(" ".join(str(message).split()))
    if len(one_line) > MAX_MESSAGE:
        one_line = one_line[: MAX_MESSAGE - 40] + f" ... ({len(one_line):,} characters in all)"
    rank = os.environ.get("RANK", "0")
    where = f" (rank {escape(rank)})" if rank != "0" else ""
    err_console.print(f"[red]error{where}:[/red] {escape(one_line)}", highlight=False, soft_wrap=True)
    sys.exit(USER_ERROR)


def command_words(ctx) -> str:
    """The subcommand's words below the program: 'fuse', 'train-member cnn'."""
    words = []
    while ctx is not None and ctx.parent is not None:
        words.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(reversed(words))


def main() -> None:
    """Entry point: run the app; a user error prints ``error: <message>`` and exits 2, no traceback (and
    nothing else on stderr: the command's notes are printed only when it succeeds)."""
    NOTES.clear()
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError:
        sys.exit(0)  # typer has printed the help
    except click_errors.UsageError as exc:
        hint = f" (see 'affect-ens {command_words(exc.ctx)} --help')" if exc.ctx and exc.ctx.parent else ""
        fail(f"{exc.format_message()}{hint}")
    except typer.Abort:
        fail("aborted")
    except AffectEnsError as exc:
        fail(str(exc))
    except OSError as exc:  # a full disk, a file we may not read or write: the system's words, on one line
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    flush_notes()
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main", "USER_ERROR"]
