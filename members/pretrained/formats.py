"""The weight formats teams hold, each recognised by its names and mapped onto a registered backbone.

A format says which container it comes in, what the file is (for the message), the backbone it was made for,
the input convention of that backbone, which of its tensors are the classifier (dropped), and how its names
and layouts map onto the backbone's parameters. The sources of each layout are named in ``FORMATS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ensemble.errors import DataError
from ensemble.registry import Registry
from members.pretrained.files import Contents

Mapped = dict[str, tuple[str, torch.Tensor]]
"""Backbone parameter name -> (the file's name for it, the tensor in the backbone's layout)."""

BACKBONE_CONVENTIONS = {
    "vggface_vgg16": "vggface1-bgr",
    "keras_vggface_vgg16": "vggface1-bgr",
    "keras_vggface_vgg16_notop": "vggface1-bgr",
    "vggface2_resnet50": "vggface2-bgr",
    "keras_vggface_resnet50": "vggface2-bgr",
    "keras_vggface_senet50": "vggface2-bgr",
}
"""The input convention of each registered face backbone when the file does not say otherwise."""


@dataclass(frozen=True)
class Format:
    """How one kind of file maps onto a backbone."""

    name: str
    title: str
    containers: tuple[str, ...]
    matches: Callable[[Contents], bool]
    made_for: Callable[[Contents], str | None]  # the backbone the file was made for (None: any timm backbone)
    is_head: Callable[[str], bool]  # file names of the classifier, dropped
    rename: Callable[[str, torch.Tensor], tuple[str, torch.Tensor]]  # file name, tensor -> backbone's
    convention: str | None = None  # overrides BACKBONE_CONVENTIONS (albanie's RGB conversion)


FORMATS: Registry = Registry("weights format")


def fc_as_conv(weight: torch.Tensor, channels: int, side: int) -> torch.Tensor:
    """A Linear weight over a flattened (C, H, W) map as the equivalent convolution's weight (same numbers)."""
    if weight.dim() == 2 and weight.shape[1] == channels * side * side:
        return weight.reshape(weight.shape[0], channels, side, side)
    return weight


# --- fanq15/caffe_to_torch_to_pytorch: VGG_Face_torch.pth ---------------------------------------------------
# loadcaffe's VGG-Face as an nn.Sequential (convert_torch.py): convs at these indices, then View, and each
# Linear wrapped as Sequential(Lambda, Linear): fc6 = 32.1, fc7 = 35.1, fc8 (2622 identities) = 38.1.
VGG_SEQUENTIAL = dict(zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28), [
    f"conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1) for i in range(1, n + 1)
]))  # fmt: skip
VGG_SEQUENTIAL_FC = {"32.1": "fc6", "35.1": "fc7"}


