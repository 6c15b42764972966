"""``train-member``, ``predict-member`` and ``extract-features``: the member side of the pipeline.

Each runs as one process, or as several under torchrun (``torchrun --nproc-per-node N -m ensemble.cli ...``):
the processes share the work and rank 0 alone writes and prints.

torch and timm are imported inside the commands, so the fusion commands start without them.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, Field, fields
from pathlib import Path

import typer
from rich.markup import escape

from ensemble.cli.app import app, console, err_console, progress_bar
from ensemble.cli.common import say_edition
from ensemble.errors import AffectEnsError
from ensemble.io import read_json_object
from ensemble.outputs import Outputs
from ensemble.tasks import check_split, get_edition

SPLIT = typer.Option(..., "--split", help="Split to predict: train, val or test.", callback=lambda v: check_split(v))
DATA = typer.Option(..., "--data", help="Aff-Wild2 root: cropped_aligned/ and the annotation folders.")
FRAMES = typer.Option(
    None,
    "--frames",
    exists=True,
    dir_okay=False,
    help="Frame-count manifest 'video,frames' (default: <split>_frames.csv in --data, else annotation line counts).",
)


PRECISION = typer.Option(
    "auto",
    "--precision",
    help="Training arithmetic: auto (bf16 on a GPU that has it, else fp16; fp32 on CPUs), fp32, bf16 or fp16 "
    "(mixed precision; fp16 on GPUs only).",
)
COMPILE = typer.Option(False, "--compile", help="Compile the network with torch.compile (slow start, faster steps).")
SYNC_BN = typer.Option(
    False, "--sync-bn", help="Under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm)."
)
WORKERS = typer.Option(0, "--workers", min=0, help="Data-loader worker processes per process.")


def resolve_config(config_class, config_file: Path | None, overrides: dict, base: dict | None = None):
    """Defaults < the run's own options (``base``, when resuming) < config file (JSON) < command-line options
    that were given. A config file may be a run's config.json: its record keys are skipped."""
    from members.runs import RECORD_KEYS

    values = read_json_object(config_file, "config file") if config_file else {}
    values = {k: v for k, v in values.items() if k not in RECORD_KEYS}
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AffectEnsError(f"{config_file}: unknown config keys {unknown}; valid: {', '.join(sorted(known))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    foreign = sorted(set(given) - known)
    if foreign:
        owners = config_fields()
        flags = [flag_of(name, owners[name][0][1]) if name in owners else f"--{name}" for name in foreign]
        who = config_class.members or "this member"
        raise AffectEnsError(f"option(s) {', '.join(flags)} do not apply to {who} (see train-member --help)")
    check_config_limits(config_class, values, lambda key: f"{config_file}: {key}")
    check_config_limits(
        config_class, given, lambda key: flag_of(key, next(f for f in fields(config_class) if f.name == key))
    )
    values = {**(base or {}), **values, **given}
    check_config_types(config_class, values, str(config_file or "options"))
    return config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def check_config_types(config_class, values: dict, source: str) -> None:
    """Each value has the type of its field's default (ints pass for floats, lists for tuples)."""
    defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(config_class)}
    for key, value in values.items():
        default = defaults[key]
        if value is None or default is None or callable(default):
            continue
        expected = (
            (int, float) if type(default) is float else (list, tuple) if isinstance(default, tuple) else type(default)
        )
        if not isinstance(value, expected) or (isinstance(value, bool) and type(default) is not bool):
            raise AffectEnsError(f"{source}: {key} must be {type(default).__name__}, got {value!r}")


def check_config_limits(config_class, values: dict, label) -> None:
    """Numbers are finite and within their field's limits (a config file is not checked by the option's range);
    ``label(key)`` names the value in the error."""
    limits = {f.name: f.metadata.get("limits", {}) for f in fields(config_class)}
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        low, high = limits[key].get("min", -math.inf), limits[key].get("max", math.inf)
        if not (math.isfinite(value) and low <= value <= high):
            bounds = " and ".join(
                t for t, on in ((f"at least {low}", low > -math.inf), (f"at most {high}", high < math.inf)) if on
            )
            raise AffectEnsError(f"{label(key)} must be a finite number{' ' + bounds if bounds else ''}, got {value!r}")


def config_classes() -> list[type]:
    """Every member config: the subclasses of ``MemberConfig`` (the built-in ones and any defined since)."""
    from members.configs import MemberConfig

    found, todo = [], list(MemberConfig.__subclasses__())
    while todo:
        cls = todo.pop(0)
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def config_fields() -> dict[str, list[tuple[type, Field]]]:
    """Each config field that is a command-line option, with the configs declaring it."""
    options: dict[str, list[tuple[type, Field]]] = {}
    for cls in config_classes():
        for f in fields(cls):
            if f.metadata.get("cli", False):
                options.setdefault(f.name, []).append((cls, f))
    return options


def _label(cls) -> str:
    return cls.members or cls.__name__.removesuffix("Config").lower()


