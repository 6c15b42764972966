"""``train-member``, ``predict-member`` and ``extract-features``: the member side of the pipeline.

Each runs as one process, or as several under torchrun (``torchrun --nproc-per-node N -m ensemble.cli ...``):
the processes share the work and rank 0 alone writes and prints.

torch and timm are imported inside the commands, so the fusion commands start without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path

import typer
from rich.markup import escape

from ensemble.cli.app import app, console, err_console, progress_bar
from ensemble.cli.common import say_edition
from ensemble.errors import AffectEnsError
from ensemble.io import read_json_object
from ensemble.outputs import Outputs
from ensemble.tasks import DEFAULT_EDITION, check_split, get_edition, parse_tasks

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
WORKERS = typer.Option(0, "--workers", min=0, help="Data-loader worker processes per process (default: 0).")


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
        raise AffectEnsError(
            f"option(s) --{', --'.join(f.replace('_', '-') for f in foreign)} do not apply to this member"
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


def parse_numbers(text: str, option: str, count: int | None = None) -> tuple[float, ...]:
    """'-1,1' -> (-1.0, 1.0); anything else (or another count than ``count``) is a one-line error."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or (count and len(values) != count):
        raise AffectEnsError(f"{option} {text!r}: expected {count or 'some'} comma-separated numbers")
    return values


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """'contempt=other,uncertain=other' -> {'contempt': 'other', 'uncertain': 'other'}; else a one-line error."""
    pairs = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not (key and sep and value) or key in pairs:
            raise AffectEnsError(f"{option} {text!r}: expected distinct name=value pairs separated by commas")
        pairs[key] = value
    return pairs


def check_input_options(pixel_range, pixel_mean, pixel_std, bgr, preprocess) -> None:
    """The keras member's input options that cannot go together."""
    if pixel_range and pixel_mean:
        raise AffectEnsError("--pixel-range and --pixel-mean exclude each other: a model takes one of the two")
    if pixel_std and not pixel_mean:
        raise AffectEnsError("--pixel-std divides after subtracting --pixel-mean; give both")
    if preprocess and (pixel_range or pixel_mean or pixel_std or bgr is not None):
        raise AffectEnsError(
            "--preprocess sets the input convention; leave out --pixel-range/--pixel-mean/--pixel-std/--bgr"
        )


