"""The ``cnn`` member: any timm backbone with task heads, trained per frame."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from ensemble.errors import DataError
from ensemble.tasks import Edition
from members.configs import CnnConfig
from members.heads import TaskHeads
from members.image import ImageMember
from members.registry import MEMBERS


def load_backbone_weights(model: nn.Module, path: str) -> None:
    """Load a local state dict (a classifier head in it is ignored); a missing or foreign file is an error."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: weights file not found")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  torch raises many types for a bad file
        raise DataError(f"{file}: not a torch weights file ({type(exc).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    missing, _ = model.load_state_dict(state, strict=False)
    if len(missing) == len(model.state_dict()):
        raise DataError(f"{file}: no weight matches backbone {type(model).__name__}")


class CnnNet(nn.Module):
    """Backbone -> pooled features -> task heads."""

    def __init__(self, cfg: CnnConfig, edition: Edition):
        super().__init__()
        try:
            self.backbone = timm.create_model(cfg.backbone, pretrained=False, num_classes=0)
        except RuntimeError as exc:
            raise DataError(f"unknown timm backbone {cfg.backbone!r} ({str(exc)[:80]})") from None
        if cfg.weights:
            load_backbone_weights(self.backbone, cfg.weights)
        self.heads = TaskHeads(self.backbone.num_features, tuple(cfg.tasks), edition, cfg.dropout)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.features(images))


@MEMBERS.register("cnn")
class CnnMember(ImageMember):
    """Per-frame CNN on face images."""

    config_class = CnnConfig

    def build_network(self, saved=None) -> CnnNet:
        return CnnNet(self.config, self.edition)
