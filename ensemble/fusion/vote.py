"""Majority vote: per frame for EXPR classes, per unit for AUs, weighted median for VA values.

Ties are decided explicitly: ``lead`` (a named member, as in committee submissions), ``soft`` (the highest
summed probability among the tied choices) or ``best`` (the member with the best validation score).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ensemble.errors import AffectEnsError
from ensemble.fusion.base import FUSERS, Fuser, learned, param
from ensemble.voting import vote

if TYPE_CHECKING:
    from ensemble.align import Aligned
    from ensemble.evaluate import Truth

TIE_BREAKS = ("lead", "soft", "best")


@FUSERS.register("vote")
class VoteFuser(Fuser):
    """Majority vote with an explicit tie-break; optional member weights."""

    name = "vote"

    tie_break: str = param("soft", f"vote: how ties are decided: {', '.join(TIE_BREAKS)}.")
    lead: str | None = param(None, "vote: the member deciding ties with --tie-break lead.")
    lead_by_task_: dict[str, int] = learned(dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tie_break not in TIE_BREAKS:
            raise AffectEnsError(f"unknown tie-break {self.tie_break!r}; choose one of: {', '.join(TIE_BREAKS)}")

    def fit_task(self, task: str, stack: Aligned, truth: Truth | None) -> None:
        if self.tie_break == "lead":
            if self.lead is None or self.lead not in stack.members:
                raise AffectEnsError(f"vote: tie-break 'lead' needs --lead, one of: {', '.join(stack.members)}")
            self.lead_by_task_[task] = stack.members.index(self.lead)
        elif self.tie_break == "best":
            if truth is None:
                raise AffectEnsError(f"vote: tie-break 'best' needs {task} labels to rank the members")
            values = stack.task_values(task)
            from ensemble.evaluate import score

            scores = [score(task, stack.edition, truth, values[m])["score"] for m in range(len(stack.members))]
            self.lead_by_task_[task] = int(np.nanargmax(scores))

    def check_learned(self, task: str, stack: Aligned) -> None:
        leads = vars(self).get("lead_by_task_", {})
        leads = leads if isinstance(leads, dict) else None
        lead = leads.get(task, 0) if leads is not None else None
        if not isinstance(lead, int) or isinstance(lead, bool) or not 0 <= lead < len(stack.members):
            raise AffectEnsError(
                f"vote: the saved {task} lead {lead!r} is not a member index (0..{len(stack.members) - 1})"
            )

    def predict_task(self, task: str, stack: Aligned) -> np.ndarray:
        weights = self.member_weights(len(stack.members))
        return vote(task, stack.task_values(task), weights, self.tie_break, self.lead_by_task_.get(task, 0))
