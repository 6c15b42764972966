"""Member models: data loading, the member registry, training, prediction and feature caches."""

from members import cnn, committee, keras, temporal  # noqa: F401  (register the members)
from members.registry import MEMBERS

__all__ = ["MEMBERS"]
