"""Temporal members on cached CNN features: ``cnn_rnn`` (GRU/LSTM) and ``cnn_transformer``.

Both train many-to-many on windows of consecutive frames of one video and predict every frame; at
prediction time overlapping windows are averaged per frame. An optional "temporal statistics" input adds
the mean, std, min and max of each feature over a sliding window.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ensemble.tasks import Edition
from members.base import Member
from members.configs import TemporalConfig
from members.heads import TaskHeads
from members.registry import MEMBERS


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
        """Outputs at every frame; ``padding`` (batch, frames) marks padded frames, which the recurrence skips
        (a backward pass starts at each window's last real frame, as at prediction, never at padded zeros)."""
        h = self.proj(self.scale(x))
        if padding is None or not padding.any():
            return self.heads(self.rnn(h)[0])
        lengths = (~padding).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
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


class TemporalMember(Member):
    """A member on windows of cached CNN features (``extract-features``), trained and predicted per video."""

    config_class = TemporalConfig
    on_features = True
    network_class: type[nn.Module]

    def build_network(self, saved) -> nn.Module:
        """The network on ``saved["in_dim"]`` features per frame (the cache's width, with the statistics)."""
        return self.network_class(self.config, self.edition, saved["in_dim"])

    def train(self, data_root, run_dir, progress=None, *, launch=None) -> list[dict]:
        from members.training.temporal import train_temporal

        return train_temporal(type(self), self.config, data_root, run_dir, progress, launch=launch)

    def predict(self, run, data_root, split, *, frames=None, progress=None, launch=None):
        from members.training.temporal import predict_temporal

        return predict_temporal(run, split, frames=frames, progress=progress, launch=launch)


@MEMBERS.register("cnn_rnn")
class CnnRnnMember(TemporalMember):
    """GRU/LSTM over windows of cached CNN features."""

    network_class = RnnNet


@MEMBERS.register("cnn_transformer")
class CnnTransformerMember(TemporalMember):
    """Transformer encoder over windows of cached CNN features."""

    network_class = TransformerNet
