"""Input conventions as data: the channel order, pixel scale, per-channel mean and std, and input size each
face-pretrained network was trained with, and the module that turns our images into that input.

Our data pipeline gives every network RGB images normalised as ``(x - 0.5) / 0.5`` with ``x`` in [0, 1]
(``members.training.data``); a backbone trained on another convention gets its own input through ``InputAdapter``, at
training and at prediction alike, because the adapter is part of the network. A run stores its convention in
config.json (the ``input`` field of the cnn config).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Convention:
    """``(pixel * scale - mean) / std`` per channel, in ``channels`` order; ``size``: the side it was trained at."""

    channels: str  # "RGB" or "BGR"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float  # 255.0: caffe-style 0-255 pixels; 1.0: torchvision-style 0-1 pixels
    size: int
    source: str  # where the numbers come from (public code)

    def record(self) -> dict:
        """The convention as config.json stores it."""
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}


CONVENTIONS = {
    # VGG-Face (Parkhi et al. 2015), caffe: BGR 0-255 minus the average face. The same numbers are
    # keras-vggface's preprocess_input(version=1) (rcmalli/keras-vggface, keras_vggface/utils.py), which
    # flips RGB to BGR first; fanq15/caffe_to_torch_to_pytorch keeps caffe's BGR first conv.
    "vggface1-bgr": Convention(
        "BGR", (93.5940, 104.7624, 129.1863), (1.0, 1.0, 1.0), 255.0, 224, "VGG-Face caffe; keras-vggface version 1"
    ),
    # VGGFace2 ResNet-50/SENet-50 (Cao et al. 2018), caffe: BGR 0-255 minus mean_bgr
    # (cydonia999/VGGFace2-pytorch, datasets/vgg_face2.py: mean_bgr from resnet50_ft.prototxt);
    # keras-vggface's preprocess_input(version=2) uses the same numbers.
    "vggface2-bgr": Convention(
        "BGR", (91.4953, 103.8827, 131.0912), (1.0, 1.0, 1.0), 255.0, 224, "VGGFace2 caffe; keras-vggface version 2"
    ),
    # albanie's pytorch-mcn conversion takes RGB (its first conv is flipped): resnet50_ft_dag.py
    # meta = {'mean': [131.0912, 103.8827, 91.4953], 'std': [1, 1, 1], 'imageSize': [224, 224, 3]}
    # (copied in xinqi-fan/ABAW2021, models/resnet50_ft_dag.py).
    "vggface2-rgb": Convention(
        "RGB", (131.0912, 103.8827, 91.4953), (1.0, 1.0, 1.0), 255.0, 224, "albanie resnet50_ft_dag meta"
    ),
}


def timm_convention(model: nn.Module, name: str) -> Convention:
    """The convention timm records for a backbone's pretrained weights (HSEmotion's EfficientNets use the same:
    av-savchenko/hsemotion, facial_emotions.py, Normalize(ImageNet mean, std) at 224 for b0, 260 for b2)."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean, std = tuple(cfg.get("mean", (0.5,) * 3)), tuple(cfg.get("std", (0.5,) * 3))
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return Convention("RGB", mean, std, 1.0, size, f"timm pretrained_cfg of {name}")


class InputAdapter(nn.Module):
    """Our normalised RGB images -> the backbone's input convention (identity without one). Its buffers follow
    from the config and are not saved in checkpoints."""

    def __init__(self, convention: dict | None):
        super().__init__()
        self.active = convention is not None
        conv = convention or {"channels": "RGB", "mean": [0.0] * 3, "std": [1.0] * 3, "scale": 1.0}
        self.bgr, self.scale = conv["channels"] == "BGR", float(conv["scale"])
        self.register_buffer("mean", torch.tensor(conv["mean"], dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(conv["std"], dtype=torch.float32).view(1, 3, 1, 1), False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return images
        x = (images * 0.5 + 0.5) * self.scale
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std
