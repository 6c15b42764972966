"""The ``cnn`` member: any timm backbone with task heads, trained per frame."""

from __future__ import annotations

import torch
from torch import nn

from ensemble.tasks import Edition
from members.configs import CnnConfig
from members.heads import TaskHeads
from members.image import ImageMember
from members.pretrained import InputAdapter, prepare, pretrained_backbone
from members.registry import MEMBERS


class CnnNet(nn.Module):
    """Backbone -> pooled features -> task heads."""

    def __init__(self, cfg: CnnConfig, edition: Edition):
        super().__init__()
        self.backbone, convention = pretrained_backbone(cfg)  # every backbone tensor placed, or a one-line error
        self.adapt = InputAdapter(convention)  # the backbone's input convention (config.json's ``input``)
        self.heads = TaskHeads(self.backbone.num_features, tuple(cfg.tasks), edition, cfg.dropout)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.adapt(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.features(images))


@MEMBERS.register("cnn")
class CnnMember(ImageMember):
    """Per-frame CNN on face images."""

    config_class = CnnConfig

    def build_network(self, saved=None) -> CnnNet:
        return CnnNet(self.config, self.edition)

    def train(self, data_root, run_dir, progress=None, *, launch=None) -> list[dict]:
        """Train with the backbone and input convention of the weights file recorded in config.json."""
        self.config = prepare(self.config)[0]
        return super().train(data_root, run_dir, progress, launch=launch)
