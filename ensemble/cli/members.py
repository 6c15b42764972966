"""``train-member``, ``predict-member`` and ``extract-features``: the member side of the pipeline.

Each runs as one process, or as several under torchrun (``torchrun --nproc-per-node N -m ensemble.cli ...``):
the processes share the work and rank 0 alone writes and prints.

torch and timm are imported inside the commands, so the fusion commands start without them.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ensemble.cli.app import app, console, err_console, progress_bar
from ensemble.cli.common import note, say_edition
from ensemble.cli.options import cli_fields, field_parameter, parse_options
from ensemble.errors import AffectEnsError
from ensemble.io import read_json_object
from ensemble.outputs import Outputs
from ensemble.params import flag_of
from ensemble.tasks import check_split, get_edition

SPLIT = typer.Option(..., "--split", help="Split to predict: train, val or test.", callback=lambda v: check_split(v))
DATA = typer.Option(
    ...,
    "--data",
    help="Aff-Wild2 root (cropped_aligned/ and the annotation folders), or an image dataset (train/<class>/, "
    "optional val/, test/ or test_kaggle/), a clip dataset (<split>/<class>/<clip>/<frames>) or a list (train.csv: "
    "image_path,label); the kind is told apart by content and printed.",
)
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
    from members.training.runs import RECORD_KEYS

    values = read_json_object(config_file, "config file") if config_file else {}
    values = {k: v for k, v in values.items() if k not in RECORD_KEYS}
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise AffectEnsError(f"{config_file}: unknown config keys {unknown}; valid: {', '.join(sorted(known))}")
    given = {k: v for k, v in overrides.items() if v is not None}  # the member's own options only
    from ensemble.params import check_limits

    check_limits(config_class, values, lambda key: f"{config_file}: {key}")
    flags = {f.name: flag_of(f) for f in fields(config_class)}
    check_limits(config_class, given, flags.__getitem__)
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


def path_options(values: dict) -> list[Path]:
    """The paths given as options (inputs the run folder must not overwrite)."""
    return [value for value in values.values() if isinstance(value, Path)]


def _fixed_options(
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, last.pt (resume), best.pt, history.json."),
    config: Path = typer.Option(None, "--config", help="JSON config file; options given here override it."),
    precision: str = PRECISION,
    compile_: bool = COMPILE,
    sync_bn: bool = SYNC_BN,
    workers: int = WORKERS,
) -> None:
    """The options of train-member that are not config fields."""


TRAIN_HELP = """Train a member (resumes from RUN/last.pt if it exists; a larger --epochs extends a finished run),
validating each epoch: 'train-member MEMBER --help' lists that member's options.

--batch-size is per process: under torchrun the global batch is batch size x processes. A re-run resumes
the run with its own options (name only those you change: a larger --epochs); another number of processes
keeps the run's global batch. Extending a finished run trains the added epochs with a new one-cycle
schedule (warm-up, then annealing), keeping weights, optimiser state and history."""


class TrainMemberCommand:
    """``train-member NAME``: the fixed options, then one option per field of NAME's config."""

    __annotations__: dict = {}  # typer reads the callback's type hints: they are in the signature instead

    def __init__(self, name: str, config_class):
        self.name, self.config_class = name, config_class

    @property
    def __signature__(self) -> inspect.Signature:
        fixed = list(inspect.signature(_fixed_options, eval_str=True).parameters.values())
        return inspect.Signature(fixed + [field_parameter(f) for f in cli_fields(self.config_class)])

    def __call__(self, data, out, config, precision, compile_, sync_bn, workers, **options) -> None:
        train_member_cmd(self.name, data, out, config, (precision, compile_, sync_bn, workers), options)


class MemberCommands(TyperGroup):
    """train-member's subcommands, one per registered member, built when the command line asks for them (a
    member registered since, with its config, gets its own)."""

    def list_commands(self, ctx) -> list[str]:
        from members.registry import load_members

        return sorted(load_members().names())

    def get_command(self, ctx, name: str):
        from members.registry import member_class

        member_cls = member_class(name)  # an unknown name lists the known ones
        doc = " ".join((inspect.getdoc(member_cls) or name).split())
        rest = [" ".join(p.split()) for p in TRAIN_HELP.split("\n\n")[1:]]
        command = typer.Typer(add_completion=False)
        help_text = "\n\n".join([f"Train a {name} member: {doc}", *rest])
        command.command(name, help=help_text, short_help=doc)(TrainMemberCommand(name, member_cls.config_class))
        return typer.main.get_command(command)


train_app = typer.Typer(cls=MemberCommands, no_args_is_help=True, help=" ".join(TRAIN_HELP.split("\n\n")[0].split()))
app.add_typer(train_app, name="train-member")


def train_member_cmd(member: str, data: Path, out: Path, config: Path | None, how: tuple, options: dict) -> None:
    """train-member: resolve the member's config, then train it in the run folder ``out``."""
    from members.pretrained import prepare
    from members.registry import create_member, member_class
    from members.training.distributed import launch_from_env, wait_for_all
    from members.training.runs import TrainingRun

    member_cls = member_class(member)
    given = parse_options(member_cls.config_class, options)
    member_cls.config_class.check_options(given)
    opened = TrainingRun.open(out, member_cls)  # config.json read and its member checked once, for the whole command
    cfg = resolve_config(member_cls.config_class, config, given, base=opened.options())
    cfg = dataset_config(cfg, data)
    if not cfg.label_set:
        say_edition(
            get_edition(cfg.edition), "given" if "edition" in given else "from --config, the run or the default"
        )
    if cfg.epochs < member_cls.min_epochs:
        raise AffectEnsError(f"--epochs {cfg.epochs}: member {member} trains at least {member_cls.min_epochs} epoch(s)")
    launch = launch_from_env(*how)
    cfg = opened.resume(cfg, launch)  # a re-run that differs fails before any output
    cfg, found = prepare(cfg)  # a --weights file that fits no backbone fails before any output too
    if found and launch.main:
        err_console.print(escape(found), highlight=False, soft_wrap=True)
    with training_folder(out, [data, config, *path_options(options)], launch):
        with main_progress(launch, "training") as advance:
            progress = advance and (lambda phase, done, total: advance(done, total))
            history = create_member(member, cfg).train(data, opened, progress, launch=launch)
    wait_for_all(launch)  # every rank returns once rank 0 has put the finished run in place: a next command reads it
    if launch.main:
        print_history(history)


