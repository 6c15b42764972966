"""The ``affect-ens`` command line: thin commands that parse, call one library function, and print.

Every command module registers itself on ``app``; ``main`` turns library errors into one-line messages.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from ensemble.cli import data, demo, evaluate, fuse, members, submit  # noqa: F401  (register the commands)
from ensemble.cli.app import app, err_console
from ensemble.errors import AffectEnsError


def main() -> None:
    """Entry point: run the app; a user error prints ``error: <message>`` and exits 1, no traceback."""
    try:
        app()
    except AffectEnsError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)


__all__ = ["app", "main"]
