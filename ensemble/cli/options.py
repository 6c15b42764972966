"""Command-line options from declared parameters (``ensemble.params.declare``): a member config's fields
become ``train-member NAME``'s options, each with its help, default and limits, and the given values are
parsed by the field's own parser; ``fuse``'s method options read the same declarations (``cli/fuse.py``)."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, Field, fields

import typer

from ensemble.params import flag_of


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
    """A typer option for the config field ``f`` with its help and default (None unless given, so the config
    decides)."""
    meta, default = f.metadata, f.default_factory() if f.default is MISSING else f.default
    kind = meta["kind"] or (str if meta["parse"] or default is None else type(default))
    flag = meta["flag"] or ("--{0}/--no-{0}" if kind is bool else "--{0}").format(f.name.replace("_", "-"))
    option = typer.Option(None, flag, help=f"{meta['help']} (default: {_default(f)}).", **meta["limits"])
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
