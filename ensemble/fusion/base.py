"""The fuser contract: ``fit(aligned, truths)`` on validation, ``predict(aligned)`` on any split.

A fuser is one class in one module, registered in ``FUSERS``. Its parameters are declared once, as fields made
with ``param`` (default and help text; the ``fuse`` command builds one option from each). Its learned
attributes are fields made with ``learned``, named with a trailing ``_`` (sklearn's convention); they exist
only once the fuser is fitted. ``predict`` returns a (frames, columns) float32 array in the aligned column
order: EXPR and AU probabilities, VA values. ``to_dict``/``from_dict`` save and restore a fitted fuser.

    @FUSERS.register("first")
    class FirstMember(Fuser):
        pick: int = param(0, "first: the member whose outputs are returned.")

        def predict_task(self, task, aligned):
            return aligned.task_values(task)[self.pick]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from ensemble.errors import AffectEnsError, NotFittedError
from ensemble.params import check_limits, declare
from ensemble.registry import Registry

if TYPE_CHECKING:  # types only: the fusion modules load without pandas, so `affect-ens --help` starts fast
    from ensemble.align import Aligned
    from ensemble.evaluate import Truth


def param(default: Any, help: str, *, flag: str | None = None, **limits: float) -> Any:  # noqa: A002
    """A declared fuser parameter (``ensemble.params.declare``, as member configs declare theirs): its default,
    the help of its ``fuse`` option, that option's name (default ``--<name>``) and its limits (min, max), which
    the fuser checks itself when built."""
    return declare(default, help, flag=flag, **limits)


def learned(start: Callable[[], Any] | None = None, *, saved: bool = True) -> Any:
    """A learned attribute (its name ends in ``_``), absent until ``fit``; ``fit`` starts it at ``start()``
    when given (``dict``: an empty dict per fit). ``saved=False`` keeps it out of the saved fusion."""
    return field(init=False, repr=False, metadata={"saved": saved, "start": start})


@dataclass(kw_only=True, eq=False)
class Fuser:
    """Base class: subclasses declare their parameters and implement ``predict_task`` (and ``fit_task`` when
    they learn something). Each subclass is made a keyword-only dataclass of its declared fields (no decorator
    needed), so its ``__init__`` takes the parameters by name."""

    name = "fuser"

    weights: list[float] | None = param(None, "Member weights, comma-separated, in member order.")
    members_: list[str] = learned()
    oof_: np.ndarray | None = learned(saved=False)
    """Out-of-fold outputs of the fit, by video, for a method that computes them anyway; None: the caller
    computes them by refitting per fold."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(kw_only=True, eq=False)(cls)

    def __post_init__(self) -> None:
        """Check the parameters (their declared limits: 'stack: rounds must be a finite number at least 1, got
        0', built in Python, from ``fuse``'s options or from a saved fusion alike); subclasses extend it."""
        values = {f.name: getattr(self, f.name) for f in param_fields(type(self))}
        check_limits(type(self), values, lambda key: f"{self.name}: {key}")

    def check_members(self, aligned: Aligned) -> None:
        if self.weights is not None and len(self.weights) != len(aligned.members):
            raise AffectEnsError(
                f"{self.name}: {len(self.weights)} weight(s) given for {len(aligned.members)} member(s) "
                f"({', '.join(aligned.members)})"
            )
        if self.weights is not None and not (min(self.weights) >= 0 and 0 < sum(self.weights) < math.inf):
            raise AffectEnsError(
                f"{self.name}: weights must be finite, non-negative and not all zero, got {self.weights}"
            )

    def fit(self, aligned: Aligned, truths: dict[str, Truth]) -> Fuser:
        self.check_members(aligned)
        for f in learned_fields(type(self)):
            if f.metadata["start"] is not None:
                setattr(self, f.name, f.metadata["start"]())
        self.members_ = list(aligned.members)
        self.oof_ = None
        for task in aligned.tasks:
            self.fit_task(task, aligned, truths.get(task))
        return self

    def check_fitted(self) -> None:
        """A one-line error when the fuser has not been fitted (sklearn's ``check_is_fitted``)."""
        if "members_" not in vars(self):
            raise NotFittedError(f"{self.name}: this fuser is not fitted; fit it on validation or load a saved fusion")

    def predict(self, aligned: Aligned) -> np.ndarray:
        self.check_fitted()
        if aligned.members != self.members_:
            raise AffectEnsError(f"{self.name}: fitted on members {self.members_}, applied to {aligned.members}")
        parts = [self.predict_task(task, aligned) for task in aligned.tasks]
        return np.concatenate(parts, axis=1, dtype=np.float32)

    def check_loaded(self, aligned: Aligned) -> None:
        """A fusion read from a file, checked against the members and tasks it is applied to before anything
        is predicted: its members, its weights, then each task's learned values (``check_learned``)."""
        self.check_fitted()
        if self.members_ != aligned.members:
            raise AffectEnsError(f"{self.name}: fitted on members {self.members_}, applied to {aligned.members}")
        self.check_members(aligned)
        for task in aligned.tasks:
            self.check_learned(task, aligned)

    def check_learned(self, task: str, aligned: Aligned) -> None:
        """Check the learned values of ``task`` (types, shapes, ranges) against ``aligned``; subclasses that
        learn something extend it."""

    def member_weights(self, n: int) -> np.ndarray:
        w = np.ones(n) if self.weights is None else np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()

    def fit_task(self, task: str, aligned: Aligned, truth: Truth | None) -> None:
        """Learn what ``task`` needs; the default learns nothing."""

    def predict_task(self, task: str, aligned: Aligned) -> np.ndarray:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The method, its parameters and its saved learned attributes, as JSON-ready values."""
        saved = [f.name for f in learned_fields(type(self)) if f.metadata["saved"] and f.name in vars(self)]
        params = {f.name: getattr(self, f.name) for f in param_fields(type(self))}
        return {"method": self.name, "params": params, "learned": _jsonable({n: getattr(self, n) for n in saved})}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fuser:
        """A fitted fuser from ``to_dict``'s output; only declared parameters and learned attributes are set."""
        declared, known = {f.name for f in param_fields(cls)}, {f.name for f in learned_fields(cls)}
        for key in [*d["params"], *d["learned"]]:
            if key not in declared | known or (key in d["learned"]) != (key in known):
                raise AffectEnsError(f"{cls.name}: unknown parameter or learned attribute {key!r} in a saved fusion")
        for f in param_fields(cls):
            if f.name in d["params"] and not _param_ok(_type_name(f.type), d["params"][f.name]):
                raise AffectEnsError(
                    f"{cls.name}: parameter {f.name} must be {_type_name(f.type)}, got {_shown(d['params'][f.name])}"
                )
        members = d["learned"].get("members_")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise AffectEnsError(f"{cls.name}: the saved fusion names no members (members_ must be a list of names)")
        fuser = cls(**d["params"])
        for key, value in d["learned"].items():
            setattr(fuser, key, value)
        return fuser


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


