"""Image members: a network on face images, trained by the one loop (``members.training.loop``) and predicted
on every face image of a split (``members.training.prediction``). ``cnn``, ``keras`` and a new image member
subclass ``ImageMember`` and build their network in ``build_network``."""

from __future__ import annotations

from pathlib import Path

from members.base import Member
from members.training.distributed import Launch
from members.training.prediction import Prediction, predict_images
from members.training.runs import Run


class ImageMember(Member):
    """A member whose network maps face images to the task outputs."""

    reads_images = True

    def train(self, data_root: Path, run_dir: Path, progress=None, *, launch: Launch | None = None) -> list[dict]:
        from members.training.loop import train_member

        return train_member(type(self), self.config, data_root, run_dir, progress, launch=launch)

    def predict(
        self, run: Run, data_root: Path, split: str, *, frames=None, progress=None, launch: Launch | None = None
    ) -> Prediction:
        return predict_images(run, data_root, split, frames, progress, launch)
