"""Task heads and masked losses shared by every member: EXPR logits, VA in [-1, 1], AU logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ensemble.tasks import Edition


class TaskHeads(nn.Module):
    """Linear heads on a feature vector for each trained task."""

    def __init__(self, in_features: int, tasks: tuple[str, ...], edition: Edition, dropout: float = 0.2):
        super().__init__()
        self.tasks = tasks
        self.drop = nn.Dropout(dropout)
        sizes = {"expr": len(edition.expr_classes), "va": 2, "au": len(edition.aus)}
        self.heads = nn.ModuleDict({t: nn.Linear(in_features, sizes[t]) for t in tasks})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs: EXPR and AU logits, VA already squashed to [-1, 1]."""
        x = self.drop(features)
        out = {t: head(x) for t, head in self.heads.items()}
        if "va" in out:
            out["va"] = torch.tanh(out["va"])
        return out


def probabilities(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contract values: softmax for EXPR, VA as is, sigmoid for AU."""
    conv = {"expr": lambda x: x.softmax(-1), "va": lambda x: x, "au": torch.sigmoid}
    return {t: conv[t](v) for t, v in outputs.items()}


def ccc_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - CCC per dimension, averaged: trains VA on the metric it is scored by."""
    pm, tm = pred.mean(0), target.mean(0)
    cov = ((pred - pm) * (target - tm)).mean(0)
    ccc = 2 * cov / (pred.var(0, unbiased=False) + target.var(0, unbiased=False) + (pm - tm) ** 2 + 1e-8)
    return (1 - ccc).mean()


def masked_loss(outputs: dict[str, torch.Tensor], expr, va, au, mask) -> torch.Tensor:
    """Sum of the task losses, each over the samples whose label for that task exists. A head whose task has
    no label in the batch still joins the graph with weight 0: DistributedDataParallel expects a gradient for
    every parameter at every step."""
    total = outputs[next(iter(outputs))].new_zeros(())
    for out in outputs.values():
        total = total + 0.0 * out.sum()
    if "expr" in outputs and mask[:, 0].any():
        total = total + F.cross_entropy(outputs["expr"][mask[:, 0]], expr[mask[:, 0]])
    if "va" in outputs and mask[:, 1].sum() > 1:
        m = mask[:, 1]
        total = total + ccc_loss(outputs["va"][m], va[m]) + F.mse_loss(outputs["va"][m], va[m])
    if "au" in outputs and mask[:, 2].any():
        total = total + F.binary_cross_entropy_with_logits(outputs["au"][mask[:, 2]], au[mask[:, 2]])
    return total
