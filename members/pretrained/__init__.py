"""Face-pretrained weights as teams hold them, loaded without running code from the file.

``--weights FILE`` of the cnn member (and the committee's backbones) reads, by content: timm state dicts
(HSEmotion's ``state_vggface2_enet0_new.pt`` among them), fanq15's ``VGG_Face_torch.pth``, cydonia999's
``resnet50_ft_weight.pkl``, albanie's ``resnet50_ft_dag.pth``, keras-vggface's ``.h5`` weights and
``.safetensors`` files (``files``, ``formats``). The networks that are not timm's are registered backbones
(``networks``) with the input convention they were trained with (``conventions``), which a run records in
config.json and its network applies to every image. ``prepare`` resolves a config before training (and says
what it found); ``pretrained_backbone`` builds the network with its weights.

May import: ``ensemble``'s core and ``members.keras_import`` (Keras layers of keras-vggface's networks).
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from members.pretrained.conventions import InputAdapter
from members.pretrained.load import DEFAULT_BACKBONE, convention, describe, find_weights, place, shapes_of
from members.pretrained.networks import BACKBONES, build_backbone

__all__ = ["BACKBONES", "InputAdapter", "build_backbone", "prepare", "pretrained_backbone"]


def prepare(cfg):
    """(``cfg`` with its backbone, the file's when none is given, and the file's input convention; what was
    found, one line, or None without a weights file). Every check of the file runs here, before any output."""
    if not hasattr(cfg, "weights_format") or (cfg.backbone and (cfg.input or not cfg.weights)):
        return cfg, None  # not a config with backbone weights, or resolved already (a run's own)
    if not cfg.weights:
        return replace(cfg, backbone=cfg.backbone or DEFAULT_BACKBONE), None
    found = find_weights(cfg.weights, cfg.weights_format, cfg.backbone)
    model = shapes_of(found.backbone)
    placed = place(model, found, load=False)
    conv = cfg.input or convention(found, model)
    return replace(cfg, backbone=found.backbone, input=conv), f"{describe(found, placed)}; {said_input(conv, cfg)}"


def said_input(conv: dict, cfg) -> str:
    """'input BGR 0-255 minus 91.5, 103.9, 131.1, trained at 224 px (this run: 112 px)'."""
    pixels = "0-255" if conv["scale"] == 255 else "0-1"
    std = "" if set(conv["std"]) == {1.0} else f", divided by {', '.join(f'{v:g}' for v in conv['std'])}"
    mean = ", ".join(f"{v:g}" for v in conv["mean"])
    return f"input {conv['channels']} {pixels} minus {mean}{std}, trained at {conv['size']} px (this run: {cfg.image_size} px)"


def pretrained_backbone(cfg) -> tuple[nn.Module, dict | None]:
    """The backbone of a cnn config, its weights file loaded, and the input convention the config records (None:
    ours, as in runs of earlier versions, which were trained without one: ``prepare`` records it)."""
    if not cfg.weights:
        return build_backbone(cfg.backbone or DEFAULT_BACKBONE), cfg.input
    found = find_weights(cfg.weights, cfg.weights_format, cfg.backbone)
    model = build_backbone(found.backbone)
    place(model, found)
    return model, cfg.input