def _sequential_name(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    index, _, kind = key.rpartition(".")
    if index in VGG_SEQUENTIAL_FC:
        name = VGG_SEQUENTIAL_FC[index]
        return f"{name}.{kind}", fc_as_conv(value, 512, 7) if name == "fc6" else fc_as_conv(value, value.shape[-1], 1)
    return f"{VGG_SEQUENTIAL.get(int(index), index) if index.isdigit() else index}.{kind}", value


FORMATS.register("vggface-torch")(
    Format(
        "vggface-torch",
        "VGG-Face, caffe VGG-16 as an nn.Sequential (fanq15/caffe_to_torch_to_pytorch)",
        ("torch", "safetensors"),
        lambda c: "0.weight" in c.tensors and all(re.fullmatch(r"\d+(\.1)?\.(weight|bias)", k) for k in c.tensors),
        lambda c: "vggface_vgg16",
        lambda key: key.startswith("38."),
        _sequential_name,
    )
)


# --- cydonia999/VGGFace2-pytorch: resnet50_ft_weight.pkl (torchvision names) --------------------------------
TORCHVISION_PARTS = {"conv1": "1x1_reduce", "bn1": "1x1_reduce_bn", "conv2": "3x3", "bn2": "3x3_bn"}
TORCHVISION_PARTS |= {"conv3": "1x1_increase", "bn3": "1x1_increase_bn"}
TORCHVISION_PARTS |= {"downsample.0": "1x1_proj", "downsample.1": "1x1_proj_bn"}


def _torchvision_name(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """models/resnet.py names -> the caffe names: layer1.0.conv1 -> conv2_1_1x1_reduce, bn1 -> conv1_7x7_s2_bn."""
    stem = {"conv1.": "conv1_7x7_s2.", "bn1.": "conv1_7x7_s2_bn."}
    for old, new in stem.items():
        if key.startswith(old):
            return new + key[len(old) :], value
    found = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)\.(\w+)", key)
    if found and found.group(3) in TORCHVISION_PARTS:
        layer, block, part, kind = found.groups()
        return f"conv{int(layer) + 1}_{int(block) + 1}_{TORCHVISION_PARTS[part]}.{kind}", value
    return key, value


FORMATS.register("vggface2-pickle")(
    Format(
        "vggface2-pickle",
        "VGGFace2 ResNet-50, torchvision names (cydonia999/VGGFace2-pytorch pickle)",
        ("pickle", "torch", "safetensors"),
        lambda c: c.container == "pickle" and "conv1.weight" in c.tensors and "layer1.0.conv1.weight" in c.tensors,
        lambda c: "vggface2_resnet50",
        lambda key: key.startswith("fc."),
        _torchvision_name,
    )
)


# --- albanie's pytorch-mcn resnet50_ft_dag.pth (caffe names; xinqi-fan/ABAW2021 --cnn_ckpt) -----------------
FORMATS.register("vggface2-dag")(
    Format(
        "vggface2-dag",
        "VGGFace2 ResNet-50, caffe names (albanie's resnet50_ft_dag)",
        ("torch", "safetensors"),
        lambda c: "conv1_7x7_s2.weight" in c.tensors,
        lambda c: "vggface2_resnet50",
        lambda key: key.startswith("classifier."),
        lambda key, value: (key, value),
        convention="vggface2-rgb",
    )
)


# --- rcmalli/keras-vggface weights files (keras_vggface/models.py layer names) ------------------------------
KERAS_KINDS = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
KERAS_KINDS |= {"moving_mean": "running_mean", "moving_variance": "running_var"}


def _keras_layers(contents: Contents) -> set[str]:
    return {key.split("::")[0] for key in contents.tensors}


def _keras_model(contents: Contents) -> str | None:
    layers = _keras_layers(contents)
    if "conv2_1_1x1_down" in layers:
        return "keras_vggface_senet50"
    if "conv1/7x7_s2" in layers:
        return "keras_vggface_resnet50"
    if "conv1_1" in layers:
        return "keras_vggface_vgg16" if "fc6" in layers else "keras_vggface_vgg16_notop"
    return None


def _keras_name(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
    """'conv2_1_1x1_reduce/bn::conv2_1_1x1_reduce/bn/gamma:0' -> 'conv2_1_1x1_reduce_bn.weight'; kernels from
    Keras's layout (HWIO; Dense: in x out over a flattened HWC map) to torch's."""
    layer, _, weight = key.partition("::")
    kind = re.sub(r":\d+$", "", weight).rsplit("/", 1)[-1]
    name = f"{layer.replace('/', '_')}.{KERAS_KINDS.get(kind, kind)}"
    if kind == "kernel" and value.dim() == 4:
        value = value.permute(3, 2, 0, 1)
    elif kind == "kernel" and value.dim() == 2:
        side = round((value.shape[0] / 512) ** 0.5) if layer == "fc6" else 1
        channels = value.shape[0] // (side * side)
        if side * side * channels == value.shape[0]:
            value = value.T.reshape(value.shape[1], side, side, channels).permute(0, 3, 1, 2)
    return name, value.contiguous()


FORMATS.register("keras-vggface")(
    Format(
        "keras-vggface",
        "keras-vggface weights (rcmalli/keras-vggface)",
        ("keras",),
        lambda c: c.container == "keras" and _keras_model(c) is not None,
        _keras_model,
        lambda key: key.split("::")[0] in ("fc8", "classifier"),
        _keras_name,
    )
)


# --- a state dict keyed like the backbone: timm's models (HSEmotion's state_vggface2_enet0_new.pt), or ours --
HSEMOTION_BACKBONES = ("tf_efficientnet_b0", "tf_efficientnet_b2")
"""What HSEmotion trains (av-savchenko/face-emotion-recognition; hsemotion/facial_emotions.py sizes 224, 260)."""

FORMATS.register("timm")(
    Format(
        "timm",
        "state dict keyed like the backbone",
        ("torch", "safetensors"),
        lambda c: c.container in ("torch", "safetensors"),
        lambda c: None,
        lambda key: False,  # the backbone's classifier: see timm_heads
        lambda key, value: (key, value),
    )
)

DETECTION_ORDER = ("keras-vggface", "vggface2-pickle", "vggface2-dag", "vggface-torch", "timm")


def detect_format(contents: Contents, source: str) -> Format:
    """The first format whose names the file has."""
    for name in DETECTION_ORDER:
        if FORMATS.get(name).matches(contents):
            return FORMATS.get(name)
    first = next(iter(contents.tensors), "none")
    raise DataError(
        f"{source}: a {contents.container} file whose names fit no known format (first: {first!r}); "
        f"name one with --weights-format ({', '.join(FORMATS.names())})"
    )