def _default(f: Field) -> str:
    value = f.default_factory() if f.default is MISSING else f.default
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, (tuple, list)):
        value = ",".join(map(str, value))
    return str(value) if value not in (None, "") else "none"


def _by_member(owners: list[tuple[type, Field]], text, labelled: bool) -> str:
    """'TEXT' when every member says the same (and ``labelled`` is False or every member has the field), else
    'cnn: TEXT; keras: TEXT'."""
    said: dict[str, list[str]] = {}
    for cls, f in owners:
        said.setdefault(text(f), []).append(_label(cls))
    if len(said) == 1 and (not labelled or len(owners) == len(config_classes())):
        return next(iter(said))
    return "; ".join(f"{', '.join(labels)}: {value}" for value, labels in said.items())


def option_help(owners: list[tuple[type, Field]]) -> str:
    """The option's help: each member's help text and default."""
    return f"{_by_member(owners, lambda f: f.metadata['help'], True)} (default: {_by_member(owners, _default, False)})."


def flag_of(name: str, f: Field) -> str:
    return (f.metadata["flag"] or "--" + name.replace("_", "-")).split("/")[0]


def field_parameter(name: str, owners: list[tuple[type, Field]]) -> inspect.Parameter:
    """A typer option for the config field ``name`` (None unless given, so the config decides)."""
    f = owners[0][1]
    meta, default = f.metadata, f.default_factory() if f.default is MISSING else f.default
    kind = meta["kind"] or (str if meta["parse"] or default is None else type(default))
    flag = meta["flag"] or ("--{0}/--no-{0}" if kind is bool else "--{0}").format(name.replace("_", "-"))
    option = typer.Option(None, flag, help=option_help(owners), **meta["limits"])
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)


def parse_options(values: dict) -> dict:
    """The config fields given on the command line, parsed to their values."""
    owners = config_fields()
    given = {}
    for name, value in values.items():
        if value is not None:
            f = owners[name][0][1]
            given[name] = f.metadata["parse"](str(value), flag_of(name, f)) if f.metadata["parse"] else value
    return given


def path_options(values: dict) -> list[Path]:
    """The paths given as options (inputs the run folder must not overwrite)."""
    return [value for value in values.values() if isinstance(value, Path)]


def _fixed_options(
    member: str = typer.Argument(
        ..., help="Member type: cnn, cnn_rnn, cnn_transformer, committee, keras, or any other registered member."
    ),
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, last.pt (resume), best.pt, history.json."),
    config: Path = typer.Option(None, "--config", help="JSON config file; options given here override it."),
    precision: str = PRECISION,
    compile_: bool = COMPILE,
    sync_bn: bool = SYNC_BN,
    workers: int = WORKERS,
) -> None:
    """The options of train-member that are not config fields."""


class TrainMemberCommand:
    """Train a member (resumes from RUN/last.pt if it exists; a larger --epochs extends a finished run),
    validating each epoch.

    Each member takes the options its config has (the help says which); the others are refused.
    --batch-size is per process: under torchrun the global batch is batch size x processes. A re-run resumes
    the run with its own options (name only those you change: a larger --epochs); another number of processes
    keeps the run's global batch. Extending a finished run trains the added epochs with a new one-cycle
    schedule (warm-up, then annealing), keeping weights, optimiser state and history.
    """

    __annotations__: dict = {}  # typer reads the callback's type hints: they are in the signature instead

    @property
    def __signature__(self) -> inspect.Signature:
        """The fixed options, then one option per config field, built when the command line is (so a member
        registered since, with its config, gets its options)."""
        fixed = list(inspect.signature(_fixed_options, eval_str=True).parameters.values())
        options = [field_parameter(name, owners) for name, owners in sorted(config_fields().items())]
        return inspect.Signature(fixed + options)

    def __call__(self, member, data, out, config, precision, compile_, sync_bn, workers, **options) -> None:
        train_member_cmd(member, data, out, config, (precision, compile_, sync_bn, workers), options)


def train_member_cmd(member: str, data: Path, out: Path, config: Path | None, how: tuple, options: dict) -> None:
    """train-member: resolve the member's config, then train it in the run folder ``out``."""
    from members.distributed import launch_from_env
    from members.registry import create_member, member_class
    from members.runs import resumed_config

    member_cls = member_class(member)
    given = parse_options(options)
    member_cls.config_class.check_options(given)
    cfg = resolve_config(member_cls.config_class, config, given, base=run_options(out, member_cls))
    say_edition(get_edition(cfg.edition), "given" if "edition" in given else "from --config, the run or the default")
    if cfg.epochs < member_cls.min_epochs:
        raise AffectEnsError(f"--epochs {cfg.epochs}: member {member} trains at least {member_cls.min_epochs} epoch(s)")
    launch = launch_from_env(*how)
    cfg = resumed_config(out, member_cls, cfg, launch)  # a re-run that differs fails before any output
    with training_folder(out, [data, config, *path_options(options)], launch) as run:
        with main_progress(launch, "training") as advance:
            progress = advance and (lambda phase, done, total: advance(done, total))
            history = create_member(member, cfg).train(data, run, progress, launch=launch)
    if launch.main:
        print_history(history)


