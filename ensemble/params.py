"""Declared parameters, one system for member configs and fusers: a dataclass field carrying its help text,
its command-line flag and parser, and its limits; ``check_limits`` is the one check of those limits, run by the
config or fuser itself (``__post_init__``), so a Python caller, a config file and the command line get the same
one-line error. ``ensemble/cli`` builds the options from the same fields."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from typing import Any

from ensemble.errors import AffectEnsError


def declare(
    default: Any = MISSING,
    help: str = "",  # noqa: A002  (the name typer gives it)
    *,
    factory: Callable[[], Any] | None = None,
    flag: str | None = None,
    parse: Callable[[str, str], Any] | None = None,
    kind: type | None = None,
    cli: bool = True,
    **limits: float,
) -> Any:
    """A declared field: ``help`` (required unless ``cli`` is False), ``flag`` (default ``--field-name``),
    ``parse(text, flag)`` turning the option's text into the value, ``kind`` the option's type (default: the
    default's type, or ``str`` when parsed), ``limits`` (``min``, ``max``)."""
    meta = {"help": help, "flag": flag, "parse": parse, "kind": kind, "cli": cli, "limits": limits}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(f: Field) -> str:
    """The field's command-line flag as a user types it (``--lr``; the first of ``--bgr/--rgb``)."""
    return (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]


def bounds(f: Field, join: str = " and ") -> str:
    """The field's declared limits in words ('at least 1 and at most 100'; '' when it declares none): the error
    of ``check_limits`` and the help of an option say them alike."""
    limits = f.metadata.get("limits", {})
    words = [
        f"at least {limits['min']}" if "min" in limits else "",
        f"at most {limits['max']}" if "max" in limits else "",
    ]
    return join.join(w for w in words if w)


def check_limits(cls, values: dict[str, Any], label: Callable[[str], str] = str) -> None:
    """Numbers are finite and within their field's declared limits; ``label(key)`` names the value in the error
    (the field, a config file's key, the command-line flag)."""
    declared = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or key not in declared:
            continue
        limits = declared[key].metadata.get("limits", {})
        low, high = limits.get("min", -math.inf), limits.get("max", math.inf)
        if not (math.isfinite(value) and low <= value <= high):
            said = bounds(declared[key])
            raise AffectEnsError(f"{label(key)} must be a finite number{' ' + said if said else ''}, got {value!r}")
