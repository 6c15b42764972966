"""Face-pretrained networks that are not timm's exactly, registered as backbones by name.

Each takes a (N, 3, H, W) batch in its own input convention (``conventions``) and returns pooled features
(N, ``num_features``), as a timm model built with ``num_classes=0`` does; its parameter names are the layer
names of the public definition its weights were made with, so a file maps onto it name by name.

- VGG-16 as VGG-Face (Parkhi et al. 2015): convs ``conv1_1`` .. ``conv5_3``, ``fc6`` and ``fc7`` (the names of
  keras-vggface's VGG16 and of albanie's vgg_face_dag). The fully connected ``fc6`` (25088 -> 4096) is held as
  the equivalent 7x7 convolution and ``fc7`` as a 1x1 one, so the 4096-d descriptor exists at any input size:
  a map smaller than 7x7 is first average-pooled up to 7x7 (timm's VGG ``ConvMlp`` does the same); at 224 px
  this is exactly the Linear layers on the flattened pool5 map. Caffe pools with ceil rounding (loadcaffe keeps
  it: fanq15/caffe_to_torch_to_pytorch, convert_torch.py), Keras with floor rounding.
- ResNet-50 as the VGGFace2 caffe models (Cao et al. 2018): the stride of a stage sits in the first 1x1 conv
  of its first block (and in its 1x1 projection), the stem max-pool rounds up (ceil mode, no padding): see
  cydonia999/VGGFace2-pytorch models/resnet.py and albanie's resnet50_ft_dag.py (xinqi-fan/ABAW2021,
  models/resnet50_ft_dag.py). Layer names are the caffe ones: ``conv1_7x7_s2``, ``conv2_1_1x1_reduce``,
  ``conv2_1_3x3``, ``conv2_1_1x1_increase``, ``conv2_1_1x1_proj``, each with ``_bn``. keras-vggface's RESNET50
  and SENET50 (rcmalli/keras-vggface, keras_vggface/models.py) are the same network built by Keras: the 7x7
  stem convolution pads TensorFlow's 'same' way (asymmetric), the max-pool rounds down, BatchNorm's epsilon is
  Keras's default 1e-3 (1e-4 in SENET50), and SENET50 adds a squeeze-excitation ``_1x1_down``/``_1x1_up``
  pair (with biases) to every block. keras-vggface's layer names map onto these with '/' read as '_'.
  The final 7x7 average pool is a global one here (the same at 224 px; any size works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ensemble.registry import Registry
from members.keras_import.converter import SamePad

BACKBONES: Registry = Registry("face backbone")
"""Backbone name -> factory of the network (no arguments)."""

VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
RESNET_STAGES = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))  # (caffe stage number, blocks, width)


class FaceVgg16(nn.Module):
    """VGG-16 with VGG-Face's layer names; ``top``: with fc6 and fc7 (4096 features), else pooled pool5 (512)."""

    def __init__(self, ceil_mode: bool, top: bool = True):
        super().__init__()
        self.convs: list[list[str]] = []
        channels = 3
        for b, widths in enumerate(VGG_BLOCKS, 1):
            self.convs.append([])
            for i, width in enumerate(widths, 1):
                self.add_module(f"conv{b}_{i}", nn.Conv2d(channels, width, 3, padding=1))
                self.convs[-1].append(f"conv{b}_{i}")
                channels = width
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=ceil_mode)
        self.top = top
        if top:
            self.fc6, self.fc7 = nn.Conv2d(512, 4096, 7), nn.Conv2d(4096, 4096, 1)
            self.drop = nn.Dropout(0.5)
        self.num_features = 4096 if top else 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.convs:
            for name in block:
                x = F.relu(getattr(self, name)(x))
            x = self.pool(x)
        if self.top:
            if min(x.shape[-2:]) < 7:
                x = F.adaptive_avg_pool2d(x, (max(7, x.shape[-2]), max(7, x.shape[-1])))
            x = self.drop(F.relu(self.fc6(x)))
            x = self.drop(F.relu(self.fc7(x)))
        return x.mean((2, 3))