app.command("train-member")(TrainMemberCommand())


def run_options(out: Path, member_cls) -> dict:
    """The options of the run at ``out`` (a re-run names only what it changes); {} for a new run."""
    from members.runs import check_member, config_values, read_config

    doc = read_config(out) if out.is_dir() else None
    if doc is None:
        return {}
    check_member(out, doc, member_cls)
    return config_values(doc, member_cls.config_class)


@contextmanager
def training_folder(out: Path, inputs: list, launch) -> Iterator[Path]:
    """The run folder, changed in place and locked by rank 0 (the only writer). If the command fails, a new
    folder is removed unless it holds a checkpoint to resume from; stale temporary files are cleared first."""
    if not launch.main:
        yield out
        return
    from members.runs import has_checkpoint, remove_stale_temps

    with Outputs(inputs=inputs) as outs:
        run = outs.update_folder(out, kind="run", keep=has_checkpoint)
        remove_stale_temps(run)
        yield run


@contextmanager
def main_outputs(launch, force: bool, inputs: list) -> Iterator[Outputs | None]:
    """The command's outputs on rank 0, the only writer (see ``ensemble.outputs.Outputs``); None elsewhere."""
    if not launch.main:
        yield None
        return
    with Outputs(force=force, inputs=inputs) as outs:
        yield outs


@contextmanager
def main_progress(launch, description: str) -> Iterator:
    """A progress bar's ``advance(done, total)`` on rank 0; None on the other ranks."""
    if not launch.main:
        yield None
        return
    with progress_bar(description) as advance:
        yield advance


def print_history(history: list[dict]) -> None:
    for row in history:
        who = f"{row['backbone']} (best epoch)" if "backbone" in row else f"epoch {row['epoch']}"
        loss = f"loss {row['loss']:.4f}, " if "loss" in row else "imported, "
        console.print(f"{who}: {loss}validation score {row['score']:.4f}")


@app.command("predict-member")
def predict_member_cmd(
    run: Path = typer.Argument(..., help="Run folder written by train-member or committee."),
    split: str = SPLIT,
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Prediction table to write (.parquet)."),
    frames: Path = FRAMES,
    member_tables: bool = typer.Option(
        False, "--member-tables", help="Committee runs: also write each member's table as OUT_STEM_<member>.parquet."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT (and the member tables) if this tool wrote them."),
    workers: int = WORKERS,
) -> None:
    """Write a prediction table with a row for every frame of every video of the split (under torchrun the
    processes share the videos and rank 0 writes the table)."""
    from ensemble.contract import check_table_path, write_table
    from members.committee import check_member_tables
    from members.distributed import launch_from_env
    from members.predict import part_paths, predict_member

    check_table_path(out)
    if member_tables:
        check_member_tables(run)
    launch = launch_from_env(workers=workers)
    with main_outputs(launch, force, [run, data, frames]) as outs:
        table_tmp = outs and outs.file(out)
        with main_progress(launch, "predicting") as advance:
            done = predict_member(run, data, split, frames=frames, progress=advance, launch=launch)
        paths = part_paths(out, done.parts) if member_tables and outs else {}
        if outs:
            write_table(done.table, table_tmp, name=str(out))
            for name, path in paths.items():
                write_table(done.parts[name], outs.file(path), name=str(path))
    if launch.main:
        err_console.print(f"filled {done.filled} frame(s) without a face image from their neighbours")
        for path in paths.values():
            console.print(f"wrote {escape(str(path))}", highlight=False)
        console.print(
            f"wrote {escape(str(out))}: {len(done.table.data)} frames of {done.table.data['video'].nunique()} videos"
        )


@app.command("extract-features")
def extract_features_cmd(
    run: Path = typer.Argument(..., help="Run folder of a trained cnn member."),
    out: Path = typer.Option(..., "--out", help="Feature cache to write (.npz)."),
    split: str = SPLIT,
    data: Path = DATA,
    frames: Path = FRAMES,
    force: bool = typer.Option(False, "--force", help="Overwrite OUT."),
    workers: int = WORKERS,
) -> None:
    """Cache per-frame CNN embeddings so temporal members train on vectors, not images (under torchrun the
    processes share the videos and rank 0 writes the cache)."""
    from members.distributed import launch_from_env
    from members.predict import extract_features

    if out.suffix.lower() != ".npz":
        raise AffectEnsError(f"{out}: the feature cache is a NumPy archive; name it <name>.npz")
    launch = launch_from_env(workers=workers)
    with main_outputs(launch, force, [run, data, frames]) as outs, main_progress(launch, "extracting") as advance:
        target = outs.file(out) if outs else out  # only rank 0 writes
        n = extract_features(run, data, split, target, frames=frames, progress=advance, launch=launch)
    if launch.main:
        console.print(f"wrote {out}: {n} frames")
