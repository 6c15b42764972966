"""Command-line options from declared parameters (``ensemble.params.declare``), the one module that makes them:
a member config's fields become ``train-member NAME``'s options (``field_parameter``, ``parse_options``), and
every registered fuser's parameters become ``fuse``'s method options (``method_options``, ``FuseCommand``), each
with its help, default and limits. The values are checked where the parameters are declared: a config or fuser
built from the options checks its own limits, so the command line and a Python caller get the same error."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, fields
from types import UnionType
from typing import Any, Optional, Union, get_args, get_origin, get_type_hints

import typer

from ensemble.errors import AffectEnsError
from ensemble.fusion import FUSERS, create_fuser
from ensemble.fusion.base import param_fields
from ensemble.params import bounds, flag_of

# --- train-member NAME: a member config's fields -------------------------------------------------------


def cli_fields(config_class) -> list[Field]:
    """The fields of a member config that are command-line options."""
    return [f for f in fields(config_class) if f.metadata.get("cli", False)]


def _default(f: Field) -> str:
    value = f.default_factory() if f.default is MISSING else f.default
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, (tuple, list)):
        value = ",".join(map(str, value))
    return str(value) if value not in (None, "") else "none"


def field_parameter(f: Field) -> inspect.Parameter:
    """A typer option for the config field ``f`` with its help, default and limits (None unless given, so the
    config decides; the limits are checked by ``check_limits``, as the config checks them, naming the flag)."""
    meta, default = f.metadata, f.default_factory() if f.default is MISSING else f.default
    kind = meta["kind"] or (str if meta["parse"] or default is None else type(default))
    flag = meta["flag"] or ("--{0}/--no-{0}" if kind is bool else "--{0}").format(f.name.replace("_", "-"))
    said = f"default: {_default(f)}" + (f"; {bounds(f, ', ')}" if bounds(f) else "")
    option = typer.Option(None, flag, help=f"{meta['help']} ({said}).")
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)


def parse_options(config_class, values: dict) -> dict:
    """The config fields given on the command line, parsed to their values."""
    declared = {f.name: f for f in cli_fields(config_class)}
    given = {}
    for name, value in values.items():
        if value is not None:
            f = declared[name]
            given[name] = f.metadata["parse"](str(value), flag_of(f)) if f.metadata["parse"] else value
    return given


# --- fuse: every registered fuser's parameters ---------------------------------------------------------


@dataclass
class MethodOption:
    """One ``fuse`` option for the fuser parameters of one name: its flag, value type and help (one sentence
    per method declaring it, with that method's default and limits; the fuser checks the limits)."""

    name: str
    flag: str
    kind: type  # bool, int, float or str
    is_list: bool  # a comma-separated list of ``kind`` on the command line
    helps: list[str]

    def parameter(self) -> inspect.Parameter:
        """The option as a parameter of the command's signature (how Typer reads options)."""
        flags = f"{self.flag}/--no-{self.flag[2:]}" if self.kind is bool else self.flag
        option = typer.Option(None, flags, help=" ".join(self.helps), show_default=False)
        annotation = Optional[str if self.is_list else self.kind]  # noqa: UP045  (Typer reads the Optional)
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)

    def parse(self, value: Any) -> Any:
        if not self.is_list:
            return value
        try:
            return [self.kind(v) for v in str(value).split(",")]
        except ValueError:
            what = "numbers" if self.kind in (int, float) else "values"
            raise AffectEnsError(f"{self.flag} must be comma-separated {what}, got {value!r}") from None


def option_type(hint: Any) -> tuple[type, bool] | None:
    """(value type, whether a list) of a parameter's type hint, None when no option can carry it."""
    args = [a for a in get_args(hint) if a is not type(None)] if get_origin(hint) in (Union, UnionType) else [hint]
    if len(args) != 1:
        return None
    base = args[0]
    if base in (bool, int, float, str):
        return base, False
    if get_origin(base) is list and get_args(base)[0] in (int, float, str):
        return get_args(base)[0], True
    return None


def param_help(f: Field) -> str:
    """A fuser parameter's help sentence with its default and declared limits."""
    said = [] if f.default is None or f.default is False else [f"default {f.default}"]
    said += [bounds(f, ", ")] if bounds(f) else []
    return f.metadata["help"].rstrip(".") + (f" ({', '.join(said)})" if said else "") + "."


SHARED = ("folds",)
"""Fuser parameters set by the ``fuse`` option of the same name (the out-of-fold folds serve both)."""


def method_options() -> dict[str, MethodOption]:
    """An option per parameter name declared by any registered fuser (help gathered from every method that
    declares it); ``SHARED`` names take the command's own option of that name."""
    options: dict[str, MethodOption] = {}
    for method in FUSERS.names():
        cls = FUSERS.get(method)
        hints = get_type_hints(cls)
        for f in param_fields(cls):
            carried = option_type(hints[f.name])
            if f.name in SHARED or carried is None:
                continue
            opt = options.setdefault(f.name, MethodOption(f.name, flag_of(f), *carried, []))
            if param_help(f) not in opt.helps:
                opt.helps.append(param_help(f))
    return options


def method_params(method: str, given: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """The chosen method's parameters from the method options given, checked by the fuser they build (its
    limits) before anything is read or written; an option of another method is an error."""
    declared = [f.name for f in param_fields(FUSERS.get(method))]
    options = method_options()
    other = [n for n, v in given.items() if v is not None and n not in declared]
    if other:
        mine = ", ".join(options[n].flag for n in declared if n in options) or "none"
        raise AffectEnsError(f"{options[other[0]].flag} is not an option of method {method} (its options: {mine})")
    params = {n: options[n].parse(v) for n, v in given.items() if v is not None}
    params |= {n: v for n, v in shared.items() if n in declared}
    create_fuser(method, **params)
    return params


def given_flags(given: dict[str, Any]) -> list[str]:
    """The flags of the method options given."""
    options = method_options()
    return [options[n].flag for n, v in given.items() if v is not None]


class FuseCommand:
    """The ``fuse`` command with one option per declared fuser parameter, read from ``FUSERS`` each time the
    command line is built: a fusion method registered in its own module gets its options with no other change."""

    def __init__(self, command: Callable[..., None]) -> None:
        self.command = command
        self.__doc__ = command.__doc__
        self.__name__ = command.__name__

    @property
    def __signature__(self) -> inspect.Signature:
        own = inspect.signature(self.command, eval_str=True)
        fixed = [p for p in own.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        return own.replace(parameters=fixed + [o.parameter() for o in method_options().values()])

    @property
    def __annotations__(self) -> dict[str, Any]:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **options: Any) -> None:
        self.command(**options)
