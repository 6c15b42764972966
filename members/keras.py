"""The ``keras`` member: a Keras model (``.h5`` or ``.keras``) as a torch member, for EXPR, VA, AU or several.

``train-member keras --weights model.h5`` rebuilds the model in torch (``members.keras_import.converter``), decides
which of its outputs predicts which task (from ``--outputs``, else the outputs' names, else a single
output's size and activation), maps its expression classes onto the edition's (``--classes``, ``--map``),
scores it on validation and saves the run like any other member; ``--epochs N`` fine-tunes it on Aff-Wild2
first. The run folder is self-contained: the architecture is kept in config.json and the weights in
best.pt, so predicting no longer needs the file.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ensemble.contract import PredictionTable, TableMeta
from ensemble.datasets import read_dataset
from ensemble.errors import AffectEnsError, DataError
from ensemble.tasks import TASKS, Edition, get_edition, label_set
from members.configs import KerasConfig
from members.image import ImageMember
from members.keras_import.converter import architecture, build_graph, read_keras
from members.registry import MEMBERS

SYNONYMS = {
    "neutral": "Neutral",
    "anger": "Anger",
    "angry": "Anger",
    "disgust": "Disgust",
    "disgusted": "Disgust",
    "fear": "Fear",
    "fearful": "Fear",
    "scared": "Fear",
    "happy": "Happiness",
    "happiness": "Happiness",
    "joy": "Happiness",
    "sad": "Sadness",
    "sadness": "Sadness",
    "surprise": "Surprise",
    "surprised": "Surprise",
    "other": "Other",
}
GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as OpenCV's and PIL's RGB -> grey conversion

PREPROCESS = {
    # keras.applications (keras/src/applications/imagenet_utils.py, preprocess_input modes):
    "tf": {"pixel_range": (-1.0, 1.0)},  # Xception, MobileNet(V2), Inception; fer's models
    "caffe": {"bgr": True, "pixel_mean": (103.939, 116.779, 123.68)},  # VGG16, ResNet50: BGR minus ImageNet means
    "torch": {"pixel_mean": (123.675, 116.28, 103.53), "pixel_std": (58.395, 57.12, 57.375)},  # DenseNet
    "raw": {"pixel_range": (0.0, 255.0)},  # EfficientNet, ConvNeXt: Rescaling/Normalization inside the model
    # keras-vggface (rcmalli/keras-vggface, keras_vggface/utils.py preprocess_input): BGR minus these means
    "vggface1": {"bgr": True, "pixel_mean": (93.594, 104.7624, 129.1863)},  # VGG16
    "vggface2": {"bgr": True, "pixel_mean": (91.4953, 103.8827, 131.0912)},  # ResNet50, SENet50
}
"""Named input conventions: each sets the pixel fields of ``KerasConfig``."""

ROLES = {"expr": "expr", "va": "va", "valence": "va", "arousal": "va", "au": "au"}
"""What an output of the model can be (``--outputs ROLE=NAME``) and the task it serves."""
NAME_WORDS = {
    "expr": "expr",
    "expression": "expr",
    "expressions": "expr",
    "emotion": "expr",
    "emotions": "expr",
    "valence": "valence",
    "arousal": "arousal",
    "va": "va",
    "au": "au",
    "aus": "au",
}
"""Words in an output's name that say which role it has (``valence_out``, ``expr_head``, ``au``)."""


def input_convention(cfg: KerasConfig) -> dict:
    """The pixel fields the model takes: the named preset's, else the config's own."""
    fields = {"pixel_range": (-1.0, 1.0), "bgr": False, "pixel_mean": None, "pixel_std": None}
    if cfg.preprocess is None:
        return {name: getattr(cfg, name) for name in fields}
    if cfg.preprocess not in PREPROCESS:
        raise DataError(
            f"keras member: unknown --preprocess {cfg.preprocess!r}; choose one of: {', '.join(PREPROCESS)}"
        )
    return {**fields, **PREPROCESS[cfg.preprocess]}


