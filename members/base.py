"""The member contract, both halves: what every member declares, with defaults, so nothing dispatches on
``getattr``.

A member is a class registered with ``@MEMBERS.register("name")`` that subclasses ``Member``: it names its
config dataclass (a ``MemberConfig``) and says how it trains (``train``), how its network is built
(``build_network``, one signature for every member) and how a finished run predicts (``predict``).
``create_member(name, config)`` builds one for training, as timm's ``create_model`` does; the load half,
``Member.from_run(run)``, builds it from a finished run (``members.training.runs.Run``: the run's config.json
read and checked once), and ``run.load_network()`` gives its network with the best weights. Image members
(a network on face images, trained by the one loop) subclass ``members.image.ImageMember``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ensemble.errors import DataError
from members.configs import MemberConfig

if TYPE_CHECKING:
    from ensemble.tasks import Edition
    from members.training.distributed import Launch
    from members.training.prediction import Prediction
    from members.training.runs import Run

Progress = Callable[[int, int], None]
"""``progress(done, total)``: items (frames, images) done so far of ``total``."""
PhaseProgress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: the same within a named phase (an epoch, finding faces, predicting)."""


class Member:
    """A member with its config. Class attributes say what the command line needs to know of it."""

    config_class: ClassVar[type[MemberConfig]] = MemberConfig
    min_epochs: ClassVar[int] = 1  # train-member refuses fewer --epochs
    on_features: ClassVar[bool] = False  # trains on cached features (extract-features), not on face images
    reads_images: ClassVar[bool] = False  # its network maps face images to outputs (video and webcam inference)

    def __init__(self, config: MemberConfig | None = None):
        self.config = self.config_class() if config is None else config
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, not {type(config).__name__}")

    @classmethod
    def from_run(cls, run: Run) -> Member:
        """The member of a finished run with the run's config (``Member.from_run`` takes any member's run; a
        subclass takes only its own members' runs)."""
        member = run.member_cls(run.config)
        if not isinstance(member, cls):
            raise DataError(f"{run.path}: a {run.name} run, not a {cls.__name__}")
        return member

    @property
    def edition(self) -> Edition:
        from ensemble.tasks import get_edition

        return get_edition(self.config.edition)

    def build_network(self, saved: Mapping[str, Any]) -> Any:
        """The member's untrained torch network; ``saved``: what training stored beside the weights in best.pt
        (e.g. a temporal member's input width). Members without a network of their own (a committee) have none."""
        raise DataError(f"a {type(self).__name__} has no network of its own")

    def train(self, data_root: Path, run_dir: Path, progress=None, *, launch: Launch | None = None) -> list[dict]:
        """Train (or resume, or extend) the run in ``run_dir`` (its folder, or the ``TrainingRun`` the caller
        opened, which is not read again); returns the per-epoch history rows."""
        raise NotImplementedError

    def predict(
        self, run: Run, data_root: Path, split: str, *, frames=None, progress=None, launch: Launch | None = None
    ) -> Prediction:
        """The finished run's prediction for every frame of ``split`` (rank 0 gets the table)."""
        raise NotImplementedError
