"""Fusion methods, one module each, registered in ``FUSERS`` by name."""

from ensemble.fusion import average, stack, vote  # noqa: F401  (register the methods)
from ensemble.fusion.average import AverageFuser, greedy_weights, weighted_average
from ensemble.fusion.base import FUSERS, Fuser, create_fuser
from ensemble.fusion.stack import StackingFuser
from ensemble.fusion.vote import VoteFuser
from ensemble.voting import vote_classes, vote_units, weighted_median

__all__ = [
    "FUSERS",
    "Fuser",
    "create_fuser",
    "AverageFuser",
    "StackingFuser",
    "VoteFuser",
    "greedy_weights",
    "weighted_average",
    "vote_classes",
    "vote_units",
    "weighted_median",
]