@app.command("train-member")
def train_member_cmd(
    member: str = typer.Argument(..., help="Member type: cnn, cnn_rnn, cnn_transformer, committee or keras."),
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Run folder: config.json, last.pt (resume), best.pt, history.json."),
    task: str = typer.Option(
        None, "--task", help="expr, va, au or mtl (all three) (default: expr; keras: what the model's outputs predict)."
    ),
    backbone: str = typer.Option(None, help="timm backbone name (default: resnet18)."),
    weights: Path = typer.Option(
        None,
        help="cnn, committee: local file of pretrained backbone weights (nothing is downloaded); "
        "keras: the Keras model file (.h5 or .keras).",
    ),
    epochs: int = typer.Option(
        None, min=0, help="Training epochs; more than a finished run's extends it (default: 5; keras: 0, import only)."
    ),
    batch_size: int = typer.Option(
        None, min=1, help="Batch size per process; under torchrun the global batch is this x processes (default: 64)."
    ),
    lr: float = typer.Option(None, help="Peak learning rate (one-cycle schedule) (default: 1e-3)."),
    image_size: int = typer.Option(None, min=16, help="Input side in pixels (default: 112)."),
    seed: int = typer.Option(None, help="Random seed (default: 0)."),
    edition: str = typer.Option(
        None, help=f"ABAW edition of the labels, by year or ABAW number (default: {DEFAULT_EDITION})."
    ),
    checkpoint_every: int = typer.Option(None, min=0, help="Also checkpoint every N steps (default: 0, epoch ends)."),
    features: Path = typer.Option(
        None, help="cnn_rnn, cnn_transformer: folder with train.npz and val.npz from extract-features."
    ),
    rnn: str = typer.Option(None, help="cnn_rnn: gru or lstm (default: gru)."),
    bidirectional: bool = typer.Option(
        None, "--bidirectional/--unidirectional", help="cnn_rnn: direction (default: bidirectional)."
    ),
    hidden: int = typer.Option(None, min=4, help="cnn_rnn, cnn_transformer: hidden size (default: 128)."),
    window: int = typer.Option(None, min=2, help="cnn_rnn, cnn_transformer: frames per window (default: 64)."),
    stride: int = typer.Option(None, min=1, help="cnn_rnn, cnn_transformer: step between windows (default: 32)."),
    stats: int = typer.Option(
        None, min=0, help="cnn_rnn, cnn_transformer: temporal-statistics half-window, 0 off (default: 0)."
    ),
    backbones: str = typer.Option(
        None,
        help="committee: comma-separated timm backbones (default: vgg16,xception41,resnetv2_50x1_bit,efficientnet_b1).",
    ),
    lead: str = typer.Option(None, help="committee: the backbone deciding ties (default: vgg16)."),
    classes: str = typer.Option(
        None,
        help="keras: the expression output's classes in order, comma-separated; each maps onto the ABAW class of "
        "the same name or a synonym (happy: Happiness), others need --map "
        "(default: FER2013's angry,disgust,fear,happy,sad,surprise,neutral).",
    ),
    class_map: str = typer.Option(
        None,
        "--map",
        help="keras: model class=ABAW class pairs, e.g. contempt=other,uncertain=other; the probabilities of "
        "classes mapped together are summed. A class that maps to no ABAW class is an error.",
    ),
    outputs: str = typer.Option(
        None,
        help="keras: which model output predicts what, role=output-name pairs; roles: expr, valence, arousal, "
        "va (one output, two values), au (one sigmoid per AU, in the edition's order), e.g. "
        "valence=dense_v,arousal=dense_a (default: the outputs' names when they say it, else one output's size "
        "and activation: softmax expr, 12 sigmoids au, 2 tanh values va).",
    ),
    preprocess: str = typer.Option(
        None,
        help="keras: the model's input convention by name: tf (-1..1: Xception, MobileNetV2, fer), caffe (BGR minus "
        "ImageNet means: VGG16, ResNet50), torch (ImageNet mean and std), raw (0..255: EfficientNet, whose "
        "Rescaling/Normalization layers are inside), vggface1 (keras-vggface VGG16), vggface2 (keras-vggface "
        "ResNet50/SENet50). Replaces --pixel-range, --pixel-mean, --pixel-std and --bgr.",
    ),
    pixel_range: str = typer.Option(
        None, help="keras: the model's input values for black,white pixels (default: -1,1 as in fer)."
    ),
    bgr: bool = typer.Option(None, "--bgr/--rgb", help="keras: colour models trained on BGR images (default: rgb)."),
    pixel_mean: str = typer.Option(
        None,
        help="keras: caffe-style input, 0-255 pixels minus these per-channel means in the model's channel "
        "order, e.g. 93.594,104.762,129.186 for keras-vggface (replaces --pixel-range).",
    ),
    pixel_std: str = typer.Option(
        None, help="keras: with --pixel-mean, then divided by these per-channel values (torch style)."
    ),
    dropout: float = typer.Option(
        None, min=0.0, max=0.9, help="cnn, cnn_rnn, cnn_transformer: dropout before the task heads (default: 0.2, 0.1)."
    ),
    config: Path = typer.Option(None, "--config", help="JSON config file; options given here override it."),
    precision: str = PRECISION,
    compile_: bool = COMPILE,
    sync_bn: bool = SYNC_BN,
    workers: int = WORKERS,
) -> None:
    """Train a member (resumes from RUN/last.pt if it exists; a larger --epochs extends a finished run),
    validating each epoch.

    --batch-size is per process: under torchrun the global batch is batch size x processes. A re-run resumes
    the run with its own options (name only those you change: a larger --epochs); another number of processes
    keeps the run's global batch. Extending a finished run trains the added epochs with a new one-cycle
    schedule (warm-up, then annealing), keeping weights, optimiser state and history.
    """
    from members import MEMBERS
    from members.distributed import launch_from_env
    from members.runs import resumed_config

    member_cls = MEMBERS.get(member)
    check_input_options(pixel_range, pixel_mean, pixel_std, bgr, preprocess)
    overrides = {
        "tasks": parse_tasks(task) if task else None,
        "backbone": backbone,
        "weights": str(weights) if weights else None,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "image_size": image_size,
        "seed": seed,
        "edition": get_edition(edition).year if edition else None,
        "checkpoint_every": checkpoint_every,
        "features": str(features) if features else None,
        "rnn": rnn,
        "bidirectional": bidirectional,
        "hidden": hidden,
        "window": window,
        "stride": stride,
        "stats": stats,
        "backbones": tuple(backbones.split(",")) if backbones else None,
        "lead": lead,
        "classes": tuple(c.strip() for c in classes.split(",")) if classes else None,
        "class_map": parse_pairs(class_map, "--map") if class_map else None,
        "outputs": parse_pairs(outputs, "--outputs") if outputs else None,
        "preprocess": preprocess,
        "pixel_range": parse_numbers(pixel_range, "--pixel-range", 2) if pixel_range else None,
        "bgr": bgr,
        "pixel_mean": parse_numbers(pixel_mean, "--pixel-mean") if pixel_mean else None,
        "pixel_std": parse_numbers(pixel_std, "--pixel-std") if pixel_std else None,
        "dropout": dropout,
    }
    cfg = resolve_config(member_cls.config_class, config, overrides, base=run_options(out, member_cls))
    say_edition(get_edition(cfg.edition), "given" if edition else "from --config, the run or the default")
    least = getattr(member_cls, "min_epochs", 1)
    if cfg.epochs < least:
        raise AffectEnsError(f"--epochs {cfg.epochs}: member {member} trains at least {least} epoch(s)")
    launch = launch_from_env(precision, compile_, sync_bn, workers)
    cfg = resumed_config(out, member_cls, cfg, launch)  # a re-run that differs fails before any output
    with training_folder(out, [data, config, weights, features], launch) as run:
        with main_progress(launch, "training") as advance:
            progress = advance and (lambda phase, done, total: advance(done, total))
            history = trainer_of(member_cls)(member_cls, cfg, data, run, progress, launch=launch)
    if launch.main:
        print_history(history)


def run_options(out: Path, member_cls) -> dict:
    """The options of the run at ``out`` (a re-run names only what it changes); {} for a new run."""
    from members.runs import check_member, config_values, read_config

    doc = read_config(out) if out.is_dir() else None
    if doc is None:
        return {}
    check_member(out, doc, member_cls)
    return config_values(doc, member_cls.config_class)


def trainer_of(member_cls):
    from members.temporal_train import train_temporal
    from members.train import train_member

    trainer = train_temporal if getattr(member_cls, "on_features", False) else train_member
    return getattr(member_cls, "train", trainer)


@contextmanager
def training_folder(out: Path, inputs: list, launch) -> Iterator[Path]:
    """The run folder, changed in place and locked by rank 0 (the only writer). If the command fails, a new
    folder is removed unless it holds a checkpoint to resume from; stale temporary files are cleared first."""
    if not launch.main:
        yield out
        return
    from members.runs import has_checkpoint, remove_stale_temps

    with Outputs(inputs=inputs) as outs:
        run = outs.update_folder(out, keep=has_checkpoint)
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
    split: str = SPLIT,
    data: Path = DATA,
    out: Path = typer.Option(..., "--out", help="Feature cache to write (.npz)."),
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