def _abaw_class(name: str, edition: Edition) -> str | None:
    ours = {SYNONYMS.get(c.lower(), c).lower(): c for c in edition.expr_classes}  # another label set's names too
    return ours.get(SYNONYMS.get(name.lower(), name).lower())


def class_mapping(classes, class_map: dict[str, str], edition: Edition) -> np.ndarray:
    """(model classes x edition classes) 0/1 matrix: each model class feeds one edition class (by name, a
    synonym or ``class_map``), so probabilities of classes mapped together are summed; edition classes the
    model lacks (e.g. Other) get probability 0. A class that maps nowhere is an error."""
    plain = [c.split("=", 1)[0].lower() for c in classes]
    stray = [k for k in class_map if k.lower() not in plain]
    if stray:
        raise DataError(f"keras member: --map names {stray[0]!r}, not one of the model's classes ({', '.join(plain)})")
    lowered = {k.lower(): v for k, v in class_map.items()}
    mapping = np.zeros((len(classes), len(edition.expr_classes)), np.float32)
    for i, name in enumerate(classes):
        name, _, inline = name.partition("=")  # 'contempt=Other' in --classes: the older spelling of --map
        mapped = lowered.get(name.lower(), inline)
        found = _abaw_class(mapped or name, edition)
        if found is None:
            listing = ", ".join(edition.expr_classes)
            raise DataError(
                f"keras member: --map {name}={mapped}: {mapped!r} is not an {edition.name} expression class ({listing})"
                if mapped
                else f"keras member: class {name!r} maps to no {edition.name} expression class ({listing}); "
                f"map it with --map {name}=<class>"
            )
        mapping[i, edition.expr_classes.index(found)] = 1.0
    return mapping


def role_from_name(name: str) -> str | None:
    """The role an output's name announces ('valence_out' -> valence), or None."""
    words = set(re.split(r"[^a-z]+", name.lower()))
    if {"valence", "arousal"} <= words:
        return "va"
    roles = {NAME_WORDS[w] for w in words if w in NAME_WORDS}
    return roles.pop() if len(roles) == 1 else None


def _role_from_shape(units: int, activation: str, n_aus: int) -> str:
    if activation == "sigmoid" and units == n_aus:
        return "au"
    if units == 2 and activation in ("tanh", "linear"):
        return "va"
    return "expr"


def _describe(heads: dict[str, tuple[tuple[int, ...], str]]) -> str:
    return ", ".join(f"{name}: {'x'.join(map(str, shape))} {act}" for name, (shape, act) in heads.items())


def _inferred_roles(heads: dict[str, tuple[tuple[int, ...], str]], n_aus: int, source: str) -> dict[str, str]:
    named = {role_from_name(name): name for name in heads}
    if None not in named and len(named) == len(heads):
        return named
    if len(heads) == 1:
        name, (shape, act) = next(iter(heads.items()))
        return {_role_from_shape(shape[-1] if shape else 1, act, n_aus): name}
    first, second = list(heads)[:2]
    raise DataError(
        f"{source}: the model has {len(heads)} outputs ({_describe(heads)}) whose names do not say which task each "
        f"predicts; name them with --outputs, e.g. --outputs valence={first},arousal={second}"
    )


def _check_roles(roles: dict[str, str], heads: dict[str, tuple[tuple[int, ...], str]], source: str) -> None:
    for role, name in roles.items():
        if role not in ROLES:
            raise DataError(f"keras member: unknown output role {role!r}; choose from: {', '.join(ROLES)}")
        if name not in heads:
            raise DataError(f"{source}: the model has no output {name!r}; its outputs: {_describe(heads)}")
    if ("valence" in roles) != ("arousal" in roles) or ("va" in roles and "valence" in roles):
        raise DataError("keras member: name both valence=OUTPUT and arousal=OUTPUT, or one va=OUTPUT with two values")


def output_roles(
    heads: dict[str, tuple[tuple[int, ...], str]], given: dict[str, str], n_aus: int, source: str
) -> dict[str, str]:
    """Role -> output name: as given, else from the outputs' names, else (one output) from its size and
    activation (a softmax: expr; n_aus sigmoids: au; two tanh or linear values: va)."""
    roles = dict(given) if given else _inferred_roles(heads, n_aus, source)
    _check_roles(roles, heads, source)
    return roles


