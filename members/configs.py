"""Member configs: the shared ``MemberConfig`` fields and each built-in member's own.

Every field is declared with ``option`` (``ensemble.params.declare``, as fusers declare theirs): its help text,
its command-line flag and parser and its limits live with it, so ``train-member NAME`` builds one option per
field, no field can be forgotten, and the config checks its limits itself. This module imports neither
torch nor timm: the command line reads it to build its options without loading a network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ensemble.errors import AffectEnsError
from ensemble.params import check_limits, declare
from ensemble.tasks import DEFAULT_EDITION, get_edition, label_set, parse_tasks

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's label order, used by fer's mini-Xception and most models trained on FER2013."""
DEFAULT_BACKBONES = ("vgg16", "xception41", "resnetv2_50x1_bit", "efficientnet_b1")


option = declare
"""A member config field: ``ensemble.params.declare``, the one way parameters are declared."""


def parse_numbers(text: str, flag: str, count: int | None = None) -> tuple[float, ...]:
    """'-1,1' -> (-1.0, 1.0); anything else (or another count than ``count``) is a one-line error."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or (count and len(values) != count):
        raise AffectEnsError(f"{flag} {text!r}: expected {count or 'some'} comma-separated numbers")
    return values


def parse_pairs(text: str, flag: str) -> dict[str, str]:
    """'contempt=other,uncertain=other' -> {'contempt': 'other', 'uncertain': 'other'}; else a one-line error."""
    pairs = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not (key and sep and value) or key in pairs:
            raise AffectEnsError(f"{flag} {text!r}: expected distinct name=value pairs separated by commas")
        pairs[key] = value
    return pairs


def parse_words(text: str, flag: str) -> tuple[str, ...]:
    """'a, b' -> ('a', 'b')."""
    return tuple(word.strip() for word in text.split(","))


def parse_path(text: str, flag: str) -> str:
    return str(text)


def parse_edition(text: str, flag: str) -> str:
    return get_edition(text).key


def parse_pair(text: str, flag: str) -> tuple[float, ...]:
    return parse_numbers(text, flag, 2)


@dataclass
class MemberConfig:
    """The fields every member shares; a member's config subclasses it (and may change the defaults). Built
    in Python, from a config file or from the command line, a value outside its declared limits is the same
    one-line error (``CnnConfig(lr=-1)``: 'lr must be a finite number at least 0.0, got -1')."""

    members: ClassVar[str] = ""  # the members using this config, for the help text (default: from the name)

    tasks: tuple[str, ...] = option(
        ("expr",), "expr, va, au or mtl (all three)", flag="--task", parse=lambda t, f: parse_tasks(t)
    )
    edition: int | str = option(  # runs of earlier versions hold a year
        DEFAULT_EDITION, "ABAW edition of the labels, by ABAW number (abaw10) or year", parse=parse_edition
    )
    epochs: int = option(5, "Training epochs; more than a finished run's extends it", min=0)
    batch_size: int = option(64, "Batch size per process; under torchrun the global batch is this x processes", min=1)
    lr: float = option(1e-3, "Peak learning rate (one-cycle schedule)", min=0.0)
    weight_decay: float = option(1e-4, "AdamW weight decay", min=0.0)
    seed: int = option(0, "Random seed")
    checkpoint_every: int = option(0, "Also checkpoint every N steps inside an epoch (0: at epoch ends only)", min=0)
    classes: tuple[str, ...] = option(
        (),
        "A class-folder, clip or list dataset's class names, comma-separated, in the order of its sorted folder "
        "names or labels (FER2013's folders 0..6: angry,disgust,fear,happy,sad,surprise,neutral); default: the "
        "folder names",
        parse=parse_words,
    )
    label_set: tuple[str, ...] = option((), cli=False)  # the classes of a non-Aff-Wild2 dataset, set from --data
    dataset: dict = option(factory=dict, cli=False)  # that dataset's kind and validation hold-out, as read

    def __post_init__(self) -> None:
        check_limits(type(self), vars(self), str)
        self.classes, self.label_set = tuple(self.classes), tuple(self.label_set)
        if self.label_set:  # another challenge's classes: the run's label set, known again from the names
            self.edition = label_set(self.label_set).key

    @classmethod
    def check_options(cls, given: dict[str, Any]) -> None:
        """Refuse command-line options that cannot go together (``given``: the options named, parsed)."""


@dataclass
class CnnConfig(MemberConfig):
    """Everything a cnn run depends on; saved as config.json in the run folder."""

    members: ClassVar[str] = "cnn"

    backbone: str | None = option(
        None,
        "timm backbone name, or a face backbone: vggface_vgg16, vggface2_resnet50, keras_vggface_vgg16, "
        "keras_vggface_resnet50, keras_vggface_senet50 (none given: the --weights file's, else resnet18)",
        kind=str,
    )
    weights: str | None = option(
        None,
        "Local file of pretrained backbone weights, told by content: a timm state dict, VGG_Face_torch.pth, "
        "resnet50_ft_weight.pkl, resnet50_ft_dag.pth, keras-vggface .h5, .safetensors (nothing is downloaded)",
        kind=Path,
        parse=parse_path,
    )
    weights_format: str | None = option(
        None,
        "Override the detected --weights format: timm, vggface-torch, vggface2-pickle, vggface2-dag, keras-vggface",
    )
    input: dict | None = option(None, cli=False)  # the backbone's input convention, recorded from the weights file
    image_size: int = option(112, "Input side in pixels", min=16)
    dropout: float = option(0.2, "Dropout before the task heads", min=0.0, max=0.9)


@dataclass
class TemporalConfig(MemberConfig):
    """Everything a temporal run depends on; saved as config.json in the run folder."""

    members: ClassVar[str] = "cnn_rnn, cnn_transformer"

    tasks: tuple[str, ...] = option(
        ("va",), "expr, va, au or mtl (all three)", flag="--task", parse=lambda t, f: parse_tasks(t)
    )
    epochs: int = option(15, "Training epochs; more than a finished run's extends it", min=0)
    batch_size: int = option(16, "Windows per batch and process", min=1)
    lr: float = option(2e-3, "Peak learning rate (one-cycle schedule)", min=0.0)
    features: str = option(
        "", "Folder with train.npz and val.npz from extract-features (and test.npz)", kind=Path, parse=parse_path
    )
    rnn: str = option("gru", "gru or lstm (cnn_rnn)")
    bidirectional: bool = option(
        True, "The recurrent layers' direction (cnn_rnn)", flag="--bidirectional/--unidirectional"
    )
    hidden: int = option(128, "Hidden size", min=4)
    layers: int = option(1, "Recurrent or encoder layers", min=1)
    heads: int = option(4, "Attention heads (cnn_transformer)", min=1)
    window: int = option(64, "Frames per training window", min=2)
    stride: int = option(32, "Step between windows (overlap = window - stride)", min=1)
    stats: int = option(0, "Half-width of the temporal-statistics window (0: off)", min=0)
    dropout: float = option(0.1, "Dropout before the task heads", min=0.0, max=0.9)


@dataclass
class CommitteeConfig(MemberConfig):
    """A committee trained from timm backbones, or assembled from finished runs (``affect-ens committee``)."""

    members: ClassVar[str] = "committee"

    batch_size: int = option(32, "Batch size per process", min=1)
    backbones: tuple[str, ...] = option(
        DEFAULT_BACKBONES, "Comma-separated timm backbones (tiny ones, test_resnet..., for CPUs)", parse=parse_words
    )
    lead: str = option("vgg16", "The backbone deciding ties")
    runs: tuple[str, ...] = option((), cli=False)  # an assembled committee's member runs (absolute); no backbones
    weights_dir: str | None = option(
        None, "Folder of local pretrained weights named <backbone>.pth", kind=Path, parse=parse_path
    )
    image_size: int = option(112, "Input side in pixels", min=16)


@dataclass
class KerasConfig(MemberConfig):
    """A Keras model imported as a member; saved as config.json in the run folder."""

    members: ClassVar[str] = "keras"
    names_dataset: ClassVar[bool] = False  # --classes names the model's outputs, not a dataset's folders

    tasks: tuple[str, ...] = option(
        (), "What the model's outputs predict (set on import)", flag="--task", parse=lambda t, f: parse_tasks(t)
    )
    epochs: int = option(0, "0: import only, scored on validation; N: fine-tune N epochs", min=0)
    lr: float = option(1e-4, "Peak learning rate (one-cycle schedule)", min=0.0)
    weights: str | None = option(None, "The Keras model file (.h5 or .keras)", kind=Path, parse=parse_path)
    classes: tuple[str, ...] = option(
        FER2013_CLASSES,
        "The expression output's classes in order, comma-separated; each maps onto the ABAW class of the same "
        "name or a synonym (happy: Happiness), others need --map",
        parse=parse_words,
    )
    class_map: dict[str, str] = option(
        factory=dict,
        help="Model class=ABAW class pairs, e.g. contempt=other,uncertain=other; the probabilities of classes "
        "mapped together are summed",
        flag="--map",
        parse=parse_pairs,
    )
    outputs: dict[str, str] = option(
        factory=dict,
        help="Which model output predicts what, role=output-name pairs; roles: expr, valence, arousal, va (one "
        "output, two values), au (one sigmoid per AU), e.g. valence=dense_v,arousal=dense_a; when unset, "
        "read from the outputs' names, else from one output's size and activation",
        parse=parse_pairs,
    )
    preprocess: str | None = option(
        None,
        "The model's input convention by name: tf (-1..1: Xception, MobileNetV2, fer), caffe (BGR minus ImageNet "
        "means: VGG16, ResNet50), torch (ImageNet mean and std), raw (0..255: EfficientNet), vggface1, vggface2 "
        "(keras-vggface). Replaces --pixel-range, --pixel-mean, --pixel-std and --bgr",
    )
    pixel_range: tuple[float, float] = option(
        (-1.0, 1.0), "The model's input values for black,white pixels", parse=parse_pair
    )
    bgr: bool = option(False, "Colour models trained on BGR images", flag="--bgr/--rgb")
    pixel_mean: tuple[float, ...] | None = option(
        None,
        "Caffe-style input: 0-255 pixels minus these per-channel means in the model's channel order, e.g. "
        "93.594,104.762,129.186 for keras-vggface (replaces --pixel-range)",
        parse=parse_numbers,
    )
    pixel_std: tuple[float, ...] | None = option(
        None, "With --pixel-mean, then divided by these per-channel values (torch style)", parse=parse_numbers
    )
    image_size: int = option(64, "Input side in pixels (taken from the model on import)", min=1)  # the model decides
    architecture: dict | None = option(None, cli=False)  # the Keras config and weight shapes, filled on import

    @classmethod
    def check_options(cls, given: dict[str, Any]) -> None:
        """The input options that cannot go together."""
        if "pixel_range" in given and "pixel_mean" in given:
            raise AffectEnsError("--pixel-range and --pixel-mean exclude each other: a model takes one of the two")
        if "pixel_std" in given and "pixel_mean" not in given:
            raise AffectEnsError("--pixel-std divides after subtracting --pixel-mean; give both")
        pixels = {"pixel_range", "pixel_mean", "pixel_std", "bgr"}
        if "preprocess" in given and pixels & set(given):
            raise AffectEnsError(
                "--preprocess sets the input convention; leave out --pixel-range/--pixel-mean/--pixel-std/--bgr"
            )
