"""``train-member``, ``predict-member`` and ``extract-features``: the member side of the pipeline.

torch and timm are imported inside the commands, so the fusion commands start without them.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import typer
from rich.markup import escape

from ensemble.cli.app import app, console, err_console, progress_bar
from ensemble.errors import AffectEnsError
from ensemble.io import read_json_object
from ensemble.outputs import Outputs
from ensemble.tasks import check_split, get_edition, parse_tasks

SPLIT = typer.Option(..., "--split", help="Split to predict: train, val or test.", callback=lambda v: check_split(v))
DATA = typer.Option(..., "--data", help="Aff-Wild2 root: cropped_aligned/ and the annotation folders.")
FRAMES = typer.Option(
    None,
    "--frames",
    exists=True,
    dir_okay=False,
    help="Frame-count manifest 'video,frames' (default: <split>_frames.csv in --data, else annotation line counts).",
)


def resolve_config(config_class, config_file: Path | None, overrides: dict):
    """Defaults < config file (JSON) < command-line options that were given."""
    values = read_json_object(config_file, "config file") if config_file else {}
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
    values.update(given)
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
    epochs: int = typer.Option(None, min=0, help="Training epochs (default: 5; keras: 0, import only)."),
    batch_size: int = typer.Option(None, min=1, help="Batch size (default: 64)."),
    lr: float = typer.Option(None, help="Peak learning rate (one-cycle schedule) (default: 1e-3)."),
    image_size: int = typer.Option(None, min=16, help="Input side in pixels (default: 112)."),
    seed: int = typer.Option(None, help="Random seed (default: 0)."),
    edition: int = typer.Option(None, help="ABAW edition of the labels (default: 2025)."),
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
    config: Path = typer.Option(None, "--config", help="JSON config file; options given here override it."),
) -> None:
    """Train a member (resumes from RUN/last.pt if it exists), validating each epoch."""
    from members import MEMBERS
    from members.temporal_train import train_temporal
    from members.train import train_member

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
        "edition": edition,
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
    }
    cfg = resolve_config(member_cls.config_class, config, overrides)
    get_edition(cfg.edition)
    least = getattr(member_cls, "min_epochs", 1)
    if cfg.epochs < least:
        raise AffectEnsError(f"--epochs {cfg.epochs}: member {member} trains at least {least} epoch(s)")
    trainer = train_temporal if getattr(member_cls, "on_features", False) else train_member
    trainer = getattr(member_cls, "train", trainer)
    with progress_bar("training") as advance:
        history = trainer(member_cls, cfg, data, out, lambda phase, done, total: advance(done, total))
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
) -> None:
    """Write a prediction table with a row for every frame of every video of the split."""
    from ensemble.contract import check_table_path, write_table
    from members.committee import check_member_tables
    from members.predict import part_paths, predict_member

    with Outputs(force=force, inputs=[run, data, frames]) as outs:
        table_tmp = outs.file(check_table_path(out))
        if member_tables:
            check_member_tables(run)
        with progress_bar("predicting") as advance:
            done = predict_member(run, data, split, frames=frames, progress=advance)
        write_table(done.table, table_tmp, name=str(out))
        paths = part_paths(out, done.parts) if member_tables else {}
        for name, path in paths.items():
            write_table(done.parts[name], outs.file(path), name=str(path))
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
) -> None:
    """Cache per-frame CNN embeddings so temporal members train on vectors, not images."""
    from members.predict import extract_features

    if out.suffix.lower() != ".npz":
        raise AffectEnsError(f"{out}: the feature cache is a NumPy archive; name it <name>.npz")
    with Outputs(force=force, inputs=[run, data, frames]) as outs, progress_bar("extracting") as advance:
        n = extract_features(run, data, split, outs.file(out), frames=frames, progress=advance)
    console.print(f"wrote {out}: {n} frames")