class FaceResNet50(nn.Module):
    """ResNet-50 with the stride in the 1x1 convs and caffe layer names; ``keras``: keras-vggface's stem
    (TensorFlow 'same' padding, floor max-pool); ``eps``: BatchNorm's epsilon; ``se``: SENet-50's blocks."""

    def __init__(self, keras: bool = False, eps: float = 1e-5, se: bool = False):
        super().__init__()
        self.se, self.blocks = se, []
        self.stem_pad = SamePad((7, 7), (2, 2)) if keras else nn.Identity()
        self.conv1_7x7_s2 = nn.Conv2d(3, 64, 7, 2, padding=0 if keras else 3, bias=False)
        self.conv1_7x7_s2_bn = nn.BatchNorm2d(64, eps=eps)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, 2, ceil_mode=not keras)
        channels = 64
        for stage, count, width in RESNET_STAGES:
            for block in range(1, count + 1):
                stride = 2 if block == 1 and stage > 2 else 1
                self._add_block(f"conv{stage}_{block}", channels, width, stride, eps, project=block == 1)
                channels = width * 4
        self.num_features = channels

    def _conv(self, name: str, cin: int, cout: int, eps: float, kernel: int = 1, stride: int = 1) -> None:
        self.add_module(name, nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False))
        self.add_module(f"{name}_bn", nn.BatchNorm2d(cout, eps=eps))

    def _add_block(self, name: str, cin: int, width: int, stride: int, eps: float, project: bool) -> None:
        self._conv(f"{name}_1x1_reduce", cin, width, eps, stride=stride)
        self._conv(f"{name}_3x3", width, width, eps, kernel=3)
        self._conv(f"{name}_1x1_increase", width, width * 4, eps)
        if project:
            self._conv(f"{name}_1x1_proj", cin, width * 4, eps, stride=stride)
        if self.se:
            self.add_module(f"{name}_1x1_down", nn.Conv2d(width * 4, width * 4 // 16, 1))
            self.add_module(f"{name}_1x1_up", nn.Conv2d(width * 4 // 16, width * 4, 1))
        self.blocks.append((name, project))

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"{name}_bn")(getattr(self, name)(x))

    def _block(self, name: str, project: bool, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self._unit(f"{name}_1x1_reduce", x))
        y = F.relu(self._unit(f"{name}_3x3", y))
        y = self._unit(f"{name}_1x1_increase", y)
        if self.se:
            gate = F.relu(getattr(self, f"{name}_1x1_down")(y.mean((2, 3), keepdim=True)))
            y = y * torch.sigmoid(getattr(self, f"{name}_1x1_up")(gate))
        return F.relu(y + (self._unit(f"{name}_1x1_proj", x) if project else x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1_7x7_s2_bn(self.conv1_7x7_s2(self.stem_pad(x))))
        x = self.pool1_3x3_s2(x)
        for name, project in self.blocks:
            x = self._block(name, project, x)
        return x.mean((2, 3))


BACKBONES.register("vggface_vgg16")(lambda: FaceVgg16(ceil_mode=True))
BACKBONES.register("keras_vggface_vgg16")(lambda: FaceVgg16(ceil_mode=False))
BACKBONES.register("keras_vggface_vgg16_notop")(lambda: FaceVgg16(ceil_mode=False, top=False))
BACKBONES.register("vggface2_resnet50")(lambda: FaceResNet50())
BACKBONES.register("keras_vggface_resnet50")(lambda: FaceResNet50(keras=True, eps=1e-3))
BACKBONES.register("keras_vggface_senet50")(lambda: FaceResNet50(keras=True, eps=1e-4, se=True))


def build_backbone(name: str) -> nn.Module:
    """A registered face backbone or any timm model by name, without a classifier (pooled features out)."""
    if name in BACKBONES:
        return BACKBONES.get(name)()
    import timm

    from ensemble.errors import DataError

    try:
        return timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as exc:
        raise DataError(
            f"unknown timm backbone {name!r} ({str(exc)[:80]}); face backbones: {', '.join(BACKBONES.names())}"
        ) from None