def check_output_sizes(roles: dict[str, str], shapes: dict[str, tuple[int, ...]], n_classes: int, n_aus: int) -> None:
    """Each output has one value per class (expr), per AU (au), one (valence, arousal) or two (va)."""
    for role, name in roles.items():
        units = {"expr": n_classes, "valence": 1, "arousal": 1, "va": 2, "au": n_aus}[role]
        if shapes[name] != (units,):
            what = "--classes names" if role == "expr" else f"a {role} output has"
            raise DataError(f"keras member: output {name!r} gives {shapes[name]} values per face; {what} {units}")


class KerasNet(nn.Module):
    """Our normalised RGB faces -> the Keras model's input -> each task from the output that predicts it:
    EXPR probabilities mapped onto the edition's classes (as log-probabilities, the expression 'logits'),
    VA values (clipped to [-1, 1] outside training), AU logits."""

    def __init__(self, cfg: KerasConfig, edition: Edition, weights: dict[str, list[np.ndarray]] | None = None):
        """Built from ``cfg.architecture`` with ``weights`` (zeros without: a finished run's checkpoint fills
        them), or read from the model file when the config has no architecture yet (fine-tuning)."""
        super().__init__()
        arch = cfg.architecture
        if arch is None:
            arch, weights = read_model(cfg)
        source = cfg.weights or "keras member"
        self.graph = build_graph(arch, weights, source)
        h, w, channels = self.graph.input_shape
        if h != w or channels not in (1, 3):
            raise DataError(f"keras member: the model's input is {h}x{w}x{channels}; square grey or RGB is needed")
        heads = {n: (self.graph.output_shapes[n], self.graph.activations[n]) for n in self.graph.output_names}
        self.roles = output_roles(heads, cfg.outputs, len(edition.aus), source)
        self.tasks = tuple(t for t in TASKS if t in {ROLES[r] for r in self.roles})
        if cfg.tasks and tuple(cfg.tasks) != self.tasks:
            raise DataError(
                f"keras member: the model's outputs give task(s) {'+'.join(self.tasks)}, not {'+'.join(cfg.tasks)}"
            )
        check_output_sizes(self.roles, self.graph.output_shapes, len(cfg.classes), len(edition.aus))
        self._input_convention(input_convention(cfg), channels)
        if "expr" in self.roles:
            self.register_buffer("mapping", torch.from_numpy(class_mapping(cfg.classes, cfg.class_map, edition)), False)

    def _input_convention(self, conv: dict, channels: int) -> None:
        """Buffers that follow from the config (not saved in the state dict)."""
        self.grey, self.bgr = channels == 1, conv["bgr"]
        self.low, self.high = conv["pixel_range"]
        self.centred = conv["pixel_mean"] is not None
        for name in ("pixel_mean", "pixel_std"):
            if conv[name] is not None and len(conv[name]) != channels:
                raise DataError(f"keras member: {len(conv[name])} {name} value(s) for a {channels}-channel model input")
        self.register_buffer(
            "mean", torch.tensor(conv["pixel_mean"] or [0.0] * channels).view(1, channels, 1, 1), False
        )
        self.register_buffer("std", torch.tensor(conv["pixel_std"] or [1.0] * channels).view(1, channels, 1, 1), False)
        self.register_buffer("luma", torch.tensor(GREY).view(1, 3, 1, 1), False)

    def keras_input(self, images: torch.Tensor) -> torch.Tensor:
        """Undo our (x - 0.5) / 0.5 normalisation, convert the colours, then rescale to the model's range or
        (caffe and torch style) subtract per-channel means from 0-255 pixels and divide by the stds."""
        x = images * 0.5 + 0.5
        if self.grey:
            x = (x * self.luma).sum(1, keepdim=True)
        elif self.bgr:
            x = x.flip(1)
        if self.centred:
            return (x * 255.0 - self.mean) / self.std
        return self.low + (self.high - self.low) * x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.graph.features(self.keras_input(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        heads = self.graph.heads(self.keras_input(images))
        out = {}
        if "expr" in self.roles:
            name = self.roles["expr"]
            probs = heads[name] if self.graph.activations[name] == "softmax" else heads[name].softmax(1)
            out["expr"] = (probs @ self.mapping).clamp_min(1e-7).log()
        if "va" in self.roles or "valence" in self.roles:
            va = (
                heads[self.roles["va"]]
                if "va" in self.roles
                else torch.cat([heads[self.roles[r]] for r in ("valence", "arousal")], 1)
            )
            out["va"] = va if self.training else va.clamp(-1.0, 1.0)
        if "au" in self.roles:
            name = self.roles["au"]
            au = heads[name]
            out["au"] = au.clamp(1e-7, 1 - 1e-7).logit() if self.graph.activations[name] == "sigmoid" else au
        return out


def read_model(cfg: KerasConfig) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The architecture and weights of the model file the config names."""
    if not cfg.weights:
        raise DataError("keras member: name the Keras model file (.h5 or .keras) with --weights")
    config, weights = read_keras(cfg.weights)
    return architecture(config, weights), weights


def train_keras(
    member_cls, cfg: KerasConfig, data_root: Path, run_dir: Path, progress=None, *, launch=None
) -> list[dict]:
    """Import the Keras model and score it on validation (epochs 0, saved as epoch 0), or fine-tune it for
    ``epochs``; config.json keeps its architecture and the resolved outputs, tasks and input size."""
    from members.training.loop import image_fit, train_member

    arch, weights = read_model(cfg)
    model = KerasNet(replace(cfg, architecture=arch), get_edition(cfg.edition), weights)  # checks first
    cfg = replace(
        cfg, architecture=arch, tasks=model.tasks, outputs=dict(model.roles), image_size=model.graph.input_shape[0]
    )

    def build(member_cls, cfg, data_root, launch):
        return image_fit(member_cls, cfg, data_root, launch, model=model)

    return train_member(member_cls, cfg, data_root, run_dir, progress, launch=launch, build=build)


@MEMBERS.register("keras")
class KerasMember(ImageMember):
    """A Keras model (.h5 or .keras) for EXPR, VA, AU or several, imported without TensorFlow."""

    config_class = KerasConfig
    min_epochs = 0  # 0 epochs: the model as imported

    def build_network(self, saved=None) -> KerasNet:
        """The network of the config's architecture (weights zero until the run's checkpoint fills them)."""
        return KerasNet(self.config, self.edition)

    def train(self, data_root, run_dir, progress=None, *, launch=None) -> list[dict]:
        return train_keras(type(self), self.config, data_root, run_dir, progress, launch=launch)


def map_onto_dataset(table: PredictionTable, data_root: Path, names: tuple[str, ...], class_map: dict[str, str]):
    """An ABAW-labelled table of a class-folder, clip or list dataset's images mapped onto the dataset's classes
    (``names``, default the folder names): each ABAW class feeds the class of the same name or a synonym
    (Happiness: happy) or the one ``class_map`` names, as keras imports map their classes; probabilities of
    classes mapped together are summed."""
    dataset = read_dataset(data_root)
    if names and len(names) != len(dataset.classes):
        raise AffectEnsError(f"--classes names {len(names)} classes; {data_root} has {len(dataset.classes)}")
    target = label_set(names or dataset.classes)
    mapping = class_mapping(table.edition.expr_classes, class_map, target)
    probs = table.outputs("expr") @ mapping
    data = pd.concat(
        [table.data[["video", "frame"]], pd.DataFrame(probs, columns=target.output_columns("expr"))], axis=1
    )
    extra = {**table.meta.extra, "mapped_from": list(table.edition.expr_classes), "map": class_map}
    meta = TableMeta.of(("expr",), target, member=table.meta.member, split=table.meta.split, extra=extra)
    return PredictionTable(data, meta)
