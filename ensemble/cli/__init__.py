"""The ``affect-ens`` command line: thin commands that parse, call one library function, and print.

Every command module registers itself on ``app``; ``main`` turns every user error into one line.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from ensemble.cli import committee, data, demo, evaluate, fuse, members, submit, video  # noqa: F401  (register the commands)
from ensemble.cli.app import app, err_console
from ensemble.errors import AffectEnsError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

USER_ERROR = 2
"""Exit code of every error the user can fix (bad input, bad option, refused output); 1 is left to bugs."""


def fail(message: str) -> None:
    """Print ``error: <message>`` as one line on stderr and exit with ``USER_ERROR``."""
    one_line = " ".join(str(message).split())
    err_console.print(f"[red]error:[/red] {escape(one_line)}", highlight=False, soft_wrap=True)
    sys.exit(USER_ERROR)


def main() -> None:
    """Entry point: run the app; a user error prints ``error: <message>`` and exits 2, no traceback."""
    try:
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError:
        sys.exit(0)  # typer has printed the help
    except click_errors.UsageError as exc:
        hint = f" (see 'affect-ens {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        fail(f"{exc.format_message()}{hint}")
    except typer.Abort:
        fail("aborted")
    except AffectEnsError as exc:
        fail(str(exc))
    except OSError as exc:  # a full disk, a file we may not read or write: the system's words, on one line
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}")
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main", "USER_ERROR"]
