"""The member contract: what every member declares, with defaults, so nothing dispatches on ``getattr``.

A member is a class registered with ``@MEMBERS.register("name")`` that subclasses ``Member``: it names its
config dataclass (a ``MemberConfig``), and overrides what differs from the image member trained by
``members.training.loop.train_member``: ``network``, ``min_epochs``, ``on_features``, ``train`` and ``predict``.
``create_member(name, config)`` builds one, as timm's ``create_model`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from members.configs import MemberConfig

if TYPE_CHECKING:
    from members.training.distributed import Launch
    from members.training.prediction import Prediction


class Member:
    """A member with its config. Class attributes say what the command line needs to know of it."""

    config_class: ClassVar[type[MemberConfig]] = MemberConfig
    network: ClassVar[Any] = None  # the torch module built as network(config, edition, ...); None: no own network
    min_epochs: ClassVar[int] = 1  # train-member refuses fewer --epochs
    on_features: ClassVar[bool] = False  # trains on cached features (extract-features), not on face images
    reads_images: ClassVar[bool] = True  # its network maps face images to outputs (video and webcam inference)

    def __init__(self, config: MemberConfig | None = None):
        self.config = self.config_class() if config is None else config
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, not {type(config).__name__}")

    def train(self, data_root: Path, run_dir: Path, progress=None, *, launch: Launch | None = None) -> list[dict]:
        """Train (or resume, or extend) the run in ``run_dir``; returns the per-epoch history rows."""
        from members.training.loop import train_member

        return train_member(type(self), self.config, data_root, run_dir, progress, launch=launch)

    def predict(
        self, run_dir: Path, data_root: Path, split: str, *, frames=None, progress=None, launch: Launch | None = None
    ) -> Prediction:
        """The finished run's prediction for every frame of ``split`` (rank 0 gets the table)."""
        from members.training.prediction import predict_images

        return predict_images(type(self), self.config, run_dir, data_root, split, frames, progress, launch)