def dataset_config(cfg, data: Path):
    """``cfg`` for a class-folder, clip or list dataset at ``data`` (its classes as the label set), saying what
    was found; unchanged for Aff-Wild2."""
    from ensemble.datasets import read_dataset
    from members.training.datasets import is_listed, with_dataset

    if not data.is_dir() or not is_listed(data):
        return cfg
    note(f"dataset {data}: {read_dataset(data).describe()}")
    cfg = with_dataset(cfg, data)
    note(f"label set: {get_edition(cfg.edition).name} (accuracy scored, macro F1 beside it)")
    return cfg


@contextmanager
def training_folder(out: Path, inputs: list, launch) -> Iterator[Path]:
    """The run folder, changed in place and locked by rank 0 (the only writer). If the command fails, a new
    folder is removed unless it holds a checkpoint to resume from; stale temporary files are cleared first."""
    if not launch.main:
        yield out
        return
    from ensemble.outputs import holds_training
    from members.training.runs import clear_run_temps

    with Outputs(inputs=inputs) as outs:
        run = outs.update_folder(out, kind="run", keep=holds_training)
        clear_run_temps(run)
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


DATASET_CLASSES = typer.Option(
    None,
    "--classes",
    help="An ABAW-trained run on an image or clip dataset: the dataset's class names in folder order "
    "(default: the folder names); its table is mapped onto them.",
)
CLASS_MAP = typer.Option(
    None,
    "--map",
    help="With an ABAW-trained run on an image or clip dataset: ABAW class=dataset class pairs for classes "
    "without a same-named one (e.g. Other=neutral), as keras imports map theirs.",
)

MEMBER_TABLES = typer.Option(
    False, "--member-tables", help="Committee runs: also write each member's table as OUT_STEM_<member>.parquet."
)
FORCE_TABLES = typer.Option(False, "--force", help="Overwrite OUT (and the member tables) if this tool wrote them.")


@app.command("predict-member")
def predict_member_cmd(
    run: Path = typer.Argument(..., help="Run folder written by train-member or committee."),
    split: str = SPLIT,
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Prediction table to write (.parquet)."),
    frames: Path = FRAMES,
    member_tables: bool = MEMBER_TABLES,
    force: bool = FORCE_TABLES,
    workers: int = WORKERS,
    classes: str = DATASET_CLASSES,
    class_map: str = CLASS_MAP,
) -> None:
    """Write a prediction table with a row for every frame of every video of the split (under torchrun the
    processes share the videos and rank 0 writes the table); on an image or clip dataset a row per image or
    clip."""
    from ensemble.contract import check_table_path, write_table
    from members.committee import check_member_tables
    from members.training.distributed import launch_from_env
    from members.training.prediction import part_paths, predict_member
    from members.training.runs import Run

    check_table_path(out)
    finished = Run.open(run)  # config.json read and checked once
    if member_tables:
        check_member_tables(finished)
    launch = launch_from_env(workers=workers)
    with main_outputs(launch, force, [run, data, frames]) as outs:
        table_tmp = outs and outs.file(out)
        with main_progress(launch, "predicting") as advance:
            done = predict_member(finished, data, split, frames=frames, progress=advance, launch=launch)
        done = mapped_prediction(done, data, classes, class_map)
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


def mapped_prediction(done, data: Path, classes: str | None, class_map: str | None):
    """``done`` with its table mapped onto an image or clip dataset's classes when the run is ABAW-trained;
    --classes and --map are refused where they do not apply."""
    from members.configs import parse_pairs, parse_words
    from members.keras import map_onto_dataset
    from members.training.datasets import is_listed

    abaw_on_images = done.table is not None and is_listed(data) and not done.table.edition.title
    if not abaw_on_images:
        if classes is not None or class_map is not None:
            raise AffectEnsError("--classes and --map apply to an ABAW-trained run predicting an image or clip dataset")
        return done
    names = parse_words(classes, "--classes") if classes else ()
    pairs = parse_pairs(class_map, "--map") if class_map else {}
    done.table = map_onto_dataset(done.table, data, names, pairs)
    note(f"mapped the run's {len(done.table.meta.extra['mapped_from'])} ABAW classes onto {done.table.edition.name}")
    return done


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
    from members.training.distributed import launch_from_env
    from members.training.prediction import extract_features

    if out.suffix.lower() != ".npz":
        raise AffectEnsError(f"{out}: the feature cache is a NumPy archive; name it <name>.npz")
    launch = launch_from_env(workers=workers)
    with main_outputs(launch, force, [run, data, frames]) as outs, main_progress(launch, "extracting") as advance:
        target = outs.file(out) if outs else out  # only rank 0 writes
        n = extract_features(run, data, split, target, frames=frames, progress=advance, launch=launch)
    if launch.main:
        console.print(f"wrote {out}: {n} frames")
