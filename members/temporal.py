"""Temporal members on cached CNN features: ``cnn_rnn`` (GRU/LSTM) and ``cnn_transformer``.

Both train many-to-many on windows of consecutive frames of one video and predict every frame; at
prediction time overlapping windows are averaged per frame. An optional "temporal statistics" input adds
the mean, std, min and max of each feature over a sliding window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ensemble.tasks import DEFAULT_EDITION, Edition
from members.heads import TaskHeads
from members.registry import MEMBERS


@dataclass
class TemporalConfig:
    """Everything a temporal run depends on; saved as config.json in the run folder."""

    features: str = ""  # folder with train.npz and val.npz (and test.npz to predict the test split)
    tasks: tuple[str, ...] = ("va",)
    edition: int = DEFAULT_EDITION
    rnn: str = "gru"  # cnn_rnn: gru or lstm
    bidirectional: bool = True
    hidden: int = 128
    layers: int = 1
    heads: int = 4  # cnn_transformer: attention heads
    window: int = 64  # frames per training window
    stride: int = 32  # step between windows (overlap = window - stride)
    stats: int = 0  # half-width of the temporal-statistics window (0: off)
    dropout: float = 0.1
    epochs: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 0


class Standardise(nn.Module):
    """Feature scaling learned from the training cache, saved with the weights."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class RnnNet(nn.Module):
    """Projection -> GRU or LSTM (optionally bidirectional) -> task heads at every frame."""

    def __init__(self, cfg: TemporalConfig, edition: Edition, in_dim: int):
        super().__init__()
        self.scale = Standardise(in_dim)
        self.proj = nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout))
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cfg.rnn]
        self.rnn = rnn(cfg.hidden, cfg.hidden, cfg.layers, batch_first=True, bidirectional=cfg.bidirectional)
        self.heads = TaskHeads(cfg.hidden * (2 if cfg.bidirectional else 1), tuple(cfg.tasks), edition, cfg.dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out, _ = self.rnn(self.proj(self.scale(x)))
        return self.heads(out)


def positional_encoding(length: int, dim: int) -> torch.Tensor:
    """Sinusoidal positions (Vaswani et al., 2017), (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


class TransformerNet(nn.Module):
    """Projection + positional encoding -> Transformer encoder -> task heads at every frame."""

    def __init__(self, cfg: TemporalConfig, edition: Edition, in_dim: int):
        super().__init__()
        self.scale = Standardise(in_dim)
        self.proj = nn.Linear(in_dim, cfg.hidden)
        layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, 2 * cfg.hidden, cfg.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.heads = TaskHeads(cfg.hidden, tuple(cfg.tasks), edition, cfg.dropout)

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = self.proj(self.scale(x)) + positional_encoding(x.shape[1], self.proj.out_features).to(x.device)
        return self.heads(self.encoder(h, src_key_padding_mask=padding))


@MEMBERS.register("cnn_rnn")
class CnnRnnMember:
    """GRU/LSTM over windows of cached CNN features."""

    config_class = TemporalConfig
    network = RnnNet
    on_features = True


@MEMBERS.register("cnn_transformer")
class CnnTransformerMember:
    """Transformer encoder over windows of cached CNN features."""

    config_class = TemporalConfig
    network = TransformerNet
    on_features = True