PARAM_TYPES: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str) and len(v) <= 1000,
    "None": lambda v: v is None,
    "list[float]": lambda v: isinstance(v, list) and len(v) <= 100_000 and all(_is_number(x) for x in v),
}
"""What a saved parameter of each declared type may hold."""


def _type_name(annotation: Any) -> str:
    """A parameter's declared type as written: ``'int'``, ``'float | None'`` (an annotation is a string in modules
    with postponed annotations, a type in others, such as a fuser written in one file without them)."""
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _param_ok(annotation: str, value: Any) -> bool:
    return any(PARAM_TYPES.get(part.strip(), lambda v: False)(value) for part in annotation.split("|"))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number_lists(groups: Any, count: int, length: int) -> bool:
    """True when ``groups`` is ``count`` lists of ``length`` finite, non-negative numbers, each summing above 0."""
    return (
        isinstance(groups, list)
        and len(groups) == count
        and all(
            isinstance(g, list) and len(g) == length and all(_is_number(x) and x >= 0 for x in g) and sum(g) > 0
            for g in groups
        )
    )


def param_fields(cls: type[Fuser]) -> list[Field]:
    """The declared parameters of a fuser class."""
    return [f for f in fields(cls) if f.init]


def learned_fields(cls: type[Fuser]) -> list[Field]:
    """The learned attributes of a fuser class (names ending in ``_``)."""
    return [f for f in fields(cls) if not f.init and f.name.endswith("_") and not f.name.startswith("_")]


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
    """A new fuser of the registered method ``name``; an unknown parameter is a one-line error."""
    cls = FUSERS.get(name)
    declared = [f.name for f in param_fields(cls)]
    unknown = [p for p in params if p not in declared]
    if unknown:
        raise AffectEnsError(f"{name}: unknown parameter {unknown[0]!r}; its parameters: {', '.join(declared)}")
    return cls(**params)
