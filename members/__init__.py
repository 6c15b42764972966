"""Member models: data loading, the member registry, training, prediction and feature caches."""

from members import cnn  # noqa: F401  (registers the cnn member)
from members.registry import MEMBERS

__all__ = ["MEMBERS"]
