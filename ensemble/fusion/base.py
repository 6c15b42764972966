"""The fuser contract: ``fit(stack, truths)`` on validation, ``predict(stack)`` on any split.

``predict`` returns a (frames, columns) float32 array in the stack's column order: EXPR and AU
probabilities, VA values. Learned attributes end in ``_``; ``to_dict``/``from_dict`` save a fitted fuser.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ensemble.align import Aligned
from ensemble.errors import AffectEnsError
from ensemble.evaluate import Truth
from ensemble.registry import Registry


class Fuser:
    """Base class: subclasses implement ``fit_task`` and ``predict_task`` for each task they fuse."""

    name = "fuser"

    def __init__(self, *, weights: list[float] | None = None) -> None:
        self.weights = weights
        self.members_: list[str] = []

    def check_members(self, stack: Aligned) -> None:
        if self.weights is not None and len(self.weights) != len(stack.members):
            raise AffectEnsError(
                f"{self.name}: {len(self.weights)} weight(s) given for {len(stack.members)} member(s) "
                f"({', '.join(stack.members)})"
            )
        if self.weights is not None and (min(self.weights) < 0 or sum(self.weights) <= 0):
            raise AffectEnsError(f"{self.name}: weights must be non-negative and not all zero, got {self.weights}")

    def fit(self, stack: Aligned, truths: dict[str, Truth]) -> Fuser:
        self.check_members(stack)
        self.members_ = list(stack.members)
        for task in stack.tasks:
            self.fit_task(task, stack, truths.get(task))
        return self

    def predict(self, stack: Aligned) -> np.ndarray:
        if stack.members != self.members_:
            raise AffectEnsError(f"{self.name}: fitted on members {self.members_}, applied to {stack.members}")
        parts = [self.predict_task(task, stack) for task in stack.tasks]
        return np.concatenate(parts, axis=1, dtype=np.float32)

    def member_weights(self, n: int) -> np.ndarray:
        w = np.ones(n) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def fit_task(self, task: str, stack: Aligned, truth: Truth | None) -> None:
        """Learn what ``task`` needs; the default learns nothing."""

    def predict_task(self, task: str, stack: Aligned) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        learned = {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}
        return {"method": self.name, "params": {n: getattr(self, n) for n in names}, "learned": _jsonable(learned)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fuser:
        """A fitted fuser from ``to_dict``'s output; only learned attributes (names ending in ``_``) are set."""
        fuser = cls(**d["params"])
        for key, value in d["learned"].items():
            if not key.endswith("_") or key.startswith("_") or key not in vars(fuser):
                raise AffectEnsError(f"{cls.name}: unknown learned attribute {key!r} in a saved fusion")
            setattr(fuser, key, value)
        return fuser


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


FUSERS: Registry[type[Fuser]] = Registry("fusion method")


def create_fuser(name: str, **params: Any) -> Fuser:
    """A new fuser of the registered method ``name``."""
    return FUSERS.get(name)(**params)
